"""The source kinds of a mapping: patients, events, long or wide measurements."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from features.mapping.columns import ColumnSpec, TimeSpec
from features.mapping.rules import (
    AnalyteValues,
    Indication,
    MeasureRule,
    PatientEventRule,
    RowEventRule,
)
from features.mapping.values import (
    CRS_DERIVED,
    SKIP,
    CrsDerivedEvent,
    Scalar,
    StrictModel,
    value_key,
)
from features.schema import PATIENTS
from features.vocabulary import ANALYTES, resolve_analyte, resolve_unit


class _Source(StrictModel):
    name: str | None = Field(None, description="Name other parts of the mapping refer to.")
    file: str = Field(
        min_length=1, description="File name of the extract (or the end of its path)."
    )
    sheet: str | int | None = Field(None, description="Excel sheet name or 0-based index.")
    header_rows: int = Field(default=1, ge=0, le=50, description="Header rows above the data.")
    delimiter: str | None = Field(
        default=None, min_length=1, max_length=1, description="CSV delimiter (default , or tab)."
    )
    na_values: list[Scalar] = Field(
        default_factory=list, description="Placeholders meaning missing in this source."
    )
    id_column: ColumnSpec = Field(description="Column holding the patient id.")


class AnalyteOptions(StrictModel):
    analytes: dict[str, str] = Field(
        default_factory=dict, description="Source analyte name → analyte key or skip."
    )
    unknown_analytes: Literal["error", "skip"] = Field(
        "error", description="An analyte name not in the vocabulary: error, or skip (counted)."
    )
    analyte_values: dict[str, AnalyteValues] = Field(
        default_factory=dict,
        description="Per analyte key: imputed constants that mean missing, ceiling, floor — in the "
        "analyte's canonical unit, compared after unit conversion — and the unit of rows "
        "before a date (units_before).",
    )

    @field_validator("analyte_values")
    @classmethod
    def _value_keys(cls, rules: dict[str, AnalyteValues]) -> dict[str, AnalyteValues]:
        out: dict[str, AnalyteValues] = {}
        for name, rule in rules.items():
            key = resolve_analyte(name)
            if key is None:
                raise ValueError(f"unknown analyte {name!r} (keys: {', '.join(ANALYTES)})")
            for when, unit in rule.units_before.items():
                if resolve_unit(key, unit) is None:
                    raise ValueError(
                        f"{name}.units_before: unit {unit!r} (before {when}) is not accepted "
                        f"for {key} (accepted: {', '.join(ANALYTES[key].units)})"
                    )
            out[key] = rule
        return out

    @field_validator("analytes")
    @classmethod
    def _targets(cls, analytes: dict[str, str]) -> dict[str, str]:
        for name, target in analytes.items():
            if target != SKIP and target not in ANALYTES:
                raise ValueError(
                    f"{name!r} maps to {target!r}, which is neither 'skip' nor an analyte key "
                    f"({', '.join(ANALYTES)})"
                )
        return {value_key(k): v for k, v in analytes.items()}


_PATIENT_FIELDS = tuple(c.name for c in PATIENTS.columns if c.name != "patient_id")


class PatientsSource(_Source):
    """The patient table: one row per patient (or a patient-day table with ``rows: repeated``);
    ``columns`` map patient fields to source columns, ``constants`` give fields one value for
    everyone, ``events`` turn per-patient flags into events."""

    kind: Literal["patients"]
    rows: Literal["one_per_patient", "repeated"] = Field(
        "one_per_patient",
        description="repeated: a patient-day table (patient columns repeated on every row); "
        "identical repeats are one patient, conflicting ones an error.",
    )
    columns: dict[str, ColumnSpec] = Field(
        default_factory=dict, description="Patient field → source column."
    )
    constants: dict[str, Scalar] = Field(
        default_factory=dict, description="Patient field → one value for everyone."
    )
    events: list[PatientEventRule] = Field(
        default_factory=list, description="Per-patient events (flags, grades, times)."
    )

    @model_validator(mode="after")
    def _fields(self) -> PatientsSource:
        if self.rows == "repeated" and self.events:
            raise ValueError(
                "events on a source with repeated rows: declare them as row events of a "
                "wide_measurements source on the same file"
            )
        for name in (*self.columns, *self.constants):
            if name not in _PATIENT_FIELDS:
                raise ValueError(
                    f"{name!r} is not a patient field (fields: {', '.join(_PATIENT_FIELDS)})"
                )
        both = set(self.columns) & set(self.constants)
        if both:
            raise ValueError(f"{', '.join(sorted(both))} given both as column and constant")
        return self


class PerPatientEventsSource(_Source):
    """One row per patient holding only events (outcome and treatment flags, grades, days)."""

    kind: Literal["per_patient_events"]
    events: list[PatientEventRule] = Field(
        min_length=1, description="Per-patient events (flags, grades, times)."
    )


class LongMeasurementsSource(AnalyteOptions, _Source):
    """One row per value: time, analyte name, value, and a unit (fixed or a unit column); a
    value may carry its ``<``/``>`` qualifier in the cell or in a qualifier column."""

    kind: Literal["long_measurements"]
    time: TimeSpec = Field(description="Time of each row.")
    analyte: ColumnSpec = Field(description="Column naming the analyte (vocabulary or analytes).")
    value: ColumnSpec = Field(description="Column holding the value.")
    unit: str | None = Field(None, description="Unit of every value.")
    unit_column: ColumnSpec | None = Field(None, description="Column holding each row's unit.")
    qualifier: ColumnSpec | None = Field(None, description="Column holding '<' or '>'.")

    @model_validator(mode="after")
    def _shape(self) -> LongMeasurementsSource:
        if (self.unit is None) == (self.unit_column is None):
            raise ValueError("give exactly one of unit or unit_column")
        if self.time.column is None:
            raise ValueError("time needs a column (one time per row)")
        self.time.require_numbers()
        return self


class WideMeasurementsSource(AnalyteOptions, _Source):
    """One row per patient and time point (a flowsheet, a patient-day table): analyte columns,
    an optional per-row CRS grade and per-row events, all at the row's time."""

    kind: Literal["wide_measurements"]
    time: TimeSpec = Field(description="The row's time (one per row).")
    measurements: list[MeasureRule] = Field(
        default_factory=list, description="Analyte columns (rules without time)."
    )
    crs_grade: ColumnSpec | None = Field(
        None, description="Per-row CRS grade: onset, grade changes and maximum are derived."
    )
    crs_events: list[CrsDerivedEvent] = Field(
        default_factory=lambda: list(CRS_DERIVED),
        description="Which derived CRS events to write.",
    )
    events: list[RowEventRule] = Field(
        default_factory=list, description="Per-row events (daily drug/ICU flags, ICANS grade)."
    )

    @model_validator(mode="after")
    def _shape(self) -> WideMeasurementsSource:
        if self.time.column is None:
            raise ValueError("time needs a column (one time per row)")
        self.time.require_numbers()
        if not self.measurements and self.crs_grade is None and not self.events:
            raise ValueError("give measurements, crs_grade and/or events")
        for i, rule in enumerate(self.measurements):
            if rule.time is not None:
                raise ValueError(f"measurements[{i}].time: rows carry the time; remove it")
        return self


class PatientMeasurementsSource(AnalyteOptions, _Source):
    """One row per patient; each matched column is one analyte at one time (workbooks with
    several header rows: time window in one header row, analyte and unit in the next, the exact
    draw day in a neighbouring column)."""

    kind: Literal["patient_measurements"]
    measurements: list[MeasureRule] = Field(
        min_length=1, description="Analyte columns, each rule with its time."
    )

    @model_validator(mode="after")
    def _shape(self) -> PatientMeasurementsSource:
        for i, rule in enumerate(self.measurements):
            if rule.time is None:
                raise ValueError(f"measurements[{i}].time is required for this kind")
            if rule.unit_column is not None:
                raise ValueError(f"measurements[{i}].unit_column: one row per patient; give unit")
        return self


class LongEventsSource(_Source):
    """One row per event: time, event name (mapped to the contract's events), grade, dose and
    indication."""

    kind: Literal["long_events"]
    time: TimeSpec = Field(description="Time of each event row.")
    event: ColumnSpec = Field(description="Column naming the event (map it with values).")
    grade: ColumnSpec | None = Field(None, description="Grade column (graded events).")
    dose: ColumnSpec | None = Field(None, description="Dose column (mg/kg).")
    indication: Indication | ColumnSpec | None = Field(
        None, description="crs, icans, other, or a column mapped to them (drug rows only)."
    )

    @model_validator(mode="after")
    def _shape(self) -> LongEventsSource:
        if self.time.column is None:
            raise ValueError("time needs a column (one time per row)")
        self.time.require_numbers()
        return self


Source = Annotated[
    PatientsSource
    | PerPatientEventsSource
    | LongMeasurementsSource
    | WideMeasurementsSource
    | PatientMeasurementsSource
    | LongEventsSource,
    Field(discriminator="kind"),
]
KINDS = (
    "patients",
    "per_patient_events",
    "long_measurements",
    "wide_measurements",
    "patient_measurements",
    "long_events",
)
PER_PATIENT_KINDS = ("patients", "per_patient_events")
