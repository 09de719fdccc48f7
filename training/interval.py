"""Per-patient uncertainty of a served probability: one interval table per model.

Estimand (what the interval is for): the outcome rate among patients from the training
population to whom *this* registered model gives this predicted probability — the model's
calibration curve at the patient's probability. It is a calibration-type interval, read next
to the band's observed rate; it is NOT an interval for this one patient's true risk (patients
given the same probability differ in true risk: on simulated cohorts, whose true risks are
known, the interval holds the patient's own risk for about 4 in 10 of them), and it does not
cover patients unlike the training data (the training-distribution checks flag those).

Two sources of error are combined (union of the two intervals at each probability):

1. *Validation sampling* — logistic recalibration (Cox DR, Biometrika 1958; calibration
   intercept/slope, Van Calster B et al., J Clin Epidemiol 2016) of the validated procedure's
   out-of-fold predictions, refitted on ``n_boot`` bootstrap resamples of patients (all
   repeats of a patient resampled together): where validation put the outcome rate for a
   probability, widening where few patients and events support it.
2. *Refit variation* — the registered pipeline, with its chosen hyper-parameters, refitted on
   ``n_refit`` bootstrap resamples of the training patients (Efron B, Tibshirani R, An
   Introduction to the Bootstrap, 1993; bagging-style spread, Breiman L, Mach Learn 1996): the
   log-odds each refit gives a training patient minus the registered model's, pooled over
   patients whose registered log-odds is near the grid point (Gaussian kernel), percentile
   interval. What other training cohorts of this size would have told the same patient.

The union always holds the served probability, and both bounds are made non-decreasing in it
(widened, never narrowed).

Measured (``benchmarks/bench_interval.py``, ``results_interval.json`` "replicated": 10
simulated training cohorts of the demo's size, the demo champion's pipeline refitted on each,
3,000 fresh patients; share of fresh patients whose decile rate is inside their interval,
nominal 95%; re-run 2026-12-07 on the simulator's by-grade cytokine levels and the 4-candidate
quickstart):

==========================  ====================  ======================
method                      0 h, XGBoost (true)   48 h, logreg (observed)
==========================  ====================  ======================
recalibration alone (old)   69%, 18 points        81%, 16 points
refit spread alone          96%, 28 points        92%, 23 points
union (this module)         97%, 29 points        94%, 26 points
per-patient refit ensemble  90%, 23 points        89%, 20 points
Venn–Abers (inductive)      43%, 7 points         40%, 7 points
==========================  ====================  ======================

The per-patient ensemble (30 refits kept and evaluated per request) is narrower but covers less
and costs 30 model evaluations per request; Venn–Abers (Vovk V, Petej I, Fedorova V, NeurIPS
2015) has a calibration guarantee for its multiprobability, not a level, and at this size its
[p0, p1] is far narrower than the calibration error. The patient's own simulated risk lies in
the union for 41% of patients at 0 h: it is not a truth interval. At 48 h the reference (an
observed decile rate, ~2 points binomial noise) slightly lowers every method's figure.

The table is computed once at training (a grid of log-odds; the sink logs it as
``serving/interval.json``) and read by linear interpolation, so a request pays one
``np.interp`` per probability whatever the model (no ensemble is evaluated at request time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import clone

METHOD = "bootstrap logistic recalibration of out-of-fold predictions"
METHOD_UNION = (
    "bootstrap recalibration of out-of-fold predictions ∪ bootstrap refits of the registered "
    "pipeline (tabulated on its log-odds)"
)
# What benchmarks/bench_interval.py measured for the union (results_interval.json, "replicated").
MEASURED = (
    "measured on 10 simulated training cohorts of 114–118 patients each, scored on 3,000 fresh "
    "patients (benchmarks/bench_interval.py): the decile's rate inside the interval for 97% of "
    "patients at 0 h (true rates) and 94% at 48 h (observed rates), mean width 29 and 26 "
    "points"
)
COVERS = (
    "Outcome rate among patients given this predicted risk by this model (its calibration at "
    "this risk): the union of a bootstrap recalibration of the validated procedure's "
    "out-of-fold predictions (validation sampling) and the spread of bootstrap refits of the "
    "registered pipeline (what other training cohorts of this size would have said). "
    f"Nominal 95%; {MEASURED}. It is not an interval for this one patient's own risk, and it "
    "does not cover patients unlike the training data (see the warnings). Models registered "
    "before the refit part carry the recalibration part alone (interval_method says which)."
)
GRID = np.linspace(-7.0, 7.0, 141)  # log-odds of 0.09% … 99.9%
EPS = 1e-6


def _logit(p: float | np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _expit(z: Any) -> Any:
    return expit(z)


def _recalibrate(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted logistic fit y ~ a + b·z (Newton–Raphson, a small ridge for separation)."""
    a, b = 0.0, 1.0
    for _ in range(25):
        eta = a + b * z
        mu = _expit(eta)
        s = w * mu * (1 - mu)
        g0 = np.sum(w * (y - mu)) - 1e-4 * a
        g1 = np.sum(w * (y - mu) * z) - 1e-4 * (b - 1)
        h00 = np.sum(s) + 1e-4
        h01 = np.sum(s * z)
        h11 = np.sum(s * z * z) + 1e-4
        det = h00 * h11 - h01 * h01
        if not det > 0:
            break
        da = (h11 * g0 - h01 * g1) / det
        db = (h00 * g1 - h01 * g0) / det
        a, b = a + da, b + db
        if abs(da) + abs(db) < 1e-9:
            break
    return float(a), float(b)


@dataclass(frozen=True)
class IntervalTable:
    """The interval of every grid log-odds (``low``/``high`` are probabilities)."""

    grid: np.ndarray
    low: np.ndarray
    high: np.ndarray
    level: float
    n: int
    events: int
    method: str = METHOD
    measured: str = ""  # measured coverage of the method (benchmarks/bench_interval.py)

    def at(self, p: float | np.ndarray) -> tuple[Any, Any]:
        """(low, high) at probability ``p`` (scalar or array)."""
        z = _logit(p)
        return np.interp(z, self.grid, self.low), np.interp(z, self.grid, self.high)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "level": self.level,
            "n": self.n,
            "events": self.events,
            "grid": self.grid.tolist(),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "measured": self.measured,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IntervalTable:
        return cls(
            np.asarray(d["grid"], dtype=float),
            np.asarray(d["low"], dtype=float),
            np.asarray(d["high"], dtype=float),
            float(d["level"]),
            int(d["n"]),
            int(d["events"]),
            str(d.get("method", METHOD)),
            str(d.get("measured", "")),
        )


def fit_interval(
    p: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None = None,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> IntervalTable | None:
    """The interval table from out-of-fold predictions ``p`` and outcomes ``y``.

    ``groups``: the patient of each prediction (repeated CV predicts each patient once per
    repeat; a bootstrap resamples patients). None when there is nothing to recalibrate on
    (no events or no non-events).
    """
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = ~(np.isnan(p) | np.isnan(y))
    p, y = p[ok], y[ok]
    groups = np.arange(p.size) if groups is None else np.asarray(groups)[ok]
    if p.size == 0 or y.min() == y.max():
        return None
    uniq, code = np.unique(groups, return_inverse=True)
    z = _logit(p)
    rng = np.random.default_rng(seed)
    curves = np.empty((n_boot, GRID.size))
    for b in range(n_boot):
        counts = np.bincount(rng.integers(0, uniq.size, uniq.size), minlength=uniq.size)
        a, s = _recalibrate(z, y, counts[code].astype(np.float64))
        curves[b] = _expit(a + s * GRID)
    alpha = (1 - level) / 2
    low, high = np.quantile(curves, [alpha, 1 - alpha], axis=0)
    n_patients = int(uniq.size)
    events = round(float(np.sum(y)) * n_patients / max(p.size, 1))
    return IntervalTable(GRID.copy(), low, high, level, n_patients, events)


def _usable(y: np.ndarray, idx: np.ndarray, min_events: int) -> bool:
    yy = y[idx]
    return int(yy.sum()) >= min_events and int(yy.size - yy.sum()) >= min_events


def bootstrap_refits(
    model: Any, X: Any, y: np.ndarray, n_refit: int = 30, seed: int = 0, min_events: int = 3
) -> list[Any]:
    """``n_refit`` refits of the registered pipeline on bootstrap resamples of its training
    patients (``sklearn.base.clone``: same steps and hyper-parameters; an inner calibration is
    refitted too). A resample with fewer than ``min_events`` events or non-events (an inner
    3-fold calibration needs them) is drawn again; a refit that fails is skipped (bounded)."""
    y = np.asarray(y).astype(int)
    n = y.size
    rng = np.random.default_rng(seed)
    fitted: list[Any] = []
    for _ in range(4 * n_refit):
        if len(fitted) == n_refit:
            break
        idx = rng.integers(0, n, n)
        if not _usable(y, idx, min_events):
            continue
        Xb = X.iloc[idx] if hasattr(X, "iloc") else X[idx]
        try:
            fitted.append(clone(model).fit(Xb, y[idx]))
        except (ValueError, np.linalg.LinAlgError):
            continue
    return fitted


def refit_offsets(
    model: Any, X: Any, y: np.ndarray, n_refit: int = 30, seed: int = 0, refits: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Registered log-odds ``z`` of every training patient and, per bootstrap refit
    (:func:`bootstrap_refits`, or ``refits`` already fitted), each patient's refit log-odds
    minus ``z`` (refits × patients)."""
    z = _logit(model.predict_proba(X)[:, 1])
    if refits is None:
        refits = bootstrap_refits(model, X, y, n_refit, seed)
    rows = [_logit(m.predict_proba(X)[:, 1]) - z for m in refits]
    return z, np.asarray(rows, dtype=np.float64).reshape(len(rows), z.size)


def _weighted_quantiles(v: np.ndarray, w: np.ndarray, qs: list[float]) -> np.ndarray:
    o = np.argsort(v, kind="stable")
    v, w = v[o], w[o]
    c = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(qs, c, v)


def tabulate_offsets(
    z: np.ndarray, offsets: np.ndarray, level: float = 0.95, bandwidth: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) probabilities on :data:`GRID` from refit offsets (Gaussian kernel in the
    registered log-odds, ``bandwidth`` in log-odds; offsets pooled over refits)."""
    alpha = (1 - level) / 2
    k = offsets.shape[0]
    flat = offsets.ravel()
    lo = np.zeros(GRID.size)
    hi = np.zeros(GRID.size)
    if k:
        for j, g in enumerate(GRID):
            logw = -0.5 * ((z - g) / bandwidth) ** 2
            w = np.tile(np.exp(logw - logw.max()), k)
            lo[j], hi[j] = _weighted_quantiles(flat, w, [alpha, 1 - alpha])
    lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    return _expit(GRID + lo), _expit(GRID + hi)


def combine(
    recal: IntervalTable | None,
    refit: tuple[np.ndarray, np.ndarray] | None,
    *,
    level: float,
    n: int,
    events: int,
    measured: str = MEASURED,
) -> IntervalTable:
    """Union of the recalibration and refit intervals on :data:`GRID`; bounds hold the served
    probability and are non-decreasing in it."""
    p = _expit(GRID)
    low, high = p.copy(), p.copy()
    if recal is not None:
        low, high = np.minimum(low, recal.low), np.maximum(high, recal.high)
    if refit is not None:
        low, high = np.minimum(low, refit[0]), np.maximum(high, refit[1])
    low = np.minimum.accumulate(low[::-1])[::-1]  # widened, never narrowed, to be monotone
    high = np.maximum.accumulate(high)
    method = METHOD_UNION if refit is not None else METHOD
    return IntervalTable(GRID.copy(), low, high, level, n, events, method, measured)


def fit_procedure_interval(
    model: Any,
    X: Any,
    y: np.ndarray,
    p_oof: np.ndarray,
    y_oof: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    n_boot: int = 200,
    n_refit: int = 30,
    level: float = 0.95,
    bandwidth: float = 0.5,
    seed: int = 0,
) -> IntervalTable | None:
    """The interval table of a registered model (see the module docstring).

    ``model``: the registered (fitted) scikit-learn model; ``X``, ``y``: the training patients
    it was fitted on; ``p_oof``, ``y_oof``, ``groups``: the validated procedure's out-of-fold
    predictions, outcomes and patient of each prediction. None when there is nothing to
    recalibrate on (no events or no non-events).
    """
    recal = fit_interval(p_oof, y_oof, groups, n_boot=n_boot, level=level, seed=seed)
    if recal is None:
        return None
    z, offsets = refit_offsets(model, X, y, n_refit=n_refit, seed=seed)
    refit = tabulate_offsets(z, offsets, level, bandwidth) if offsets.shape[0] >= 10 else None
    return combine(recal, refit, level=level, n=recal.n, events=recal.events)
