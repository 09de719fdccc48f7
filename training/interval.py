"""Per-patient uncertainty of a calibrated probability: a bootstrap recalibration interval.

What it covers: for a patient whose model probability is ``p``, the 95% interval of the
outcome rate among validation patients given that probability — logistic recalibration
(Cox DR, Biometrika 1958; the calibration intercept/slope model of Van Calster B et al., J Clin
Epidemiol 2016) of the procedure's out-of-fold predictions, refitted on ``n_boot`` bootstrap
resamples of the validation patients (all repeats of a patient resampled together). It widens
where few validation patients and events support a probability and is centred on what
validation observed (so a miscalibrated model shows an interval away from its own number). It
does not cover the variation between refits of the model on other cohorts, nor a population
unlike the training cohort (the training-distribution checks flag those patients).

The interval is tabulated once on a grid of log-odds and read by linear interpolation, so a
request pays one ``np.interp`` per probability (measured: benchmarks/bench_interval.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

METHOD = "bootstrap logistic recalibration of out-of-fold predictions"
GRID = np.linspace(-7.0, 7.0, 141)  # log-odds of 0.09% … 99.9%
EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _expit(z: Any) -> Any:
    from scipy.special import expit

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
