"""Request and response models of the risk service: the OpenAPI document is the contract.

Patient fields are generated from the cohort contract (``features.schema.PATIENTS``) so their
types, units, ranges and descriptions are declared once; measurements use the analyte
vocabulary (``features.vocabulary``: keys, accepted units, impossible ranges) and events the
event vocabulary (``features.schema.EVENTS``). Every field rejects what the contract rejects
(unknown keys, booleans for numbers, non-finite numbers, out-of-range values), so a bad request
is a 422 that names each offending field and rule, before any scoring code runs.
"""

from __future__ import annotations

import functools
import math
import types
from typing import Annotated, Any, Literal, NotRequired, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model
from typing_extensions import TypedDict

from features.schema import (
    EVENTS,
    HOURS,
    LYMPHODEPLETION,
    PATIENTS,
    PRODUCTS,
    SEXES,
    Column,
)
from features.vocabulary import ANALYTES

NOTICE = "Research use only — not for clinical decisions."
MAX_LANDMARK_HOURS = 336
SEVERE_LANDMARKS: tuple[str, ...] = tuple(f"{h}h" for h in range(MAX_LANDMARK_HOURS + 1))
"""Every severe-CRS landmark name a request may ask for (whole hours 0–336); the service scores
the ones with a registered model."""
MAX_MEASUREMENTS = 5000
MAX_EVENTS = 500
MAX_BATCH = 10_000

AnalyteKey = Literal[tuple(ANALYTES)]  # type: ignore[valid-type]  # Literal built at run time
EventName = Literal[tuple(EVENTS)]  # type: ignore[valid-type]  # Literal built at run time
LandmarkName = Literal[SEVERE_LANDMARKS]  # type: ignore[valid-type]  # run-time Literal

_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
_HOURS_HARD = HOURS.hard or (-math.inf, math.inf)


def _range_text(c: Column) -> str:
    parts = [c.description]
    if c.unit:
        parts.append(f"Unit: {c.unit}.")
    if c.hard:
        parts.append(f"Allowed: {c.hard[0]:g}–{c.hard[1]:g}.")
    if c.soft and c.soft != c.hard:
        parts.append(f"Plausible: {c.soft[0]:g}–{c.soft[1]:g} (outside → warning).")
    return " ".join(parts)


def _patient_field(c: Column) -> tuple[Any, Any]:
    """(type, Field) of one patient column, from its contract declaration."""
    extra: dict[str, Any] = {}
    if c.unit:
        extra["x-unit"] = c.unit
    if c.soft:
        extra["x-plausible-range"] = list(c.soft)
    desc = _range_text(c)
    if c.dtype == "float":
        lo, hi = c.hard or (None, None)
        return (
            float | None,
            Field(None, ge=lo, le=hi, description=desc, json_schema_extra=extra or None),
        )
    if c.dtype == "bool":
        return bool | None, Field(None, description=desc)
    allowed = {"sex": SEXES, "product": PRODUCTS, "lymphodepletion": LYMPHODEPLETION}[c.name]
    return Literal[allowed] | None, Field(None, description=desc)


class _Base(BaseModel):
    model_config = _STRICT


PATIENT_FIELDS: tuple[str, ...] = tuple(
    c.name for c in PATIENTS.columns if c.name not in ("patient_id", "center")
)

PatientIn = create_model(  # type: ignore[call-overload]  # fields from the contract
    "PatientIn",
    __base__=_Base,
    __doc__="Baseline characteristics (patients table of the cohort contract); all optional.",
    **{name: _patient_field(PATIENTS.column(name)) for name in PATIENT_FIELDS},
)


class MeasurementIn(_Base):
    """One value of one analyte at one time (measurements table of the cohort contract)."""

    analyte: AnalyteKey = Field(  # type: ignore[valid-type]  # run-time Literal
        description="Analyte key of the vocabulary (GET /v1/vocabulary lists units and ranges)."
    )
    hours_from_infusion: float = Field(
        ge=_HOURS_HARD[0],
        le=_HOURS_HARD[1],
        description="Hours from CAR T infusion (negative = before infusion).",
        json_schema_extra={"x-unit": "h"},
    )
    value: float = Field(
        ge=-1e12,
        le=1e12,
        description="Measured value in `unit`; converted to the analyte's canonical unit with "
        "the same code as training.",
    )
    unit: str = Field(
        min_length=1,
        max_length=32,
        description="Unit of `value`; must be accepted for the analyte.",
    )
    qualifier: Literal["<", ">"] | None = Field(
        None, description="'<' = below the assay's detection limit (value = limit); '>' = above."
    )


class EventIn(_Base):
    """A timed treatment or outcome (events table of the cohort contract)."""

    # run-time Literal
    event: EventName = Field(description="Event type of the cohort contract.")  # type: ignore[valid-type]
    hours_from_infusion: float | None = Field(
        None,
        ge=_HOURS_HARD[0],
        le=_HOURS_HARD[1],
        description="Hours from infusion; null = unknown time (never enters a feature).",
        json_schema_extra={"x-unit": "h"},
    )
    grade: int | None = Field(
        None, ge=0, le=5, description="ASTCT grade for crs_onset, crs_grade, icans; else null."
    )
    dose_mg_per_kg: float | None = Field(
        None, ge=0, le=1000, description="Drug dose.", json_schema_extra={"x-unit": "mg/kg"}
    )


# A complete synthetic example patient (not real data): shown in /docs and the OpenAPI document.
EXAMPLE_REQUEST: dict[str, Any] = {
    "patient_ref": "example-1",
    "patient": {
        "age_years": 12.5,
        "sex": "F",
        "weight_kg": 41.0,
        "product": "tisagenlecleucel",
        "prior_hsct": True,
        "prior_blinatumomab": False,
        "prior_inotuzumab": False,
        "marrow_blasts_pct": 62.0,
        "extramedullary_disease": False,
        "lymphodepletion": "flu_cy",
        "car_t_dose": 3.1,
    },
    "measurements": [
        {"analyte": "ldh", "hours_from_infusion": -150, "value": 680, "unit": "U/L"},
        {"analyte": "crp", "hours_from_infusion": -150, "value": 0.9, "unit": "mg/dL"},
        {"analyte": "ferritin", "hours_from_infusion": -150, "value": 850, "unit": "ng/mL"},
        {"analyte": "platelets", "hours_from_infusion": -150, "value": 47, "unit": "10^9/L"},
        {"analyte": "creatinine", "hours_from_infusion": -150, "value": 62, "unit": "µmol/L"},
        {"analyte": "il6", "hours_from_infusion": -3, "value": 3.3, "unit": "pg/mL"},
        {"analyte": "ifng", "hours_from_infusion": -3, "value": 5.5, "unit": "pg/mL"},
        {"analyte": "sgp130", "hours_from_infusion": -3, "value": 186, "unit": "ng/mL"},
        {"analyte": "il1ra", "hours_from_infusion": -3, "value": 111, "unit": "pg/mL"},
        {"analyte": "mcp1", "hours_from_infusion": -3, "value": 201, "unit": "pg/mL"},
        {"analyte": "temperature", "hours_from_infusion": 12, "value": 37.4, "unit": "°C"},
        {"analyte": "il6", "hours_from_infusion": 24, "value": 36.5, "unit": "pg/mL"},
        {"analyte": "ifng", "hours_from_infusion": 24, "value": 78.9, "unit": "pg/mL"},
        {"analyte": "sgp130", "hours_from_infusion": 24, "value": 313, "unit": "ng/mL"},
        {"analyte": "il1ra", "hours_from_infusion": 24, "value": 1891, "unit": "pg/mL"},
        {"analyte": "mcp1", "hours_from_infusion": 24, "value": 841, "unit": "pg/mL"},
        {"analyte": "crp", "hours_from_infusion": 24, "value": 48, "unit": "mg/L"},
        {"analyte": "ferritin", "hours_from_infusion": 24, "value": 2100, "unit": "ng/mL"},
        {"analyte": "temperature", "hours_from_infusion": 34, "value": 38.6, "unit": "°C"},
        {"analyte": "il6", "hours_from_infusion": 46, "value": 1250, "unit": "pg/mL"},
        {"analyte": "crp", "hours_from_infusion": 46, "value": 121, "unit": "mg/L"},
        {"analyte": "ferritin", "hours_from_infusion": 46, "value": 5400, "unit": "ng/mL"},
        {"analyte": "temperature", "hours_from_infusion": 46, "value": 39.2, "unit": "°C"},
    ],
    "events": [
        {"event": "crs_onset", "hours_from_infusion": 34, "grade": 1},
        {"event": "crs_grade", "hours_from_infusion": 44, "grade": 2},
        {"event": "tocilizumab", "hours_from_infusion": 46, "dose_mg_per_kg": 8.0},
    ],
    "as_of_hours": 50,
}


class RiskRequest(_Base):
    """One patient: baseline fields, measurements and events, times relative to infusion."""

    model_config = ConfigDict(**_STRICT, json_schema_extra={"examples": [EXAMPLE_REQUEST]})

    patient_ref: str | None = Field(
        None,
        max_length=128,
        description="Your own reference for this patient, echoed back; stored only as a salted "
        "hash in the audit log.",
    )
    patient: PatientIn = Field(default_factory=PatientIn)  # type: ignore[valid-type]  # dynamic
    measurements: list[MeasurementIn] = Field(default_factory=list, max_length=MAX_MEASUREMENTS)
    events: list[EventIn] = Field(default_factory=list, max_length=MAX_EVENTS)
    landmark: LandmarkName | None = Field(
        None,
        description="Severe-CRS landmark to score (whole hours 0–336 with a registered model, "
        "e.g. '48h'); default: the latest registered landmark the data support "
        "(≤ as_of_hours).",
    )
    as_of_hours: float | None = Field(
        None,
        ge=-24 * 120,
        le=24 * 365 * 5,
        description="Hours from infusion at which the data were extracted; default: the time "
        "of the latest measurement or event (0 when none is after infusion).",
        json_schema_extra={"x-unit": "h"},
    )
    explain: bool = Field(True, description="Return the top contributions (SHAP).")
    top_k: int = Field(6, ge=1, le=30, description="Number of contributions returned per task.")


class BatchPatient(RiskRequest):
    """One patient of a batch: as a single request, but explanations are off by default."""

    explain: bool = Field(False, description="Return the top contributions (slower).")


class BatchRequest(_Base):
    """Many patients scored in one call (explanations off by default)."""

    patients: list[BatchPatient] = Field(min_length=1, max_length=MAX_BATCH)


# --- responses -------------------------------------------------------------------------------
class Contribution(BaseModel):
    variable: str = Field(description="Clinical variable (catalog name).")
    label: str = Field(description="Clinical label.")
    value_text: str = Field(description="The patient's value in clinical words.")
    points: float | None = Field(
        None,
        description="Change of the probability in points (0–100 scale) this variable makes: "
        "the probability minus the probability with its contribution removed (+ raises risk).",
    )
    contribution: float = Field(description="Details: SHAP contribution in log-odds.")
    text: str = Field(description="One-line reason in clinical language (risk points).")


WarningCode = Literal[
    "missing_imputed",
    "outside_training_data",
    "unseen_product",
    "no_training_distribution",
    "outside_plausible_range",
    "not_eligible",
    "insufficient_data",
    "after_landmark",
    "landmark",
    "input",
]


class InputWarning(BaseModel):
    code: WarningCode
    field: str | None = None
    message: str


class Interval(BaseModel):
    """Plausible range of the outcome rate among patients given this predicted risk by this
    model (not of this one patient's own risk); ``GET /v1/models``: the method, what it covers
    and its measured coverage, per model."""

    low: float = Field(description="Lower end (probability).")
    high: float = Field(description="Upper end (probability).")
    level: float = Field(
        description="Nominal level, 0.95; the coverage measured on fresh simulated cohorts is "
        "in GET /v1/models (interval_covers) and the README."
    )


class BandEvidence(BaseModel):
    band: str
    low: float | None
    high: float | None
    n: int = Field(description="Validation patients whose predicted risk fell in this band.")
    events: int
    observed: float | None
    ci_low: float | None
    ci_high: float | None


class TaskResult(BaseModel):
    task: Literal["severe_crs", "toci_refractory"]
    landmark: str
    status: Literal["scored", "insufficient_data", "not_eligible", "no_model"] = Field(
        description="scored; insufficient_data (below the minimum inputs: no probability); "
        "not_eligible (e.g. the outcome already reached); no_model (no champion)."
    )
    eligible: bool
    reason: str | None = Field(None, description="Why the patient is not scored, if not.")
    missing_inputs: list[str] = Field(
        default_factory=list, description="Minimum inputs missing (status insufficient_data)."
    )
    horizon: str | None = Field(None, description="What is predicted, over which time.")
    probability: float | None = Field(None, description="Calibrated probability (0–1).")
    interval: Interval | None = Field(
        None,
        description="Per-patient uncertainty: the outcome rate among patients given this "
        "risk (see Interval).",
    )
    summary: str | None = Field(None, description="The result in one clinical sentence.")
    band: str | None = None
    thresholds: list[float] = Field(default_factory=list, description="Declared band cut-offs.")
    uncertainty: BandEvidence | None = Field(
        None,
        description="Observed outcome rate (Wilson 95% CI) among cross-validated patients whose "
        "predicted risk fell in the same band.",
    )
    base_value: float | None = Field(None, description="Model's mean log-odds (SHAP base).")
    log_odds: float | None = Field(
        None,
        description="The model's log-odds for this patient (before calibration) = base_value + "
        "Σ contributions + other_contribution.",
    )
    other_contribution: float | None = Field(
        None, description="Sum of the contributions not listed (log-odds)."
    )
    contributions: list[Contribution] = Field(default_factory=list)
    missing_effects: list[Contribution] = Field(
        default_factory=list,
        description="Effects of inputs that were not measured (never clinical reasons).",
    )
    warnings: list[InputWarning] = Field(default_factory=list)
    model: str | None = None
    version: str | None = None


class TrendPoint(BaseModel):
    landmark: str
    eligible: bool
    probability: float | None
    band: str | None
    version: str | None


class RiskResponse(BaseModel):
    request_id: str
    patient_ref: str | None
    landmark: str = Field(description="Severe-CRS landmark scored.")
    supported_landmarks: list[str]
    results: list[TaskResult]
    trend: list[TrendPoint] = Field(description="Severe-CRS risk at every supported landmark.")
    warnings: list[InputWarning] = Field(default_factory=list)
    notice: str = NOTICE


class BatchItem(BaseModel):
    index: int
    patient_ref: str | None
    landmark: str | None = None
    results: list[TaskResult] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)


class BatchResponse(BaseModel):
    request_id: str
    n: int
    items: list[BatchItem]
    notice: str = NOTICE


class Metric(BaseModel):
    value: float | None
    ci_low: float | None
    ci_high: float | None


class ModelInfo(BaseModel):
    name: str
    task: str
    landmark: str
    alias: str
    version: str
    run_id: str | None
    model_type: str | None
    cohort_digest: str | None
    thresholds: list[float]
    metrics: dict[str, Metric]
    n_patients: int | None
    n_events: int | None
    products: list[str] | None = Field(None, description="CAR T products in the training data.")
    synthetic: bool | None = Field(
        None, description="Trained on a synthetic cohort (None: not recorded)."
    )
    horizon: str | None = None
    interval_method: str | None = None
    interval_covers: str | None = Field(
        None, description="What the per-patient interval covers, and what it does not."
    )
    training_distribution: bool = Field(
        False, description="Whether the model carries its training distribution."
    )


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    missing: list[str] = Field(default_factory=list, description="Names with no champion.")
    loaded_at: str


class ErrorDetail(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    detail: list[ErrorDetail] | str


ExamplePatient = Annotated[dict[str, Any], Field(description="A RiskRequest body.")]


class ExamplesResponse(BaseModel):
    examples: list[dict[str, Any]] = Field(
        description="Synthetic patients (RiskRequest bodies with a title); never real data."
    )


# --- batch records: the same fields, validated into plain dicts -------------------------------
def _plain(annotation: Any, records: dict[type, Any]) -> Any:
    """``annotation`` with every request model replaced by its record type."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return records[annotation]
    origin = get_origin(annotation)
    if origin is list:
        return list[_plain(get_args(annotation)[0], records)]  # type: ignore[misc]  # run-time type
    if origin in (Union, types.UnionType):
        return Union[tuple(_plain(a, records) for a in get_args(annotation))]  # noqa: UP007
    return annotation


def record_type(model: type[BaseModel], records: dict[type, Any]) -> Any:
    """A ``TypedDict`` with the fields of ``model``: same types, constraints and strictness.

    pydantic validates it exactly as the model (the same core validators, the same error
    locations and messages) but returns dicts: for a batch of 10⁴ patients with 10⁵
    measurements, building model instances costs five times the validation itself. Fields
    with a default are optional keys (the reader applies :data:`BATCH_DEFAULTS`).
    """
    fields: dict[str, Any] = {}
    for name, f in model.model_fields.items():
        annotation = _plain(f.annotation, records)
        if f.metadata:
            annotation = Annotated[(annotation, *f.metadata)]
        fields[name] = annotation if f.is_required() else NotRequired[annotation]
    # a TypedDict built at run time from the model's fields (mypy wants a literal name)
    typed = TypedDict(f"{model.__name__}Record", fields)  # type: ignore[misc]
    # pydantic reads this attribute of a TypedDict; typing does not declare it
    typed.__pydantic_config__ = ConfigDict(**_STRICT)  # type: ignore[attr-defined]
    return typed


BATCH_DEFAULTS: dict[str, Any] = {
    name: f.get_default(call_default_factory=True)
    for name, f in BatchPatient.model_fields.items()
    if not f.is_required()
} | {"patient": {}}  # a record's patient is a dict (all fields optional)


@functools.cache
def batch_records() -> TypeAdapter[Any]:
    """Validator of a batch body (``BatchRequest``'s rules) into plain dicts; built once."""
    records: dict[type, Any] = {}
    for model in (PatientIn, MeasurementIn, EventIn, BatchPatient, BatchRequest):
        records[model] = record_type(model, records)
    return TypeAdapter(records[BatchRequest])
