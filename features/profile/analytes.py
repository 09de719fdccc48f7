"""Per-analyte statistics of the profile: how many values and patients, the distribution
(log10 scale for cytokines and the skewed labs, ``features.catalog.LOG_SCALE``) overall and by
time window, sampling density per patient and missingness by window."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.catalog import LOG_SCALE
from features.profile.rows import ABOVE, BELOW, AnalyteRows, CohortRows
from features.profile.windows import Windows
from features.vocabulary import ANALYTES

N_BINS = 30
QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


@dataclass(frozen=True)
class WindowStats:
    label: str
    values: int
    patients: int
    missing_pct: float  # share of the cohort's patients with no value in the window
    per_patient_median: float  # values per sampled patient (median)


@dataclass(frozen=True)
class AnalyteStats:
    analyte: str
    label: str
    unit: str
    group: str
    log_scale: bool
    values: int
    patients: int
    below_limit: int  # rows with qualifier '<'
    above_limit: int  # rows with qualifier '>'
    quantiles: tuple[float, ...]  # of QUANTILES, canonical unit
    bin_edges: np.ndarray  # in log10 units when ``log_scale``
    histogram: np.ndarray  # (N_BINS,) all values
    histogram_by_window: np.ndarray  # (windows, N_BINS)
    windows: tuple[WindowStats, ...]
    per_patient: tuple[float, float, float]  # values per patient with any: median, p90, max


def _scale(values: np.ndarray, log_scale: bool) -> np.ndarray:
    if not log_scale:
        return values
    out = np.full(len(values), np.nan)
    pos = values > 0
    out[pos] = np.log10(values[pos])
    return out


def _edges(x: np.ndarray) -> np.ndarray:
    x = x[np.isfinite(x)]
    if not len(x):
        return np.linspace(0.0, 1.0, N_BINS + 1)
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, N_BINS + 1)


def _binned(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of every value (-1 where not finite); the last bin is closed."""
    b = np.searchsorted(edges, x, side="right") - 1
    b = np.clip(b, 0, N_BINS - 1)
    return np.where(np.isfinite(x), b, -1)


def analyte_stats(rows: AnalyteRows, n_patients: int, windows: Windows) -> AnalyteStats:
    """Statistics of one analyte (see the module docstring)."""
    a = ANALYTES[rows.analyte]
    log_scale = rows.analyte in LOG_SCALE
    nw = len(windows.labels)
    w = windows.index(rows.hours)
    x = _scale(rows.value, log_scale)
    edges = _edges(x)
    b = _binned(x, edges)
    ok = b >= 0
    hist_w = np.bincount(w[ok] * N_BINS + b[ok], minlength=nw * N_BINS).reshape(nw, N_BINS)
    per_window_values = np.bincount(w[w >= 0], minlength=nw)
    pw = np.unique(rows.patient.astype(np.int64) * nw + np.maximum(w, 0))
    pw_patients = np.bincount(pw % nw, minlength=nw)
    pair_counts = np.bincount(
        np.searchsorted(pw, rows.patient.astype(np.int64) * nw + np.maximum(w, 0)),
        minlength=len(pw),
    )
    stats = []
    for i, label in enumerate(windows.labels):
        mine = pair_counts[pw % nw == i]
        stats.append(
            WindowStats(
                label=label,
                values=int(per_window_values[i]),
                patients=int(pw_patients[i]),
                missing_pct=float(100.0 * (1 - pw_patients[i] / n_patients)) if n_patients else 0.0,
                per_patient_median=float(np.median(mine)) if len(mine) else 0.0,
            )
        )
    per_patient = np.bincount(rows.patient, minlength=n_patients)
    per_patient = per_patient[per_patient > 0]
    q = np.quantile(rows.value, QUANTILES) if len(rows.value) else np.full(len(QUANTILES), np.nan)
    return AnalyteStats(
        analyte=rows.analyte,
        label=a.label,
        unit=a.canonical_unit,
        group=a.group,
        log_scale=log_scale,
        values=len(rows.value),
        patients=len(per_patient),
        below_limit=int((rows.qualifier == BELOW).sum()),
        above_limit=int((rows.qualifier == ABOVE).sum()),
        quantiles=tuple(float(v) for v in q),
        bin_edges=edges,
        histogram=hist_w.sum(axis=0),
        histogram_by_window=hist_w,
        windows=tuple(stats),
        per_patient=(
            (
                float(np.median(per_patient)),
                float(np.quantile(per_patient, 0.9)),
                float(per_patient.max()),
            )
            if len(per_patient)
            else (0.0, 0.0, 0.0)
        ),
    )


def all_analyte_stats(rows: CohortRows, windows: Windows) -> list[AnalyteStats]:
    """:func:`analyte_stats` of every analyte present (vocabulary order)."""
    return [analyte_stats(r, rows.n_patients, windows) for r in rows.analytes.values()]
