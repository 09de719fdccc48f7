"""The grade course of records: recorded events, else derived grades, else onset only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.grading.derive import (
    IS_COURSE,
    IS_FEVER_EXEMPT,
    IS_GRADED_COURSE,
    IS_SUPPORT,
    MAX_GRADE,
    RESOLVED,
    Derived,
    derive_support_grades,
)
from features.landmark import known_at
from features.records import Records

# course sources, per patient code in :class:`Course`
NO_COURSE, RECORDED, DERIVED, MAX_GRADE_ONSET = 0, 1, 2, 3
SOURCE_NAMES: tuple[str, ...] = ("none", "recorded", "derived", "max_grade_onset")


@dataclass(frozen=True)
class Course:
    """The grade course of patients coded 0 … n-1, as arrays (see :class:`GradeCourse`).

    Steps (``code``, ``hours``, ``grade``) sorted by code and time; ``source`` per code
    (:data:`SOURCE_NAMES` index); the summary evidence (``s_code``, ``s_grade``, ``s_hours``)
    in event order.
    """

    n: int
    code: np.ndarray
    hours: np.ndarray
    grade: np.ndarray
    source: np.ndarray
    s_code: np.ndarray
    s_grade: np.ndarray
    s_hours: np.ndarray


def course_of_records(
    records: Records,
    derived: Derived | None = None,
    limit: float | np.ndarray | None = None,
) -> Course:
    """Grade course of every patient of ``records`` (the rules of :func:`grade_course`).

    ``derived``: the derived grades of these records' patients, cut as the records were
    (:func:`derive_records` of the uncut records, then :meth:`Derived.cut` / ``stack``); else
    the grades are derived from ``records`` themselves, and ``limit`` (the landmark the records
    were cut at: one number or one per patient) drops the expiry steps after it, which are not
    known at the landmark. Both give the same course.
    """
    n = records.n
    ee, et, eg, ep = records.e_e, records.e_t, records.e_g, records.e_p
    timed = ~np.isnan(et)
    in_course = IS_COURSE[ee] & timed
    rec_grade = np.where(ee[in_course] == RESOLVED, 0.0, eg[in_course])
    recorded = np.zeros(n, dtype=bool)
    recorded[ep[in_course]] = True
    if derived is None:
        sup = IS_SUPPORT[records.m_a] & ~recorded[records.m_p]
        drugs = IS_FEVER_EXEMPT[ee] & timed & ~recorded[ep]
        q_code, q_hours, q_grade = derive_support_grades(
            records.m_p[sup],
            records.m_a[sup],
            records.m_t[sup],
            records.m_v[sup],
            n,
            ep[drugs],
            et[drugs],
        )
        if limit is not None:
            known = known_at(q_hours, limit if np.ndim(limit) == 0 else np.asarray(limit)[q_code])
            q_code, q_hours, q_grade = q_code[known], q_hours[known], q_grade[known]
    else:
        keep = ~recorded[derived.code]
        q_code, q_hours, q_grade = derived.code[keep], derived.hours[keep], derived.grade[keep]
    is_derived = np.zeros(n, dtype=bool)
    is_derived[q_code] = True
    # Onset from a timed whole-course maximum ≥1, for patients with nothing better: CRS is known
    # to be present from that time on at grade ≥1; the maximum itself is not known then.
    with np.errstate(invalid="ignore"):
        onset_only = (ee == MAX_GRADE) & timed & (eg >= 1) & ~(recorded | is_derived)[ep]
    all_codes = np.concatenate([ep[in_course], q_code, ep[onset_only]])
    all_hours = np.concatenate([et[in_course], q_hours, et[onset_only]])
    all_grade = np.concatenate([rec_grade, q_grade, np.ones(int(onset_only.sum()))])
    # a recorded event without a grade is dropped; a derived NaN is an expiry (grade unknown)
    ok = np.r_[~np.isnan(rec_grade), np.ones(len(q_code) + int(onset_only.sum()), dtype=bool)]
    all_codes, all_hours, all_grade = all_codes[ok], all_hours[ok], all_grade[ok]
    order = np.lexsort((all_grade, all_hours, all_codes))  # at one time the highest grade last
    c, h, g = all_codes[order], all_hours[order], all_grade[order]
    last = np.concatenate(((c[1:] != c[:-1]) | (h[1:] != h[:-1]), [True]))[: len(c)]
    source = np.zeros(n, dtype=np.int8)
    source[ep[onset_only]] = MAX_GRADE_ONSET
    source[is_derived] = DERIVED
    source[recorded] = RECORDED
    summ = (ee == MAX_GRADE) | (IS_GRADED_COURSE[ee] & ~timed)
    return Course(n, c[last], h[last], g[last], source, ep[summ], eg[summ], et[summ])
