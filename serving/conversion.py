"""Requests → the cohort contract: one conversion shared by the single and the batch routes.

A request's records (a validated ``RiskRequest``, a batch record as a plain dict, or a msgspec
struct of ``serving.batch_json``) become the three cohort-contract tables as NumPy columns
(:func:`to_frames`; no DataFrame) and go through ``features.validation.validate_frames`` — the
validator and unit conversion used for training cohorts — so a problem is reported with the
same rule text, mapped back to the request field (``body.measurements.3.unit``, or
``body.patients.2.…`` in a batch) without the submitted value. What comes back
(:class:`Validated`) is what the feature code reads (``features.records.Records``).
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from features.cohort import Cohort
from features.records import Records
from features.schema import PATIENTS
from features.validation import validate_frames
from serving.schemas import BATCH_DEFAULTS, PATIENT_FIELDS, InputWarning, RiskRequest

FILES = {"patients": "patient", "measurements": "measurements", "events": "events"}


class RequestProblems(Exception):
    """Contract problems of a request: 422 with one entry per offending field and rule."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} problem(s)")
        self.errors = errors


# --- request → cohort ------------------------------------------------------------------------
Request = RiskRequest | dict[str, Any]
"""A request: a validated ``RiskRequest``, or a batch record (the same fields as a plain dict,
``serving.schemas.batch_records``; absent keys take ``BATCH_DEFAULTS``)."""


def column(reqs: Sequence[Any], name: str) -> list[Any]:
    """Every request's (or item's) ``name``, read by one C-level getter over the list (absent
    keys of plain dicts: ``BATCH_DEFAULTS`` for request fields, else None)."""
    if reqs and isinstance(reqs[0], dict):
        default = BATCH_DEFAULTS.get(name)
        return [r.get(name, default) for r in reqs]
    return list(map(operator.attrgetter(name), reqs))


@dataclass
class Frames:
    """Cohort-contract tables of the requests (column → array), with each row's origin."""

    tables: dict[str, dict[str, np.ndarray]]
    origin: dict[str, tuple[np.ndarray, np.ndarray]]  # table → (patient index, item index)


def patient_key(i: int) -> str:
    """Internal key of the i-th patient of a request (never the caller's reference)."""
    return f"r{i:06d}"


def _floats(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _texts(values: Sequence[Any]) -> np.ndarray:
    """An object array of the cells (str / bool / None), 1-D."""
    out = np.array(values, dtype=object)  # 3× faster than filling np.empty for 10⁵ cells
    if out.ndim != 1:  # a cell that is itself a sequence: keep it as one cell
        out = np.empty(len(values), dtype=object)
        out[:] = values
    return out


_PATIENT_KIND = {c.name: c.dtype for c in PATIENTS.columns}


def _items(requests: Sequence[Request], name: str) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Every request's ``name`` items (measurements or events) in order, with their origin."""
    lists = column(requests, name)
    counts = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    items = list(itertools.chain.from_iterable(lists))
    patient = np.repeat(np.arange(len(lists), dtype=np.int64), counts)
    item = np.arange(len(items), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return items, patient, item


def to_frames(requests: Sequence[Request]) -> Frames:
    """The requests' records as the three cohort tables (units as given).

    Columns are NumPy arrays (``features.validation`` takes them as they are): no DataFrame is
    built for a request, the validator's canonical cohort is the first one. Values are read
    with one C-level getter per item (``operator.itemgetter`` / ``attrgetter``).
    """
    n = len(requests)
    keys = _texts([patient_key(i) for i in range(n)])
    dicts = n > 0 and isinstance(requests[0], dict)
    pats = column(requests, "patient")
    patients: dict[str, np.ndarray] = {"patient_id": keys, "center": _texts(["service"] * n)}
    for name in PATIENT_FIELDS:
        values = column(pats, name)
        patients[name] = _floats(values) if _PATIENT_KIND[name] == "float" else _texts(values)

    ms, m_pat, m_item = _items(requests, "measurements")
    get = operator.itemgetter if dicts else operator.attrgetter
    k = len(ms)

    def read(name: str, dtype: Any) -> np.ndarray:  # one C loop per column, no list between
        return np.fromiter(map(get(name), ms), dtype=dtype, count=k)

    measurements = {
        "patient_id": keys[m_pat],
        "hours_from_infusion": read("hours_from_infusion", np.float64),
        "analyte": read("analyte", object),
        "value": read("value", np.float64),
        "unit": read("unit", object),
        "qualifier": _texts(column(ms, "qualifier")) if dicts else read("qualifier", object),
    }
    es, e_pat, e_item = _items(requests, "events")
    if dicts:
        e_rows = [
            (e.get("hours_from_infusion"), e["event"], e.get("grade"), e.get("dose_mg_per_kg"))
            for e in es
        ]
    else:
        e_rows = [(e.hours_from_infusion, e.event, e.grade, e.dose_mg_per_kg) for e in es]
    e_cols = [[row[k] for row in e_rows] for k in range(4)]
    events = {
        "patient_id": keys[e_pat],
        "hours_from_infusion": _floats(e_cols[0]),
        "event": _texts(e_cols[1]),
        "grade": _floats(e_cols[2]),
        "dose_mg_per_kg": _floats(e_cols[3]),
    }
    every = np.arange(n, dtype=np.int64)
    origin = {
        "patients": (every, np.full(n, -1, dtype=np.int64)),
        "measurements": (m_pat, m_item),
        "events": (e_pat, e_item),
    }
    return Frames({"patients": patients, "measurements": measurements, "events": events}, origin)


_TABLE_OF_FILE = {v: k for k, v in FILES.items()}
_FIELD_OF_TABLE = {"patients": "patient", "measurements": "measurements", "events": "events"}


def _loc(frames: Frames, problem: Any, batch: bool) -> list[str | int]:
    table = _TABLE_OF_FILE.get(problem.file)
    loc: list[str | int] = ["body"]
    if table is None:
        return loc
    patient, item = frames.origin[table]
    if problem.row is not None and 1 <= problem.row <= len(patient):
        i, j = int(patient[problem.row - 1]), int(item[problem.row - 1])
        if batch:
            loc += ["patients", i]
        loc.append(_FIELD_OF_TABLE[table])
        if j >= 0:
            loc.append(j)
    else:
        loc.append(_FIELD_OF_TABLE[table])
    if problem.column and problem.column not in ("patient_id", "center"):
        loc.append(problem.column)
    return loc


def _message(problem: Any) -> str:
    """The rule broken, never the submitted value (it may be patient data)."""
    text = problem.rule
    if problem.more:
        text += f" (… and {problem.more:,} more)"
    return text


@dataclass
class Validated:
    """The requests validated into what the feature code reads (no canonical frames).

    ``records``: measurements and events as ``features.records.Records`` (patient code = the
    request's index in the batch); ``patients``: the patients table's typed columns;
    ``warnings`` per request index. ``cohort`` builds the canonical frames on demand.
    """

    records: Records
    patients: dict[str, Any]
    warnings: dict[int, list[InputWarning]]
    tables: dict[str, dict[str, np.ndarray]]

    @functools.cached_property
    def cohort(self) -> Cohort:
        """The requests as a canonical :class:`Cohort` (frames; validated again, for callers
        that want the frames — scoring itself never does)."""
        report = validate_frames(self.tables, "request", files=FILES, summary=False)
        assert report.cohort is not None
        return report.cohort


def validate_requests(requests: Sequence[Request], batch: bool = False) -> Validated:
    """The requests validated by the cohort contract's code, or :class:`RequestProblems` naming
    every field (the records are what the feature code computes on: no frame is built)."""
    return validate_frames_of(to_frames(requests), batch)


def validate_frames_of(frames: Frames, batch: bool = False) -> Validated:
    """:func:`validate_requests` on tables already built from the requests."""
    report = validate_frames(
        frames.tables,
        "request",
        files=FILES,
        summary=False,
        digest=False,
        records=True,
        frames=False,
    )
    if not report.ok or report.records is None or report.patient_columns is None:
        errors = [
            {"loc": _loc(frames, p, batch), "msg": _message(p), "type": "contract"}
            for p in report.errors
        ]
        raise RequestProblems(errors or [{"loc": ["body"], "msg": "invalid", "type": "contract"}])
    warnings: dict[int, list[InputWarning]] = {}
    for p in report.warnings:
        table = _TABLE_OF_FILE.get(p.file)
        if table is None or p.row is None or not 1 <= p.row <= len(frames.origin[table][0]):
            continue
        i = int(frames.origin[table][0][p.row - 1])
        field_ = ".".join(str(x) for x in _loc(frames, p, False)[1:])
        warnings.setdefault(i, []).append(InputWarning(code="input", field=field_, message=p.rule))
    return Validated(report.records, report.patient_columns, warnings, frames.tables)


def request_index(valid: Validated) -> np.ndarray:
    """Request index of each patient code of ``valid.records`` (codes follow sorted keys)."""
    keys = np.asarray(valid.patients["patient_id"], dtype=object)
    return np.array([int(str(k)[1:]) for k in keys], dtype=np.int64)
