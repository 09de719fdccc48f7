"""Pure-noise landmark tables with catalog column names (for the null-check tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.catalog import catalog_for
from features.table import FeatureTable
from training.parsimony import COMPACT_AFTER_INFUSION, CYTOKINE_MAX

NOISE_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [
            *COMPACT_AFTER_INFUSION,
            *CYTOKINE_MAX,
            "ldh_last",
            "crp_last",
            "sgp130_max",
            "il1ra_max",
            "mcp1_max",
            "il10_last",
            "il6_last",
            "ifng_last",
            "ferritin_last",
            "age_years",
            "weight_kg",
            "car_t_dose",
        ]
    )
)


def noise_table(seed: int, n: int = 60, events: int = 12) -> FeatureTable:
    """A 48 h table: ≥ 20 catalog columns of noise (positive, skewed like labs), the rest NaN."""
    rng = np.random.default_rng(seed)
    catalog = catalog_for("severe_crs", "48h")
    X = pd.DataFrame(np.nan, index=range(n), columns=[s.name for s in catalog])
    for c in NOISE_COLUMNS:
        X[c] = np.exp(rng.normal(3.0, 1.0, n))
    X["crs_max_grade_so_far"] = rng.integers(0, 3, n).astype(float)
    X["marrow_blasts_pct"] = rng.uniform(0, 95, n)
    y = pd.Series(rng.permutation(np.r_[np.ones(events), np.zeros(n - events)]).astype(int))
    groups = pd.DataFrame({"center": rng.choice(["C01", "C02", "C03"], n)})
    ids = pd.Series([f"N{i:03d}" for i in range(n)])
    return FeatureTable("severe_crs", "48h", X.astype("float64"), y, ids, groups, {})
