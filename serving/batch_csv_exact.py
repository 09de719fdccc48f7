"""CSV input of ``POST /v1/risk/batch``: one long table, one record per row.

Columns: ``patient_ref`` (groups the rows of one patient; required), ``record`` (``patient``,
``measurement`` or ``event``), then the cohort contract's columns a record needs —
patient rows: the patient fields plus optional ``landmark`` and ``as_of_hours``; measurement
rows: ``hours_from_infusion, analyte, value, unit[, qualifier]``; event rows:
``hours_from_infusion, event[, grade, dose_mg_per_kg]``. Empty cells are missing. Cells are
converted to the JSON types here (a bad number names its CSV line and column) and then
validated by the same pydantic models as JSON requests.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np
import pandas as pd

from features.errors import CrsRiskError
from features.schema import PATIENTS
from serving.schemas import PATIENT_FIELDS, BatchRequest, EventIn, MeasurementIn, batch_records

RECORDS = ("patient", "measurement", "event")
_FLOAT_PATIENT = tuple(c.name for c in PATIENTS.columns if c.dtype == "float")
_BOOL_PATIENT = tuple(c.name for c in PATIENTS.columns if c.dtype == "bool")
_TEXT_PATIENT = tuple(
    c.name
    for c in PATIENTS.columns
    if c.dtype in ("category", "string") and c.name not in ("patient_id", "center")
)
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
MAX_PROBLEMS = 20
CSV_COLUMNS = frozenset(
    [
        *("patient_ref", "record", *PATIENT_FIELDS, "landmark", "as_of_hours"),
        *MeasurementIn.model_fields,
        *EventIn.model_fields,
    ]
)
"""Every column a CSV batch body may have (an unknown header is an error)."""


class _Column:
    """One CSV column's cells converted once per distinct text (a column of 10⁵ cells has far
    fewer distinct values), with the problem of each bad cell."""

    def __init__(self, cells: np.ndarray, kind: str, name: str) -> None:
        codes, uniques = pd.factorize(cells, use_na_sentinel=True)  # None (empty) → -1
        converted: list[Any] = []
        errors: list[str | None] = []
        for u in uniques.tolist():
            value, error = _convert(u, kind)
            converted.append(value)
            errors.append(None if error is None else f"column {name}: {error}")
        value_of = np.empty(len(converted) + 1, dtype=object)  # last slot: the empty cell
        value_of[:-1] = converted
        self.values = value_of[codes]
        error_of = np.array([*errors, None], dtype=object)
        self.errors = error_of[codes]  # None where fine or empty


def _convert(text: str, kind: str) -> tuple[Any, str | None]:
    """A cell's value for ``kind`` (number, integer, boolean) or why it is not one."""
    if kind == "boolean":
        t = text.strip().lower()
        if t in _TRUE:
            return True, None
        if t in _FALSE:
            return False, None
        return None, "is not true/false"
    try:
        x = float(text)
    except ValueError:
        return None, "is not a number"
    if kind == "integer":
        if not math.isfinite(x) or x != int(x):
            return None, "is not a whole number"
        return int(x), None
    return x, None


def parse_csv(raw: bytes) -> BatchRequest:
    """Parse the long CSV into a :class:`BatchRequest` (CrsRiskError / ValidationError)."""
    return BatchRequest.model_validate(_bodies(raw))


def parse_csv_records(raw: bytes) -> dict[str, Any]:
    """Parse the long CSV into batch records: ``BatchRequest``'s rules, plain dicts
    (``serving.schemas.batch_records``), as the service scores them."""
    return batch_records().validate_python(_bodies(raw))


def _bodies(raw: bytes) -> dict[str, Any]:
    """The CSV's patients as request bodies (cells converted, not yet validated).

    Column-wise: every cell is converted once per distinct text, the problems of all rows are
    collected in row order (the first :data:`MAX_PROBLEMS` are reported) and only then are
    the bodies assembled, row by row.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CrsRiskError("CSV body is not UTF-8 text") from None
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError):
        raise CrsRiskError(
            "CSV body is not a readable comma-separated table with a header"
        ) from None
    for col in ("patient_ref", "record"):
        if col not in frame.columns:
            raise CrsRiskError(f"CSV: required column {col!r} missing")
    cells = {}
    for c in frame.columns:
        column = frame[c].to_numpy(dtype=object)
        column[column == ""] = None  # empty cells are missing
        cells[c] = column
    refs = cells["patient_ref"]
    record_text = cells["record"]
    record = np.array(
        [RECORDS.index(r) if r in RECORDS else -1 for r in _lower(record_text)], dtype=np.int64
    )

    # problems, in row order and, within a row, in the order the cells are read
    problems: list[tuple[int, int, str]] = []
    no_ref = np.flatnonzero(pd.isna(refs))
    problems += [(int(i), 0, "column patient_ref: empty") for i in no_ref]
    bad_record = np.flatnonzero(~pd.isna(refs) & (record < 0))
    shown = ", ".join(RECORDS)
    problems += [(int(i), 0, f"column record: not one of {shown}") for i in bad_record]
    usable = ~pd.isna(refs) & (record >= 0)
    plan = {
        0: [
            *((c, "number") for c in _FLOAT_PATIENT),
            *((c, "boolean") for c in _BOOL_PATIENT),
            ("as_of_hours", "number"),
        ],
        1: [("hours_from_infusion", "number"), ("value", "number")],
        2: [("hours_from_infusion", "number"), ("grade", "integer"), ("dose_mg_per_kg", "number")],
    }
    parsed: dict[tuple[str, str], _Column] = {}
    for kind, checks in plan.items():
        rows = usable & (record == kind)
        for order, (c, how) in enumerate(checks, start=1):
            if c not in cells:
                continue
            conv = parsed.get((c, how))
            if conv is None:
                conv = parsed[(c, how)] = _Column(cells[c], how, c)
            for k in np.flatnonzero(rows & (conv.errors != None)).tolist():  # noqa: E711 (elementwise)
                problems.append((k, order, str(conv.errors[k])))
    if problems:
        problems.sort(key=lambda x: (x[0], x[1]))
        listed = [f"line {i + 2}, {text}" for i, _, text in problems[:MAX_PROBLEMS]]
        raise CrsRiskError("CSV: " + "; ".join(listed))
    if not usable.any():
        raise CrsRiskError("CSV: no patient record")

    def value(c: str, how: str, rows: np.ndarray) -> list[Any]:
        conv = parsed.get((c, how))
        return [None] * len(rows) if conv is None else conv.values[rows].tolist()

    def given(c: str, rows: np.ndarray) -> list[Any]:
        column = cells.get(c)
        return [None] * len(rows) if column is None else column[rows].tolist()

    # patients in order of first appearance; each row's record goes to its patient in row order
    patients: dict[str, dict[str, Any]] = {}
    for ref in dict.fromkeys(refs.tolist()):
        patients[ref] = {"patient_ref": ref, "patient": {}, "measurements": [], "events": []}
    for i in np.flatnonzero(record == 0).tolist():
        p: dict[str, Any] = {}
        row = np.array([i])
        for c in _FLOAT_PATIENT:
            if cells.get(c) is not None and cells[c][i] is not None:
                p[c] = value(c, "number", row)[0]
        for c in _BOOL_PATIENT:
            if cells.get(c) is not None and cells[c][i] is not None:
                p[c] = value(c, "boolean", row)[0]
        for c in _TEXT_PATIENT:
            if cells.get(c) is not None and cells[c][i] is not None:
                p[c] = cells[c][i]
        b = patients[refs[i]]
        b["patient"] = p  # a later patient row replaces an earlier one
        if cells.get("landmark") is not None and cells["landmark"][i] is not None:
            b["landmark"] = cells["landmark"][i]
        if cells.get("as_of_hours") is not None and cells["as_of_hours"][i] is not None:
            b["as_of_hours"] = value("as_of_hours", "number", row)[0]
    rows = np.flatnonzero(record == 1)
    qualifier = given("qualifier", rows)
    for ref, a, h, v, u, q in zip(
        refs[rows].tolist(),
        given("analyte", rows),
        value("hours_from_infusion", "number", rows),
        value("value", "number", rows),
        given("unit", rows),
        qualifier,
        strict=True,
    ):
        m = {"analyte": a, "hours_from_infusion": h, "value": v, "unit": u}
        if q is not None:
            m["qualifier"] = q
        patients[ref]["measurements"].append(m)
    rows = np.flatnonzero(record == 2)
    for ref, ev, h, g_text, g, d_text, d in zip(
        refs[rows].tolist(),
        given("event", rows),
        value("hours_from_infusion", "number", rows),
        given("grade", rows),
        value("grade", "integer", rows),
        given("dose_mg_per_kg", rows),
        value("dose_mg_per_kg", "number", rows),
        strict=True,
    ):
        e: dict[str, Any] = {"event": ev, "hours_from_infusion": h}
        if g_text is not None:
            e["grade"] = g
        if d_text is not None:
            e["dose_mg_per_kg"] = d
        patients[ref]["events"].append(e)
    return {"patients": list(patients.values())}


def _lower(values: np.ndarray) -> list[str]:
    """Stripped lower-case text of each cell ("" when empty), once per distinct cell."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    lowered = [str(u).strip().lower() for u in uniques.tolist()] + [""]
    return [lowered[c] for c in codes.tolist()]


def unknown_csv_columns(raw: bytes) -> list[str]:
    """Header names of a CSV body that are not request columns (a misspelt column is an
    error, never silently ignored and imputed). Column *names* are not patient data."""
    first = raw.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").strip("\r")
    try:
        header = next(csv.reader([first]))
    except (csv.Error, StopIteration):
        return []
    return [h[:64] for h in header if h.strip() and h not in CSV_COLUMNS]
