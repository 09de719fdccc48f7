"""Probabilities and explanations of one loaded model: one probability path for every route.

Every probability the service returns — a single request, a trend point, a batch row, with or
without an explanation — comes from :func:`probabilities`. When the load-time check
(:func:`fast_path_problem`) passes, that is the *array path*: the pipeline's transform by the
explainer's compiled NumPy operations (``training.explain``), the final estimator's own
arithmetic on the result (one BLAS dot per row for logistic regression, the booster's margin by
the checked tree walk of ``serving.trees`` or ``inplace_predict``) and the calibrator's own
formula — evaluated row by row, so a patient gets the same bits alone, in a trend and in a
batch, and exactly the bits of the logged model's own ``predict_proba`` for that patient alone
(checked on adversarial probe rows). Otherwise ``predict_proba`` on a DataFrame serves the
model (correct, ~10 ms a call). SHAP (``training.explain``) supplies the reasons only; its
log-odds (float32 sums) never decide a probability or a band, so a patient near a threshold
gets the same band on every route.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.utils._response import _get_response_values
from xgboost import XGBClassifier

from features.transformers import CatalogWinsorizer
from serving.trees import compile_trees
from training.baselines import LogLogisticBaseline
from training.explain import ModelExplainer


@dataclass(frozen=True)
class Explained:
    """Probability and, when asked for, the top contributions of one patient."""

    probability: float
    base_value: float | None = None
    log_odds: float | None = None
    other: float | None = None
    contributions: tuple[Any, ...] = field(
        default_factory=tuple
    )  # training.explain_attribution.Contribution
    effects: dict[str, float] | None = None  # every variable's SHAP log-odds
    explainer: Any = None


def make_explainer(model: Any) -> Any:
    """``training.explain.ModelExplainer`` for ``model``, built once at load time."""

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
_TREES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
AGREEMENT = 1e-12
"""Largest difference from the logged model's ``predict_proba`` *on a whole batch* accepted for
the array path (that call's BLAS product sums in another order for many rows than for one);
for one row the array path must equal ``predict_proba`` bit for bit."""
WALK_ROWS = 32
"""Up to this many rows the compiled tree walk is faster than ``inplace_predict``'s call
overhead; above, XGBoost's own predictor (both give the same bits: ``serving.trees``)."""
PROBE_ALONE = 24  # probe rows also compared one at a time with the model's one-row predict_proba


def probe_rows(model: Any, explainer: Any, k: int, seed: int = 0) -> np.ndarray:
    """Adversarial model inputs for the load-time check: empty rows, zeros, -0.0, values at,
    just inside and beyond the winsorising bounds, huge and tiny magnitudes, negatives on log
    columns, random scales with gaps (float64, finite or NaN as the feature builder makes)."""
    rng = np.random.default_rng(seed)
    lo, hi = _bounds(explainer, k)
    fin_lo = np.where(np.isfinite(lo), lo, -1e6)
    fin_hi = np.where(np.isfinite(hi), hi, 1e6)
    rows = [
        np.full(k, np.nan),
        np.zeros(k),
        np.full(k, -0.0),
        fin_lo,
        fin_hi,
        np.nextafter(fin_lo, -np.inf),
        np.nextafter(fin_hi, np.inf),
        fin_lo - 1.0,
        fin_hi + 1.0,
        np.full(k, 1e300),
        np.full(k, -1e300),
        np.full(k, 5e-324),
        -rng.lognormal(1, 2, size=k),
    ]
    mix = np.where(rng.random((24, k)) < 0.5, fin_lo, fin_hi)
    mix[rng.random((24, k)) < 0.3] = np.nan
    return np.vstack(
        [
            *rows,
            mix,
            rng.lognormal(2, 2, size=(24, k)),
            np.where(rng.random((24, k)) < 0.5, np.nan, rng.normal(0, 50, size=(24, k))),
            rng.integers(0, 2, size=(8, k)).astype(np.float64),
        ]
    )


def _bounds(explainer: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Winsorising bounds of the model inputs (±inf where the model has none)."""

    lo, hi = np.full(k, -np.inf), np.full(k, np.inf)
    pre = getattr(explainer, "_pre", None)
    if pre is None:
        return lo, hi
    where = {c: i for i, c in enumerate(explainer.input_columns)}
    stack = [pre]
    while stack:
        step = stack.pop()
        if isinstance(step, Pipeline):
            stack += [s for _, s in step.steps]
        elif isinstance(step, CatalogWinsorizer):
            names = getattr(step, "feature_names_in_", None)
            if names is None:
                continue
            for name, a, b in zip(names, step.lower_, step.upper_, strict=True):
                if str(name) in where:
                    lo[where[str(name)]], hi[where[str(name)]] = a, b
    return lo, hi


def _fast_ok(model: Any, explainer: Any, columns: tuple[str, ...]) -> bool:
    """Whether :func:`_array_path` serves this model, decided once per loaded model on
    :func:`probe_rows`: every row's probability the same alone and in a batch (bit for bit),
    equal bit for bit to the model's own ``predict_proba`` on that row alone (for
    :data:`PROBE_ALONE` rows), and within :data:`AGREEMENT` of ``predict_proba`` on the whole
    probe; else ``predict_proba`` on a DataFrame serves the model. :func:`fast_path_problem`
    says why not."""
    if explainer is None:
        return False
    try:
        return _FAST[explainer]
    except KeyError:
        pass
    ok = fast_path_problem(model, explainer, columns) is None
    _FAST[explainer] = ok
    return ok


def fast_path_problem(model: Any, explainer: Any, columns: tuple[str, ...]) -> str | None:
    """Why the array path cannot serve ``model`` (None: it can) — the load-time check."""
    if explainer is None:
        return "no explainer (unsupported model type)"
    if getattr(explainer, "_ops", None) is None and explainer.family != "log_logistic":
        step = getattr(explainer, "unsupported", "")
        if step:
            return f"a preprocessing step has no NumPy version: {step}"
        return f"no array path for a {explainer.family} model"
    k = len(columns)
    probe = probe_rows(model, explainer, k)
    _compile_trees(model, explainer, probe)
    try:
        together = _array_path(model, explainer, probe)
        alone = np.concatenate([_array_path(model, explainer, row[None, :]) for row in probe])
        if not np.array_equal(together, alone):
            return "a row's probability differs alone and in a batch"
        own = np.concatenate(
            [_model_path(model, row[None, :], columns) for row in probe[:PROBE_ALONE]]
        )
        if not np.array_equal(alone[:PROBE_ALONE], own):
            i = int(np.flatnonzero(alone[:PROBE_ALONE] != own)[0])
            return f"probe row {i}: {alone[i]!r} ≠ the model's own predict_proba {own[i]!r}"
        gap = float(np.max(np.abs(together - _model_path(model, probe, columns))))
        if not gap <= AGREEMENT:
            return f"{gap:.3g} from predict_proba on the probe batch (> {AGREEMENT:g})"
    except Exception as exc:  # any failure of the array path: the model's own code serves
        return f"{type(exc).__name__}: {exc}"
    return None


def _compile_trees(model: Any, explainer: Any, probe: np.ndarray) -> None:
    """Compile the XGBoost trees of the model (``serving.trees``, itself checked bit for bit
    against the booster on rows around every split and the transformed probe rows)."""

    final = getattr(explainer, "_final", None)
    if not isinstance(final, XGBClassifier) or final in _TREES:
        return
    try:
        rows = explainer.transform(probe)
    except Exception:
        rows = None
    _TREES[final] = compile_trees(_booster(final), rows)


def _booster(final: Any) -> Any:
    booster = _BOOSTERS.get(final)
    if booster is None:  # get_booster() reads attributes through JSON: once per model
        booster = _BOOSTERS.setdefault(final, final.get_booster())
    return booster


def _lr_decision(lr: Any, xt: np.ndarray) -> np.ndarray:
    """``LogisticRegression.decision_function`` of a binary model, one BLAS product per row.

    scikit-learn computes ``X @ coef_.T + intercept_``; NumPy hands a one-row product to BLAS's
    dot and a many-row one to gemv, whose summation order differs: the same patient can get a
    different last bit alone and in a batch. A stacked ``(n, 1, p) @ (p, 1)`` product makes
    NumPy's matmul loop call the one-row kernel for every row, so each row gets exactly what
    ``predict_proba`` gives that patient alone (checked at load time) in one C loop.
    """
    xt = np.ascontiguousarray(xt)
    scores = xt[:, None, :] @ lr.coef_.T + lr.intercept_
    return scores.reshape(-1)


def _margin(final: Any, xt: np.ndarray) -> np.ndarray:
    """The booster's margin (float32 values as float64): for a few rows the compiled NumPy tree
    walk when it reproduced the booster at load time, else ``inplace_predict``."""
    trees = _TREES.get(final)
    if trees is not None and xt.shape[0] <= WALK_ROWS:
        return trees.margins(xt)
    return np.asarray(
        _booster(final).inplace_predict(
            xt,
            iteration_range=final._get_iteration_range(None),
            predict_type="margin",
            missing=final.missing,
            validate_features=False,
        ),
        dtype=np.float64,
    )


def _final_proba(final: Any, xt: np.ndarray) -> np.ndarray:
    """``final.predict_proba(xt)[:, 1]`` of a fitted binary estimator, without per-call input
    checks for the estimators the service knows (the probe at load time checks the result)."""
    if type(final) is LogisticRegression:
        return expit(_lr_decision(final, xt))
    if isinstance(final, XGBClassifier):
        return np.asarray(
            _booster(final).inplace_predict(
                xt,
                iteration_range=final._get_iteration_range(None),
                predict_type="value",
                missing=final.missing,
                validate_features=False,
            )
        )
    return np.asarray(final.predict_proba(xt)[:, 1])


def _final_response(final: Any, xt: np.ndarray) -> np.ndarray:
    """What ``CalibratedClassifierCV`` calibrates: the decision function if the estimator has
    one, else the positive-class probability (``sklearn.utils._response``'s choice) — for
    ``training.models.MonotoneXGBClassifier`` the booster's margin (Platt on the log-odds)."""
    if type(final) is LogisticRegression:
        return _lr_decision(final, xt)
    if isinstance(final, XGBClassifier):
        if hasattr(final, "decision_function"):  # MonotoneXGBClassifier: the margin
            return _margin(final, xt)
        return _final_proba(final, xt)  # no decision function: its probability is calibrated
    if hasattr(final, "decision_function"):
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
    flags: Mapping[str, float] | None = None,
) -> Explained:
    """Probability (:func:`probabilities`) and, with ``top_k`` > 0 and an explainer, the SHAP
    log-odds: base value, the model's log-odds, the ``top_k`` largest variable contributions,
    the rest summed (``other``) and every variable's summed log-odds (``effects``).
    ``probability``: the patient's probability when the caller has it (from
    :func:`probabilities`, never from the SHAP sum). ``flags``: the full feature row's
    ``<analyte>_after_toci`` flags, so a cytokine measured after tocilizumab says so whatever
    the model's inputs (``training.explain_attribution.toci_flags``)."""
    p = (
        float(probabilities(model, explainer, x.reshape(1, -1), columns)[0])
        if probability is None
        else probability  # already computed by the one path
    )
    if explainer is None or top_k <= 0:
        return Explained(p)
    e, grouped = explainer.explain_row_effects(x.reshape(1, -1), top=top_k, flags=flags)
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
