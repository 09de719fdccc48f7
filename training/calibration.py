"""Probability calibration inside the validation loop, chosen for the sample size.

Platt's sigmoid (Platt 1999) has two parameters and is the safe choice for small cohorts;
isotonic regression is non-parametric and overfits below roughly a thousand calibration samples
(Niculescu-Mizil A, Caruana R 2005, ICML; scikit-learn user guide §1.16). ``auto`` therefore
picks isotonic only for large cohorts with enough events on both sides.

Also the binned calibration curve (observed vs mean predicted risk per quantile bin with Wilson
95% intervals) drawn by ``training.plots``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from scipy.stats import norm

Array = np.ndarray
CalibrationChoice = Literal["auto", "sigmoid", "isotonic", "none"]

ISOTONIC_MIN_PATIENTS = 1000
ISOTONIC_MIN_EVENTS = 100


def choose_method(choice: CalibrationChoice, n_patients: int, n_events: int) -> str:
    """Resolve ``auto``: isotonic with n ≥ 1000 and ≥ 100 events and non-events, else sigmoid."""
    if choice != "auto":
        return choice
    n_nonevents = n_patients - n_events
    if (
        n_patients >= ISOTONIC_MIN_PATIENTS
        and n_events >= ISOTONIC_MIN_EVENTS
        and n_nonevents >= ISOTONIC_MIN_EVENTS
    ):
        return "isotonic"
    return "sigmoid"


def wilson_interval(events: Array, n: Array, level: float = 0.95) -> tuple[Array, Array]:
    """Wilson score interval for binomial proportions (vectorised)."""
    z = norm.ppf(1 - (1 - level) / 2)
    events = np.asarray(events, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        phat = events / n
        denom = 1 + z**2 / n
        centre = (phat + z**2 / (2 * n)) / denom
        half = z * np.sqrt(phat * (1 - phat) / n + z**2 / (4 * n**2)) / denom
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def calibration_table(y: Array, p: Array, n_bins: int = 5, level: float = 0.95) -> pd.DataFrame:
    """Observed event rate vs mean predicted risk in quantile bins of ``p`` (Wilson CI per bin).

    Few bins by default: with tens of events, more bins give intervals too wide to read.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    n_bins = max(1, min(n_bins, len(np.unique(p))))
    edges = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)))
    bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    frame = pd.DataFrame({"bin": bins, "y": y, "p": p})
    grouped = frame.groupby("bin").agg(
        n=("y", "size"), events=("y", "sum"), mean_predicted=("p", "mean")
    )
    low, high = wilson_interval(grouped["events"].to_numpy(), grouped["n"].to_numpy(), level)
    grouped["observed"] = grouped["events"] / grouped["n"]
    grouped["low"] = low
    grouped["high"] = high
    return grouped.reset_index(drop=True)
