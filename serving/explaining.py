"""Per-request scoring and explanation of one loaded model, delegated to ``training.explain``.

The explanation function of ``training.explain`` (SHAP in log-odds space with a NumPy fast
path; contributions summed per clinical variable, worded with the catalog's labels and units)
is the single implementation; the service only calls it. Batch scoring without explanations
uses the model's own ``predict_proba`` on the whole feature table, so in-process predictions
and service responses come from the same objects.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Explained:
    """Probability and, when asked for, the top contributions of one patient."""

    probability: float
    base_value: float | None = None
    log_odds: float | None = None
    other: float | None = None
    contributions: tuple[Any, ...] = field(default_factory=tuple)  # training.explain.Contribution
    effects: dict[str, float] | None = None  # every variable's SHAP log-odds


def make_explainer(model: Any) -> Any:
    """``training.explain.ModelExplainer`` for ``model``, built once at load time."""
    from training.explain import ModelExplainer

    return ModelExplainer(model)


def input_columns(model: Any, explainer: Any) -> tuple[str, ...]:
    """The feature columns the model reads, in its order."""
    if explainer is not None:
        return tuple(explainer.input_columns)
    inner = model
    if hasattr(model, "calibrated_classifiers_"):
        inner = model.calibrated_classifiers_[0].estimator
    names = getattr(inner, "feature_names_in_", None)
    if names is None:
        names = getattr(inner, "columns", None)
    if names is None:
        raise ValueError("a registered model does not declare its input columns")
    return tuple(str(c) for c in names)


def predict(model: Any, X: pd.DataFrame) -> np.ndarray:
    """Calibrated probability of the positive class for every row (the model's own code)."""
    return np.asarray(model.predict_proba(X)[:, 1], dtype=float)


def explain_row(model: Any, explainer: Any, x: np.ndarray, top_k: int) -> Explained:
    """One row (model input columns, float64): probability, base value, top contributions.

    With an explainer (every supported model family) this is ``ModelExplainer.explain_row``:
    NumPy transforms, SHAP in log-odds, the calibrated probability from the same log-odds.
    """
    if explainer is None:
        frame = pd.DataFrame(x.reshape(1, -1), columns=input_columns(model, None))
        return Explained(float(predict(model, frame)[0]))
    e = explainer.explain_row(x.reshape(1, -1), top=top_k)
    return Explained(
        probability=float(e.probability),
        base_value=float(e.base_value),
        log_odds=float(e.log_odds),
        other=float(e.other_log_odds),
        contributions=e.contributions,  # the objects (``to_dict`` deep-copies each one)
    )


def probability(model: Any, explainer: Any, x: np.ndarray) -> float:
    """The calibrated probability of one row when no explanation is wanted (a trend point).

    Gradient-boosted trees: the booster's own margin on the explainer's NumPy transform of the
    row, calibrated as ``explain_row`` calibrates (TreeSHAP is most of an explanation's cost;
    the two log-odds agree to float32 rounding, ≤ 1e-7 in probability). Other families:
    ``explain_row`` without contributions, already cheap.
    """
    if explainer is not None and explainer.family == "xgboost":
        x2 = x.reshape(1, -1)
        booster = _booster(explainer)
        margin = booster.inplace_predict(explainer.transform(x2), predict_type="margin")
        return float(explainer.calibrate(np.asarray(margin, dtype=np.float64).reshape(1), x2)[0])
    return explain_row(model, explainer, x, 0).probability


_BOOSTERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _booster(explainer: Any) -> Any:
    """The fitted booster of an XGBoost pipeline (the pipeline's last step), looked up once per
    loaded model (a reload's new explainers get their own; old entries go with them)."""
    booster = _BOOSTERS.get(explainer)
    if booster is None:
        booster = _BOOSTERS.setdefault(explainer, explainer.estimator.steps[-1][1].get_booster())
    return booster


def explain_top(model: Any, explainer: Any, x: np.ndarray, top_k: int) -> Explained:
    """What a scored result shows: probability, base value, log-odds, the ``top_k`` largest
    contributions, the rest summed (``other``), and every variable's SHAP log-odds
    (``effects``, for the missing-input warnings).

    Trees: one explanation with every variable (TreeSHAP dominates; wording the rest is cheap
    beside it). Linear models, whose SHAP is a dot product: the per-variable SHAP values from
    the explainer's public transform and ``shap_values``, grouped as ``explain_row`` groups
    them, and ``explain_row`` words only the top ``top_k`` (wording every variable costs more
    than the model). ``other`` is summed the same way in both cases.
    """
    if explainer is None:
        return explain_row(model, None, x, top_k)
    if explainer.family == "xgboost":
        e = explain_row(model, explainer, x, len(explainer.variables))
        return Explained(
            probability=e.probability,
            base_value=e.base_value,
            log_odds=e.log_odds,
            other=(e.other or 0.0) + sum(float(c.log_odds) for c in e.contributions[top_k:]),
            contributions=e.contributions[:top_k],
            effects={c.variable: float(c.log_odds) for c in e.contributions},
        )
    values, _ = explainer.shap_values(explainer.transform(x.reshape(1, -1)))
    grouped = np.bincount(_groups(explainer), weights=values[0], minlength=len(explainer.variables))
    order = np.argsort(-np.abs(grouped), kind="stable")
    e = explain_row(model, explainer, x, top_k)
    return Explained(
        probability=e.probability,
        base_value=e.base_value,
        log_odds=e.log_odds,
        other=float(grouped.sum() - grouped[order].sum())
        + sum(float(grouped[v]) for v in order[top_k:]),
        contributions=e.contributions,
        effects=dict(zip(explainer.variables, grouped.tolist(), strict=True)),
    )


_GROUPS: weakref.WeakKeyDictionary[Any, np.ndarray] = weakref.WeakKeyDictionary()


def _groups(explainer: Any) -> np.ndarray:
    """Variable index of each explained column (``column_variables`` in ``variables``)."""
    groups = _GROUPS.get(explainer)
    if groups is None:
        index = {v: i for i, v in enumerate(explainer.variables)}
        groups = np.asarray([index[v] for v in explainer.column_variables], dtype=np.int64)
        _GROUPS[explainer] = groups
    return groups
