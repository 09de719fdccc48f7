"""Vectorised random draws shared by the simulator's steps (one ``Generator`` per stage)."""

from __future__ import annotations

import numpy as np


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    return rng.uniform(bounds[0], bounds[1], n)


def _choice(
    rng: np.random.Generator, weights: tuple[float, ...] | np.ndarray, n: int
) -> np.ndarray:
    """Categorical draws (vectorised; weights need not be normalised)."""
    w = np.asarray(weights, dtype=float)
    cum = np.cumsum(w / w.sum())
    return np.minimum(np.searchsorted(cum, rng.random(n), side="right"), len(w) - 1)


def _row_choice(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs`` (rows × k, rows sum to 1)."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None]
    return np.minimum((u > cum).sum(axis=1), probs.shape[1] - 1)


def _lognormal(
    rng: np.random.Generator, median: np.ndarray | float, sigma: float, n: int
) -> np.ndarray:
    return np.asarray(median) * np.exp(sigma * rng.standard_normal(n))
