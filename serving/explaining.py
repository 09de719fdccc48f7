"""Probabilities and explanations of one loaded model: one probability path for every route.

Every probability the service returns — a single request, a trend point, a batch row, with or
without an explanation — comes from :func:`probabilities`: the model's own scikit-learn /
XGBoost code on the patients' feature rows (``predict_proba`` of the logged model, or the same
arithmetic on the explainer's NumPy transform of the rows, evaluated row by row so a patient
gets the same bits alone and in a batch, within 1e-12 of ``predict_proba``). SHAP
(``training.explain``) supplies the reasons only; its log-odds (float32 sums) never decide a
probability or a band, so a patient near a threshold gets the same band on every route.
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
    explainer: Any = None


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


_FAST: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
_BOOSTERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
AGREEMENT = 1e-12
"""Largest difference from the logged model's ``predict_proba`` accepted for the array path
(float rounding of a different summation order; bands and intervals never see it)."""


def _fast_ok(model: Any, explainer: Any, columns: tuple[str, ...]) -> bool:
    """Whether :func:`_array_path` serves this model: checked once per loaded model on probe
    rows (empty rows, zeros, extremes, gaps) — every row's probability the same alone and in a
    batch (bit for bit), and within :data:`AGREEMENT` of ``predict_proba``; else
    ``predict_proba`` on a DataFrame serves the model."""
    if explainer is None or (
        getattr(explainer, "_ops", None) is None and explainer.family != "log_logistic"
    ):
        return False
    try:
        return _FAST[explainer]
    except KeyError:
        pass
    rng = np.random.default_rng(0)
    k = len(columns)
    probe = np.vstack(
        [
            np.full(k, np.nan),
            np.zeros(k),
            rng.lognormal(2, 2, size=(30, k)),
            np.where(rng.random((30, k)) < 0.5, np.nan, rng.normal(0, 50, size=(30, k))),
        ]
    )
    try:
        together = _array_path(model, explainer, probe)
        alone = np.concatenate([_array_path(model, explainer, row[None, :]) for row in probe])
        close = np.max(np.abs(together - _model_path(model, probe, columns))) <= AGREEMENT
        ok = bool(np.array_equal(together, alone) and close)
    except Exception:
        ok = False
    _FAST[explainer] = ok
    return ok


def _lr_decision(lr: Any, xt: np.ndarray) -> np.ndarray:
    """``LogisticRegression.decision_function`` of a binary model, summed row by row.

    scikit-learn's ``X @ coef.T`` goes through BLAS, whose summation order depends on the
    number and layout of the rows: the same patient can get a different last bit alone and in
    a batch. Each row's products summed by NumPy's reduction along the row (the same order for
    any number of rows) makes a patient's probability the same on every route; it differs from
    ``predict_proba`` by float rounding only (checked ≤ 1e-12 at load time).
    """
    xt = np.ascontiguousarray(xt)
    return np.add.reduce(xt * lr.coef_[0], axis=1) + lr.intercept_[0]


def _final_proba(final: Any, xt: np.ndarray) -> np.ndarray:
    """``final.predict_proba(xt)[:, 1]`` of a fitted binary estimator, without per-call input
    checks for the estimators the service knows (the probe at load time checks the result)."""
    from scipy.special import expit
    from sklearn.linear_model import LogisticRegression
    from xgboost import XGBClassifier

    if type(final) is LogisticRegression:
        return expit(_lr_decision(final, xt))
    if type(final) is XGBClassifier:
        booster = _BOOSTERS.get(final)
        if booster is None:  # get_booster() reads attributes through JSON: once per model
            booster = _BOOSTERS.setdefault(final, final.get_booster())
        return np.asarray(
            booster.inplace_predict(
                xt, predict_type="value", missing=final.missing, validate_features=False
            )
        )
    return np.asarray(final.predict_proba(xt)[:, 1])


def _final_response(final: Any, xt: np.ndarray) -> np.ndarray:
    """What ``CalibratedClassifierCV`` calibrates: the decision function if the estimator has
    one, else the positive-class probability (``sklearn.utils._response``'s choice)."""
    from sklearn.linear_model import LogisticRegression
    from xgboost import XGBClassifier

    if type(final) is LogisticRegression:
        return _lr_decision(final, xt)
    if type(final) is XGBClassifier:  # no decision function: its probability is calibrated
        return _final_proba(final, xt)
    if hasattr(final, "decision_function"):
        from sklearn.utils._response import _get_response_values

        pred, _ = _get_response_values(
            final, xt, response_method=["decision_function", "predict_proba"]
        )
        return np.asarray(pred).reshape(-1)
    return _final_proba(final, xt)


def _array_path(model: Any, explainer: Any, X: np.ndarray) -> np.ndarray:
    """``model.predict_proba(X)[:, 1]`` with the pipeline's transform done by the explainer's
    NumPy operations (the DataFrame machinery of a one-row ``ColumnTransformer`` is most of a
    request's cost) and the rest by the estimators' own arithmetic on the result — for
    ``CalibratedClassifierCV`` with one calibrated classifier, its calibrator's ``predict`` and
    the same clipping and averaging as its ``predict_proba``."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import Pipeline

    from training.baselines import LogLogisticBaseline

    if type(model) is LogLogisticBaseline:
        xt = np.ascontiguousarray(explainer._log_design(X))
        return np.asarray(_final_proba(model.lr_, xt), dtype=np.float64)
    xt = np.ascontiguousarray(explainer.transform(X))
    if isinstance(model, Pipeline):
        return np.asarray(_final_proba(model.steps[-1][1], xt), dtype=np.float64)
    if not isinstance(model, CalibratedClassifierCV) or len(model.calibrated_classifiers_) != 1:
        raise TypeError("no array path")
    cc = model.calibrated_classifiers_[0]
    if cc.estimator is not explainer.estimator or cc.method not in ("sigmoid", "isotonic"):
        raise TypeError("no array path")
    pred = _final_response(cc.estimator.steps[-1][1], xt)
    proba = np.zeros((xt.shape[0], 2))
    # the calibrator's own arithmetic without its per-call input checks (bit-identical:
    # training.explain.ModelExplainer._calibrator_predict; anything else goes through predict)
    proba[:, 1] = explainer._calibrator_predict(np.asarray(pred, dtype=np.float64))
    proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
    mean = np.zeros((xt.shape[0], 2))
    mean += proba
    mean /= 1
    return np.asarray(mean[:, 1], dtype=np.float64)


def _model_path(model: Any, X: np.ndarray, columns: tuple[str, ...]) -> np.ndarray:
    frame = pd.DataFrame(X, columns=list(columns))
    return np.asarray(model.predict_proba(frame)[:, 1], dtype=np.float64)


def probabilities(
    model: Any, explainer: Any, X: np.ndarray, columns: tuple[str, ...]
) -> np.ndarray:
    """The calibrated probability of every row of ``X`` (model input columns, float64): the
    service's one probability path (see the module docstring)."""
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    if _fast_ok(model, explainer, columns):
        return _array_path(model, explainer, X)
    return _model_path(model, X, columns)


def prepare(model: Any, explainer: Any, columns: tuple[str, ...]) -> None:
    """Decide the path once at load time, so the first request does not pay for the check."""
    _fast_ok(model, explainer, columns)


def explain_top(
    model: Any,
    explainer: Any,
    x: np.ndarray,
    top_k: int,
    columns: tuple[str, ...],
    probability: float | None = None,
) -> Explained:
    """Probability (:func:`probabilities`) and, with ``top_k`` > 0 and an explainer, the SHAP
    log-odds: base value, the model's log-odds, the ``top_k`` largest variable contributions,
    the rest summed (``other``) and every variable's summed log-odds (``effects``).
    ``probability``: the patient's probability when the caller has it (from
    :func:`probabilities`, never from the SHAP sum)."""
    p = (
        float(probabilities(model, explainer, x.reshape(1, -1), columns)[0])
        if probability is None
        else probability  # already computed by the one path
    )
    if explainer is None or top_k <= 0:
        return Explained(p)
    e, grouped = explainer.explain_row_effects(x.reshape(1, -1), top=top_k)
    order = np.argsort(-np.abs(grouped), kind="stable")
    rest = float(grouped.sum() - grouped[order].sum())
    tail = sum(grouped[order[top_k:]].tolist())
    return Explained(
        probability=p,
        base_value=float(e.base_value),
        log_odds=float(e.log_odds),
        other=rest + tail,
        contributions=e.contributions,
        effects=dict(zip(explainer.variables, grouped.tolist(), strict=True)),
        explainer=explainer,
    )


def without(explainer: Any, x: np.ndarray, log_odds: float, deltas: list[float]) -> list[float]:
    """The calibrated probability with each of ``deltas`` (log-odds) removed from the
    patient's log-odds (the model's own calibrator), for reasons in probability points."""
    if not deltas:
        return []
    lo = np.array([log_odds - d for d in deltas], dtype=np.float64)
    if isinstance(getattr(explainer, "_calibrator", None), str):  # needs inputs: no shortcut
        from scipy.special import expit

        return [float(v) for v in expit(lo)]
    return [float(v) for v in explainer.calibrate(lo, np.repeat(x.reshape(1, -1), len(lo), 0))]


def used_variables(explainer: Any) -> frozenset[str] | None:
    """Clinical variables the fitted model actually reads (a split, a non-zero coefficient);
    None when it cannot be told (every variable then counts)."""
    if explainer is None:
        return None
    try:
        cols = list(explainer.columns)
        var_of = list(explainer.column_variables)
        if explainer.family == "xgboost":
            used: set[int] = set()
            names = {c: i for i, c in enumerate(explainer._booster.feature_names or [])}
            for key in explainer._booster.get_score(importance_type="weight"):
                if key in names:
                    used.add(names[key])
                elif key.startswith("f") and key[1:].isdigit():
                    used.add(int(key[1:]))
            return frozenset(var_of[i] for i in used if i < len(cols))
        if explainer.family == "logistic":
            coef = np.ravel(explainer._lr.coef_)
            return frozenset(var_of[i] for i in np.flatnonzero(coef != 0) if i < len(cols))
    except Exception:
        return None
    return None
