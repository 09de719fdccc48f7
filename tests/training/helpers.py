"""Shared helpers for training tests: small FeatureTables from random data, tiny experiments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from features.table import FeatureTable


def random_table(n: int = 120, seed: int = 0, signal: float = 1.5) -> FeatureTable:
    """A FeatureTable with two informative columns (x0 ↑ risk, x1 ↓ risk), noise and NaNs."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"x{i}" for i in range(6)])
    X.loc[rng.uniform(size=n) < 0.1, "x3"] = np.nan
    lin = signal * X["x0"] - signal * X["x1"] - 1.0
    y = pd.Series((rng.uniform(size=n) < 1 / (1 + np.exp(-lin))).astype(int), name="y")
    groups = pd.DataFrame(
        {
            "center": rng.choice(["C01", "C02", "C03"], n),
            "age_band": rng.choice(["3–9", "10–17"], n),
            "product": "tisagenlecleucel",
            "marrow_burden": rng.choice(["<5%", "≥40%"], n),
        }
    )
    ids = pd.Series([f"P{i:04d}" for i in range(n)], name="patient_id")
    return FeatureTable("severe_crs", "48h", X.astype("float64"), y, ids, groups, {})


def write_experiment(path: Path, cohort_dir: Path | None = None, **overrides: object) -> Path:
    """A tiny, fast experiment file (one landmark, few models, 3-fold CV, 50 bootstraps, no null
    check)."""
    spec: dict = {
        "name": "tiny",
        "seed": 3,
        "cohort": {"path": str(cohort_dir)} if cohort_dir else {"synth": {"n": 120, "seed": 3}},
        "tasks": {"severe_crs": {"landmarks": ["48h"]}},
        "models": {
            "logreg": {"grid": {"C": [0.05, 0.5]}},
            "m_easix": {},
            "high_burden": {},
        },
        "validation": {
            "folds": 3,
            "repeats": 1,
            "inner_folds": 2,
            "bootstrap_ci": 50,
            "subgroup_bootstrap_ci": 20,
        },
        "champion": {"slope_band": [0.5, 2.0], "fallback": "closest_slope"},
    }
    spec.update(overrides)
    # The null check refits the whole procedure on 10 permutations below 100 patients: off
    # unless a test asks for it (tests of the null check set ``validation.null_check``).
    spec["validation"] = {"null_check": 0, **spec["validation"]}
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return path
