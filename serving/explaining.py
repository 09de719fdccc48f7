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

from serving.trees import TreeEnsemble, compile_trees


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

    Gradient-boosted trees: the booster's margin on the explainer's NumPy transform of the
    row, calibrated as ``explain_row`` calibrates (TreeSHAP is most of an explanation's cost;
    the two log-odds agree to float32 rounding, ≤ 1e-7 in probability). The margin comes from
    the NumPy walk of the trees (``serving.trees``, bit-identical to
    ``Booster.inplace_predict``, checked when the model was compiled) or, for a booster the
    walk does not reproduce, from ``inplace_predict`` itself. Other families: ``explain_row``
    without contributions, already cheap.
    """
    if explainer is not None and explainer.family == "xgboost":
        x2 = x.reshape(1, -1)
        xt = explainer.transform(x2)
        trees = tree_ensemble(explainer)
        if trees is not None and xt.shape[1] == trees.n_features:
            margin = trees.margins(xt)
        else:
            booster = _booster(explainer)
            margin = np.asarray(booster.inplace_predict(xt, predict_type="margin"), np.float64)
        return float(explainer.calibrate(margin.reshape(1), x2)[0])
    return explain_row(model, explainer, x, 0).probability


_BOOSTERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_TREES: weakref.WeakKeyDictionary[Any, TreeEnsemble | None] = weakref.WeakKeyDictionary()


def _booster(explainer: Any) -> Any:
    """The fitted booster of an XGBoost pipeline (the pipeline's last step), looked up once per
    loaded model (a reload's new explainers get their own; old entries go with them)."""
    booster = _BOOSTERS.get(explainer)
    if booster is None:
        booster = _BOOSTERS.setdefault(explainer, explainer.estimator.steps[-1][1].get_booster())
    return booster


def tree_ensemble(explainer: Any) -> TreeEnsemble | None:
    """The NumPy trees of an XGBoost explainer's booster (``serving.trees.compile_trees``),
    compiled and checked once per loaded model; None when the walk does not reproduce the
    booster (XGBoost then scores that model)."""
    try:
        return _TREES[explainer]
    except KeyError:
        pass
    return _TREES.setdefault(explainer, compile_trees(_booster(explainer)))


def prepare(explainer: Any) -> None:
    """Build the per-model caches at load time, so the first request does not pay for them."""
    if explainer is not None and explainer.family == "xgboost":
        tree_ensemble(explainer)


def explain_top(model: Any, explainer: Any, x: np.ndarray, top_k: int) -> Explained:
    """What a scored result shows: probability, base value, log-odds, the ``top_k`` largest
    contributions, the rest summed (``other``), and every variable's SHAP log-odds
    (``effects``, for the missing-input warnings).

    One ``ModelExplainer.explain_row_effects`` call: SHAP once, every variable's summed
    log-odds, and only the top ``top_k`` worded (wording costs more per variable than linear
    SHAP). ``other`` is the sum of what the full ranking leaves after the top ``top_k``, added
    in ranking order onto the all-variable remainder — the same arithmetic, in the same order,
    as wording every variable and summing the tail, so the values are unchanged.
    """
    if explainer is None:
        return explain_row(model, None, x, top_k)
    e, grouped = explainer.explain_row_effects(x.reshape(1, -1), top=top_k)
    order = np.argsort(-np.abs(grouped), kind="stable")
    rest = float(grouped.sum() - grouped[order].sum())
    tail = sum(grouped[order[top_k:]].tolist())  # Python's left-to-right sum, from int 0
    return Explained(
        probability=float(e.probability),
        base_value=float(e.base_value),
        log_odds=float(e.log_odds),
        other=rest + tail,
        contributions=e.contributions,
        effects=dict(zip(explainer.variables, grouped.tolist(), strict=True)),
    )
