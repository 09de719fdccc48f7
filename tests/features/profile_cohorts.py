"""Synthetic cohorts for the profile tests: a clean one and copies with injected artefacts.

``clean_cohort`` is ``features.synth.simulate`` through the real validator, with one change:
the simulator saturates cytokines and labs at the edges of their plausible range
(``features.synth.simulate._report``) and writes those values as plain numbers. That *is* the
ceiling/floor artefact the profile flags, so the clean cohort gives those rows the '>' / '<'
qualifier a well-behaved source writes; every other row is untouched.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from features.catalog import DYNAMIC_ANALYTES
from features.cohort import Cohort
from features.synth import simulate
from features.validation import validate_tables
from features.vocabulary import ANALYTES

N = 1000  # large enough that training's sample-size rule holds at every default landmark


def clean_cohort(n: int = N, seed: int = 2) -> Cohort:
    sim = simulate(n, seed=seed)
    tables = {"patients": sim.patients, "measurements": sim.measurements, "events": sim.events}
    cohort = validate_tables(tables, "sim").cohort
    m = cohort.measurements.copy()
    qual = m["qualifier"].astype(object).to_numpy().copy()
    analyte = m["analyte"].astype(str).to_numpy()
    value = m["value"].to_numpy()
    for key in DYNAMIC_ANALYTES:
        lo, hi = ANALYTES[key].soft
        sel = analyte == key
        qual[sel & np.isclose(value, hi * 0.98, rtol=1e-4) & pd.isna(qual)] = ">"
        if lo > 0:
            qual[sel & np.isclose(value, lo, rtol=1e-4) & pd.isna(qual)] = "<"
    m["qualifier"] = pd.Categorical(qual, categories=["<", ">"])
    return dataclasses.replace(cohort, measurements=m)


def _with_values(cohort: Cohort, analyte: str, change) -> Cohort:
    m = cohort.measurements.copy()
    sel = (m["analyte"].astype(str) == analyte).to_numpy()
    values = m["value"].to_numpy().copy()
    values[sel] = change(values[sel], m.loc[sel])
    m["value"] = values
    return dataclasses.replace(cohort, measurements=m)


def fill_value(values: np.ndarray) -> float:
    return float(np.round(np.median(values)))


def impute_constant(cohort: Cohort, analyte: str = "il10", share: float = 0.25) -> Cohort:
    """A quarter of the analyte's values replaced by one fill value, the analyte's median
    rounded to a whole number (what a fill-with-median export writes)."""
    rng = np.random.default_rng(0)

    def change(v: np.ndarray, _: pd.DataFrame) -> np.ndarray:
        out = v.copy()
        out[rng.random(len(v)) < share] = fill_value(v)
        return out

    return _with_values(cohort, analyte, change)


def cap_at(cohort: Cohort, analyte: str = "il6", quantile: float = 0.97) -> Cohort:
    """Values above the analyte's 97th centile written as that ceiling, without qualifier."""

    def change(v: np.ndarray, _: pd.DataFrame) -> np.ndarray:
        ceiling = float(np.round(np.quantile(v, quantile)))
        return np.minimum(v, ceiling)

    return _with_values(cohort, analyte, change)


def switch_unit(cohort: Cohort, analyte: str = "ifng", factor: float = 1000.0) -> Cohort:
    """Half the patients (a later period) have the analyte written in a unit ×factor away
    (ng/mL numbers under a pg/mL label for factor 1000)."""
    later = set(cohort.patients["patient_id"].astype(str).iloc[len(cohort.patients) // 2 :])

    def change(v: np.ndarray, rows: pd.DataFrame) -> np.ndarray:
        moved = rows["patient_id"].astype(str).isin(later).to_numpy()
        return np.where(moved, v / factor, v)

    return _with_values(cohort, analyte, change)
