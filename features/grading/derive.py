"""Grades derived from support rows (in force 24 h after their last row), once per records."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from features.grading.rules import (
    COURSE_EVENTS,
    FEVER_EXEMPTING_DRUGS,
    FEVER_WINDOW_H,
    SUPPORT_ANALYTES,
    SUPPORT_VALID_H,
    fever_values,
    hypotension_grade_arrays,
    hypoxia_grade_arrays,
)
from features.landmark import known_at
from features.records import ANALYTE_CODE, EVENT_CODE, Records, code_set

_SUPPORT_CODE = {a: ANALYTE_CODE[a] for a in SUPPORT_ANALYTES}
IS_SUPPORT = code_set(SUPPORT_ANALYTES, ANALYTE_CODE)
IS_COURSE = code_set(COURSE_EVENTS, EVENT_CODE)
IS_GRADED_COURSE = code_set(COURSE_EVENTS[:2], EVENT_CODE)  # crs_onset, crs_grade
IS_FEVER_EXEMPT = code_set(FEVER_EXEMPTING_DRUGS, EVENT_CODE)
MAX_GRADE = EVENT_CODE["crs_max_grade"]
RESOLVED = EVENT_CODE["crs_resolved"]


def _asof(
    comp: np.ndarray,
    codes: np.ndarray,
    hours: np.ndarray,
    query: np.ndarray,
    q_code: np.ndarray,
    q_hours: np.ndarray,
    tolerance: float,
) -> np.ndarray:
    """Index of the last row at or before each query within ``tolerance`` hours (-1 = none).

    ``comp`` / ``query`` are exact integer (patient, time-rank) keys sorted ascending; the
    search is NumPy's ``searchsorted`` (``pandas.merge_asof`` does the same with more overhead
    per call, which dominated the one-patient serving path).
    """
    if len(comp) == 0:
        return np.full(len(query), -1, dtype=np.int64)
    idx = np.searchsorted(comp, query, side="right") - 1
    safe = np.clip(idx, 0, None)
    ok = (idx >= 0) & (codes[safe] == q_code) & (q_hours - hours[safe] <= tolerance)
    return np.where(ok, idx, -1)


def derive_support_grades(
    p: np.ndarray,
    a: np.ndarray,
    t: np.ndarray,
    v: np.ndarray,
    n: int,
    drug_p: np.ndarray,
    drug_t: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`derive_grades` on arrays: support rows (code ``p`` < ``n``, analyte code ``a``,
    time, value) and timed fever-exempting drug doses → (code, hours, grade) per evaluation,
    sorted by code and time."""
    if len(p) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    times, rank = np.unique(t, return_inverse=True)
    n_ranks = len(times)
    comp = p.astype(np.int64) * n_ranks + rank.reshape(-1)
    order = np.argsort(comp, kind="stable")
    comp, codes, hours = comp[order], p[order], t[order]
    analyte, value = a[order], v[order]
    query = np.unique(comp)  # one evaluation per (patient, time) with a support row
    q_code, q_hours = query // n_ranks, times[query % n_ranks]
    # the state of each kind at each evaluation (NaN = none in force); a kind without rows is
    # left out: all-NaN inputs grade 0 in :func:`astct_grade`, so skipping them changes nothing
    # and saves most of the work for one patient (usually temperature rows only)
    kinds = set(analyte.tolist() if len(analyte) <= 256 else np.unique(analyte).tolist())
    state: dict[str, np.ndarray | None] = dict.fromkeys((*SUPPORT_ANALYTES[1:], "fever"))
    for name, code in _SUPPORT_CODE.items():
        if code not in kinds:
            continue
        mask = analyte == code
        if name == "temperature":
            name, mask, tol = "fever", mask & fever_values(value), FEVER_WINDOW_H
        else:
            tol = SUPPORT_VALID_H
        sel = np.flatnonzero(mask)
        idx = _asof(comp[sel], codes[sel], hours[sel], query, q_code, q_hours, tol)
        found = value[sel][idx[idx >= 0]]
        out = np.full(len(query), np.nan)
        out[idx >= 0] = found
        state[name] = out
    first_drug = np.full(n, np.inf)
    np.minimum.at(first_drug, drug_p, drug_t)
    # astct_grade on the aligned 1-D states, without its conversions and broadcasting
    size = len(query)
    organ = np.zeros(size, dtype=np.int8)
    nan = np.full(size, np.nan)
    hypo, vaso, vp = state["hypotension"], state["vasopressors"], state["vasopressin"]
    if hypo is not None or vaso is not None or vp is not None:
        organ = np.maximum(
            organ,
            hypotension_grade_arrays(
                nan if hypo is None else hypo, nan if vaso is None else vaso, vp
            ),
        )
    dev, flow = state["oxygen_device"], state["oxygen_flow"]
    if dev is not None or flow is not None:
        organ = np.maximum(
            organ, hypoxia_grade_arrays(nan if dev is None else dev, nan if flow is None else flow)
        )
    fever = fever_values(nan if state["fever"] is None else state["fever"])
    exempt = first_drug[q_code] <= q_hours
    grade = np.where(fever, np.maximum(organ, 1), np.where(exempt, organ, 0)).astype(float)
    return _with_expiry(q_code, q_hours, grade)


def _with_expiry(
    code: np.ndarray, hours: np.ndarray, grade: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Derived evaluations (sorted by code and time) with an expiry step (grade NaN) at
    ``t + SUPPORT_VALID_H`` after every evaluation not followed by another within that time."""
    if len(code) == 0:
        return code, hours, grade
    nxt_same = np.r_[code[1:] == code[:-1], False]
    gap = np.r_[hours[1:] - hours[:-1], np.inf]
    expires = ~nxt_same | (gap > SUPPORT_VALID_H)
    if not expires.any():
        return code, hours, grade
    e_idx = np.flatnonzero(expires)
    pos = e_idx + 1  # each expiry goes right after its evaluation
    code = np.insert(code, pos, code[e_idx])
    hours = np.insert(hours, pos, hours[e_idx] + SUPPORT_VALID_H)
    grade = np.insert(grade, pos, np.nan)
    return code, hours, grade


@dataclass(frozen=True)
class Derived:
    """ASTCT grades derived from the support rows of every patient (code, hours, grade), sorted
    by code and time: what :func:`derive_grades` gives each patient, computed once."""

    code: np.ndarray
    hours: np.ndarray
    grade: np.ndarray

    def cut(self, landmark: float | np.ndarray) -> Derived:
        """The grades at or before the landmark (one number, or one per patient code)."""
        limit = landmark if np.ndim(landmark) == 0 else np.asarray(landmark)[self.code]
        keep = known_at(self.hours, limit)
        return Derived(self.code[keep], self.hours[keep], self.grade[keep])

    def stack(self, landmarks: tuple[float, ...], n: int) -> Derived:
        """The grades of :meth:`features.records.Records.stack` (patient ``p`` at landmark
        ``i`` is ``i * n + p``)."""
        li, j = np.nonzero(known_at(self.hours[None, :], np.asarray(landmarks)[:, None]))
        return Derived(li * n + self.code[j], self.hours[j], self.grade[j])


def derive_records(records: Records) -> Derived:
    """The derived grades of every patient of ``records`` that has support rows.

    Derivation is causal (a grade at ``t`` reads rows at or before ``t``; fever exemption from
    the first drug dose at or before ``t``), so the grades of the records cut at a landmark are
    exactly these grades timed at or before it: one derivation serves every landmark. A
    patient's derived grades are used only while no timed course event is known (the
    recorded course takes over from the first one), so rows from then on are not derived.
    """
    ee, et = records.e_e, records.e_t
    course = IS_COURSE[ee] & ~np.isnan(et)
    recorded_from = np.full(records.n, np.inf)
    np.minimum.at(recorded_from, records.e_p[course], et[course])
    sup = IS_SUPPORT[records.m_a] & (records.m_t < recorded_from[records.m_p])
    drugs = IS_FEVER_EXEMPT[ee] & ~np.isnan(et)
    return Derived(
        *derive_support_grades(
            records.m_p[sup],
            records.m_a[sup],
            records.m_t[sup],
            records.m_v[sup],
            records.n,
            records.e_p[drugs],
            records.e_t[drugs],
        )
    )


_DERIVED: weakref.WeakKeyDictionary[Records, Derived] = weakref.WeakKeyDictionary()


def derived_of(records: Records) -> Derived:
    """:func:`derive_records` of ``records``, computed once per records object and shared by
    every landmark cut from them (cached here, by identity, while the records live)."""
    derived = _DERIVED.get(records)
    if derived is None:
        derived = _DERIVED[records] = derive_records(records)
    return derived
