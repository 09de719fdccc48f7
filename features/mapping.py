"""The import mapping: a validated, declarative description of how a real extract becomes a cohort.

A mapping (YAML) lists ``sources``; each names a file of the extract (matched by file name), how
to read it (``sheet``, ``header_rows``, ``na_values``), which column holds the patient id, and
what it holds (``kind``):

- ``patients``: one row per patient (or, with ``rows: repeated``, a patient-day table whose
  patient columns repeat); ``columns`` map cohort patient fields to source columns,
  ``constants`` give fields one value for everyone, ``events`` turn per-patient flags into events.
- ``per_patient_events``: one row per patient, only ``events`` (outcome and treatment flags).
- ``long_measurements``: one row per value (time, analyte, value, unit or a unit column).
- ``wide_measurements``: one row per patient and time point; ``measurements`` name the analyte
  columns (fixed unit or a per-row unit column, value maps for text codes), ``crs_grade`` an
  optional per-row CRS grade from which onset and changes are derived, ``events`` per-row flags
  (daily drugs with their ``indication``, ICU) or grades (ICANS).
- ``patient_measurements``: one row per patient, each matched column one analyte at one time
  (the shape of workbooks with several header rows: time window in one header row, analyte and
  unit in the next, the exact draw day in a neighbouring column).
- ``long_events``: one row per event (time, event name, grade, dose, indication).

Time (:class:`TimeSpec`): days or hours after infusion, or calendar dates counted from each
patient's infusion date (top-level ``infusion``). A day-granular time is known at the end of its
day unless ``placement`` says otherwise (../shared/DESIGN.md, "Time"). Top-level policies:
``duplicates``, ``grade_conflicts`` (same-time grades: error or maximum), ``no_crs_record``
(patients without CRS information → ``lost_to_follow_up``). ``analyte_values`` declare imputed
constants as missing and assay ceilings/floors as ``>``/``<`` (issue 17).

A column is addressed by its header text (``"CRP (mg/L)"``), by its header path across header
rows (``"Day 7 (5-9) Timepoint / CRP (mg/L)"``; any trailing part of the path works when it is
unique), by spreadsheet ``letter`` or by 1-based ``position``. ``values`` maps source values
(``0/1`` → booleans, sex codes, …); ``na_values`` are placeholders that mean missing. Every
problem is reported with the mapping file, the YAML path (``sources[2].time.unit``) and the rule.
The reference, generated from these models, is ``docs/import-mapping.md``
(:mod:`features.mapping_docs`).

Only the shape is checked here; whether files and columns exist is checked by
:mod:`features.importer` against the extract itself.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.errors import CrsRiskError
from features.schema import DRUG_EVENTS, EVENTS, GRADED_EVENTS, PATIENTS
from features.vocabulary import ANALYTES, resolve_analyte, resolve_unit

Scalar = bool | int | float | str
MapTarget = bool | int | float | str | None
TIME_UNITS: dict[str, float] = {"days": 24.0, "hours": 1.0}
CrsDerivedEvent = Literal["crs_onset", "crs_grade", "crs_max_grade"]
CRS_DERIVED: tuple[CrsDerivedEvent, ...] = ("crs_onset", "crs_grade", "crs_max_grade")
SKIP = "skip"

_TYPE_TAGS = {
    "str", "int", "float", "bool", "none", "ColumnSpec", "dict", "list", "constrained-float",
}  # fmt: skip


def value_key(value: object) -> str:
    """Comparison key of a source cell or a mapping key: ``1``, ``1.0`` and ``"1"`` agree.

    Numbers compare by value, text by its stripped, case-folded form, so a value map written as
    ``{0: false, 1: true}`` matches a CSV cell ``"1"`` and an Excel cell ``1.0`` alike.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    text = " ".join(str(value).split()).casefold()
    try:
        number = float(text)
    except ValueError:
        return text
    if number != number or number in (float("inf"), float("-inf")):
        return text
    return str(int(number)) if number.is_integer() else repr(number)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Strict):
    """One source column: by header text/path, letter or position; optional value map."""

    header: str | None = Field(
        None, description="Header text, or header path across header rows ('Day 7 / CRP')."
    )
    letter: str | None = Field(None, description="Spreadsheet column letter (A, B, …, AA).")
    position: int | None = Field(default=None, ge=1, description="1-based column position.")
    values: dict[str, MapTarget] | None = Field(
        None,
        description="Value map: source value → value (null = missing); must cover every value.",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"header": data} if isinstance(data, str) else data

    @field_validator("letter")
    @classmethod
    def _letter(cls, letter: str | None) -> str | None:
        if letter is not None and not re.fullmatch(r"[A-Za-z]{1,3}", letter.strip()):
            raise ValueError(f"{letter!r} is not a spreadsheet column letter (A, B, …, AA, …)")
        return None if letter is None else letter.strip().upper()

    @field_validator("values", mode="before")
    @classmethod
    def _keys(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return {value_key(k): v for k, v in values.items()}
        return values

    @model_validator(mode="after")
    def _one_address(self) -> ColumnSpec:
        given = [n for n in ("header", "letter", "position") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of header, letter or position")
        return self

    def describe(self) -> str:
        if self.header is not None:
            return repr(self.header)
        if self.letter is not None:
            return f"letter {self.letter}"
        return f"position {self.position}"


Placement = Literal["end_of_day", "start_of_day", "exact"] | Annotated[float, Field(ge=0, le=24)]
PLACEMENTS = ("end_of_day", "start_of_day", "exact")


class TimeSpec(_Strict):
    """Time of a row or column: a ``column`` or a constant/template ``value``.

    ``unit`` ``days`` or ``hours`` count from infusion (``t + offset``); ``date`` reads a calendar
    date(-time) and counts from the patient's infusion date (the mapping's ``infusion``).
    A whole day (or a date without a time of day) is *day-granular*: it is placed where the value
    became known, ``placement`` (default ``end_of_day`` = 24·d + 24 h; ``start_of_day`` = 24·d h,
    e.g. "drawn before infusion"; a number = that hour of its day; ``exact`` = the day count is an
    exact time). A fractional day ("true date" 7.25) or a date-time keeps its exact value; hours
    are always exact. ``fallback`` is used when the time cell is empty. ``source`` reads the column
    from another per-patient source (joined on the patient id). Templates
    (``"{window} / true date_{analyte}"``, ``"{day}"``) are filled from the named groups of a
    measurement rule's ``match``.
    """

    column: ColumnSpec | None = Field(None, description="Column holding the time.")
    value: float | str | None = Field(
        None, description="Constant time (or a template filled from the rule's match groups)."
    )
    unit: Literal["days", "hours", "date"] = Field(
        description="days or hours after infusion, or date (a calendar date or date-time)."
    )
    offset: float = Field(0.0, description="Added to the time before conversion (days/hours).")
    fallback: float | str | None = Field(
        None, description="Time used when the time cell is empty (same unit; days/hours only)."
    )
    source: str | None = Field(
        None, description="Name of the per-patient source that holds the time column."
    )
    placement: Placement | None = Field(
        None,
        description="Where a day-granular time is placed: end_of_day (default for days and "
        "dates), start_of_day, exact, or an hour of the day 0–24 (hours: always exact).",
    )
    date_format: str | None = Field(
        None, description="strptime format of date cells (default: ISO 8601 / spreadsheet dates)."
    )

    @model_validator(mode="after")
    def _one_time(self) -> TimeSpec:
        if (self.column is None) == (self.value is None):
            raise ValueError("give exactly one of column or value")
        if self.source is not None and self.column is None:
            raise ValueError("source needs a column")
        if self.unit == "hours" and self.placement not in (None, "exact"):
            raise ValueError("placement applies to days and dates; hours are exact")
        if self.unit == "date":
            if self.column is None:
                raise ValueError("unit date needs a column of dates")
            if self.offset or self.fallback is not None:
                raise ValueError("offset and fallback are for days/hours, not dates")
        elif self.date_format is not None:
            raise ValueError("date_format needs unit: date")
        return self

    @property
    def scale(self) -> float:
        return TIME_UNITS.get(self.unit, 24.0)

    @property
    def placed(self) -> str | float:
        """The placement in force: the declared one, else end_of_day (days/dates) or exact."""
        if self.placement is not None:
            return self.placement
        return "exact" if self.unit == "hours" else "end_of_day"

    def describe_placement(self) -> str:
        placed = self.placed
        if self.unit == "hours":
            return "hours (exact)"
        exact = "date-times" if self.unit == "date" else "fractional days"
        if placed == "exact":
            return f"{self.unit}, exact"
        if isinstance(placed, str):
            where = placed.replace("_", " ")
        else:
            where = f"hour {placed:g} of the day"
        return f"{self.unit}: whole days known at {where}, {exact} exact"

    def require_numbers(self) -> None:
        """Outside measurement rules there are no match groups: value/fallback are numbers."""
        for name in ("value", "fallback"):
            given = getattr(self, name)
            if isinstance(given, str):
                try:
                    float(given)
                except ValueError:
                    raise ValueError(
                        f"time.{name} {given!r} must be a number here (templates only work in "
                        "measurement rules with match)"
                    ) from None

    def number(self, name: str) -> float | None:
        given = getattr(self, name)
        return None if given is None else float(given)


def place_day(day: float, placement: str | float) -> float:
    """Hours from infusion of a time given in days (see :class:`TimeSpec`): a whole day is known
    at the end of it unless placed otherwise; a fractional day is an exact time."""
    if placement == "exact" or not float(day).is_integer():
        return day * 24.0
    if placement == "start_of_day":
        return day * 24.0
    if placement == "end_of_day":
        return day * 24.0 + 24.0
    return day * 24.0 + float(placement)


Indication = Literal["crs", "icans", "other"]


def _check_indication(event: str, indication: object) -> None:
    if indication is not None and event not in DRUG_EVENTS:
        raise ValueError(f"indication is for drug events ({', '.join(DRUG_EVENTS)}), not {event}")


def _check_analyte_name(name: str | None) -> str | None:
    if name is not None and resolve_analyte(name) is None:
        raise ValueError(f"unknown analyte {name!r} (keys: {', '.join(ANALYTES)})")
    return name


class MeasureRule(_Strict):
    """Measurement columns: one ``column`` or every column whose header path fully matches
    the regular expression ``match`` (case-insensitive). Named groups ``analyte`` and ``unit``
    stand in for the fixed ``analyte``/``unit``; other groups fill the ``time`` templates."""

    column: ColumnSpec | None = Field(None, description="One measurement column.")
    match: str | None = Field(
        None, description="Regular expression over header paths: every matching column."
    )
    analyte: str | None = Field(None, description="Analyte key or alias (or group analyte).")
    unit: str | None = Field(None, description="Unit of every value (or group unit).")
    unit_column: ColumnSpec | None = Field(
        None, description="Column holding each row's unit (wide tables)."
    )
    values: dict[str, MapTarget] | None = Field(
        None,
        description="Value map applied to every cell (text codes → numbers, true/false → 1/0, "
        "null = missing); every value present must be covered.",
    )
    time: TimeSpec | None = Field(None, description="Time of the column (per-patient tables).")

    @field_validator("values", mode="before")
    @classmethod
    def _keys(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return {value_key(k): v for k, v in values.items()}
        return values

    @field_validator("analyte")
    @classmethod
    def _analyte(cls, analyte: str | None) -> str | None:
        return _check_analyte_name(analyte)

    @model_validator(mode="after")
    def _shape(self) -> MeasureRule:
        if (self.column is None) == (self.match is None):
            raise ValueError("give exactly one of column or match")
        groups: set[str] = set()
        if self.match is not None:
            try:
                groups = set(re.compile(self.match).groupindex)
            except re.error as exc:
                raise ValueError(f"match is not a valid regular expression: {exc}") from None
        if self.analyte is None and "analyte" not in groups:
            raise ValueError("give analyte (or a named group (?P<analyte>…) in match)")
        units = (self.unit is not None) + (self.unit_column is not None) + ("unit" in groups)
        if units != 1:
            raise ValueError("give exactly one of unit, unit_column or a named group (?P<unit>…)")
        if self.values is not None and self.column is not None and self.column.values is not None:
            raise ValueError("give the value map once (values or column.values)")
        if self.analyte is not None and self.unit is not None:
            key = resolve_analyte(self.analyte)
            if key is not None and resolve_unit(key, self.unit) is None:
                raise ValueError(
                    f"unit {self.unit!r} is not accepted for {key} "
                    f"(accepted: {', '.join(ANALYTES[key].units)})"
                )
        return self


class PatientEventRule(_Strict):
    """A per-patient event: emitted when ``flag`` is true (after its value map), when ``grade``
    is present for graded events, or when the ``time`` cell is present otherwise. Without a
    time the event has unknown time (it can define an outcome, never a feature)."""

    event: str = Field(description="Event name of the contract (crs_max_grade, tocilizumab, …).")
    flag: ColumnSpec | None = Field(
        None, description="Boolean column (after its value map): the event happened."
    )
    grade: ColumnSpec | int | None = Field(None, description="Grade column or constant.")
    time: TimeSpec | None = Field(None, description="Time of the event (empty = unknown).")
    dose: ColumnSpec | None = Field(None, description="Dose column (mg/kg).")
    indication: Indication | ColumnSpec | None = Field(
        None, description="Why a drug was given: crs, icans, other, or a column (drugs only)."
    )

    @field_validator("event")
    @classmethod
    def _event(cls, event: str) -> str:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r} (allowed: {', '.join(EVENTS)})")
        return event

    @model_validator(mode="after")
    def _shape(self) -> PatientEventRule:
        _check_indication(self.event, self.indication)
        graded = self.event in GRADED_EVENTS
        if graded and self.grade is None:
            raise ValueError(f"{self.event} needs a grade (column or number)")
        if not graded and self.grade is not None:
            raise ValueError(f"{self.event} takes no grade")
        if isinstance(self.grade, int):
            lo, hi = GRADED_EVENTS[self.event]
            if not lo <= self.grade <= hi:
                raise ValueError(f"grade {self.grade} outside {lo}–{hi} for {self.event}")
        if not graded and self.flag is None and (self.time is None or self.time.column is None):
            raise ValueError(f"{self.event} needs a flag column or a time column")
        if self.time is not None:
            self.time.require_numbers()
        return self


class RowEventRule(_Strict):
    """An event read from each row of a wide table at the row's time: a drug, ICU or other
    event when ``flag`` is true (a daily tocilizumab/steroid/ICU flag), a graded event when
    ``grade`` is present. ``first_only`` emits it at the first flagged row of each patient only
    (e.g. ICU admission from a daily "in ICU" flag)."""

    event: str = Field(description="Event name of the contract.")
    flag: ColumnSpec | None = Field(None, description="Boolean column (after its value map).")
    grade: ColumnSpec | None = Field(None, description="Grade column (graded events).")
    dose: ColumnSpec | None = Field(None, description="Dose column (mg/kg).")
    indication: Indication | ColumnSpec | None = Field(
        None, description="crs, icans, other, or a column mapped to them (drug events only)."
    )
    first_only: bool = Field(False, description="Only the first flagged row of each patient.")

    @field_validator("event")
    @classmethod
    def _event(cls, event: str) -> str:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r} (allowed: {', '.join(EVENTS)})")
        if event in CRS_DERIVED:
            raise ValueError(f"{event} comes from crs_grade (the per-row CRS grade column)")
        return event

    @model_validator(mode="after")
    def _shape(self) -> RowEventRule:
        _check_indication(self.event, self.indication)
        if self.event in GRADED_EVENTS:
            if self.grade is None or self.flag is not None:
                raise ValueError(f"{self.event} needs a grade column (and no flag)")
        elif self.flag is None or self.grade is not None:
            raise ValueError(f"{self.event} needs a flag column (and no grade)")
        return self


class AnalyteValues(_Strict):
    """Source artefacts of one analyte with a fix that needs no pandas (issue 17): constants
    written in place of a missing value, and assay limits written as plain numbers."""

    missing: list[float] = Field(
        default_factory=list,
        description="Values that mean missing (a constant imputed for every missing cell).",
    )
    ceiling: float | None = Field(
        None, description="Value written for results above the assay's upper limit (→ '>')."
    )
    floor: float | None = Field(
        None, description="Value written for results below the detection limit (→ '<')."
    )

    @model_validator(mode="after")
    def _some(self) -> AnalyteValues:
        if not self.missing and self.ceiling is None and self.floor is None:
            raise ValueError("give missing, ceiling and/or floor")
        if self.ceiling is not None and self.floor is not None and self.floor >= self.ceiling:
            raise ValueError("floor must be below ceiling")
        return self


class _Source(_Strict):
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


class AnalyteOptions(_Strict):
    analytes: dict[str, str] = Field(
        default_factory=dict, description="Source analyte name → analyte key or skip."
    )
    unknown_analytes: Literal["error", "skip"] = Field(
        "error", description="An analyte name not in the vocabulary: error, or skip (counted)."
    )
    analyte_values: dict[str, AnalyteValues] = Field(
        default_factory=dict,
        description="Per analyte key: imputed constants that mean missing, ceiling, floor.",
    )

    @field_validator("analyte_values")
    @classmethod
    def _value_keys(cls, rules: dict[str, AnalyteValues]) -> dict[str, AnalyteValues]:
        out: dict[str, AnalyteValues] = {}
        for name, rule in rules.items():
            key = resolve_analyte(name)
            if key is None:
                raise ValueError(f"unknown analyte {name!r} (keys: {', '.join(ANALYTES)})")
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


class InfusionSpec(_Strict):
    """Where each patient's infusion date(-time) is: the origin of every ``unit: date`` time.
    A date without a time of day (or at 00:00) counts from the start of the infusion day."""

    source: str = Field(description="Name of the patients source holding the column.")
    column: ColumnSpec = Field(description="Infusion date or date-time column.")
    date_format: str | None = Field(None, description="strptime format (default: ISO 8601).")


class Mapping(_Strict):
    """A whole import mapping (see the module docstring)."""

    version: Literal[1] = Field(1, description="Mapping format version.")
    description: str | None = Field(None, description="Free text.")
    na_values: list[Scalar] = Field(
        default_factory=list, description="Placeholders meaning missing, in every source."
    )
    duplicates: Literal["error", "keep_first"] = Field(
        "error",
        description="Conflicting values for one patient, time and analyte/event: error or keep "
        "the first (counted).",
    )
    grade_conflicts: Literal["error", "max"] = Field(
        "error",
        description="Two CRS/ICANS grades of one patient at one time: error naming both rows, "
        "or keep the maximum (counted).",
    )
    no_crs_record: Literal["nothing", "lost_to_follow_up"] = Field(
        "nothing",
        description="A patient with no CRS information in any source: nothing, or a "
        "lost_to_follow_up event with unknown time (outcome unknown; counted).",
    )
    infusion: InfusionSpec | None = Field(
        None, description="Infusion date per patient (needed by unit: date times)."
    )
    sources: list[Source] = Field(min_length=1, description="The files of the extract.")

    @model_validator(mode="after")
    def _cross(self) -> Mapping:
        if not any(s.kind == "patients" for s in self.sources):
            raise ValueError("needs at least one source of kind 'patients' (the patient table)")
        names = [s.name for s in self.sources if s.name is not None]
        if len(names) != len(set(names)):
            raise ValueError("source names must be unique")
        patient_sources = {s.name for s in self.sources if s.kind == "patients" and s.name}
        if self.infusion is not None and self.infusion.source not in patient_sources:
            raise ValueError(
                f"infusion.source: {self.infusion.source!r} is not the name of a patients source"
            )
        if self.infusion is None and any(t.unit == "date" for t in _times(self)):
            raise ValueError("a time has unit: date; declare infusion (source and column)")
        if self.no_crs_record != "nothing" and not _records_crs(self):
            raise ValueError(
                "no_crs_record: no source records CRS (a crs_grade column, a CRS event rule "
                "or a long_events source)"
            )
        per_patient = {s.name for s in self.sources if s.kind in PER_PATIENT_KINDS and s.name}
        owner: dict[str, int] = {}
        for i, s in enumerate(self.sources):
            if isinstance(s, PatientsSource):
                for field in (*s.columns, *s.constants):
                    if field in owner:
                        raise ValueError(
                            f"patient field {field!r} is given by sources[{owner[field]}] and "
                            f"sources[{i}]; give each field in one source"
                        )
                    owner[field] = i
            for j, rule in enumerate(getattr(s, "events", None) or []):
                time = getattr(rule, "time", None)
                ref = time.source if time is not None else None
                if ref is not None and ref not in per_patient:
                    raise ValueError(
                        f"sources[{i}].events[{j}].time.source: {ref!r} is not the name of a "
                        "per-patient source (kind patients or per_patient_events)"
                    )
        return self


def _times(mapping: Mapping) -> list[TimeSpec]:
    """Every time declaration of a mapping."""
    out: list[TimeSpec] = []
    for s in mapping.sources:
        out += [t for t in (getattr(s, "time", None),) if t is not None]
        out += [m.time for m in getattr(s, "measurements", []) if m.time is not None]
        out += [e.time for e in getattr(s, "events", []) if getattr(e, "time", None) is not None]
    return out


def _records_crs(mapping: Mapping) -> bool:
    for s in mapping.sources:
        if isinstance(s, LongEventsSource):
            return True
        if isinstance(s, WideMeasurementsSource) and s.crs_grade is not None:
            return True
        if any(e.event in CRS_DERIVED for e in getattr(s, "events", [])):
            return True
    return False


# --- loading --------------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans (only true/false; ``yes``/``no``/``on``/``off`` stay
    text, so sex or answer codes are not silently turned into booleans) that refuses duplicate
    keys (PyYAML would silently keep the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (line {mark.line + 1})", mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _yaml_path(loc: tuple[str | int, ...]) -> str:
    """``('sources', 2, 'patients', 'columns', 'x')`` → ``sources[2].columns.x``.

    Pydantic puts the discriminator tag after a source's index and the branch type names of
    unions into ``loc``; neither is part of the YAML, so both are left out.
    """
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        after_source = i >= 2 and isinstance(loc[i - 1], int) and loc[i - 2] == "sources"
        if (after_source and part in KINDS) or part in _TYPE_TAGS or "[" in part:
            continue
        out += f".{part}" if out else part
    return out or "(top level)"


def format_validation_error(name: str, exc: ValidationError) -> list[str]:
    """One line per problem: ``mapping NAME: YAML.PATH: rule``; union branches collapsed."""
    lines: list[str] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        path = _yaml_path(tuple(err["loc"]))
        if path in seen and err["type"] not in ("extra_forbidden", "missing"):
            continue
        seen.add(path)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not part of the mapping format)"
        elif err["type"] == "union_tag_invalid":
            tag = err.get("ctx", {}).get("tag")
            path, msg = f"{path}.kind", f"unknown kind {tag!r} (kinds: {', '.join(KINDS)})"
        elif err["type"] == "union_tag_not_found":
            path, msg = f"{path}.kind", f"kind is required (kinds: {', '.join(KINDS)})"
        elif err["type"] in ("literal_error", "enum"):
            msg = f"{msg}; got {err['input']!r}"
        lines.append(f"mapping {name}: {path}: {msg}")
    return lines


def parse_mapping(data: object, name: str = "mapping") -> Mapping:
    """Validate already-parsed YAML; raise :class:`CrsRiskError` listing every problem."""
    if not isinstance(data, dict):
        raise CrsRiskError(f"mapping {name}: the top level must be a mapping with 'sources'")
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        lines = format_validation_error(name, exc)
        count = f"{len(lines)} problem" + ("s" if len(lines) != 1 else "")
        raise CrsRiskError(f"mapping {name} is invalid ({count}):\n" + "\n".join(lines)) from None


def load_mapping(path: Path | str) -> Mapping:
    """Read and validate a mapping file; errors name the file, the YAML path and the rule."""
    path = Path(path)
    if not path.is_file():
        raise CrsRiskError(f"mapping {path}: file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CrsRiskError(f"mapping {path.name}: not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise CrsRiskError(f"mapping {path.name}: not UTF-8 text") from None
    return parse_mapping(data, path.name)
