"""Per-patient queries of records and grade courses: counts, grades, first times, decision."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from features.cohort import Cohort
from features.grading import (
    SOURCE_NAMES,
    Course,
    GradeCourse,
    course_of_records,
    derived_of,
)
from features.landmark import PATIENT_CODE
from features.records import EVENT_CODE, Records, code_set, prepared


def per_patient_max(codes: np.ndarray, values: np.ndarray, n: int, default: float) -> np.ndarray:
    """Highest value per patient code (NaN values ignored; ``default`` where none)."""
    out = np.full(n, default, dtype=float)
    ok = (codes >= 0) & ~np.isnan(values)
    np.maximum.at(out, codes[ok], values[ok])
    return out


def per_patient_min(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Lowest value per patient code (NaN values ignored; NaN where none)."""
    out = np.full(n, np.inf)
    ok = (codes >= 0) & ~np.isnan(values)
    np.minimum.at(out, codes[ok], values[ok])
    out[np.isinf(out)] = np.nan
    return out


def count_per_patient(codes: np.ndarray, n: int, mask: np.ndarray | None = None) -> np.ndarray:
    c = codes if mask is None else codes[mask]
    return np.bincount(c[c >= 0], minlength=n)[:n]


def _steps(course: GradeCourse | Course) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(course, Course):
        return course.code, course.grade
    steps = course.steps
    return steps[PATIENT_CODE].to_numpy(), steps["grade"].to_numpy()


def last_grade(course: GradeCourse | Course, n: int) -> np.ndarray:
    """Grade in force at the end of each patient's course (0 when the course is empty; NaN when
    a derived grade has expired: unknown, ``features.grading``)."""
    codes, grades = _steps(course)
    out = np.zeros(n)
    if len(codes) == 0:
        return out
    last = np.concatenate((codes[1:] != codes[:-1], [True]))
    out[codes[last]] = grades[last]
    return out


def max_grade(course: GradeCourse | Course, n: int) -> np.ndarray:
    """Highest grade of each patient's course (0 when empty; expiries are ignored)."""
    codes, grades = _steps(course)
    return per_patient_max(codes, grades, n, 0.0)


def grade_in_force(
    course: Course, code: np.ndarray, hours: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The grade of ``course`` in force at each query (patient ``code``, ``hours``): the last
    step at or before it (0 where none; NaN after an expiry), and whether a step exists."""
    ns = len(course.code)
    codes = np.r_[course.code, code]
    t = np.r_[course.hours, hours]
    kind = np.r_[np.zeros(ns), np.ones(len(code))]  # a step at the query's time applies
    order = np.lexsort((kind, t, codes))
    is_step = order < ns
    last = np.maximum.accumulate(np.where(is_step, np.arange(len(order)), -1))
    src = order[np.clip(last, 0, None)]
    ok = (last >= 0) & (codes[src] == codes[order])
    q_pos = np.flatnonzero(~is_step)
    q_idx = order[q_pos] - ns
    grade = np.zeros(len(code))
    has = np.zeros(len(code), dtype=bool)
    hit = ok[q_pos]
    grade[q_idx[hit]] = course.grade[src[q_pos][hit]]
    has[q_idx[hit]] = True
    return grade, has


def as_course(course: GradeCourse | Course, n: int) -> Course:
    """An array course from either form (a frame course must be keyed by ``_p``)."""
    if isinstance(course, Course):
        return course
    steps, summary = course.steps, course.summary
    source = np.zeros(n, dtype=np.int8)
    names = {name: i for i, name in enumerate(SOURCE_NAMES)}
    source[course.source.index.to_numpy(dtype=np.int64)] = [names[s] for s in course.source]
    return Course(
        n,
        steps[PATIENT_CODE].to_numpy(dtype=np.int64),
        steps["hours_from_infusion"].to_numpy(dtype=float),
        steps["grade"].to_numpy(dtype=float),
        source,
        summary[PATIENT_CODE].to_numpy(dtype=np.int64),
        summary["grade"].to_numpy(dtype=float),
        summary["hours_from_infusion"].to_numpy(dtype=float),
    )


def course_of(cohort: Cohort) -> Course:
    """Grade course of every patient of the cohort, keyed by patient row (arrays)."""
    rec = prepared(cohort).records
    assert rec is not None
    return course_of_records(rec, derived_of(rec))


def is_event(records: Records, names: tuple[str, ...] | str) -> np.ndarray:
    """Rows of ``records`` events that are one of ``names``."""
    if isinstance(names, str):
        return records.e_e == EVENT_CODE[names]
    return _event_set(tuple(names))[records.e_e]


@functools.lru_cache(maxsize=64)
def _event_set(names: tuple[str, ...]) -> np.ndarray:
    return code_set(names, EVENT_CODE)


def first_time(records: Records, names: tuple[str, ...] | str) -> np.ndarray:
    """Hours of the first timed event of ``names`` per patient (NaN = none)."""
    rows = is_event(records, names)
    return per_patient_min(records.e_p[rows], records.e_t[rows], records.n)


def decision_hours_of(records: Records, course: Course | None = None) -> np.ndarray:
    """The anti-IL-6 decision per patient (NaN = none): the first time the timed grade course
    reaches 2, or the first timed anti-IL-6 dose (tocilizumab or siltuximab) if earlier.

    Causal: it is decided at that time from what is known then. Before a patient's first
    recorded grade the course known then is the derived one (``features.grading``: the recorded
    course takes over from its first event), so a derived grade 2 before that counts even when
    the whole course, read with its later recorded grades, says otherwise; otherwise a later
    recorded grade would move the decision back in time.
    """
    if course is None:
        course = course_of_records(records, derived_of(records))
    two = course.grade >= 2
    grade2 = per_patient_min(course.code[two], course.hours[two], records.n)
    derived = derived_of(records)  # support-row grades before any recorded course event
    two_d = derived.grade >= 2
    early = per_patient_min(derived.code[two_d], derived.hours[two_d], records.n)
    dose = first_time(records, ("tocilizumab", "siltuximab"))
    return np.fmin(np.fmin(grade2, early), dose)


def first_toci_of(records: Records) -> np.ndarray:
    """Hours of the first timed tocilizumab dose per patient (NaN = none)."""
    return first_time(records, "tocilizumab")


def first_toci_hours(cohort: Cohort) -> pd.Series:
    """Time of the first timed tocilizumab dose per patient (index ``patient_id``)."""
    prep = prepared(cohort)
    assert prep.records is not None  # prepared() always builds them
    ids = pd.Index(prep.patients["patient_id"].astype(str), name="patient_id")
    return pd.Series(first_toci_of(prep.records), index=ids, name="first_toci")


def decision_hours(cohort: Cohort) -> pd.Series:
    """Time of the anti-IL-6 decision per patient (index ``patient_id``; NaN = none)."""
    prep = prepared(cohort)
    assert prep.records is not None  # prepared() always builds them
    ids = pd.Index(prep.patients["patient_id"].astype(str), name="patient_id")
    return pd.Series(decision_hours_of(prep.records), index=ids, name="decision")
