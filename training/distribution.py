"""The training distribution of a model's inputs, stored with the model for serving checks.

Serving flags a patient's input as unlike the training data against what the model actually
saw, not against the catalog's plausible ranges (IL-6 up to 100,000 pg/mL is plausible but may
be far beyond a cohort's largest value). Per input column: how many training rows knew it, its
training range and a few quantiles (continuous), or the levels seen (binary and categorical);
plus the products and the number of centres in the cohort. Aggregates only: no row, no
identifier, no centre name (DESIGN.md privacy rules).

Real cohorts (issue 12 §6): no stored number is a single patient's value at the edge. The range
is bounded with at least ``K_BEYOND`` = 5 training rows (one per patient at a landmark) at or
beyond each bound — the midpoint of the 5th and 6th lowest (highest) values, a k-anonymity-style
rule (Sweeney 2002) — and only the quantiles with at least 5 rows on either side are kept
(``h = q·(n−1)``, Hyndman & Fan 1996 type 7, with ``5 ≤ h ≤ n−1−5``). A column with fewer than
12 known values has no range and is never flagged. Synthetic cohorts keep the observed
minimum/maximum and every quantile. ``range_rule`` says which applied; files written before it
(version 1, min/max as quantiles 0 and 1) are still read by :func:`bounds`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

VERSION = 2
QUANTILES: tuple[float, ...] = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
PRODUCT_PREFIX = "product_"
K_BEYOND = 5
MIN_MAX = "min_max"  # synthetic cohorts, and every version-1 file
K_BOUND = "k_beyond"  # real cohorts


def training_distribution(
    X: pd.DataFrame, centers: Sequence[Any] | None = None, *, synthetic: bool = False
) -> dict[str, Any]:
    """JSON-ready summary of the training inputs ``X`` (model input columns, float).

    ``synthetic``: the cohort is simulated, so the observed extremes may be stored; otherwise
    (the default, the safe side) the real-cohort rule of the module docstring applies."""
    columns: dict[str, Any] = {}
    for name in X.columns:
        v = X[name].to_numpy(dtype=np.float64)
        known = v[~np.isnan(v)]
        entry: dict[str, Any] = {"n": int(known.size), "n_missing": int(v.size - known.size)}
        levels = np.unique(known)
        if known.size and levels.size <= 2 and set(levels.tolist()) <= {0.0, 1.0}:
            entry["levels"] = [float(x) for x in levels.tolist()]
        elif known.size:
            entry["quantiles"] = _quantiles(known, synthetic)
            rng = _range(known, synthetic)
            if rng is not None:
                entry["range"] = list(rng)
        columns[str(name)] = entry
    products = sorted(
        c[len(PRODUCT_PREFIX) :]
        for c in X.columns
        if str(c).startswith(PRODUCT_PREFIX) and np.nansum(X[c].to_numpy(dtype=float)) > 0
    )
    has_product_columns = any(str(c).startswith(PRODUCT_PREFIX) for c in X.columns)
    return {
        "version": VERSION,
        "n_rows": len(X),
        "columns": columns,
        "products": products if has_product_columns else None,
        "n_centers": None if centers is None else len(set(map(str, centers))),
        "range_rule": {"rule": MIN_MAX} if synthetic else {"rule": K_BOUND, "k": K_BEYOND},
    }


def _quantiles(known: np.ndarray, synthetic: bool) -> dict[str, float]:
    """The stored quantiles: all of them (synthetic), else those with ≥ k rows either side."""
    n = known.size
    keep = [q for q in QUANTILES if synthetic or (K_BEYOND <= q * (n - 1) <= n - 1 - K_BEYOND)]
    if not keep:
        return {}
    qs = np.quantile(known, keep)
    return {f"{q:g}": float(x) for q, x in zip(keep, qs, strict=True)}


def _range(known: np.ndarray, synthetic: bool) -> tuple[float, float] | None:
    """(low, high): the observed extremes (synthetic), else the midpoints of the k-th and
    (k+1)-th values from each end; None when fewer than 2k+2 values are known."""
    if synthetic:
        return float(known.min()), float(known.max())
    k, n = K_BEYOND, known.size
    if n < 2 * k + 2:
        return None
    x = np.sort(known)
    return float((x[k - 1] + x[k]) / 2), float((x[n - k - 1] + x[n - k]) / 2)


def range_k(dist: dict[str, Any]) -> int | None:
    """The k of the real-cohort range rule, or None when the range is the observed min/max
    (synthetic cohorts and version-1 files)."""
    rule = dist.get("range_rule") or {"rule": MIN_MAX}
    return int(rule["k"]) if rule.get("rule") == K_BOUND else None


def bounds(entry: dict[str, Any] | None) -> tuple[float, float] | None:
    """The stored training range of one column entry, or None (levels, too few values).

    Version-1 files (models registered before the real-cohort rule) carry it as quantiles 0
    and 1; they are still read."""
    if not entry:
        return None
    if "range" in entry:
        lo, hi = entry["range"]
        return float(lo), float(hi)
    q = entry.get("quantiles") or {}  # version 1; a real version-2 entry never keeps 0 and 1
    return (float(q["0"]), float(q["1"])) if "0" in q and "1" in q else None


def outside(dist: dict[str, Any], column: str, value: float) -> tuple[float, float] | None:
    """The training range of ``column`` when ``value`` lies outside it, else None
    (unknown values, columns absent from the summary or without a range and level columns
    are never outside)."""
    if value != value:
        return None
    b = bounds(dist.get("columns", {}).get(column))
    if b is None:
        return None
    lo, hi = b
    return (lo, hi) if (value < lo or value > hi) else None


def unseen_level(dist: dict[str, Any], column: str, value: float) -> bool:
    """True when a binary column takes a level no training row had (e.g. a product)."""
    entry = dist.get("columns", {}).get(column)
    if entry is None or value != value or "levels" not in entry:
        return False
    return float(value) not in entry["levels"]
