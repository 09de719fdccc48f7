"""Rules that turn source cells into measurements and events."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from features.mapping.columns import ColumnSpec, TimeSpec
from features.mapping.values import CRS_DERIVED, MapTarget, StrictModel, value_key
from features.schema import DRUG_EVENTS, EVENTS, GRADED_EVENTS
from features.vocabulary import ANALYTES, resolve_analyte, resolve_unit

Indication = Literal["crs", "icans", "other"]


def _check_indication(event: str, indication: object) -> None:
    if indication is not None and event not in DRUG_EVENTS:
        raise ValueError(f"indication is for drug events ({', '.join(DRUG_EVENTS)}), not {event}")


def _check_analyte_name(name: str | None) -> str | None:
    if name is not None and resolve_analyte(name) is None:
        raise ValueError(f"unknown analyte {name!r} (keys: {', '.join(ANALYTES)})")
    return name


class MeasureRule(StrictModel):
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


class PatientEventRule(StrictModel):
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


class RowEventRule(StrictModel):
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


VALUE_RTOL = 1e-6
"""Relative tolerance of an ``analyte_values`` match: a unit conversion leaves float noise
(0.1 mg/dL × 10 = 1.0000000000000002 mg/L) and the profile writes a value with the digits it
needs to fall within 1e-7 of the data, while no assay reports a result to 7 significant digits."""


def same_value(value: float, declared: float) -> bool:
    """A canonical value equal to a declared ``analyte_values`` value, within :data:`VALUE_RTOL`."""
    return math.isclose(value, declared, rel_tol=VALUE_RTOL, abs_tol=1e-12)


class AnalyteValues(StrictModel):
    """Source artefacts of one analyte with a fix that needs no pandas (issue 17): constants
    written in place of a missing value, assay limits written as plain numbers, and a unit that
    changed part-way (``units_before``: rows dated before a date are in another unit).

    Every value is in the analyte's **canonical unit** (the unit the cohort profile reports; CRP
    in mg/L even when the source column is in mg/dL), compared with each cell after its unit
    conversion (relative tolerance 1e-6, for the float noise of a conversion). A declared value
    that matches no cell of its source is listed in the import report (not an error)."""

    missing: list[float] = Field(
        default_factory=list,
        description="Values that mean missing (a constant imputed for every missing cell), in "
        "the analyte's canonical unit (compared after unit conversion).",
    )
    ceiling: float | None = Field(
        None,
        description="Value written for results above the assay's upper limit (→ '>'), in the "
        "analyte's canonical unit (compared after unit conversion).",
    )
    floor: float | None = Field(
        None,
        description="Value written for results below the detection limit (→ '<'), in the "
        "analyte's canonical unit (compared after unit conversion).",
    )
    units_before: dict[str, str] = Field(
        default_factory=dict,
        description="Unit of the rows dated before a date, when the source's unit changed "
        "part-way: {2021-07-01: mg/dL} = rows timed up to 00:00 of 1 July 2021 are in mg/dL, "
        "later ones in the rule's unit (several dates: the earliest one after the row wins). "
        "A row's date is the patient's infusion date plus its time: needs infusion.",
    )

    @field_validator("units_before", mode="before")
    @classmethod
    def _dates(cls, units: Any) -> Any:
        if not isinstance(units, dict):
            return units
        out: dict[str, object] = {}
        for when, unit in units.items():
            if isinstance(when, dt.datetime) or not isinstance(when, dt.date | str):
                raise ValueError(f"{when!r} is not a date (write it as 2021-07-01)")
            try:
                day = when if isinstance(when, dt.date) else dt.date.fromisoformat(when.strip())
            except ValueError:
                raise ValueError(f"{when!r} is not a date (write it as 2021-07-01)") from None
            out[day.isoformat()] = unit
        return dict(sorted(out.items()))

    @model_validator(mode="after")
    def _some(self) -> AnalyteValues:
        if (
            not self.missing
            and self.ceiling is None
            and self.floor is None
            and not self.units_before
        ):
            raise ValueError("give missing, ceiling, floor and/or units_before")
        if self.ceiling is not None and self.floor is not None and self.floor >= self.ceiling:
            raise ValueError("floor must be below ceiling")
        return self

    def unit_cuts(self) -> list[tuple[dt.datetime, str]]:
        """``units_before`` as (00:00 of the date, unit), earliest first."""
        return [(dt.datetime.fromisoformat(d), u) for d, u in self.units_before.items()]

    def declared(self) -> list[tuple[str, float]]:
        """Every declared value as ``(field, value)``, in field order."""
        out = [("missing", v) for v in self.missing]
        out += [
            (name, v) for name in ("ceiling", "floor") if (v := getattr(self, name)) is not None
        ]
        return out
