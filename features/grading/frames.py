"""The grade course as frames, per patient key (the frame API of grading)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.grading.course import NO_COURSE, SOURCE_NAMES, Course, course_of_records
from features.grading.derive import IS_FEVER_EXEMPT, derive_support_grades
from features.grading.rules import SUPPORT_ANALYTES
from features.records import ANALYTE_CODE, EVENT_CODE, Records, vocabulary_codes


def _event_codes(events: pd.DataFrame) -> np.ndarray:
    return vocabulary_codes(events["event"], EVENT_CODE)


def derive_grades(
    measurements: pd.DataFrame, events: pd.DataFrame, key: str = "patient_id"
) -> pd.DataFrame:
    """ASTCT grade at every time a support row was recorded (``key``, hours, grade); the expiry
    steps of :func:`grade_course` are not evaluations and are not listed here.

    Causal by construction: the state at ``t`` uses only rows at or before ``t`` (see module
    docstring for the fever window and how long a support row holds). Fever is not required
    from the first timed tocilizumab or corticosteroid dose on; drugs with unknown time are
    ignored here (an unknown time can define an outcome, never a state).
    """
    m = measurements[measurements["analyte"].isin(SUPPORT_ANALYTES)]
    if m.empty:
        return pd.DataFrame(
            {
                key: pd.Series([], dtype=measurements[key].dtype),
                "hours_from_infusion": pd.Series([], dtype=float),
                "grade": pd.Series([], dtype=float),
            }
        )
    codes, keys = pd.factorize(m[key])
    drugs = events[
        IS_FEVER_EXEMPT[_event_codes(events)] & events["hours_from_infusion"].notna().to_numpy()
    ]
    d_code = pd.Index(keys).get_indexer(drugs[key])
    ok = d_code >= 0
    q_code, q_hours, grade = derive_support_grades(
        codes.astype(np.int64),
        vocabulary_codes(m["analyte"], ANALYTE_CODE),
        m["hours_from_infusion"].to_numpy(dtype=float),
        m["value"].to_numpy(dtype=float),
        len(keys),
        d_code[ok],
        drugs["hours_from_infusion"].to_numpy(dtype=float)[ok],
    )
    at_rows = ~np.isnan(grade)  # evaluations only: the expiry steps belong to the course
    return pd.DataFrame(
        {
            key: keys.take(q_code[at_rows]),
            "hours_from_infusion": q_hours[at_rows],
            "grade": grade[at_rows],
        }
    )


@dataclass(frozen=True)
class GradeCourse:
    """Per-patient ASTCT grade course and the summary evidence kept out of it.

    ``steps``: ``key``, ``hours_from_infusion``, ``grade`` — the grade in force from that time
    on, sorted by key and time (at one time the highest grade wins). ``source``: per key,
    ``"recorded"``, ``"derived"`` (ASTCT 2019 from support rows) or ``"none"``. ``summary``:
    ``key``, ``grade``, ``hours_from_infusion`` of ``crs_max_grade`` events and of graded events
    with unknown time — whole-course facts whose value is not known at their time stamp.
    """

    steps: pd.DataFrame
    source: pd.Series
    summary: pd.DataFrame


def as_frames(course: Course, keys: np.ndarray | pd.Index, key: str) -> GradeCourse:
    """The :class:`GradeCourse` frames of an array course (``keys[code]`` = the key value)."""
    keys = np.asarray(keys)
    has = np.flatnonzero(course.source != NO_COURSE)
    names = np.asarray(SOURCE_NAMES, dtype=object)
    return GradeCourse(
        steps=pd.DataFrame(
            {key: keys[course.code], "hours_from_infusion": course.hours, "grade": course.grade}
        ),
        source=pd.Series(
            names[course.source[has]], index=pd.Index(keys[has], name=key), dtype=object
        ),
        summary=pd.DataFrame(
            {
                key: keys[course.s_code],
                "grade": course.s_grade,
                "hours_from_infusion": course.s_hours,
            }
        ),
    )


def grade_course(
    measurements: pd.DataFrame, events: pd.DataFrame, key: str = "patient_id"
) -> GradeCourse:
    """Build the grade course of every patient appearing in ``measurements`` or ``events``.

    A patient with any timed ``crs_onset`` / ``crs_grade`` / ``crs_resolved`` event uses the
    recorded course (``crs_resolved`` = grade 0); otherwise the course is derived from support
    rows (:func:`derive_grades`) when the patient has any; otherwise a timed ``crs_max_grade``
    ≥ 1 gives grade 1 from onset (``source`` ``"max_grade_onset"``); otherwise it is empty.
    """
    m_key, e_key = measurements[key].to_numpy(), events[key].to_numpy()
    codes, keys = pd.factorize(np.concatenate([m_key, e_key]), sort=True)
    codes = codes.astype(np.int64)
    records = Records(
        len(keys),
        codes[: len(m_key)],
        vocabulary_codes(measurements["analyte"], ANALYTE_CODE),
        measurements["hours_from_infusion"].to_numpy(dtype=float),
        measurements["value"].to_numpy(dtype=float),
        codes[len(m_key) :],
        _event_codes(events),
        events["hours_from_infusion"].to_numpy(dtype=float),
        pd.to_numeric(events["grade"]).to_numpy(dtype=float, na_value=np.nan),
        np.full(len(e_key), -1, dtype=np.int64),
    )
    return as_frames(course_of_records(records), keys, key)
