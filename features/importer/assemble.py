"""One import run: read every source through the shared :class:`Reader`, dispatch on its kind,
then assemble the cohort frames (patients of the patient table only, duplicates, grade
conflicts, patients with no CRS information) and hand them to the validating writer."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.errors import CrsRiskError
from features.importer.events import read_long_events, resolve_grade_conflicts
from features.importer.measurements import read_long, read_patient_measurements
from features.importer.patients import (
    per_patient_rows,
    read_infusion,
    read_patient_events,
    read_patients,
)
from features.importer.reader import E_COLS, M_COLS, PROV, Reader
from features.importer.report import (
    R_CONFLICT_KEPT,
    R_DUPLICATE,
    R_DUPLICATE_EVENT,
    R_NOT_IN_PATIENTS,
    ImportReport,
    SourceReport,
)
from features.importer.table import collect_files
from features.importer.wide import read_wide
from features.io import write_cohort
from features.manifest import import_manifest, write_manifest
from features.mapping import (
    CRS_DERIVED,
    PER_PATIENT_KINDS,
    LongEventsSource,
    LongMeasurementsSource,
    Mapping,
    PatientMeasurementsSource,
    PatientsSource,
    PerPatientEventsSource,
    WideMeasurementsSource,
    load_mapping,
)
from features.mapping.spec import records_crs
from features.schema import GRADED_EVENTS, PATIENTS

ONE_ROW_PER_PATIENT = (*PER_PATIENT_KINDS, "patient_measurements")


def run(r: Reader) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read, convert and check every source; raise listing every problem, or the frames."""
    r.read_all()
    r.raise_if_problems()
    sources = r.mapping.sources
    all_ids = [r.ids(k) for k in range(len(sources))]
    r.patient_rows = [
        per_patient_rows(r, k, all_ids[k]) if s.kind in ONE_ROW_PER_PATIENT else {}
        for k, s in enumerate(sources)
    ]
    read_infusion(r)
    for k, src in enumerate(sources):
        if isinstance(src, PatientsSource):
            read_patients(r, k, src)
    for k, src in enumerate(sources):
        if isinstance(src, PatientsSource | PerPatientEventsSource):
            read_patient_events(r, k, src.events)
        elif isinstance(src, LongMeasurementsSource):
            read_long(r, k, src, all_ids[k])
        elif isinstance(src, WideMeasurementsSource):
            read_wide(r, k, src, all_ids[k])
        elif isinstance(src, PatientMeasurementsSource):
            read_patient_measurements(r, k, src)
        elif isinstance(src, LongEventsSource):
            read_long_events(r, k, src, all_ids[k])
    r.unmatched_values()
    r.raise_if_problems()
    patients = patient_frame(r)
    known = set(patients["patient_id"])
    measurements = measurement_frame(r, known)
    events = event_frame(r, known)
    r.raise_if_problems()
    return patients, measurements, events


def patient_frame(r: Reader) -> pd.DataFrame:
    rows = [{"patient_id": pid, **fields} for pid, fields in r.patients.items()]
    frame = pd.DataFrame(rows, columns=[c.name for c in PATIENTS.columns])
    for col in PATIENTS.columns:
        dtype = {"bool": "boolean", "float": "float64", "int": "Int64"}.get(col.dtype, "string")
        frame[col.name] = frame[col.name].astype(dtype)
    return frame.sort_values("patient_id", kind="stable").reset_index(drop=True)


def keep_known(r: Reader, frame: pd.DataFrame, known: set[str], what: str) -> pd.DataFrame:
    unknown = ~frame["patient_id"].isin(known)
    for k, n in frame.loc[unknown, "_src"].value_counts().items():
        report = r.reports[int(k)]
        report.drop(R_NOT_IN_PATIENTS, int(n))
        setattr(report, what, getattr(report, what) - int(n))
    return frame.loc[~unknown]


def _same(a: Any, b: Any) -> bool:  # two cells of one column: any type
    """Equal values for duplicate detection (missing equals missing; floats to 1e-9)."""
    if pd.isna(a) or pd.isna(b):
        return bool(pd.isna(a) and pd.isna(b))
    if isinstance(a, int | float | np.integer | np.floating):
        return bool(np.isclose(float(a), float(b), rtol=1e-9, atol=0.0))
    return a == b


def duplicates(
    r: Reader, frame: pd.DataFrame, key: list[str], same: list[str], what: str
) -> pd.DataFrame:
    """Drop later identical copies of a key; report (or keep-first) conflicting ones."""
    frame = frame.sort_values(["_src", "_row", "_col"], kind="stable").reset_index(drop=True)
    keyed = frame[key].astype(object).where(frame[key].notna(), "<unknown time>")
    later = keyed.duplicated(keep="first").to_numpy()
    if not later.any():
        return frame
    tuples = list(keyed.itertuples(index=False, name=None))
    first_of: dict[tuple, int] = {}
    for i, t in enumerate(tuples):
        first_of.setdefault(t, i)
    counted = what + "s"
    for dup in np.flatnonzero(later):
        first, row = frame.iloc[first_of[tuples[dup]]], frame.iloc[dup]
        k = int(row["_src"])
        if all(_same(row[c], first[c]) for c in same):
            r.reports[k].drop(R_DUPLICATE if what == "measurement" else R_DUPLICATE_EVENT)
        elif r.mapping.duplicates == "keep_first":
            r.reports[k].drop(R_CONFLICT_KEPT)
        else:
            ta, tb = r.table(int(first["_src"])), r.table(k)
            noun = "analyte" if what == "measurement" else "event"
            r.problem(
                f"conflicting {what}s for the same patient, time and {noun}: "
                f"{ta.file} row {ta.row_number(int(first['_row']))}, "
                f"{ta.column_label(int(first['_col']))} vs {tb.file} row "
                f"{tb.row_number(int(row['_row']))}, {tb.column_label(int(row['_col']))} "
                "(set duplicates: keep_first to keep the first)"
            )
        setattr(r.reports[k], counted, getattr(r.reports[k], counted) - 1)
    return frame.loc[~later]


def measurement_frame(r: Reader, known: set[str]) -> pd.DataFrame:
    frame = pd.DataFrame(r.measurements, columns=[*M_COLS, "_canonical", *PROV])
    frame = keep_known(r, frame, known, "measurements")
    frame = duplicates(
        r,
        frame,
        ["patient_id", "hours_from_infusion", "analyte"],
        ["_canonical", "qualifier"],
        "measurement",
    )
    frame = frame.sort_values(["patient_id", "hours_from_infusion", "analyte"], kind="stable")
    out = frame[M_COLS].reset_index(drop=True)
    out["hours_from_infusion"] = out["hours_from_infusion"].astype("float64")
    out["value"] = out["value"].astype("float64")
    out["qualifier"] = out["qualifier"].astype("string")
    return out


def event_frame(r: Reader, known: set[str]) -> pd.DataFrame:
    frame = pd.DataFrame(r.events, columns=[*E_COLS, *PROV])
    frame = keep_known(r, frame, known, "events")
    graded = frame["event"].isin(list(GRADED_EVENTS))
    key = ["patient_id", "hours_from_infusion", "event"]
    resolved = resolve_grade_conflicts(r, frame[graded], key, "event")
    for k, n in frame[graded].drop(resolved.index)["_src"].value_counts().items():
        r.reports[int(k)].events -= int(n)
    frame = pd.concat([resolved, frame[~graded]]) if len(resolved) else frame[~graded]
    frame = duplicates(r, frame, key, ["grade", "dose_mg_per_kg", "indication"], "event")
    frame = add_lost_to_follow_up(r, frame, known)
    frame = frame.sort_values(
        ["patient_id", "hours_from_infusion", "event"], kind="stable", na_position="last"
    )
    out = frame[E_COLS].reset_index(drop=True)
    out["hours_from_infusion"] = out["hours_from_infusion"].astype("float64")
    out["grade"] = out["grade"].astype("Int64")
    out["dose_mg_per_kg"] = out["dose_mg_per_kg"].astype("float64")
    out["indication"] = out["indication"].astype("string")
    return out


def add_lost_to_follow_up(r: Reader, frame: pd.DataFrame, known: set[str]) -> pd.DataFrame:
    """``no_crs_record: lost_to_follow_up``: a patient with no CRS event from any source gets a
    ``lost_to_follow_up`` event with unknown time (outcome unknown, never "no CRS")."""
    r.lost_to_follow_up = 0
    if r.mapping.no_crs_record != "lost_to_follow_up":
        return frame
    recorded = set(frame.loc[frame["event"].isin(CRS_DERIVED), "patient_id"])
    missing = sorted(known - recorded)
    r.lost_to_follow_up = len(missing)
    if not missing:
        return frame
    extra = pd.DataFrame(
        {
            "patient_id": missing,
            "hours_from_infusion": math.nan,
            "event": "lost_to_follow_up",
            "grade": None,
            "dose_mg_per_kg": math.nan,
            "indication": None,
            "_src": -1,
            "_row": -1,
            "_col": -1,
        }
    )
    return pd.concat([frame, extra], ignore_index=True)


def no_crs_information(patients: pd.DataFrame, events: pd.DataFrame) -> int:
    """Patients of the written cohort without any CRS event (onset, grade or maximum grade)
    from any source: "no CRS" unless the mapping declared them lost to follow-up."""
    recorded = set(events.loc[events["event"].isin(CRS_DERIVED), "patient_id"])
    return int((~patients["patient_id"].isin(recorded)).sum())


def convert(
    mapping: Mapping, sources: list[Path], mapping_name: str = "mapping"
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[SourceReport]]:
    """Read an extract through ``mapping``: ``(patients, measurements, events, per-source
    reports)`` in the cohort contract's columns, or :class:`CrsRiskError` listing every problem."""
    reader = Reader(mapping, mapping_name, collect_files(sources))
    patients, measurements, events = run(reader)
    return patients, measurements, events, reader.reports


def import_cohort(
    mapping: Path | str, sources: list[Path], out: Path | str, fmt: str = "csv"
) -> ImportReport:
    """``crs-risk cohort import``: convert ``sources`` through the mapping file and write the
    cohort folder ``out`` (validated first by :func:`features.io.write_cohort`; nothing is
    written when anything fails)."""
    mapping_path = Path(mapping)
    if fmt not in ("csv", "parquet"):
        raise CrsRiskError(f"--format {fmt!r}: use csv or parquet")
    if not sources:
        raise CrsRiskError("give at least one source file or folder of the extract")
    parsed = load_mapping(mapping_path)
    reader = Reader(parsed, mapping_path.name, collect_files(list(sources)))
    patients, measurements, events = run(reader)
    written = write_cohort(Path(out), patients, measurements, events, fmt=fmt)
    # provenance (issue 13): an imported folder names its mapping by digest, never the data
    digest = hashlib.sha256(mapping_path.read_bytes()).hexdigest()
    write_manifest(Path(out), import_manifest(digest, mapping_path.name))
    return ImportReport(
        mapping=mapping_path.name,
        out=Path(out),
        fmt=fmt,
        sources=reader.reports,
        n_patients=len(patients),
        n_measurements=len(measurements),
        n_events=len(events),
        analytes=measurements["analyte"].value_counts().to_dict(),
        event_counts=events["event"].value_counts().to_dict(),
        warnings=[p.render() for p in written.warnings],
        lost_to_follow_up=reader.lost_to_follow_up,
        no_crs_information=no_crs_information(patients, events),
        no_crs_record=parsed.no_crs_record,
        no_crs_record_set="no_crs_record" in parsed.model_fields_set,
        records_crs=records_crs(parsed),
    )
