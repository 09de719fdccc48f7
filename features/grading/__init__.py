"""ASTCT CRS grade: derivation from timed support rows, and the per-patient grade course.

Grading follows the ASTCT 2019 consensus (Lee DW et al., Biol Blood Marrow Transplant
2019;25:625; table in ../shared/clinical-facts.md §1.9):

- grade 1: fever (T ≥ 38.0 °C), no hypotension, no hypoxia;
- grade 2: fever with hypotension not requiring vasopressors and/or hypoxia needing low-flow
  nasal cannula (≤ 6 L/min) or blow-by;
- grade 3: fever with hypotension needing one vasopressor (with or without vasopressin) and/or
  hypoxia needing high-flow nasal cannula (> 6 L/min), facemask, non-rebreather or Venturi mask;
- grade 4: fever with hypotension needing multiple vasopressors (excluding vasopressin) and/or
  hypoxia needing positive pressure (CPAP, BiPAP, intubation and mechanical ventilation).

The grade is the worse of the hypotension and hypoxia criteria. Once tocilizumab or
corticosteroids were given, fever is no longer required (guideline footnote). Grade 5 (death
from CRS) cannot be derived from support rows; it comes only from a recorded ``crs_grade`` 5.

Support rows are measurements (``features.vocabulary``): ``temperature`` (°C), ``hypotension``
(flag), ``vasopressors`` (count, vasopressin excluded), ``vasopressin`` (flag: vasopressin
running), ``oxygen_device`` (:class:`OxygenDevice` code) and ``oxygen_flow`` (L/min). Vasopressin
alone makes grade 3 ("a vasopressor with or without vasopressin"); it never counts toward grade
4's "multiple vasopressors (excluding vasopressin)". Rows arrive at different times, so the
state at a time ``t`` is assembled causally (only rows at or before ``t``): fever = a
temperature ≥ 38.0 °C within the preceding :data:`FEVER_WINDOW_H` hours (inclusive); each
support row holds for at most :data:`SUPPORT_VALID_H` hours or until the next row of the same
kind. A derived grade at ``t`` therefore never depends on anything after ``t``.

Validity of a derived grade: a grade derived at ``t`` stays in force for
:data:`SUPPORT_VALID_H` hours (24 h). When no new support row arrives by then, the derived
course gets an *expiry* step at ``t + 24 h`` whose grade is unknown (NaN): nothing says the grade
is still in force, and nothing says it fell. The expiry is itself causal (it is decided at
``t + 24 h`` by the absence of rows in between). The highest grade reached is unaffected; the
grade *in force* after an expiry is unknown until the next support row (features read it as
missing, the refractory label as "no observed grade").

The *grade course* of a patient is a step function (grade in force from each time on). It comes
from recorded events when the patient has any timed ``crs_onset`` / ``crs_grade`` /
``crs_resolved`` event, otherwise from the support rows when the patient has any, otherwise
from a timed ``crs_max_grade`` ≥ 1 (it is timed at onset: grade 1 from then on, the only part
of the maximum known at onset), otherwise it is empty (grade 0 throughout). The value of a
``crs_max_grade`` (a whole-course summary) and graded events with unknown time never enter the
course: they are not known at their time stamp. They are returned separately as *summary
evidence* for outcome definitions.

The rules are implemented once, on ``features.records.Records`` (:func:`course_of_records`,
:class:`Course`); :func:`grade_course` and :func:`derive_grades` give the same on frames.
Because derivation is causal, the grades derived once from a cohort's records
(:func:`derive_records`) serve every landmark cut from them.

Layout (one step each): ``rules`` (ASTCT component grades of observations), ``derive`` (grades
derived from support rows, cached per records), ``course`` (the grade course of records),
``frames`` (the same as frames per patient key).
"""

from __future__ import annotations

from features.grading.course import (
    DERIVED,
    MAX_GRADE_ONSET,
    NO_COURSE,
    RECORDED,
    SOURCE_NAMES,
    Course,
    course_of_records,
)
from features.grading.derive import (
    Derived,
    derive_records,
    derived_of,
)
from features.grading.frames import GradeCourse, as_frames, derive_grades, grade_course
from features.grading.rules import (
    COURSE_EVENTS,
    FEVER_C,
    FEVER_EXEMPTING_DRUGS,
    FEVER_WINDOW_H,
    LOW_FLOW_MAX_L_PER_MIN,
    SUPPORT_ANALYTES,
    SUPPORT_VALID_H,
    ArrayLike,
    astct_grade,
    fever_values,
    hypotension_grade,
    hypoxia_grade,
    is_fever,
)

__all__ = [
    "COURSE_EVENTS",
    "DERIVED",
    "FEVER_C",
    "FEVER_EXEMPTING_DRUGS",
    "FEVER_WINDOW_H",
    "LOW_FLOW_MAX_L_PER_MIN",
    "MAX_GRADE_ONSET",
    "NO_COURSE",
    "RECORDED",
    "SOURCE_NAMES",
    "SUPPORT_ANALYTES",
    "SUPPORT_VALID_H",
    "ArrayLike",
    "Course",
    "Derived",
    "GradeCourse",
    "as_frames",
    "astct_grade",
    "course_of_records",
    "derive_grades",
    "derive_records",
    "derived_of",
    "fever_values",
    "grade_course",
    "hypotension_grade",
    "hypoxia_grade",
    "is_fever",
]
