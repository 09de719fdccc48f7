"""NumPy re-implementations of fitted scikit-learn internals, bit-identical to their own code.

A one-row pandas ``transform`` through a ``Pipeline``/``ColumnTransformer`` costs milliseconds,
almost all of it DataFrame machinery around a few arithmetic operations. These functions read
a fitted step's learned parameters once and return the same operations on NumPy arrays, in
the same order, so the output is bit-identical (``compile_step``; the service proves it per
loaded model at load time, ``serving.explaining.fast_path_problem``). A step they do not know
raises :class:`Unsupported` and the caller keeps the step's own ``transform``. Also the
calibrators' ``predict`` without scikit-learn's per-call input checks
(:func:`calibrator_predict`) and ``training.baselines.LogLogisticBaseline``'s design
(:func:`log_design`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.calibration import _SigmoidCalibration
from sklearn.compose import ColumnTransformer
from sklearn.isotonic import IsotonicRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from features.transformers import CatalogWinsorizer, LogTransformer, MissingIndicatorImputer


class Unsupported(Exception):
    """A preprocessing step the NumPy fast path does not know (use the pipeline instead)."""


Op = Callable[[np.ndarray], np.ndarray]


def column_positions(spec: Any, names_in: list[str]) -> np.ndarray:
    """Positions in ``names_in`` of a ``ColumnTransformer`` column spec (slice/names/ints/mask)."""
    if isinstance(spec, slice):
        return np.arange(len(names_in))[spec]
    items = list(np.atleast_1d(spec))
    if items and isinstance(items[0], str):
        where = {n: i for i, n in enumerate(names_in)}
        return np.asarray([where[c] for c in items], dtype=np.int64)
    arr = np.asarray(items)
    if arr.dtype == bool:
        return np.flatnonzero(arr)
    return arr.astype(np.int64)


def is_passthrough(trans: Any) -> bool:
    """A ``ColumnTransformer`` part that returns its columns unchanged: ``"passthrough"`` as
    declared, or the identity ``FunctionTransformer`` that scikit-learn ≥ 1.6 puts in its place
    in the fitted ``transformers_`` (``_get_transformer_list``: ``FunctionTransformer(
    accept_sparse=True, check_inverse=False, feature_names_out="one-to-one")``)."""
    if isinstance(trans, str):
        return trans == "passthrough"
    return (
        type(trans) is FunctionTransformer
        and trans.func is None
        and trans.kw_args is None
        and trans.feature_names_out == "one-to-one"
    )


def compile_step(step: Any, names_in: list[str]) -> list[Op]:
    """NumPy operations reproducing one fitted step (bit-identical to its ``transform``)."""
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return []
    if isinstance(step, Pipeline):
        ops: list[Op] = []
        names = list(names_in)
        for _, sub in step.steps:
            ops += compile_step(sub, names)
            if sub is not None and sub != "passthrough":
                names = list(sub.get_feature_names_out(names))
        return ops
    if isinstance(step, ColumnTransformer):
        idx = []
        for _, trans, cols in step.transformers_:
            if isinstance(trans, str) and trans == "drop":
                continue
            if not is_passthrough(trans):
                raise Unsupported(f"ColumnTransformer part {type(trans).__name__}")
            idx.append(column_positions(cols, names_in))
        sel = np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64)

        def select(X: np.ndarray, sel: np.ndarray = sel) -> np.ndarray:
            return X[:, sel]

        return [select]
    if isinstance(step, CatalogWinsorizer):
        lo, hi = step.lower_, step.upper_

        def clip(X: np.ndarray, lo: np.ndarray = lo, hi: np.ndarray = hi) -> np.ndarray:
            return np.clip(X, lo, hi)

        return [clip]
    if isinstance(step, LogTransformer):
        cols = step.columns_

        def log(X: np.ndarray, cols: np.ndarray = cols) -> np.ndarray:
            c = X[:, cols]
            X[:, cols] = np.sign(c) * np.log1p(np.abs(c))
            return X

        return [log]
    if isinstance(step, MissingIndicatorImputer):
        stats, ind = step.statistics_, np.asarray(step.indicator_features_, dtype=np.int64)

        def impute(X: np.ndarray, stats: np.ndarray = stats, ind: np.ndarray = ind) -> np.ndarray:
            missing = np.isnan(X)
            out = np.where(missing, stats, X)
            if ind.size:
                out = np.hstack([out, missing[:, ind].astype(np.float64)])
            return out

        return [impute]
    if isinstance(step, StandardScaler):
        mean = step.mean_ if step.with_mean else None
        scale = step.scale_ if step.with_std else None

        def standardise(X: np.ndarray, mean: Any = mean, scale: Any = scale) -> np.ndarray:
            if mean is not None:
                X -= mean
            if scale is not None:
                X /= scale
            return X

        return [standardise]
    raise Unsupported(type(step).__name__)


def calibrator_predict(cal: Any, pred: np.ndarray) -> np.ndarray:
    """``cal.predict(pred)`` without scikit-learn's per-call input checks
    (≈ 50 µs a call, more than the arithmetic on one row).

    The same operations on the fitted parameters, in the same order, as scikit-learn
    1.9's ``_SigmoidCalibration.predict`` (``expit(-(a_ * T + b_))``) and
    ``IsotonicRegression._transform`` (clip to ``[X_min_, X_max_]``, then the fitted
    interpolator ``f_``), so the values are bit-identical; any other calibrator, or input
    the checks would convert, goes through its own ``predict``.
    """
    if pred.ndim == 1 and pred.dtype == np.float64 and np.isfinite(pred).all():
        if type(cal) is _SigmoidCalibration:
            return expit(-(cal.a_ * pred + cal.b_))
        if (
            type(cal) is IsotonicRegression
            and getattr(cal, "X_thresholds_", None) is not None
            and cal.X_thresholds_.dtype == np.float64
        ):
            t = np.clip(pred, cal.X_min_, cal.X_max_) if cal.out_of_bounds == "clip" else pred
            return np.asarray(cal.f_(t)).astype(np.float64)
    return cal.predict(pred)


def log_design(est: Any, X: np.ndarray) -> np.ndarray:
    """LogLogisticBaseline's standardised design, as in its ``predict_proba``."""
    logs = np.log10(np.clip(X, est.floor, None))
    logs[np.isnan(X)] = np.nan
    if est.signs:
        sign = np.asarray(est.signs, dtype=float)[None, :]
        logs = (logs * sign).sum(axis=1, keepdims=True)
    z = np.where(np.isnan(logs), est.medians_, logs)
    return (z - est.mean_) / est.scale_
