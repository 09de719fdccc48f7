"""The measurement rows of a cohort split by analyte, as arrays (built once, read by every step).

A cohort of 10⁵ synthetic patients has ~1.7·10⁷ measurement rows: every statistic of the profile
works on these per-analyte NumPy slices (patient code, hours, value, qualifier), never on a
Python object per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.cohort import Cohort
from features.vocabulary import ANALYTES

NO_QUALIFIER, BELOW, ABOVE = -1, 0, 1  # codes of the ``qualifier`` column ('<' and '>')


@dataclass(frozen=True)
class AnalyteRows:
    """One analyte's rows: patient code (row of ``cohort.patients``), time, value, qualifier."""

    analyte: str
    patient: np.ndarray
    hours: np.ndarray
    value: np.ndarray
    qualifier: np.ndarray

    @property
    def plain(self) -> np.ndarray:
        """Rows written as a plain number (no '<' / '>' qualifier)."""
        return self.qualifier == NO_QUALIFIER


@dataclass(frozen=True)
class CohortRows:
    n_patients: int
    analytes: dict[str, AnalyteRows]


def patient_codes(cohort: Cohort, ids: pd.Series) -> np.ndarray:
    """Row of ``cohort.patients`` for every id in ``ids`` (-1 when absent)."""
    index = pd.Index(cohort.patients["patient_id"].astype(str))
    return index.get_indexer(ids.astype(str)).astype(np.int64)


def split_rows(cohort: Cohort) -> CohortRows:
    """Measurement rows of ``cohort`` grouped by analyte (vocabulary order)."""
    m = cohort.measurements
    codes, names = pd.factorize(m["analyte"].astype(str))
    patient = patient_codes(cohort, m["patient_id"])
    hours = m["hours_from_infusion"].to_numpy(dtype=float)
    value = m["value"].to_numpy(dtype=float)
    qual = pd.Categorical(m["qualifier"], categories=["<", ">"]).codes.astype(np.int8)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    out: dict[str, AnalyteRows] = {}
    ranked = sorted(range(len(names)), key=lambda i: list(ANALYTES).index(names[i]))
    for i in ranked:
        sel = order[bounds[i] : bounds[i + 1]]
        out[str(names[i])] = AnalyteRows(
            str(names[i]), patient[sel], hours[sel], value[sel], qual[sel]
        )
    return CohortRows(len(cohort.patients), out)
