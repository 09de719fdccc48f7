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
  and ``first_toci`` (the first tocilizumab dose). Label: tocilizumab failure (``features.
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
``features.landmark.Records`` (arrays, built once per cohort), so they cost the same few NumPy
operations for one patient as for 10⁵; :func:`assign_landmarks` applies them at several
landmarks in one pass (one patient's trend); :func:`scorable_landmarks` lists, per patient,
the landmarks the data reach and at which the patient is eligible (what the service scores).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.cohort import Cohort
from features.errors import CrsRiskError
from features.grading import (
    MAX_GRADE_ONSET,
    SOURCE_NAMES,
    Course,
    GradeCourse,
    as_frames,
    course_of_records,
)
from features.landmark import (
    EVENT_CODE,
    PATIENT_CODE,
    Records,
    code_set,
    cut,
    prepared,
    with_codes,
)
from features.schema import DRUG_EVENTS, SECOND_LINE_AGENTS

REFRACTORY_CRITERIA: tuple[str, ...] = ("second_line", "worsening", "no_improvement")
STEROID_RULES: tuple[str, ...] = ("crs_in_force", "never", "always")
TOCI_LANDMARKS: tuple[str, ...] = ("decision", "first_toci")
MAX_LANDMARK_HOURS = 336  # day 14: late-onset products (CD22) start CRS on day 5–8


def check_landmark_hours(hours: float, what: str = "landmark") -> float:
    """``hours`` if a whole number of hours from 0 to 336, else a one-line CrsRiskError."""
    ok = isinstance(hours, int | float) and math.isfinite(hours) and float(hours).is_integer()
    if not ok or not 0 <= hours <= MAX_LANDMARK_HOURS:
        raise CrsRiskError(
            f"{what}: {hours!r} is not a landmark: use whole hours from 0 to "
            f"{MAX_LANDMARK_HOURS} after infusion (e.g. 48 or 48h)"
        )
    return float(hours)


@dataclass(frozen=True)
class Task:
    """A prediction task with its declared parameters (frozen; derive variants with ``replace``).

    ``landmark_hours``: the landmarks of ``severe_crs`` trained by default (whole hours 0–336
    after infusion; 0 = pre-infusion); any whole hour in that range is a valid landmark.
    ``toci_refractory`` has the landmarks ``decision`` and ``first_toci``. ``window_hours``:
    second-line agents and worsening count within this window after the first tocilizumab
    dose. ``steroids_without_indication``: how a corticosteroid dose with no recorded
    indication counts (``features.refractory``).
    """

    name: str
    description: str
    prediction_time: str
    observation_window: str
    required_inputs: tuple[str, ...]
    severity_threshold: int = 3
    landmark_hours: tuple[float, ...] = (0.0, 24.0, 48.0, 72.0)
    second_line_agents: tuple[str, ...] = SECOND_LINE_AGENTS
    no_improvement_hours: float = 24.0
    no_improvement_doses: int = 2
    refractory_criteria: tuple[str, ...] = REFRACTORY_CRITERIA
    window_hours: float = 72.0
    steroids_without_indication: str = "crs_in_force"

    def __post_init__(self) -> None:
        if not 1 <= self.severity_threshold <= 5:
            raise CrsRiskError(
                f"task {self.name}: severity_threshold must be an ASTCT grade 1–5, "
                f"got {self.severity_threshold}"
            )
        if not self.landmark_hours:
            raise CrsRiskError(f"task {self.name}: landmark_hours must not be empty")
        for h in self.landmark_hours:
            check_landmark_hours(h, f"task {self.name}: landmark_hours")
        unknown = set(self.second_line_agents) - set(DRUG_EVENTS)
        if unknown or "tocilizumab" in self.second_line_agents:
            raise CrsRiskError(
                f"task {self.name}: second_line_agents must be drug events other than "
                f"tocilizumab ({', '.join(d for d in DRUG_EVENTS if d != 'tocilizumab')}), "
                f"got {sorted(self.second_line_agents)}"
            )
        if not set(self.refractory_criteria) <= set(REFRACTORY_CRITERIA) or not (
            self.refractory_criteria
        ):
            raise CrsRiskError(
                f"task {self.name}: refractory_criteria must be a non-empty subset of "
                f"{REFRACTORY_CRITERIA}, got {self.refractory_criteria}"
            )
        if self.no_improvement_doses < 1 or not self.no_improvement_hours > 0:
            raise CrsRiskError(
                f"task {self.name}: no_improvement_doses must be ≥ 1 and no_improvement_hours > 0"
            )
        if not (math.isfinite(self.window_hours) and self.window_hours > 0):
            raise CrsRiskError(f"task {self.name}: window_hours must be > 0 hours")
        if self.steroids_without_indication not in STEROID_RULES:
            raise CrsRiskError(
                f"task {self.name}: steroids_without_indication must be one of "
                f"{', '.join(STEROID_RULES)}, got {self.steroids_without_indication!r}"
            )

    @property
    def landmarks(self) -> tuple[str, ...]:
        """Landmark names of the task (``"48h"`` …, or ``"decision"``, ``"first_toci"``)."""
        if self.name == "toci_refractory":
            return TOCI_LANDMARKS
        return tuple(landmark_name(h) for h in self.landmark_hours)

    @property
    def outcome(self) -> str:
        """Outcome definition text, with the task's parameters filled in."""
        k = self.severity_threshold
        if self.name == "severe_crs":
            return (
                f"ASTCT (Lee 2019) CRS grade ≥{k} reached after the landmark (maximum grade of the "
                "recorded course, or derived from fever/hypotension/oxygen rows, or the "
                "per-patient maximum grade when that is all the cohort gives). Lost to "
                "follow-up before the outcome is known: excluded (outcome unknown), never 0."
            )
        w = f"{self.window_hours:g} h"
        parts = []
        if "second_line" in self.refractory_criteria:
            parts.append(
                "a second-line agent (" + ", ".join(self.second_line_agents) + f") within {w} "
                "after the first tocilizumab dose, given for CRS (indication icans/other never "
                "counts; a corticosteroid without a recorded indication counts "
                + STEROID_RULE_TEXT[self.steroids_without_indication]
                + ")"
            )
        if "worsening" in self.refractory_criteria:
            parts.append(f"worsening to ASTCT grade ≥3 within {w} after the first dose")
        if "no_improvement" in self.refractory_criteria:
            parts.append(
                f"no improvement by ≥1 ASTCT grade {self.no_improvement_hours:g} h after the "
                f"last of the first {self.no_improvement_doses} tocilizumab doses given within "
                f"{w} (an observed grade then ≥ max(grade at the first dose, 1); a grade not "
                "observed then makes the outcome unknown, never positive)"
            )
        return (
            "Tocilizumab-refractory CRS (tocilizumab failure; this does not estimate "
            "siltuximab benefit): " + " or ".join(parts) + "."
        )

    @property
    def eligibility(self) -> str:
        """Eligibility text, with the task's parameters filled in."""
        k = self.severity_threshold
        if self.name == "severe_crs":
            return (
                f"Infused patients alive, followed and below ASTCT grade {k} at the landmark "
                f"(never grade ≥{k} up to it), decided from what is known at the landmark only; "
                "patients whose CRS grade at the landmark is unknown (only the onset of a "
                "whole-course maximum recorded) are excluded whatever their maximum. Patients "
                "whose outcome after the landmark cannot be decided are excluded and counted."
            )
        return (
            "Patients whose first anti-IL-6 drug is tocilizumab, given for CRS (ASTCT grade ≥1 "
            "at the first dose; pre-emptive doses at grade 0 are excluded and counted), alive "
            "and followed at the landmark; patients given siltuximab first-line are excluded "
            "and counted. Landmark decision: the first time the grade reaches 2, or the first "
            "anti-IL-6 dose if earlier (scored without a recorded dose); landmark first_toci: "
            "the first tocilizumab dose. The model predicts tocilizumab failure; it does not "
            "estimate siltuximab benefit."
        )

    def card(self) -> dict[str, object]:
        """Everything a model card states about the task."""
        return {
            "name": self.name,
            "description": self.description,
            "outcome": self.outcome,
            "eligibility": self.eligibility,
            "prediction_time": self.prediction_time,
            "observation_window": self.observation_window,
            "required_inputs": list(self.required_inputs),
            "landmarks": list(self.landmarks),
            "parameters": {
                "severity_threshold": self.severity_threshold,
                "landmark_hours": list(self.landmark_hours),
                "second_line_agents": list(self.second_line_agents),
                "no_improvement_hours": self.no_improvement_hours,
                "no_improvement_doses": self.no_improvement_doses,
                "refractory_criteria": list(self.refractory_criteria),
                "window_hours": self.window_hours,
                "steroids_without_indication": self.steroids_without_indication,
            },
        }


STEROID_RULE_TEXT: dict[str, str] = {
    "crs_in_force": "only while CRS grade ≥1 is in force and no ICANS is recorded at or before "
    "the dose",
    "never": "never",
    "always": "always",
}

_REQUIRED = (
    "patients: age, weight, sex, product, prior HSCT, marrow blasts, lymphodepletion, CAR T dose",
    "measurements: pre-lymphodepletion LDH, CRP, ferritin, platelets, creatinine",
    "measurements: cytokines (IL-6, IFN-γ, sgp130, sIL-6R, IL-1RA, IL-10, MCP-1 …), CRP, ferritin"
    " and temperature up to the landmark",
    "events: CRS onset/grade changes (or support rows for ASTCT derivation, or a max grade)",
)

SEVERE_CRS = Task(
    name="severe_crs",
    description=(
        "Risk that a patient still below ASTCT grade 3 at the landmark develops severe CRS "
        "(grade ≥3) afterwards."
    ),
    prediction_time="Landmark hours after CAR T infusion (0 h = pre-infusion; whole hours up to "
    "336 h).",
    observation_window=(
        "Everything recorded from before lymphodepletion up to and including the landmark, "
        "including treatment given so far; events with unknown time never enter features."
    ),
    required_inputs=_REQUIRED,
)

TOCI_REFRACTORY = Task(
    name="toci_refractory",
    description=(
        "Risk that CRS treated with tocilizumab is refractory to it (tocilizumab failure), "
        "scored at the anti-IL-6 decision (before a dose, so a clinician can weigh a "
        "first-line alternative such as siltuximab) and at the first tocilizumab dose. It does "
        "not estimate the benefit of siltuximab."
    ),
    prediction_time="The anti-IL-6 decision (first grade ≥2, or the first anti-IL-6 dose if "
    "earlier) or the first tocilizumab dose (per patient).",
    observation_window=(
        "Everything recorded up to and including the landmark; events with unknown time never "
        "enter features."
    ),
    required_inputs=(*_REQUIRED, "events: timed tocilizumab doses and second-line agents"),
)

TASKS: dict[str, Task] = {t.name: t for t in (SEVERE_CRS, TOCI_REFRACTORY)}


def get_task(name: str | Task, **params: object) -> Task:
    """The task called ``name`` (or ``name`` itself), with parameters overridden by ``params``."""
    if isinstance(name, Task):
        task = name
    else:
        task = TASKS.get(str(name))
        if task is None:
            raise CrsRiskError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}")
    if params:
        fields = {f.name for f in dataclasses.fields(Task)} - {"name"}
        unknown = set(params) - fields
        if unknown:
            raise CrsRiskError(f"unknown task parameter(s) {sorted(unknown)} for {task.name}")
        task = dataclasses.replace(task, **params)  # type: ignore[arg-type]
    return task


def landmark_name(hours: float) -> str:
    """``48.0`` → ``"48h"``."""
    return f"{float(hours):g}h"


def parse_landmark(task: Task, landmark: str | float) -> tuple[str, float | None]:
    """Landmark name and hours (``None`` = per patient); CrsRiskError if invalid.

    ``severe_crs``: ``48``, ``"48"``, ``"48h"`` — any whole hour from 0 to 336 (the task's
    ``landmark_hours`` are only the default list). ``toci_refractory``: ``"decision"`` or
    ``"first_toci"``.
    """
    text = str(landmark).strip().lower().replace("-", "_")
    if task.name == "toci_refractory":
        if text in TOCI_LANDMARKS:
            return text, None
        raise CrsRiskError(
            f"landmark {landmark!r} is not valid for toci_refractory: use decision or first_toci"
        )
    try:
        hours = float(text[:-1] if text.endswith("h") else text)
    except ValueError:
        hours = math.nan
    if not (math.isfinite(hours) and hours.is_integer() and 0 <= hours <= MAX_LANDMARK_HOURS):
        raise CrsRiskError(
            f"landmark {landmark!r} is not valid for {task.name}: use whole hours from 0 to "
            f"{MAX_LANDMARK_HOURS} after infusion (e.g. 48 or 48h)"
        )
    return landmark_name(hours), hours


@dataclass(frozen=True)
class Assignment:
    """Per patient (aligned with ``cohort.patients`` rows): landmark, eligibility, label.

    ``y`` is 1/0, or NaN where not eligible or not required; ``reason`` is the exclusion reason
    ("" when eligible); ``label_unknown`` marks exclusions for an outcome that cannot be decided
    (training only; the others are decided at the landmark); ``clauses`` names, for a positive
    ``toci_refractory`` label, the clause(s) that made it (``"second_line+worsening"``; "" else).
    ``notes`` state the derivations used (for the summary). ``records`` and ``grades`` are the
    cohort cut at the landmark and its grade course as arrays (what features are computed
    from); ``at_landmark`` and ``course`` give the same as frames.
    """

    landmark: np.ndarray
    eligible: np.ndarray
    y: np.ndarray
    reason: np.ndarray
    notes: tuple[str, ...]
    records: Records  # the cohort's records cut at the landmark
    grades: Course  # grade course of the cut records
    cohort: Cohort | None  # the (prepared) cohort assigned; None when given records only
    label_unknown: np.ndarray  # bool: excluded because the outcome cannot be decided
    clauses: np.ndarray  # object: clauses of a positive refractory label ("" otherwise)

    @property
    def course(self) -> GradeCourse:
        """Grade course of the cohort cut at the landmark (key ``_p`` = patient row)."""
        return as_frames(self.grades, np.arange(self.grades.n, dtype=np.int64), PATIENT_CODE)

    @property
    def at_landmark(self) -> Cohort:
        """The cohort cut at the landmark (frames, with the patient code column ``_p``)."""
        if self.cohort is None:
            raise ValueError("assigned from records: the cut cohort is in ``records``")
        limit = self.landmark
        ids = self.cohort.patients["patient_id"].astype(str).to_numpy()
        return cut(with_codes(self.cohort), pd.Series(limit, index=ids))

    def summary(self) -> dict[str, object]:
        """:func:`exclusion_summary` of this assignment."""
        return exclusion_summary(self)


def exclusion_summary(a: Assignment) -> dict[str, object]:
    """Aggregate counts of an assignment (no identifiers): eligible, positives, exclusions by
    reason — all, decided at the landmark, and for an unknown outcome — and, for positive
    refractory labels, how many each clause made (a patient can meet several) and each
    combination."""
    reason = a.reason
    excluded = reason != ""

    def counts(mask: np.ndarray) -> dict[str, int]:
        texts, n = np.unique(reason[mask].astype(str), return_counts=True)
        pairs = sorted(zip(texts.tolist(), n.tolist(), strict=True), key=lambda kv: -kv[1])
        return {t: int(c) for t, c in pairs}

    y = a.y[a.eligible]
    labelled = not np.isnan(y).all() if len(y) else False
    positive = a.eligible & (a.y == 1)
    combos = counts_of(a.clauses[positive])
    clauses: dict[str, int] = {}
    for combo, c in combos.items():
        for part in combo.split("+"):
            clauses[part] = clauses.get(part, 0) + c
    return {
        "eligible": int(a.eligible.sum()),
        "positives": int(np.nansum(y)) if labelled else None,
        "excluded": int(excluded.sum()),
        "exclusions": counts(excluded),
        "excluded_at_landmark": counts(excluded & ~a.label_unknown),
        "excluded_outcome_unknown": counts(excluded & a.label_unknown),
        "positive_clauses": clauses,
        "positive_clause_combinations": combos,
    }


def counts_of(values: np.ndarray) -> dict[str, int]:
    """Count of every non-empty text in ``values``, most frequent first."""
    texts, n = np.unique(values[values != ""].astype(str), return_counts=True)
    pairs = sorted(zip(texts.tolist(), n.tolist(), strict=True), key=lambda kv: -kv[1])
    return {t: int(c) for t, c in pairs}


# --- array helpers ------------------------------------------------------------------------------
def _per_patient_max(codes: np.ndarray, values: np.ndarray, n: int, default: float) -> np.ndarray:
    """Highest value per patient code (NaN values ignored; ``default`` where none)."""
    out = np.full(n, default, dtype=float)
    ok = (codes >= 0) & ~np.isnan(values)
    np.maximum.at(out, codes[ok], values[ok])
    return out


def _per_patient_min(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Lowest value per patient code (NaN values ignored; NaN where none)."""
    out = np.full(n, np.inf)
    ok = (codes >= 0) & ~np.isnan(values)
    np.minimum.at(out, codes[ok], values[ok])
    out[np.isinf(out)] = np.nan
    return out


def _count(codes: np.ndarray, n: int, mask: np.ndarray | None = None) -> np.ndarray:
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
    return _per_patient_max(codes, grades, n, 0.0)


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


def _as_course(course: GradeCourse | Course, n: int) -> Course:
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
    return course_of_records(rec, rec.derived)


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
    return _per_patient_min(records.e_p[rows], records.e_t[rows], records.n)


def reasons(n: int, rules: list[tuple[np.ndarray, str]]) -> np.ndarray:
    """First matching reason per patient ("" = eligible); rules are applied in order."""
    reason = np.full(n, "", dtype=object)
    open_ = np.ones(n, dtype=bool)  # no reason yet (every rule's text is non-empty)
    for mask, text in rules:
        hit = open_ & mask
        reason[hit] = text
        open_ &= ~hit
    return reason


# --- eligibility at the landmark: one function for training and serving ------------------------
def landmark_rules(
    at: Records, course: Course, task: Task, landmark: str
) -> list[tuple[np.ndarray, str]]:
    """The exclusion rules at a landmark, in order, from what is known at it only.

    ``at``: the records cut at the landmark (per patient); ``course``: their grade course.
    :func:`assign` applies these rules for training and for serving alike; nothing else decides
    eligibility at the landmark (the outcome-unknown exclusions of training come after).
    """
    n = at.n
    died = _count(at.e_p, n, is_event(at, "death")) > 0
    lost = _count(at.e_p, n, is_event(at, "lost_to_follow_up")) > 0
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
    silt = _count(at.e_p, n, is_event(at, "siltuximab")) > 0
    toci = _count(at.e_p, n, is_event(at, "tocilizumab")) > 0
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
        course = course_of_records(records, records.derived)
    two = course.grade >= 2
    grade2 = _per_patient_min(course.code[two], course.hours[two], records.n)
    derived = records.derived  # support-row grades before any recorded course event
    two_d = derived.grade >= 2
    early = _per_patient_min(derived.code[two_d], derived.hours[two_d], records.n)
    dose = first_time(records, ("tocilizumab", "siltuximab"))
    return np.fmin(np.fmin(grade2, early), dose)


def first_toci_of(records: Records) -> np.ndarray:
    """Hours of the first timed tocilizumab dose per patient (NaN = none)."""
    return first_time(records, "tocilizumab")


def first_toci_hours(cohort: Cohort) -> pd.Series:
    """Time of the first timed tocilizumab dose per patient (index ``patient_id``)."""
    prep = prepared(cohort)
    ids = pd.Index(prep.patients["patient_id"].astype(str), name="patient_id")
    return pd.Series(first_toci_of(prep.records), index=ids, name="first_toci")  # type: ignore[arg-type]


def decision_hours(cohort: Cohort) -> pd.Series:
    """Time of the anti-IL-6 decision per patient (index ``patient_id``; NaN = none)."""
    prep = prepared(cohort)
    ids = pd.Index(prep.patients["patient_id"].astype(str), name="patient_id")
    return pd.Series(decision_hours_of(prep.records), index=ids, name="decision")  # type: ignore[arg-type,arg-type]


# --- severe_crs --------------------------------------------------------------------------------
def _severe(
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
    course = course_of_records(at, rec.derived.stack(hours, n))
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
        fc = _as_course(full, n) if full is not None else course_of_records(rec, rec.derived)
        exact = np.tile(max_grade(fc, n) >= k, n_lm)
        # whole-course summaries ≥ k: timed (at onset) or untimed
        big = fc.s_grade >= k
        s_timed = big & ~np.isnan(fc.s_hours)
        s_onset = np.tile(_per_patient_min(fc.s_code[s_timed], fc.s_hours[s_timed], n), n_lm)
        s_untimed = np.tile(_count(fc.s_code, n, big & np.isnan(fc.s_hours)) > 0, n_lm)
        summary_after = s_onset > lm  # onset after the landmark: the whole maximum is after it
        summary_before = s_onset <= lm
        positive = exact | summary_after | ((lm == 0) & (s_untimed | summary_before))
        y = positive.astype(float)
        after_infusion = lm > 0  # before infusion nobody died or had CRS
        death_untimed = np.tile(
            _count(rec.e_p, n, is_event(rec, "death") & np.isnan(rec.e_t)) > 0, n_lm
        )
        lost = is_event(rec, "lost_to_follow_up")
        lost_untimed = np.tile(_count(rec.e_p, n, lost & np.isnan(rec.e_t)) > 0, n_lm)
        lost_after = np.tile(_count(rec.e_p, n, lost & ~np.isnan(rec.e_t)) > 0, n_lm)
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
        label_unknown=_label_unknown(reason, landmark_texts),
        clauses=np.full(size, "", dtype=object),
    )


def _label_unknown(reason: np.ndarray, landmark_texts: set[str]) -> np.ndarray:
    """True where the exclusion reason is not one of the landmark rules."""
    out = reason != ""
    for text in landmark_texts:
        out &= reason != text
    return out


# --- toci_refractory ---------------------------------------------------------------------------
def _toci(
    cohort: Cohort | None,
    rec: Records,
    task: Task,
    landmark: str,
    require_label: bool,
    full: GradeCourse | Course | None,
) -> Assignment:
    from features.refractory import refractory_label

    n = rec.n
    fc = _as_course(full, n) if full is not None else course_of_records(rec, rec.derived)
    first_toci = first_toci_of(rec)
    n_toci = _count(rec.e_p, n, is_event(rec, "tocilizumab"))
    n_silt = _count(rec.e_p, n, is_event(rec, "siltuximab"))
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
    course = course_of_records(at, rec.derived.cut(lm))
    rules += landmark_rules(at, course, task, landmark)
    n_landmark_rules = len(rules)
    y = np.full(n, np.nan)
    clauses = np.full(n, "", dtype=object)
    if require_label:
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
        label_unknown=_label_unknown(reason, landmark_texts),
        clauses=clauses,
    )


# --- public entry points -----------------------------------------------------------------------
def assign(
    cohort: Cohort | Records,
    task: str | Task,
    landmark: str | float,
    require_label: bool = True,
    full_course: GradeCourse | Course | None = None,
) -> Assignment:
    """Landmark, eligibility, exclusion reason and label of every patient for ``task``.

    Eligibility at the landmark is :func:`landmark_rules` on the cohort cut at it, for training
    and serving alike. With ``require_label=True`` (training) the outcome-unknown exclusions and
    the label follow; with ``require_label=False`` (serving) ``y`` is NaN. ``full_course`` lets
    a caller reuse the uncut cohort's grade course across landmarks. ``cohort`` may be the
    cohort's :class:`Records` themselves (what the service validates a request into): the same
    rules on the same arrays, without frames.
    """
    task = get_task(task)
    name, hours = parse_landmark(task, landmark)
    prep: Cohort | None
    if isinstance(cohort, Records):
        prep, rec = None, cohort
    else:
        prep = prepared(cohort)
        rec = prep.records  # type: ignore[attr-defined]
    assert rec is not None
    if task.name == "severe_crs":
        assert hours is not None
        return _severe(prep, rec, task, (hours,), require_label, full_course)
    return _toci(prep, rec, task, name, require_label, full_course)


def assign_landmarks(
    cohort: Cohort | Records,
    task: str | Task,
    landmarks: tuple[str | float, ...] | list[str | float],
    require_label: bool = False,
) -> Assignment:
    """:func:`assign` at several ``severe_crs`` landmarks in one pass.

    Row ``i * n + p`` is patient ``p`` at the ``i``-th landmark: eligibility, reason, label and
    the cut records are exactly those of ``assign(cohort, task, landmarks[i])`` for that
    patient, computed together (what one patient's trend across landmarks needs: the
    vectorised code runs once instead of once per landmark).
    """
    task = get_task(task)
    if task.name != "severe_crs":
        raise CrsRiskError(f"{task.name} has per-patient landmarks: use assign")
    hours = tuple(float(parse_landmark(task, lm)[1]) for lm in landmarks)  # type: ignore[arg-type]
    if isinstance(cohort, Records):
        return _severe(None, cohort, task, hours, require_label, None)
    prep = prepared(cohort)
    assert prep.records is not None
    return _severe(None, prep.records, task, hours, require_label, None)


def data_horizon(records: Records, as_of_hours: float | np.ndarray | None = None) -> np.ndarray:
    """Hours up to which each patient's data reach: ``as_of_hours`` where given (not NaN), else
    the latest timed measurement or event (0 = nothing after infusion)."""
    latest = np.fmax(
        _per_patient_max(records.m_p, records.m_t, records.n, 0.0),
        _per_patient_max(records.e_p, records.e_t, records.n, 0.0),
    )
    if as_of_hours is None:
        return latest
    given = np.broadcast_to(np.asarray(as_of_hours, dtype=float), (records.n,))
    return np.where(np.isnan(given), latest, given)


def scorable_landmarks(
    records: Records,
    task: str | Task,
    landmarks: Sequence[str | float],
    as_of_hours: float | np.ndarray | None = None,
) -> list[list[str]]:
    """Per patient code, the landmarks of ``landmarks`` the data reach (landmark ≤
    :func:`data_horizon`) at which the patient is eligible (:func:`landmark_rules`), in the
    given order: the service scores at the last one.

    ``severe_crs``: whole-hour landmarks (``"48h"`` …); ``toci_refractory``: ``decision`` /
    ``first_toci``, reached once the patient's decision time or first dose is known.
    """
    task = get_task(task)
    names = [parse_landmark(task, lm)[0] for lm in landmarks]
    horizon = data_horizon(records, as_of_hours)
    n = records.n
    out: list[list[str]] = [[] for _ in range(n)]
    if not names:
        return out
    if task.name == "severe_crs":
        a = assign_landmarks(records, task, names)
        ok = (a.eligible & (a.landmark <= np.tile(horizon, len(names)))).reshape(len(names), n)
        for i, name in enumerate(names):
            for p in np.flatnonzero(ok[i]).tolist():
                out[p].append(name)
        return out
    for name in names:
        a = assign(records, task, name, require_label=False)
        for p in np.flatnonzero(a.eligible & (a.landmark <= horizon)).tolist():
            out[p].append(name)
    return out
