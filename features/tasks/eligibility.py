"""Eligibility at a landmark: the exclusion rules read from what is known at it only."""

from __future__ import annotations

import numpy as np

from features.grading import (
    MAX_GRADE_ONSET,
    Course,
)
from features.records import Records
from features.tasks.definition import Task
from features.tasks.queries import count_per_patient, is_event, last_grade, max_grade


def landmark_rules(
    at: Records, course: Course, task: Task, landmark: str
) -> list[tuple[np.ndarray, str]]:
    """The exclusion rules at a landmark, in order, from what is known at it only.

    ``at``: the records cut at the landmark (per patient); ``course``: their grade course.
    :func:`assign` applies these rules for training and for serving alike; nothing else decides
    eligibility at the landmark (the outcome-unknown exclusions of training come after).
    """
    n = at.n
    died = count_per_patient(at.e_p, n, is_event(at, "death")) > 0
    lost = count_per_patient(at.e_p, n, is_event(at, "lost_to_follow_up")) > 0
    onset_only = course.source == MAX_GRADE_ONSET
    if task.name == "severe_crs":
        k = float(task.severity_threshold)
        return [
            (died, "died at or before the landmark"),
            (lost, "lost to follow-up at or before the landmark"),
            (
                max_grade(course, n) >= k,
                f"grade ≥{k:g} at or before the landmark (outcome already reached)",
            ),
            (
                onset_only,
                "CRS grade at the landmark unknown (only the onset of a whole-course maximum "
                "grade is recorded)",
            ),
        ]
    silt = count_per_patient(at.e_p, n, is_event(at, "siltuximab")) > 0
    toci = count_per_patient(at.e_p, n, is_event(at, "tocilizumab")) > 0
    current = last_grade(course, n)
    rules: list[tuple[np.ndarray, str]] = [
        (silt, "siltuximab at or before the landmark (first-line siltuximab)"),
        (died, "died at or before the landmark"),
        (lost, "lost to follow-up at or before the landmark"),
    ]
    # at the decision, grade and dose are checked only when the decision is the dose itself
    dosed = toci if landmark == "decision" else np.ones(n, dtype=bool)
    rules += [
        (
            dosed & (current == 0),
            "pre-emptive tocilizumab (CRS grade 0 at the first dose)",
        ),
        (dosed & np.isnan(current), "CRS grade at the first dose unknown (derived grade expired)"),
    ]
    return rules
