"""Prediction tasks: who is scored, when, and what counts as the outcome.

A :class:`Task` declares its input requirements, outcome, prediction time and observation
window (the pattern of PyHealth's task classes: Yang C et al., PyHealth, KDD 2023), so the
model card can state them, and :func:`assign` applies it to a cohort: per patient the landmark,
eligibility, the exclusion reason and the label.

Tasks (../shared/DESIGN.md):

- ``severe_crs`` at 0 h (pre-infusion), 24, 48, 72 h: eligible when alive and below the severity
  threshold (ASTCT grade 3) at the landmark; label = ASTCT grade ≥ threshold after it. ASTCT
  grading: Lee DW et al. 2019 (``features.grading``).
- ``toci_refractory`` at the first tocilizumab dose: eligible when tocilizumab was given (with a
  known time), patients given siltuximab first-line are excluded and counted; label =
  a second-line agent after the first dose, or no improvement ≥ 24 h after 1–2 doses (Jain T,
  Smith M, Shah NN, Blood 2023;141:2430 call refractory CRS disease that persists or progresses
  beyond initial tocilizumab; the operational cut-offs are declared parameters).

Leakage rules: eligibility "at the landmark" is read from the cohort *cut* at the landmark
(``features.landmark.cut``); labels read the uncut cohort, and "after the landmark" means "in
the cohort but not in its cut", so no time comparison with the landmark happens here.

Cohorts with only a per-patient maximum grade (``crs_max_grade`` timed at onset, e.g. car22):
the maximum is a whole-course summary, so for ``severe_crs`` with maximum ≥ threshold

- onset after the landmark → eligible (grade 0 at the landmark), label 1;
- onset at or before the landmark → the time the threshold was crossed is unknown (between onset
  and the end of the episode), so the patient is **excluded** with its own reason rather than
  risk scoring a patient who was already severe;
- maximum below the threshold → label 0 wherever the patient is eligible.

Graded events with unknown time count the same way as a maximum with unknown onset: they make
the label positive at 0 h, and exclude the patient at later landmarks unless the timed course
already settles the label.

The rules run on the cohort's ``features.landmark.Records`` (arrays, built once per cohort), so
they cost the same few NumPy operations for one patient as for 10⁵; :func:`assign_landmarks`
applies them at several landmarks in one pass (one patient's trend).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.cohort import Cohort
from features.errors import CrsRiskError
from features.grading import (
    DERIVED,
    RECORDED,
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

REFRACTORY_CRITERIA: tuple[str, ...] = ("second_line", "no_improvement")


@dataclass(frozen=True)
class Task:
    """A prediction task with its declared parameters (frozen; derive variants with ``replace``).

    ``landmark_hours`` is the configurable list of landmarks of ``severe_crs`` (hours after
    infusion; 0 = pre-infusion); ``toci_refractory`` has the single landmark ``first_toci``.
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

    def __post_init__(self) -> None:
        if not 1 <= self.severity_threshold <= 5:
            raise CrsRiskError(
                f"task {self.name}: severity_threshold must be an ASTCT grade 1–5, "
                f"got {self.severity_threshold}"
            )
        bad = [h for h in self.landmark_hours if not (math.isfinite(h) and h >= 0)]
        if bad or not self.landmark_hours:
            raise CrsRiskError(
                f"task {self.name}: landmark_hours must be finite hours ≥ 0, got "
                f"{self.landmark_hours}"
            )
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

    @property
    def landmarks(self) -> tuple[str, ...]:
        """Landmark names of the task (``"48h"`` …, or ``"first_toci"``)."""
        if self.name == "toci_refractory":
            return ("first_toci",)
        return tuple(landmark_name(h) for h in self.landmark_hours)

    @property
    def outcome(self) -> str:
        """Outcome definition text, with the task's parameters filled in."""
        k = self.severity_threshold
        if self.name == "severe_crs":
            return (
                f"ASTCT (Lee 2019) CRS grade ≥{k} reached after the landmark (maximum grade of the "
                "recorded course, or derived from fever/hypotension/oxygen rows, or the "
                "per-patient maximum grade when that is all the cohort gives)."
            )
        parts = []
        if "second_line" in self.refractory_criteria:
            parts.append(
                "a second-line agent (" + ", ".join(self.second_line_agents) + ") after the "
                "first tocilizumab dose (agents with unknown time count as after it)"
            )
        if "no_improvement" in self.refractory_criteria:
            parts.append(
                f"no improvement by ≥1 ASTCT grade {self.no_improvement_hours:g} h after the "
                f"last of the first {self.no_improvement_doses} tocilizumab doses (grade then ≥ "
                "max(grade at the first dose, 1); needs a timed grade course)"
            )
        return "Tocilizumab-refractory CRS: " + " or ".join(parts) + "."

    @property
    def eligibility(self) -> str:
        """Eligibility text, with the task's parameters filled in."""
        k = self.severity_threshold
        if self.name == "severe_crs":
            return (
                f"Infused patients alive and below ASTCT grade {k} at the landmark (never "
                f"grade ≥{k} up to it); patients with a maximum grade ≥{k} whose CRS began at "
                "or before the landmark at an unknown escalation time are excluded."
            )
        return (
            "Patients given tocilizumab for CRS with a known time of the first dose, alive at "
            "it; patients given siltuximab first-line (no tocilizumab, or siltuximab at or "
            "before the first tocilizumab dose) are excluded and counted."
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
            },
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
    prediction_time="Landmark hours after CAR T infusion (0 h = pre-infusion).",
    observation_window=(
        "Everything recorded from before lymphodepletion up to and including the landmark; "
        "events with unknown time never enter features."
    ),
    required_inputs=_REQUIRED,
)

TOCI_REFRACTORY = Task(
    name="toci_refractory",
    description=(
        "Risk that CRS treated with tocilizumab is refractory to it, scored at the first dose "
        "(the decision point for a first-line alternative such as siltuximab)."
    ),
    prediction_time="The first tocilizumab dose (per patient).",
    observation_window=(
        "Everything recorded up to and including the first tocilizumab dose; events with "
        "unknown time never enter features."
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
    """Landmark name and hours (``None`` = per patient, ``first_toci``); CrsRiskError if invalid.

    Accepts ``48``, ``"48"``, ``"48h"`` for ``severe_crs`` (must be one of the task's
    ``landmark_hours``) and ``"first_toci"`` for ``toci_refractory``.
    """
    text = str(landmark).strip().lower()
    if task.name == "toci_refractory":
        if text in ("first_toci", "first-toci"):
            return "first_toci", None
        raise CrsRiskError(
            f"landmark {landmark!r} is not valid for toci_refractory: use first_toci"
        )
    try:
        hours = float(text[:-1] if text.endswith("h") else text)
    except ValueError:
        hours = math.nan
    if not any(math.isclose(hours, h) for h in task.landmark_hours):
        allowed = ", ".join(landmark_name(h) for h in task.landmark_hours)
        raise CrsRiskError(
            f"landmark {landmark!r} is not valid for {task.name}: use one of {allowed} "
            "(hours after infusion; the list is the task parameter landmark_hours)"
        )
    return landmark_name(hours), hours


@dataclass(frozen=True)
class Assignment:
    """Per patient (aligned with ``cohort.patients`` rows): landmark, eligibility, label.

    ``y`` is 1/0, or NaN where not eligible or not required; ``reason`` is the exclusion reason
    ("" when eligible); ``notes`` state the derivations used (for the summary). ``records`` and
    ``grades`` are the cohort cut at the landmark and its grade course as arrays (what features
    are computed from); ``at_landmark`` and ``course`` give the same as frames.
    """

    landmark: np.ndarray
    eligible: np.ndarray
    y: np.ndarray
    reason: np.ndarray
    notes: tuple[str, ...]
    records: Records  # the cohort's records cut at the landmark
    grades: Course  # grade course of the cut records
    cohort: Cohort | None  # the (prepared) cohort assigned; None when given records only

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


def _per_patient_max(codes: np.ndarray, values: np.ndarray, n: int, default: float) -> np.ndarray:
    out = np.full(n, default, dtype=float)
    ok = codes >= 0
    np.maximum.at(out, codes[ok], values[ok])
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
    """Grade in force at the end of each patient's course (0 when the course is empty)."""
    codes, grades = _steps(course)
    out = np.zeros(n)
    if len(codes) == 0:
        return out
    last = np.concatenate((codes[1:] != codes[:-1], [True]))
    out[codes[last]] = grades[last]
    return out


def max_grade(course: GradeCourse | Course, n: int) -> np.ndarray:
    """Highest grade of each patient's course (0 when empty)."""
    codes, grades = _steps(course)
    return _per_patient_max(codes, grades, n, 0.0)


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


def _is(records: Records, names: tuple[str, ...] | str) -> np.ndarray:
    """Rows of ``records`` events that are one of ``names``."""
    if isinstance(names, str):
        return records.e_e == EVENT_CODE[names]
    return _event_set(tuple(names))[records.e_e]


@functools.lru_cache(maxsize=64)
def _event_set(names: tuple[str, ...]) -> np.ndarray:
    return code_set(names, EVENT_CODE)


def _reasons(n: int, rules: list[tuple[np.ndarray, str]]) -> np.ndarray:
    """First matching reason per patient ("" = eligible); rules are applied in order."""
    reason = np.full(n, "", dtype=object)
    open_ = np.ones(n, dtype=bool)  # no reason yet (every rule's text is non-empty)
    for mask, text in rules:
        hit = open_ & mask
        reason[hit] = text
        open_ &= ~hit
    return reason


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
    died = _count(at.e_p, size, _is(at, "death")) > 0
    already = max_grade(course, size) >= k
    # after the cut: crs_max_grade events timed at or before the landmark
    ambiguous = _per_patient_max(course.s_code, course.s_grade, size, 0) >= k
    notes = [
        "grade course: recorded crs_onset/crs_grade/crs_resolved events where a patient has any, "
        "else ASTCT 2019 grades derived from temperature/hypotension/vasopressor/oxygen rows, "
        "else grade 1 from the time of a timed crs_max_grade ≥1 (onset), else none; the value "
        "of crs_max_grade and graded events with unknown time are whole-course summaries used "
        "only for labels and the exclusions stated in features.tasks"
    ]
    y = np.full(size, np.nan)
    later_rules: list[tuple[np.ndarray, str]] = []
    if require_label:  # label rules read the uncut cohort: per patient, the same at every landmark
        fc = _as_course(full, n) if full is not None else course_of_records(rec, rec.derived)
        exact = max_grade(fc, n) >= k
        ambiguous &= ~np.tile(exact, n_lm)  # a timed course settles what a summary leaves open
        later_rules.append(
            (
                ambiguous,
                f"max grade ≥{k:g} with CRS onset at or before the landmark (escalation time "
                "unknown)",
            )
        )
        fuzzy = _per_patient_max(fc.s_code, fc.s_grade, n, 0) >= k
        untimed = np.isnan(fc.s_hours) & (fc.s_grade >= k)
        fuzzy_untimed = _count(fc.s_code, n, untimed) > 0
        death = _is(rec, "death")
        death_untimed = _count(rec.e_p, n, death & np.isnan(rec.e_t)) > 0
        after_infusion = np.repeat(np.asarray(hours) > 0, n)  # before it nobody died or had CRS
        later_rules += [
            (after_infusion & np.tile(death_untimed, n_lm), "death with unknown time"),
            (
                after_infusion & np.tile(fuzzy_untimed & ~exact, n_lm),
                f"grade ≥{k:g} only at unknown time (cannot place it after the landmark)",
            ),
        ]
        y = np.tile((exact | fuzzy).astype(float), n_lm)
        n_summary = int(np.sum(fuzzy & ~exact))
        if n_summary:
            notes.append(
                f"{n_summary} patient(s) have grade ≥{k:g} only in a crs_max_grade summary or an "
                "untimed graded event: label 1 when CRS onset is after the landmark, excluded "
                "when onset is at or before it"
            )
    rules = [
        (died, "died at or before the landmark"),
        (already, f"grade ≥{k:g} at or before the landmark (outcome already reached)"),
        *later_rules,
    ]
    reason = _reasons(size, rules)
    eligible = reason == ""
    y[~eligible] = np.nan
    return Assignment(
        landmark=np.repeat(np.asarray(hours, dtype=float), n),
        eligible=eligible,
        y=y,
        reason=reason,
        notes=tuple(notes),
        records=at,
        grades=course,
        cohort=cohort if n_lm == 1 else None,
    )


def _first_toci(rec: Records) -> np.ndarray:
    """Hours of the first timed tocilizumab dose per patient (NaN = none)."""
    toci = _is(rec, "tocilizumab") & ~np.isnan(rec.e_t)
    first = np.full(rec.n, np.inf)
    np.minimum.at(first, rec.e_p[toci], rec.e_t[toci])
    first[np.isinf(first)] = np.nan
    return first


def first_toci_hours(cohort: Cohort) -> pd.Series:
    """Time of the first timed tocilizumab dose per patient (index ``patient_id``)."""
    prep = prepared(cohort)
    ids = pd.Index(prep.patients["patient_id"].astype(str), name="patient_id")
    return pd.Series(_first_toci(prep.records), index=ids, name="first_toci")  # type: ignore[arg-type]


def _toci(
    cohort: Cohort | None,
    rec: Records,
    task: Task,
    require_label: bool,
    full: GradeCourse | Course | None,
) -> Assignment:
    n = rec.n
    lm = _first_toci(rec)
    at = rec.cut(lm)
    course = course_of_records(at, rec.derived.cut(lm))
    toci = _is(rec, "tocilizumab")
    silt = _is(rec, "siltuximab")
    n_toci = _count(rec.e_p, n, toci)
    n_silt = _count(rec.e_p, n, silt)
    silt_untimed = _count(rec.e_p, n, silt & np.isnan(rec.e_t))
    silt_first = _count(at.e_p, n, _is(at, "siltuximab")) > 0
    died = _count(at.e_p, n, _is(at, "death")) > 0
    rules = [
        ((n_toci == 0) & (n_silt > 0), "siltuximab first-line (no tocilizumab)"),
        (n_toci == 0, "no tocilizumab"),
        (np.isnan(lm), "tocilizumab time unknown"),
        (silt_first, "siltuximab at or before the first tocilizumab dose (first-line)"),
        (died, "died at or before the first tocilizumab dose"),
    ]
    notes = [
        "landmark = first timed tocilizumab dose; tocilizumab events with unknown time cannot "
        "define it"
    ]
    y = np.full(n, np.nan)
    if require_label:
        rules.append((silt_untimed > 0, "siltuximab time unknown (line of therapy unknown)"))
        y = np.zeros(n)
        if "second_line" in task.refractory_criteria:
            agents = task.second_line_agents
            after = _count(rec.e_p, n, _is(rec, agents)) - _count(at.e_p, n, _is(at, agents))
            y = np.maximum(y, (after > 0).astype(float))
        if "no_improvement" in task.refractory_criteria:
            y = np.maximum(y, _no_improvement(rec, task, course, full, n))
            notes.append(
                "no-improvement criterion needs a timed grade course; patients with only a "
                "max-grade summary are labelled by the second-line criterion alone"
            )
    reason = _reasons(n, rules)
    eligible = reason == ""
    y[~eligible] = np.nan
    return Assignment(
        landmark=lm,
        eligible=eligible,
        y=y,
        reason=reason,
        notes=tuple(notes),
        records=at,
        grades=course,
        cohort=cohort,
    )


def _no_improvement(
    rec: Records, task: Task, at_first: Course, full: GradeCourse | Course | None, n: int
) -> np.ndarray:
    """1 where the grade ``no_improvement_hours`` after the last of the first doses is not lower."""
    toci = np.flatnonzero(_is(rec, "tocilizumab") & ~np.isnan(rec.e_t))
    code, hours = rec.e_p[toci], rec.e_t[toci]
    order = np.lexsort((hours, code))
    code, hours = code[order], hours[order]
    t_eval = np.full(n, np.nan)
    if len(code):
        starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
        n_doses = np.diff(np.r_[starts, len(code)])
        ref = starts + np.minimum(n_doses, task.no_improvement_doses) - 1
        t_eval[code[ref]] = hours[ref] + task.no_improvement_hours
    later = course_of_records(rec.cut(t_eval), rec.derived.cut(t_eval))
    fc = _as_course(full, n) if full is not None else course_of_records(rec, rec.derived)
    timed = (fc.source == RECORDED) | (fc.source == DERIVED)  # a timed course exists
    worse_or_same = last_grade(later, n) >= np.maximum(last_grade(at_first, n), 1.0)
    return (timed & worse_or_same).astype(float)


def assign(
    cohort: Cohort | Records,
    task: str | Task,
    landmark: str | float,
    require_label: bool = True,
    full_course: GradeCourse | Course | None = None,
) -> Assignment:
    """Landmark, eligibility, exclusion reason and label of every patient for ``task``.

    With ``require_label=False`` (serving) only rules that use data known at the landmark apply
    (died, outcome already reached, no/untimed tocilizumab, siltuximab first-line) and ``y`` is
    NaN; the rules for summaries and unknown times need the outcome and are skipped.
    ``full_course`` lets a caller reuse the uncut cohort's grade course across landmarks.
    ``cohort`` may be the cohort's :class:`Records` themselves (what the service validates a
    request into): the same rules on the same arrays, without frames.
    """
    task = get_task(task)
    _, hours = parse_landmark(task, landmark)
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
    return _toci(prep, rec, task, require_label, full_course)


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
        raise CrsRiskError(f"{task.name} has a single landmark: use assign")
    hours = tuple(float(parse_landmark(task, lm)[1]) for lm in landmarks)  # type: ignore[arg-type]
    if isinstance(cohort, Records):
        return _severe(None, cohort, task, hours, require_label, None)
    prep = prepared(cohort)
    assert prep.records is not None
    return _severe(None, prep.records, task, hours, require_label, None)
