"""Risk bands: the declared thresholds of a model and the validation evidence of each band.

A model's thresholds cut predicted risk into bands (``low`` / ``intermediate`` / ``high`` …);
each band carries the observed outcome rate, with a Wilson 95% interval, among the training
run's out-of-fold predictions that fell in it (Wilson 1927, via
``training.calibration.wilson_interval``), so a band is shown with how often patients in it had
the outcome.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from training.calibration import wilson_interval

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3)
BAND_NAMES: dict[int, tuple[str, ...]] = {
    1: ("lower", "higher"),
    2: ("low", "intermediate", "high"),
    3: ("low", "intermediate", "high", "very high"),
}


def band_names(n_thresholds: int) -> tuple[str, ...]:
    """Names of the ``n + 1`` bands cut by ``n`` thresholds."""
    return BAND_NAMES.get(n_thresholds, tuple(f"band {i + 1}" for i in range(n_thresholds + 1)))


def band_index(p: float | np.ndarray, thresholds: tuple[float, ...]) -> Any:
    """Band of a probability: number of thresholds it reaches (``p ≥ t`` counts)."""
    if isinstance(p, float | int):
        return bisect.bisect_right(thresholds, p)
    return np.searchsorted(np.asarray(thresholds), p, side="right")


@dataclass(frozen=True)
class Band:
    """Validation evidence for one risk band (out-of-fold predictions of the training run)."""

    name: str
    low: float | None
    high: float | None
    n: int
    events: int
    observed: float | None
    ci_low: float | None
    ci_high: float | None


def finite(x: Any) -> float | None:
    """``x`` as a finite float, else None (metrics and params are read from MLflow as text)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def thresholds_of(params: dict[str, str], metrics: dict[str, float]) -> tuple[float, ...]:
    """Declared thresholds: the run's ``thresholds`` param, else its ``sensitivity_at_*`` keys."""
    text = params.get("thresholds")
    if text:
        try:
            values = tuple(sorted(float(v) for v in text.strip("[]").split(",") if v.strip()))
            if values:
                return values
        except ValueError:
            pass
    found = sorted(
        {
            round(float(k.rsplit("_", 1)[1]), 6)
            for k in metrics
            if k.startswith("sensitivity_at_") and finite(k.rsplit("_", 1)[1]) is not None
        }
    )
    return tuple(found) or DEFAULT_THRESHOLDS


def band_evidence(folds: pd.DataFrame | None, thresholds: tuple[float, ...]) -> tuple[Band, ...]:
    """Observed outcome rate with a Wilson 95% CI per band of out-of-fold predicted risk."""
    edges = (None, *thresholds, None)
    names = band_names(len(thresholds))
    if folds is None or folds.empty or not {"y", "p"} <= set(folds.columns):
        return tuple(
            Band(n, edges[i], edges[i + 1], 0, 0, None, None, None) for i, n in enumerate(names)
        )
    y = folds["y"].to_numpy(dtype=float)
    p = folds["p"].to_numpy(dtype=float)
    idx = band_index(p, thresholds)
    out = []
    for i, name in enumerate(names):
        sel = idx == i
        n, ev = int(sel.sum()), int(y[sel].sum())
        if n:
            lo, hi = wilson_interval(np.array([ev]), np.array([n]))
            out.append(
                Band(name, edges[i], edges[i + 1], n, ev, ev / n, float(lo[0]), float(hi[0]))
            )
        else:
            out.append(Band(name, edges[i], edges[i + 1], 0, 0, None, None, None))
    return tuple(out)
