"""The whole mapping: its sources, the infusion date and the checks across sources."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from features.mapping.columns import ColumnSpec, TimeSpec
from features.mapping.sources import (
    PER_PATIENT_KINDS,
    LongEventsSource,
    PatientsSource,
    Source,
    WideMeasurementsSource,
)
from features.mapping.values import CRS_DERIVED, Scalar, StrictModel


class InfusionSpec(StrictModel):
    """Where each patient's infusion date(-time) is: the origin of every ``unit: date`` time.
    A date without a time of day (or at 00:00) counts from the start of the infusion day."""

    source: str = Field(description="Name of the patients source holding the column.")
    column: ColumnSpec = Field(description="Infusion date or date-time column.")
    date_format: str | None = Field(None, description="strptime format (default: ISO 8601).")


class Mapping(StrictModel):
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
        description="A patient with no CRS information in any source: nothing (read as "
        '"no CRS", a negative), or a lost_to_follow_up event with unknown time (outcome '
        "unknown: excluded and counted). The import report counts these patients either way "
        'and warns when this key is not set and some are read as "no CRS".',
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
        for i, s in enumerate(self.sources):
            for key, rule in (getattr(s, "analyte_values", None) or {}).items():
                if rule.units_before and self.infusion is None:
                    raise ValueError(
                        f"sources[{i}].analyte_values.{key}.units_before dates each row from "
                        "the patient's infusion date; declare infusion (source and column)"
                    )
        if self.no_crs_record != "nothing" and not records_crs(self):
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


def records_crs(mapping: Mapping) -> bool:
    """Whether any source of ``mapping`` records CRS (a crs_grade column, a CRS event rule or a
    long_events source)."""
    for s in mapping.sources:
        if isinstance(s, LongEventsSource):
            return True
        if isinstance(s, WideMeasurementsSource) and s.crs_grade is not None:
            return True
        if any(e.event in CRS_DERIVED for e in getattr(s, "events", [])):
            return True
    return False
