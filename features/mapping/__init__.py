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
constants as missing and assay ceilings/floors as ``>``/``<`` (issue 17), in the analyte's
canonical unit, and ``units_before`` the unit of rows dated before a unit change.

A column is addressed by its header text (``"CRP (mg/L)"``), by its header path across header
rows (``"Day 7 (5-9) Timepoint / CRP (mg/L)"``; any trailing part of the path works when it is
unique), by spreadsheet ``letter`` or by 1-based ``position``. ``values`` maps source values
(``0/1`` → booleans, sex codes, …); ``na_values`` are placeholders that mean missing. Every
problem is reported with the mapping file, the YAML path (``sources[2].time.unit``) and the rule.
The reference, generated from these models, is ``docs/import-mapping.md``
(:mod:`features.mapping_docs`).

Only the shape is checked here; whether files and columns exist is checked by
:mod:`features.importer` against the extract itself.

Layout (one step each): ``values`` (value types and keys), ``columns`` (column and time
declarations), ``rules`` (cells → measurements and events), ``sources`` (the source kinds),
``spec`` (the whole mapping and its cross-source checks), ``loading`` (the YAML file).
"""

from __future__ import annotations

from features.mapping.columns import PLACEMENTS, ColumnSpec, Placement, TimeSpec, place_day
from features.mapping.loading import format_validation_error, load_mapping, parse_mapping
from features.mapping.rules import (
    VALUE_RTOL,
    AnalyteValues,
    Indication,
    MeasureRule,
    PatientEventRule,
    RowEventRule,
    same_value,
)
from features.mapping.sources import (
    KINDS,
    PER_PATIENT_KINDS,
    AnalyteOptions,
    LongEventsSource,
    LongMeasurementsSource,
    PatientMeasurementsSource,
    PatientsSource,
    PerPatientEventsSource,
    Source,
    WideMeasurementsSource,
)
from features.mapping.spec import InfusionSpec, Mapping
from features.mapping.values import (
    CRS_DERIVED,
    SKIP,
    TIME_UNITS,
    CrsDerivedEvent,
    MapTarget,
    Scalar,
    value_key,
)

__all__ = [
    "CRS_DERIVED",
    "KINDS",
    "PER_PATIENT_KINDS",
    "PLACEMENTS",
    "SKIP",
    "TIME_UNITS",
    "VALUE_RTOL",
    "AnalyteOptions",
    "AnalyteValues",
    "ColumnSpec",
    "CrsDerivedEvent",
    "Indication",
    "InfusionSpec",
    "LongEventsSource",
    "LongMeasurementsSource",
    "MapTarget",
    "Mapping",
    "MeasureRule",
    "PatientEventRule",
    "PatientMeasurementsSource",
    "PatientsSource",
    "PerPatientEventsSource",
    "Placement",
    "RowEventRule",
    "Scalar",
    "Source",
    "TimeSpec",
    "WideMeasurementsSource",
    "format_validation_error",
    "load_mapping",
    "parse_mapping",
    "place_day",
    "same_value",
    "value_key",
]
