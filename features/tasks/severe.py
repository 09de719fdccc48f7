"""The ``severe_crs`` task: eligibility and label at one or several whole-hour landmarks."""

from __future__ import annotations

import numpy as np

from features.cohort import Cohort
from features.grading import (
    Course,
    GradeCourse,
    course_of_records,
    derived_of,
)
from features.records import Records
from features.tasks.assignment import Assignment, label_unknown_mask, reasons
from features.tasks.definition import Task, landmark_name
from features.tasks.eligibility import landmark_rules
from features.tasks.queries import (
    as_course,
    count_per_patient,
    is_event,
    max_grade,
    per_patient_min,
)


def assign_severe(
    cohort: Cohort | None,
    rec: Records,
    task: Task,
    hours: tuple[float, ...],
    require_label: bool,
    full: GradeCourse | Course | None,
) -> Assignment:
    """``severe_crs`` at each landmark of ``hours`` in one pass (patient ``p`` at the ``i``-th
    landmark is row ``i * n + p``; one landmark gives the cohort's own rows)."""
    n, n_lm = rec.n, len(hours)
    size = n * n_lm
    k = float(task.severity_threshold)
    at = rec.stack(hours)
    course = course_of_records(at, derived_of(rec).stack(hours, n))
    rules = landmark_rules(at, course, task, landmark_name(hours[0]))
    n_landmark_rules = len(rules)
    notes = [
        "grade course: recorded crs_onset/crs_grade/crs_resolved events where a patient has any, "
        "else ASTCT 2019 grades derived from temperature/hypotension/vasopressor/vasopressin/"
        "oxygen rows (in force 24 h after the last row), else grade 1 from the time of a timed "
        "crs_max_grade ≥1 (onset; the grade in force after onset is unknown), else none; the "
        "value of crs_max_grade and graded events with unknown time are whole-course summaries "
        "used only for labels"
    ]
    y = np.full(size, np.nan)
    if require_label:  # label rules read the uncut cohort: per patient, the same at every landmark
        lm = np.repeat(np.asarray(hours, dtype=float), n)
        fc = as_course(full, n) if full is not None else course_of_records(rec, derived_of(rec))
        exact = np.tile(max_grade(fc, n) >= k, n_lm)
        # whole-course summaries ≥ k: timed (at onset) or untimed
        big = fc.s_grade >= k
        s_timed = big & ~np.isnan(fc.s_hours)
        s_onset = np.tile(per_patient_min(fc.s_code[s_timed], fc.s_hours[s_timed], n), n_lm)
        s_untimed = np.tile(count_per_patient(fc.s_code, n, big & np.isnan(fc.s_hours)) > 0, n_lm)
        summary_after = s_onset > lm  # onset after the landmark: the whole maximum is after it
        summary_before = s_onset <= lm
        positive = exact | summary_after | ((lm == 0) & (s_untimed | summary_before))
        y = positive.astype(float)
        after_infusion = lm > 0  # before infusion nobody died or had CRS
        death_untimed = np.tile(
            count_per_patient(rec.e_p, n, is_event(rec, "death") & np.isnan(rec.e_t)) > 0, n_lm
        )
        lost = is_event(rec, "lost_to_follow_up")
        lost_untimed = np.tile(count_per_patient(rec.e_p, n, lost & np.isnan(rec.e_t)) > 0, n_lm)
        lost_after = np.tile(count_per_patient(rec.e_p, n, lost & ~np.isnan(rec.e_t)) > 0, n_lm)
        rules += [
            (lost_untimed, "no CRS information (lost to follow-up, time unknown)"),
            (
                after_infusion & summary_before & ~positive,
                f"max grade ≥{k:g} in a summary with onset at or before the landmark while the "
                "timed course never reaches it (escalation time unknown)",
            ),
            (after_infusion & death_untimed, "death with unknown time"),
            (
                after_infusion & s_untimed & ~positive,
                f"grade ≥{k:g} only at unknown time (cannot place it after the landmark)",
            ),
            (
                lost_after & ~positive,
                f"lost to follow-up after the landmark before grade ≥{k:g} (outcome unknown)",
            ),
        ]
        n_summary = int(np.sum((summary_after | s_untimed) & ~exact))
        if n_summary:
            notes.append(
                f"{n_summary} patient-landmark(s) labelled from grade ≥{k:g} in a crs_max_grade "
                "summary or an untimed graded event (CRS onset after the landmark)"
            )
    reason = reasons(size, rules)
    eligible = reason == ""
    y[~eligible] = np.nan
    landmark_texts = {t for _, t in rules[:n_landmark_rules]}
    return Assignment(
        landmark=np.repeat(np.asarray(hours, dtype=float), n),
        eligible=eligible,
        y=y,
        reason=reason,
        notes=tuple(notes),
        records=at,
        grades=course,
        cohort=cohort if n_lm == 1 else None,
        label_unknown=label_unknown_mask(reason, landmark_texts),
        clauses=np.full(size, "", dtype=object),
    )
