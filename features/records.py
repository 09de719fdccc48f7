"""The cohort's long tables as NumPy columns keyed by patient row (:class:`Records`).

The form grading, tasks and features compute on, built once per cohort (:func:`prepared`):
a one-patient request and a cohort of 10⁵ patients go through the same vectorised code. Cutting
records at a landmark applies the one landmark rule, ``features.landmark.known_at``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.cohort import Cohort
from features.landmark import known_at, patient_codes
from features.schema import EVENTS, INDICATIONS
from features.vocabulary import ANALYTES

ANALYTE_KEYS: tuple[str, ...] = tuple(ANALYTES)


@dataclass(frozen=True, eq=False)
class Records:
    """A cohort's measurements and events as NumPy columns keyed by patient position.

    The form grading, tasks and features compute on: a one-patient request and a cohort of
    10⁵ patients go through the same vectorised code without per-call pandas overhead.
    ``m_a`` indexes :data:`ANALYTE_KEYS` and ``e_e`` indexes ``features.schema.EVENTS``
    (-1 = not in the vocabulary); measurements are sorted by (patient, analyte, time), so every
    (patient, analyte) series is one contiguous, time-ordered run; events keep cohort order.
    Compared and hashed by identity (``eq=False``): array fields have no truth value, and
    ``features.grading.derived_of`` caches per records object.
    """

    n: int  # patients (codes are 0 … n-1, rows of ``cohort.patients``)
    m_p: np.ndarray  # int64 patient code
    m_a: np.ndarray  # int64 analyte code
    m_t: np.ndarray  # float64 hours from infusion
    m_v: np.ndarray  # float64 value in the canonical unit
    e_p: np.ndarray  # int64 patient code
    e_e: np.ndarray  # int64 event code
    e_t: np.ndarray  # float64 hours from infusion (NaN = unknown time)
    e_g: np.ndarray  # float64 grade (NaN = none)
    e_i: np.ndarray  # int64 indication code into ``features.schema.INDICATIONS`` (-1 = none)

    def cut(self, landmark: float | np.ndarray) -> Records:
        """The records known at the landmark: one number, or one per patient (NaN = none).

        The same rule as ``features.landmark.cut`` (``features.landmark.known_at``); the order
        of the rows is kept.
        """
        if np.ndim(landmark) == 0:
            lm_m = lm_e = float(landmark)
        else:
            limits = np.asarray(landmark, dtype=float)
            lm_m, lm_e = limits[self.m_p], limits[self.e_p]
        km, ke = known_at(self.m_t, lm_m), known_at(self.e_t, lm_e)
        return Records(
            self.n,
            self.m_p[km],
            self.m_a[km],
            self.m_t[km],
            self.m_v[km],
            self.e_p[ke],
            self.e_e[ke],
            self.e_t[ke],
            self.e_g[ke],
            self.e_i[ke],
        )

    def stack(self, landmarks: tuple[float, ...]) -> Records:
        """These records cut at each of ``landmarks`` (hours), as one set of records in which
        patient ``p`` at the ``i``-th landmark is patient ``i * n + p``.

        Every (patient, landmark) pair is then an ordinary patient of the same vectorised code:
        a patient's landmarks are computed in one pass instead of one pass each. One landmark
        gives :meth:`cut`.
        """
        hours = np.asarray(landmarks, dtype=float)[:, None]
        n = self.n
        li, j = np.nonzero(known_at(self.m_t[None, :], hours))  # landmark-major: codes sorted
        le, k = np.nonzero(known_at(self.e_t[None, :], hours))
        return Records(
            n * len(landmarks),
            li * n + self.m_p[j],
            self.m_a[j],
            self.m_t[j],
            self.m_v[j],
            le * n + self.e_p[k],
            self.e_e[k],
            self.e_t[k],
            self.e_g[k],
            self.e_i[k],
        )

    def select(self, keep: np.ndarray) -> Records:
        """The records of the patients where ``keep`` (bool per patient), codes renumbered."""
        new = np.cumsum(keep) - 1
        km, ke = keep[self.m_p], keep[self.e_p]
        return Records(
            int(keep.sum()),
            new[self.m_p[km]],
            self.m_a[km],
            self.m_t[km],
            self.m_v[km],
            new[self.e_p[ke]],
            self.e_e[ke],
            self.e_t[ke],
            self.e_g[ke],
            self.e_i[ke],
        )


ANALYTE_CODE: dict[str, int] = {k: i for i, k in enumerate(ANALYTE_KEYS)}
EVENT_CODE: dict[str, int] = {e: i for i, e in enumerate(EVENTS)}
INDICATION_CODE: dict[str, int] = {x: i for i, x in enumerate(INDICATIONS)}


def code_set(names: tuple[str, ...] | list[str], lookup: dict[str, int]) -> np.ndarray:
    """Membership table of vocabulary codes: ``code_set(names, lookup)[codes]`` is ``codes ∈
    names`` (an extra last slot answers for code -1); a table lookup, not a set operation."""
    table = np.zeros(len(lookup) + 1, dtype=bool)
    table[[lookup[x] for x in names]] = True
    return table


def vocabulary_codes(values: pd.Series | np.ndarray, lookup: dict[str, int]) -> np.ndarray:
    """Codes of a text column in ``lookup`` (-1 = missing or unknown), one lookup per distinct."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        table = np.array([lookup.get(str(c), -1) for c in values.cat.categories] + [-1])
        return table[values.cat.codes.to_numpy()]
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    codes, uniques = pd.factorize(
        values if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
    )
    table = np.array([lookup.get(str(u), -1) for u in uniques] + [-1], dtype=np.int64)
    return table[codes]


def make_records(
    n: int,
    m_p: np.ndarray,
    m_a: np.ndarray,
    m_t: np.ndarray,
    m_v: np.ndarray,
    e_p: np.ndarray,
    e_e: np.ndarray,
    e_t: np.ndarray,
    e_g: np.ndarray,
    e_i: np.ndarray | None = None,
) -> Records:
    """:class:`Records` from columns in cohort order: measurements sorted by (patient, analyte,
    time) — stably, so rows tied on all three keep their order — and rows of unknown patients
    (code -1) dropped. ``e_i``: indication codes (default: none recorded)."""
    if e_i is None:
        e_i = np.full(len(e_p), -1, dtype=np.int64)
    if len(m_p) > 1 and np.all(
        (m_p[1:] > m_p[:-1]) | ((m_p[1:] == m_p[:-1]) & (m_t[1:] >= m_t[:-1]))
    ):  # canonical (patient, time) order: a stable sort on (patient, analyte) keeps time order
        order = np.argsort(m_p * (len(ANALYTE_KEYS) + 1) + (m_a + 1), kind="stable")
    else:
        order = np.lexsort((m_t, m_a, m_p))
    order = order[m_p[order] >= 0]
    keep_e = e_p >= 0
    return Records(
        n,
        m_p[order],
        m_a[order],
        m_t[order],
        m_v[order],
        e_p[keep_e],
        e_e[keep_e],
        e_t[keep_e],
        e_g[keep_e],
        np.asarray(e_i, dtype=np.int64)[keep_e],
    )


def records_of(cohort: Cohort) -> Records:
    """The cohort's records (codes = rows of ``cohort.patients``; unknown patients dropped)."""
    m, e = cohort.measurements, cohort.events
    return make_records(
        len(cohort.patients),
        np.asarray(patient_codes(cohort, m), dtype=np.int64),
        vocabulary_codes(m["analyte"], ANALYTE_CODE),
        m["hours_from_infusion"].to_numpy(dtype=float),
        m["value"].to_numpy(dtype=float),
        np.asarray(patient_codes(cohort, e), dtype=np.int64),
        vocabulary_codes(e["event"], EVENT_CODE),
        e["hours_from_infusion"].to_numpy(dtype=float),
        pd.to_numeric(e["grade"]).to_numpy(dtype=float, na_value=np.nan),
        vocabulary_codes(e["indication"], INDICATION_CODE) if "indication" in e else None,
    )


@dataclass(frozen=True)
class PreparedCohort(Cohort):
    """A cohort with its :class:`Records` built once (patients indexed 0 … n-1)."""

    records: Records | None = None


def prepared(cohort: Cohort) -> PreparedCohort:
    """The cohort with its records, built once and reused by every task and landmark."""
    if isinstance(cohort, PreparedCohort) and cohort.records is not None:
        return cohort
    patients = cohort.patients
    if not isinstance(patients.index, pd.RangeIndex) or patients.index.start != 0:
        patients = patients.reset_index(drop=True)
    base = Cohort(
        patients, cohort.measurements, cohort.events, cohort.source, cohort.digest, cohort.warnings
    )
    return PreparedCohort(
        patients,
        cohort.measurements,
        cohort.events,
        cohort.source,
        cohort.digest,
        cohort.warnings,
        records=records_of(base),
    )
