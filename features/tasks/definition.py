"""Task definitions: the declared parameters of each prediction task and its landmarks."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from features.errors import CrsRiskError
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
    indication counts (``features.tasks.refractory``).
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
        found = TASKS.get(str(name))
        if found is None:
            raise CrsRiskError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}")
        task = found
    if params:
        fields = {f.name for f in dataclasses.fields(Task)} - {"name"}
        unknown = set(params) - fields
        if unknown:
            raise CrsRiskError(f"unknown task parameter(s) {sorted(unknown)} for {task.name}")
        task = dataclasses.replace(task, **params)  # type: ignore[arg-type]  # names checked above
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
