"""The ``toci_refractory`` task: the decision / first-dose landmark, eligibility and label."""

from __future__ import annotations

import numpy as np

from features.cohort import Cohort
from features.grading import (
    Course,
    Derived,
    GradeCourse,
    course_of_records,
    derived_of,
)
from features.records import Records
from features.tasks.assignment import Assignment, label_unknown_mask, reasons
from features.tasks.definition import Task
from features.tasks.eligibility import landmark_rules
from features.tasks.queries import (
    as_course,
    count_per_patient,
    decision_hours_of,
    first_time,
    first_toci_of,
    is_event,
)
from features.tasks.refractory import refractory_label


def assign_toci(
    cohort: Cohort | None,
    rec: Records,
    task: Task,
    landmark: str,
    require_label: bool,
    full: GradeCourse | Course | None,
) -> Assignment:
    """``toci_refractory`` at the ``decision`` or ``first_toci`` landmark (one per patient).

    ``full``: the uncut records' grade course when the caller has it (shared across landmarks);
    else it is computed here, and only when needed (the decision landmark, the label).
    """
    n = rec.n
    fc = as_course(full, n) if full is not None else None
    first_toci = first_toci_of(rec)
    n_toci = count_per_patient(rec.e_p, n, is_event(rec, "tocilizumab"))
    n_silt = count_per_patient(rec.e_p, n, is_event(rec, "siltuximab"))
    if landmark == "first_toci":
        lm = first_toci
        rules: list[tuple[np.ndarray, str]] = [
            ((n_toci == 0) & (n_silt > 0), "siltuximab first-line (no tocilizumab)"),
            (n_toci == 0, "no tocilizumab"),
            (np.isnan(lm), "tocilizumab time unknown"),
        ]
        notes = [
            "landmark = first timed tocilizumab dose; tocilizumab events with unknown time "
            "cannot define it"
        ]
    else:
        lm = decision_hours_of(rec, fc)
        rules = [
            (
                np.isnan(lm),
                "no anti-IL-6 decision (grade never reached 2 and no timed anti-IL-6 dose)",
            )
        ]
        notes = [
            "landmark = anti-IL-6 decision: the first time the grade course reaches 2, or the "
            "first timed anti-IL-6 dose if earlier; scored without a recorded dose"
        ]
    at = rec.cut(lm)
    if np.isnan(lm).all():
        # nobody has the landmark (the common single patient: no decision, no dose): the last
        # rule above (landmark NaN) already gives every patient a reason and the first matching
        # rule wins, so the landmark rules cannot change one; the cut keeps no row
        course = _course_of_nothing(at, derived_of(rec))
    else:
        course = course_of_records(at, derived_of(rec).cut(lm))
        rules += landmark_rules(at, course, task, landmark)
    n_landmark_rules = len(rules)
    y = np.full(n, np.nan)
    clauses = np.full(n, "", dtype=object)
    if require_label:
        if fc is None:
            fc = course_of_records(rec, derived_of(rec))
        label = refractory_label(rec, task, fc, first_toci)
        y = label.y
        clauses = label.clauses
        rules += [
            ((n_toci == 0) & (n_silt > 0), "siltuximab first-line (no tocilizumab)"),
            (n_toci == 0, "no tocilizumab (no tocilizumab outcome)"),
            (np.isnan(first_toci), "tocilizumab time unknown"),
            (
                first_time(rec, "siltuximab") <= first_toci,
                "siltuximab before the first tocilizumab dose (first-line siltuximab)",
            ),
            *label.exclusions,
        ]
        notes += label.notes
    reason = reasons(n, rules)
    eligible = reason == ""
    y[~eligible] = np.nan
    clauses[~eligible] = ""
    landmark_texts = {t for _, t in rules[:n_landmark_rules]}
    return Assignment(
        landmark=lm,
        eligible=eligible,
        y=y,
        reason=reason,
        notes=tuple(notes),
        records=at,
        grades=course,
        cohort=cohort,
        label_unknown=label_unknown_mask(reason, landmark_texts),
        clauses=clauses,
    )


def _course_of_nothing(at: Records, derived: Derived) -> Course:
    """``course_of_records(at, derived.cut(nan))`` for records ``at`` that hold no row (cut at
    a NaN landmark): no step, no summary, source "none" — the same arrays and dtypes, without
    the ≈40 NumPy calls of the general code."""
    assert len(at.e_p) == 0 and len(at.m_p) == 0
    nothing = np.zeros(0, dtype=bool)
    return Course(
        at.n,
        np.concatenate([at.e_p, derived.code[nothing]]),
        np.concatenate([at.e_t, derived.hours[nothing]]),
        np.concatenate([np.where(nothing, 0.0, at.e_g), derived.grade[nothing], np.ones(0)]),
        np.zeros(at.n, dtype=np.int8),
        at.e_p.copy(),
        at.e_g.copy(),
        at.e_t.copy(),
    )
