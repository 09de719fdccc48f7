"""The entry point: every rule over the three tables, then the outputs asked for."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from features.cohort import Cohort
from features.digest import cohort_digest
from features.records import PreparedCohort
from features.schema import (
    TABLES,
)
from features.validation.canonical import (
    canonical_frame,
    canonical_frames,
    feature_records,
    row_orders,
    typed_columns,
)
from features.validation.collect import Collector, Table
from features.validation.columns import Parsed, check_columns, parse_table
from features.validation.events import check_events
from features.validation.measurements import Measured, check_measurements
from features.validation.problems import HIDDEN, Problem, ValidationReport
from features.validation.rows import check_patients, unknown_patients
from features.validation.summary import summarise


@dataclass(frozen=True)
class Outputs:
    """What :func:`validate_tables` builds for a valid cohort besides its problems.

    Every rule runs whatever is asked; these only select outputs, whose cost can exceed the
    checks themselves for one patient:

    - ``cohort``: the canonical, unit-converted frames (``report.cohort``);
    - ``summary``: the counts shown to a user (``report.summary``; needs ``cohort``);
    - ``digest``: the content digest (``Cohort.digest``, else ""; needs ``cohort``);
    - ``records``: what the feature code computes on, built from the validated columns rather
      than read back from frames: ``report.records`` (``features.records.Records``) and
      ``report.patient_columns`` (the patients table's typed columns, canonical order); with
      ``cohort`` the cohort comes already prepared (``features.records.PreparedCohort``);
    - ``typed_frames``: the typed, not unit-converted frames as given, for writers
      (``report.frames``).
    """

    cohort: bool = True
    summary: bool = True
    digest: bool = True
    records: bool = False
    typed_frames: bool = False

    def __post_init__(self) -> None:
        if not (self.cohort or self.records):
            raise ValueError("Outputs(cohort=False) needs records=True: nothing would be returned")


FOR_USER = Outputs()
"""A cohort folder shown to a user: cohort, summary and digest."""
FOR_WRITER = Outputs(typed_frames=True)
"""A cohort about to be written: also the typed frames as given."""
FOR_SCORING = Outputs(cohort=False, summary=False, digest=False, records=True)
"""A scoring request: the records only (no frame is built)."""


def validate_tables(
    tables: Mapping[str, Table | None],
    source: str,
    *,
    files: Mapping[str, str] | None = None,
    prior: Sequence[Problem] = (),
    outputs: Outputs = FOR_USER,
) -> ValidationReport:
    """Validate the three cohort tables; the report holds every problem and, when the cohort is
    valid, the :class:`Outputs` asked for.

    ``tables`` maps table name to its frame (absent or ``None`` = file missing) or to a mapping
    column name → values (a request's records, without building a DataFrame); ``files`` names
    the file of each table in messages (default ``frame.attrs["file"]``, else the table name).
    ``prior`` holds problems already found while reading (a table with a prior problem is not
    reported missing again).
    """
    col = Collector()
    col.problems.extend(prior)
    prior_files = {p.file for p in prior}
    parsed: dict[str, Parsed] = {}
    for name in TABLES:
        frame = tables.get(name)
        if frame is None:
            if not any(f.split(".")[0] == name for f in prior_files):
                col.add(
                    source,
                    f"required table {name!r} missing: add {name}.csv or {name}.parquet",
                )
            continue
        file = (files or {}).get(name) or str(getattr(frame, "attrs", {}).get("file", name))
        parsed[name] = parse_table(name, frame, file, col)
        if "patient_id" in parsed[name].text:
            col.hidden.update(parsed[name].text["patient_id"].uniques)
    # unknown-column names are shown before the hidden set is complete: redact them now
    col.problems = [
        Problem(p.file, p.row, HIDDEN, p.kind, p.rule, p.severity, p.more)
        if p.column is not None and p.column.strip() in col.hidden
        else p
        for p in col.problems
    ]

    known: set[str] | None = None
    if "patients" in parsed and "patient_id" in parsed["patients"].text:
        pat = parsed["patients"]
        known = set(pat.text["patient_id"].uniques)
    measured: Measured | None = None
    for name, p in parsed.items():
        if not p.usable and not p.raw:
            continue
        check_columns(p, col)
        if name == "patients":
            check_patients(p, col)
        else:
            unknown_patients(p, known, col)
        if name == "measurements":
            measured = check_measurements(p, col)
        if name == "events":
            check_events(p, col)

    report = ValidationReport(source, col.problems)
    if not report.ok or measured is None or set(parsed) != set(TABLES):
        return report
    if not all(p.usable for p in parsed.values()):  # pragma: no cover - implies an error above
        return report
    p_order, e_rows = row_orders(parsed)
    if outputs.records:
        report.records = feature_records(parsed, measured, p_order, e_rows)
        report.patient_columns = typed_columns(
            parsed["patients"], p_order, present_only=False, text_as_objects=True
        )
    if outputs.cohort:
        patients, measurements, events = canonical_frames(parsed, measured, p_order, e_rows)
        if outputs.summary:
            report.summary = summarise(patients, measurements, events, measured.dropped)
        report.cohort = Cohort(
            patients=patients,
            measurements=measurements,
            events=events,
            source=source,
            digest=cohort_digest(patients, measurements, events) if outputs.digest else "",
            warnings=tuple(p.render() for p in report.warnings),
        )
        if outputs.records:
            report.cohort = PreparedCohort(
                **{f.name: getattr(report.cohort, f.name) for f in dataclasses.fields(Cohort)},
                records=report.records,
            )
    if outputs.typed_frames:
        report.frames = {
            name: canonical_frame(p, np.flatnonzero(~p.blank), present_only=True)
            for name, p in parsed.items()
        }
    return report


def validate_frames(
    tables: Mapping[str, Table | None],
    source: str,
    *,
    files: Mapping[str, str] | None = None,
    prior: Sequence[Problem] = (),
    keep_frames: bool = False,
    summary: bool = True,
    digest: bool = True,
    records: bool = False,
    frames: bool = True,
) -> ValidationReport:
    """:func:`validate_tables` with the outputs given as keywords (the earlier signature, kept
    for the service until it passes an :class:`Outputs`): ``frames`` = ``Outputs.cohort``,
    ``keep_frames`` = ``Outputs.typed_frames``."""
    outputs = Outputs(
        cohort=frames, summary=summary, digest=digest, records=records, typed_frames=keep_frames
    )
    return validate_tables(tables, source, files=files, prior=prior, outputs=outputs)
