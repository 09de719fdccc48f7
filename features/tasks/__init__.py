"""Prediction tasks: who is scored, when, and what counts as the outcome.

A :class:`Task` declares its input requirements, outcome, prediction time and observation
window (the pattern of PyHealth's task classes: Yang C et al., PyHealth, KDD 2023), so the
model card can state them, and :func:`assign` applies it to a cohort: per patient the landmark,
eligibility, the exclusion reason and the label.

Tasks (../shared/DESIGN.md, issue 11):

- ``severe_crs`` at any whole-hour landmark from 0 h (pre-infusion) to 336 h (default 0, 24, 48,
  72 h; an experiment lists its own): eligible when alive, followed and below the severity
  threshold (ASTCT grade 3) at the landmark; label = ASTCT grade ≥ threshold after it. ASTCT
  grading: Lee DW et al. 2019 (``features.grading``).
- ``toci_refractory`` at two landmarks: ``decision`` (the anti-IL-6 decision: the first time the
  CRS grade reaches 2, or the first anti-IL-6 dose if earlier; scored without a recorded dose)
  and ``first_toci`` (the first tocilizumab dose). Label: tocilizumab failure (``features.tasks.
  refractory``). It predicts tocilizumab failure; it does not estimate siltuximab benefit.

**Eligibility at a landmark uses only what is known at it** (:func:`landmark_rules`): the rules
read the cohort *cut* at the landmark and nothing else, and they are the same function for
training (``require_label=True``) and serving (``require_label=False``). A patient whose status
at the landmark cannot be decided is excluded *whatever the outcome*. Training then adds the
*outcome-unknown* exclusions (the label cannot be decided from the record: lost to follow-up,
untimed events, no observed grade); they never exist at serving time and are counted apart
(``Assignment.label_unknown``), so a summary shows what was excluded at the landmark and what
for an unknown outcome.

Summary-only courses (``crs_max_grade`` timed at onset, no recorded or derived course): the
maximum is a whole-course summary, not known at onset. At a landmark at or after onset the CRS
grade in force is unknown (grade ≥1, maximum unknown), so the patient is **excluded whatever the
maximum** ("CRS grade at the landmark unknown"); with onset after the landmark the patient is
grade 0 at it, eligible, and labelled by the maximum. (Earlier code excluded only maxima ≥3,
which forced every kept patient with CRS at the landmark to y = 0.)

``lost_to_follow_up`` (contract event): timed at or before the landmark → excluded at the
landmark; timed after it → the outcome after that time is unknown: a label already reached
before it stands, otherwise the patient is excluded (outcome unknown); with no time → no CRS
information at all: excluded (outcome unknown), never "no CRS".

Leakage rules: eligibility "at the landmark" is read from the cohort cut at the landmark
(``features.landmark.cut``); labels read the uncut cohort. The rules run on the cohort's
``features.records.Records`` (arrays, built once per cohort), so they cost the same few NumPy
operations for one patient as for 10⁵; :func:`assign_landmarks` applies them at several
landmarks in one pass (one patient's trend); :func:`scorable_landmarks` lists, per patient,
the landmarks the data reach and at which the patient is eligible (what the service scores).

Layout (one step each): ``definition`` (Task, TASKS, landmark names), ``queries`` (per-patient
reductions of records and grade courses, landmark times), ``assignment`` (the Assignment value
and its summary), ``eligibility`` (the rules at the landmark), ``refractory`` (the refractory
label), ``severe`` / ``toci`` (each task's assignment), ``assign`` (the entry points).
"""

from __future__ import annotations

from features.tasks.assign import assign, assign_landmarks, data_horizon, scorable_landmarks
from features.tasks.assignment import (
    Assignment,
    counts_of,
    exclusion_summary,
    label_unknown_mask,
    reasons,
)
from features.tasks.definition import (
    MAX_LANDMARK_HOURS,
    REFRACTORY_CRITERIA,
    SEVERE_CRS,
    STEROID_RULE_TEXT,
    STEROID_RULES,
    TASKS,
    TOCI_LANDMARKS,
    TOCI_REFRACTORY,
    Task,
    check_landmark_hours,
    get_task,
    landmark_name,
    parse_landmark,
)
from features.tasks.eligibility import landmark_rules
from features.tasks.queries import (
    as_course,
    count_per_patient,
    course_of,
    decision_hours,
    decision_hours_of,
    first_time,
    first_toci_hours,
    first_toci_of,
    grade_in_force,
    is_event,
    last_grade,
    max_grade,
    per_patient_max,
    per_patient_min,
)
from features.tasks.refractory import RefractoryLabel, refractory_label

__all__ = [
    "MAX_LANDMARK_HOURS",
    "REFRACTORY_CRITERIA",
    "SEVERE_CRS",
    "STEROID_RULES",
    "STEROID_RULE_TEXT",
    "TASKS",
    "TOCI_LANDMARKS",
    "TOCI_REFRACTORY",
    "Assignment",
    "RefractoryLabel",
    "Task",
    "as_course",
    "assign",
    "assign_landmarks",
    "check_landmark_hours",
    "count_per_patient",
    "counts_of",
    "course_of",
    "data_horizon",
    "decision_hours",
    "decision_hours_of",
    "exclusion_summary",
    "first_time",
    "first_toci_hours",
    "first_toci_of",
    "get_task",
    "grade_in_force",
    "is_event",
    "label_unknown_mask",
    "landmark_name",
    "landmark_rules",
    "last_grade",
    "max_grade",
    "parse_landmark",
    "per_patient_max",
    "per_patient_min",
    "reasons",
    "refractory_label",
    "scorable_landmarks",
]
