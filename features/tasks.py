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
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.cohort import Cohort
from features.errors import CrsRiskError
from features.grading import GradeCourse, grade_course
from features.landmark import PATIENT_CODE, cut, landmark_array, patient_codes, with_codes
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
    ("" when eligible); ``notes`` state the derivations used (for the summary).
    """

    landmark: np.ndarray
    eligible: np.ndarray
    y: np.ndarray
    reason: np.ndarray
    notes: tuple[str, ...]
    course: GradeCourse  # grade course of the cohort cut at the landmark (codes ``_p``)
    at_landmark: Cohort  # the cohort cut at the landmark


def _per_patient_max(codes: np.ndarray, values: np.ndarray, n: int, default: float) -> np.ndarray:
    out = np.full(n, default, dtype=float)
    ok = codes >= 0
    np.maximum.at(out, codes[ok], values[ok])
    return out


def _count(codes: np.ndarray, n: int, mask: np.ndarray | None = None) -> np.ndarray:
    c = codes if mask is None else codes[mask]
    return np.bincount(c[c >= 0], minlength=n)[:n]


def last_grade(course: GradeCourse, n: int) -> np.ndarray:
    """Grade in force at the end of each patient's course (0 when the course is empty)."""
    steps = course.steps
    out = np.zeros(n)
    if steps.empty:
        return out
    codes = steps[PATIENT_CODE].to_numpy()
    last = np.r_[codes[1:] != codes[:-1], True]
    out[codes[last]] = steps["grade"].to_numpy()[last]
    return out


def max_grade(course: GradeCourse, n: int) -> np.ndarray:
    """Highest grade of each patient's course (0 when empty)."""
    s = course.steps
    return _per_patient_max(s[PATIENT_CODE].to_numpy(), s["grade"].to_numpy(), n, 0.0)


def course_of(cohort: Cohort) -> GradeCourse:
    """Grade course keyed by patient code (the cohort must carry codes, see ``with_codes``)."""
    return grade_course(cohort.measurements, cohort.events, key=PATIENT_CODE)


def _events(cohort: Cohort, names: tuple[str, ...] | str) -> pd.DataFrame:
    names = (names,) if isinstance(names, str) else names
    ev = cohort.events
    return ev[ev["event"].astype(str).isin(names)]


def _reasons(n: int, rules: list[tuple[np.ndarray, str]]) -> np.ndarray:
    """First matching reason per patient ("" = eligible); rules are applied in order."""
    reason = np.full(n, "", dtype=object)
    for mask, text in rules:
        reason[(reason == "") & mask] = text
    return reason


def _severe(
    cohort: Cohort, task: Task, hours: float, require_label: bool, full: GradeCourse | None
) -> Assignment:
    n = len(cohort.patients)
    k = float(task.severity_threshold)
    at = cut(cohort, hours)
    course = course_of(at)
    died = _count(patient_codes(at, _events(at, "death")), n) > 0
    already = max_grade(course, n) >= k
    s = course.summary  # after the cut: crs_max_grade events timed at or before the landmark
    ambiguous = _per_patient_max(s[PATIENT_CODE].to_numpy(), s["grade"].to_numpy(), n, 0) >= k
    notes = [
        "grade course: recorded crs_onset/crs_grade/crs_resolved events where a patient has any, "
        "else ASTCT 2019 grades derived from temperature/hypotension/vasopressor/oxygen rows, "
        "else grade 1 from the time of a timed crs_max_grade ≥1 (onset), else none; the value "
        "of crs_max_grade and graded events with unknown time are whole-course summaries used "
        "only for labels and the exclusions stated in features.tasks"
    ]
    y = np.full(n, np.nan)
    later_rules: list[tuple[np.ndarray, str]] = []
    if require_label:
        full = full if full is not None else course_of(cohort)
        exact = max_grade(full, n) >= k
        ambiguous &= ~exact  # a timed course settles what a summary leaves open
        later_rules.append(
            (
                ambiguous,
                f"max grade ≥{k:g} with CRS onset at or before the landmark (escalation time "
                "unknown)",
            )
        )
        fs = full.summary
        fcodes = fs[PATIENT_CODE].to_numpy()
        fuzzy = _per_patient_max(fcodes, fs["grade"].to_numpy(), n, 0) >= k
        untimed = fs["hours_from_infusion"].isna().to_numpy() & (fs["grade"].to_numpy() >= k)
        fuzzy_untimed = _count(fcodes, n, untimed) > 0
        death = _events(cohort, "death")
        death_untimed = _count(patient_codes(cohort, death), n, death["hours_from_infusion"].isna())
        if hours > 0:  # before infusion nobody can have died or had CRS
            later_rules += [
                (death_untimed > 0, "death with unknown time"),
                (
                    fuzzy_untimed & ~exact,
                    f"grade ≥{k:g} only at unknown time (cannot place it after the landmark)",
                ),
            ]
        y = (exact | fuzzy).astype(float)
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
    reason = _reasons(n, rules)
    eligible = reason == ""
    y[~eligible] = np.nan
    return Assignment(
        landmark=np.full(n, hours),
        eligible=eligible,
        y=y,
        reason=reason,
        notes=tuple(notes),
        course=course,
        at_landmark=at,
    )


def first_toci_hours(cohort: Cohort) -> pd.Series:
    """Time of the first timed tocilizumab dose per patient (index ``patient_id``)."""
    toci = _events(cohort, "tocilizumab")
    toci = toci[toci["hours_from_infusion"].notna()]
    first = toci.groupby(toci["patient_id"].astype(str), sort=False)["hours_from_infusion"].min()
    ids = cohort.patients["patient_id"].astype(str)
    return first.reindex(ids).rename("first_toci")


def _toci(cohort: Cohort, task: Task, require_label: bool, full: GradeCourse | None) -> Assignment:
    n = len(cohort.patients)
    first = first_toci_hours(cohort)
    at = cut(cohort, first)
    course = course_of(at)
    lm = landmark_array(cohort, first)
    toci = _events(cohort, "tocilizumab")
    silt = _events(cohort, "siltuximab")
    n_toci = _count(patient_codes(cohort, toci), n)
    n_silt = _count(patient_codes(cohort, silt), n)
    silt_untimed = _count(patient_codes(cohort, silt), n, silt["hours_from_infusion"].isna())
    silt_first = _count(patient_codes(at, _events(at, "siltuximab")), n) > 0
    died = _count(patient_codes(at, _events(at, "death")), n) > 0
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
            after = _count(patient_codes(cohort, _events(cohort, agents)), n) - _count(
                patient_codes(at, _events(at, agents)), n
            )
            y = np.maximum(y, (after > 0).astype(float))
        if "no_improvement" in task.refractory_criteria:
            y = np.maximum(y, _no_improvement(cohort, task, course, full, n))
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
        course=course,
        at_landmark=at,
    )


def _no_improvement(
    cohort: Cohort, task: Task, at_first: GradeCourse, full: GradeCourse | None, n: int
) -> np.ndarray:
    """1 where the grade ``no_improvement_hours`` after the last of the first doses is not lower."""
    toci = _events(cohort, "tocilizumab")
    toci = toci[toci["hours_from_infusion"].notna()]
    dose_times = toci.sort_values([PATIENT_CODE, "hours_from_infusion"])
    rank = dose_times.groupby(PATIENT_CODE, sort=False).cumcount() + 1
    n_doses = dose_times.groupby(PATIENT_CODE, sort=False)[PATIENT_CODE].transform("size")
    ref = dose_times[rank == np.minimum(n_doses, task.no_improvement_doses)]
    t_eval = pd.Series(
        ref["hours_from_infusion"].to_numpy() + task.no_improvement_hours,
        index=cohort.patients["patient_id"].astype(str).to_numpy()[ref[PATIENT_CODE].to_numpy()],
    )
    later = course_of(cut(cohort, t_eval))
    full = full if full is not None else course_of(cohort)
    timed = np.zeros(n, dtype=bool)
    src = full.source[full.source.isin(("recorded", "derived"))]  # a timed course exists
    timed[src.index.to_numpy(dtype=np.int64)] = True
    worse_or_same = last_grade(later, n) >= np.maximum(last_grade(at_first, n), 1.0)
    return (timed & worse_or_same).astype(float)


def assign(
    cohort: Cohort,
    task: str | Task,
    landmark: str | float,
    require_label: bool = True,
    full_course: GradeCourse | None = None,
) -> Assignment:
    """Landmark, eligibility, exclusion reason and label of every patient for ``task``.

    With ``require_label=False`` (serving) only rules that use data known at the landmark apply
    (died, outcome already reached, no/untimed tocilizumab, siltuximab first-line) and ``y`` is
    NaN; the rules for summaries and unknown times need the outcome and are skipped.
    ``full_course`` lets a caller reuse the uncut cohort's grade course across landmarks.
    """
    task = get_task(task)
    cohort = with_codes(cohort)
    _, hours = parse_landmark(task, landmark)
    if task.name == "severe_crs":
        assert hours is not None
        return _severe(cohort, task, hours, require_label, full_course)
    return _toci(cohort, task, require_label, full_course)
