"""The training distribution of a model's inputs, stored with the model for serving checks.

Serving flags a patient's input as unlike the training data against what the model actually
saw, not against the catalog's plausible ranges (IL-6 up to 100,000 pg/mL is plausible but may
be far beyond a cohort's largest value). Per input column: how many training rows knew it, the
observed minimum/maximum and a few quantiles (continuous), or the levels seen (binary and
categorical); plus the products and the number of centres in the cohort. Aggregates only: no
row, no identifier, no centre name (DESIGN.md privacy rules).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

VERSION = 1
QUANTILES: tuple[float, ...] = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
PRODUCT_PREFIX = "product_"


def training_distribution(X: pd.DataFrame, centers: Sequence[Any] | None = None) -> dict[str, Any]:
    """JSON-ready summary of the training inputs ``X`` (model input columns, float)."""
    columns: dict[str, Any] = {}
    for name in X.columns:
        v = X[name].to_numpy(dtype=np.float64)
        known = v[~np.isnan(v)]
        entry: dict[str, Any] = {"n": int(known.size), "n_missing": int(v.size - known.size)}
        levels = np.unique(known)
        if known.size and levels.size <= 2 and set(levels.tolist()) <= {0.0, 1.0}:
            entry["levels"] = [float(x) for x in levels.tolist()]
        elif known.size:
            qs = np.quantile(known, QUANTILES)
            entry["quantiles"] = {f"{q:g}": float(x) for q, x in zip(QUANTILES, qs, strict=True)}
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
    }


def outside(dist: dict[str, Any], column: str, value: float) -> tuple[float, float] | None:
    """The training (min, max) of ``column`` when ``value`` lies outside it, else None
    (unknown values, columns absent from the summary and level columns are never outside)."""
    entry = dist.get("columns", {}).get(column)
    if entry is None or value != value or "quantiles" not in entry:
        return None
    lo, hi = entry["quantiles"]["0"], entry["quantiles"]["1"]
    return (lo, hi) if (value < lo or value > hi) else None


def unseen_level(dist: dict[str, Any], column: str, value: float) -> bool:
    """True when a binary column takes a level no training row had (e.g. a product)."""
    entry = dist.get("columns", {}).get(column)
    if entry is None or value != value or "levels" not in entry:
        return False
    return float(value) not in entry["levels"]
