"""Fast path of CSV batch bodies: Arrow columns straight to the cohort tables.

``serving.batch_csv_exact`` turns the long CSV into request records and validates them with the
request models — exact messages (line, column, rule), but ≈1.5 s for 10⁴ patients, because
every cell becomes a Python object. Here pyarrow's C++ reader parses the body into typed columns
and every rule of the request models (``serving.schemas``: types, ``Literal`` choices, ``ge`` /
``le`` bounds, string lengths, list lengths, required cells) is checked column-wise; the rules are
read from the pydantic fields, not restated. Anything unusual — a cell Arrow cannot parse exactly
as Python would, a non-finite number, a broken rule, two patient rows for one patient — returns
None and the caller takes the exact path, whose answer (its errors, or its records) decides. So
the fast path can only ever be stricter, never more lenient (``tests/serving/test_batch_fast.py``
checks both paths give the same tables on mutated bodies).
"""

from __future__ import annotations

import functools
import io
import types
from dataclasses import dataclass, replace
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from pydantic import BaseModel

from serving.batch_csv_exact import (
    _BOOL_PATIENT,
    _FALSE,
    _FLOAT_PATIENT,
    _TEXT_PATIENT,
    _TRUE,
    CSV_COLUMNS,
    RECORDS,
)
from serving.conversion import Frames, patient_key
from serving.schemas import (
    BATCH_DEFAULTS,
    MAX_BATCH,
    PATIENT_FIELDS,
    BatchPatient,
    EventIn,
    MeasurementIn,
    PatientIn,
)


@dataclass(frozen=True)
class Rule:
    """What a request-model field accepts, read from its pydantic declaration."""

    kind: str  # number, integer, boolean, text
    required: bool
    ge: float | None = None
    le: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    choices: frozenset[str] | None = None


def rule_of(model: type[BaseModel], name: str) -> Rule:
    """The :class:`Rule` of ``model.name`` (raises TypeError for anything not translated)."""
    f = model.model_fields[name]
    annotation = f.annotation
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) != 1:
            raise TypeError(f"{model.__name__}.{name}: a union of several types")
        annotation = members[0]
    bounds: dict[str, Any] = {}
    for m in f.metadata:
        bound_of: dict[Any, str] = {
            at.Ge: "ge",
            at.Le: "le",
            at.MinLen: "min_length",
            at.MaxLen: "max_length",
        }
        key = bound_of.get(type(m))
        if key is None:
            raise TypeError(f"{model.__name__}.{name}: constraint {m!r} not translated")
        bounds[key] = getattr(m, key)
    if get_origin(annotation) is Literal:
        return Rule("text", f.is_required(), choices=frozenset(get_args(annotation)), **bounds)
    kinds: dict[Any, str] = {float: "number", int: "integer", bool: "boolean", str: "text"}
    kind = kinds.get(annotation)
    if kind is None:
        raise TypeError(f"{model.__name__}.{name}: type {annotation!r} not translated")
    return Rule(kind, f.is_required(), **bounds)


@functools.cache
def _rules() -> dict[str, dict[str, Rule]]:
    """Rules of the CSV's columns per record kind (patient, measurement, event)."""
    return {
        "patient": {
            **{c: rule_of(PatientIn, c) for c in PATIENT_FIELDS},
            "landmark": rule_of(BatchPatient, "landmark"),
            "as_of_hours": rule_of(BatchPatient, "as_of_hours"),
        },
        "measurement": {c: rule_of(MeasurementIn, c) for c in MeasurementIn.model_fields},
        "event": {c: rule_of(EventIn, c) for c in EventIn.model_fields},
        "ref": {"patient_ref": rule_of(BatchPatient, "patient_ref")},
    }


_TEXTS = frozenset(
    [
        *(c for c in PATIENT_FIELDS if c not in _FLOAT_PATIENT),
        "landmark",
        "analyte",
        "unit",
        "qualifier",
        "event",
    ]
)


class _Reject(Exception):
    """The fast path does not decide this body (the exact path will)."""


class _Codes:
    """A string column dictionary-encoded by Arrow: a code per row (-1 = empty cell) into its
    distinct texts — rules are checked once per distinct text, never per cell."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        encoded = pc.dictionary_encode(column.combine_chunks())
        self.codes = np.asarray(encoded.indices.fill_null(-1).to_numpy(), dtype=np.int64)
        self.uniques: list[str] = encoded.dictionary.to_pylist()

    def objects(self, rows: np.ndarray) -> np.ndarray:
        """The cells of ``rows`` as an object array (None = empty)."""
        table = np.array([*self.uniques, None], dtype=object)
        return table[self.codes[rows]]

    def categorical(self, rows: np.ndarray) -> pd.Categorical:
        """The cells of ``rows`` as a categorical over the distinct texts (no string per cell:
        the validator reads its codes)."""
        return pd.Categorical.from_codes(
            self.codes[rows], categories=pd.Index(self.uniques, dtype=object), validate=False
        )

    def check(self, rule: Rule, rows: np.ndarray) -> None:
        """``rule`` on the cells of ``rows`` (raise :class:`_Reject` when any breaks it)."""
        codes = self.codes[rows]
        if rule.required and (codes < 0).any():
            raise _Reject
        present = np.bincount(codes[codes >= 0], minlength=len(self.uniques))
        used = [self.uniques[c] for c in np.flatnonzero(present).tolist()]
        if rule.choices is not None:
            if not set(used) <= rule.choices:
                raise _Reject
        elif rule.kind == "text":
            lengths = [len(u) for u in used]
            if (
                rule.min_length is not None
                and min(lengths, default=rule.min_length) < rule.min_length
            ):
                raise _Reject
            if rule.max_length is not None and max(lengths, default=0) > rule.max_length:
                raise _Reject
        elif rule.kind == "boolean":
            if not {u.strip().lower() for u in used} <= _TRUE | _FALSE:
                raise _Reject
        else:
            raise _Reject  # pragma: no cover (numbers are read by _number)


def _number(column: pa.ChunkedArray, rule: Rule, rows: np.ndarray) -> np.ndarray:
    """float64 of a string column (NaN = empty), checked on ``rows`` (the record kind's)."""
    try:
        x = pc.cast(column, pa.float64())
    except pa.ArrowInvalid:  # not a number as Arrow reads them (a subset of Python's float())
        raise _Reject from None
    empty = np.asarray(pc.is_null(x).to_numpy(zero_copy_only=False), dtype=bool)
    x = np.asarray(x.to_numpy(zero_copy_only=False), dtype=np.float64)
    cells = x[rows]
    given = ~empty[rows]
    values = cells[given]
    if not np.isfinite(values).all():
        raise _Reject  # "nan", "inf", 1e999: the exact path names them
    if rule.required and not given.all():
        raise _Reject
    if rule.ge is not None and (values < rule.ge).any():
        raise _Reject
    if rule.le is not None and (values > rule.le).any():
        raise _Reject
    if rule.kind == "integer" and (values != np.floor(values)).any():
        raise _Reject
    return x


def csv_frames(raw: bytes) -> tuple[Frames, dict[str, list[Any]]] | None:
    """The CSV body as the cohort tables and the patients' request fields, or None."""
    try:
        return _frames(raw)
    except (_Reject, pa.ArrowInvalid, UnicodeDecodeError, ValueError):
        return None


def _frames(raw: bytes) -> tuple[Frames, dict[str, list[Any]]]:
    table = pcsv.read_csv(
        io.BytesIO(raw),
        convert_options=pcsv.ConvertOptions(
            column_types={c: pa.string() for c in CSV_COLUMNS},  # cells as written, typed below
            strings_can_be_null=True,
            null_values=[""],  # only an empty cell is missing ("NA" is text, as in batch_csv_exact)
        ),
        read_options=pcsv.ReadOptions(use_threads=True),
    )
    names = table.column_names
    if len(set(names)) != len(names) or "patient_ref" not in names or "record" not in names:
        raise _Reject
    cols = {n: table.column(n) for n in names if n in CSV_COLUMNS}
    n_rows = table.num_rows
    if n_rows == 0:
        raise _Reject
    rules = _rules()
    all_rows = np.arange(n_rows)
    refs = _Codes(cols["patient_ref"])
    refs.check(replace(rules["ref"]["patient_ref"], required=True), all_rows)
    record = _Codes(cols["record"])
    kind_of = np.array([*(_kind(u) for u in record.uniques), -1], dtype=np.int64)
    kind = kind_of[record.codes]
    if (kind < 0).any():
        raise _Reject
    ref_codes, unique_refs = refs.codes, refs.uniques  # codes in order of first appearance
    n = len(unique_refs)
    if not 1 <= n <= MAX_BATCH:
        raise _Reject
    p_rows = np.flatnonzero(kind == 0)
    if len(np.unique(ref_codes[p_rows])) != len(p_rows):
        raise _Reject  # a later patient row replaces an earlier one: the exact path's rule
    keys = np.array([patient_key(i) for i in range(n)], dtype=object)
    coded = {c: _Codes(cols[c]) for c in _TEXTS if c in cols}

    def numbers(name: str, rule: Rule, rows: np.ndarray) -> np.ndarray:
        if name not in cols:
            if rule.required and len(rows):
                raise _Reject
            return np.full(len(rows), np.nan)
        return _number(cols[name], rule, rows)[rows]

    def texts(name: str, rule: Rule, rows: np.ndarray, categorical: bool = False) -> Any:
        if name not in coded:
            if rule.required and len(rows):
                raise _Reject
            return np.full(len(rows), None, dtype=object)
        coded[name].check(rule, rows)
        return coded[name].categorical(rows) if categorical else coded[name].objects(rows)

    # patients: one per reference, in order of first appearance
    patient_of = np.full(n, -1, dtype=np.int64)
    patient_of[ref_codes[p_rows]] = p_rows
    has_row = patient_of >= 0
    patients: dict[str, np.ndarray] = {
        "patient_id": keys,
        "center": np.full(n, "service", dtype=object),
    }
    pr = rules["patient"]
    for c in PATIENT_FIELDS:
        out: np.ndarray
        if c in _FLOAT_PATIENT:
            out = np.full(n, np.nan)
            out[has_row] = numbers(c, pr[c], patient_of[has_row])
        else:
            cells = texts(c, pr[c], patient_of[has_row])
            if c in _BOOL_PATIENT:
                cells = np.array(
                    [None if v is None else v.strip().lower() in _TRUE for v in cells.tolist()],
                    dtype=object,
                )
            elif c not in _TEXT_PATIENT:
                raise _Reject
            out = np.full(n, None, dtype=object)
            out[has_row] = cells
        patients[c] = out
    as_of = np.full(n, np.nan)
    as_of[has_row] = numbers("as_of_hours", pr["as_of_hours"], patient_of[has_row])
    landmark = np.full(n, None, dtype=object)
    landmark[has_row] = texts("landmark", pr["landmark"], patient_of[has_row])

    tables: dict[str, dict[str, np.ndarray]] = {"patients": patients}
    origin: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "patients": (np.arange(n, dtype=np.int64), np.full(n, -1, dtype=np.int64))
    }
    mr, er = rules["measurement"], rules["event"]
    for table, k, limit in (("measurements", 1, 5000), ("events", 2, 500)):
        rows = np.flatnonzero(kind == k)
        rows = rows[np.argsort(ref_codes[rows], kind="stable")]  # by patient, rows in order
        who = ref_codes[rows]
        counts = np.bincount(who, minlength=n)
        if counts.max(initial=0) > limit:
            raise _Reject
        item = np.arange(len(rows), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        origin[table] = (who, item)
        if k == 1:
            tables[table] = {
                "patient_id": keys[who],
                "hours_from_infusion": numbers(
                    "hours_from_infusion", mr["hours_from_infusion"], rows
                ),
                "analyte": texts("analyte", mr["analyte"], rows, categorical=True),
                "value": numbers("value", mr["value"], rows),
                "unit": texts("unit", mr["unit"], rows, categorical=True),
                "qualifier": texts("qualifier", mr["qualifier"], rows),
            }
        else:
            tables[table] = {
                "patient_id": keys[who],
                "hours_from_infusion": numbers(
                    "hours_from_infusion", er["hours_from_infusion"], rows
                ),
                "event": texts("event", er["event"], rows),
                "grade": numbers("grade", er["grade"], rows),
                "dose_mg_per_kg": numbers("dose_mg_per_kg", er["dose_mg_per_kg"], rows),
            }
    fields = {
        "patient_ref": unique_refs,
        "landmark": landmark.tolist(),
        "as_of_hours": [None if np.isnan(v) else v for v in as_of.tolist()],
        "explain": [BATCH_DEFAULTS["explain"]] * n,  # not CSV columns (as in batch_csv_exact)
        "top_k": [BATCH_DEFAULTS["top_k"]] * n,
    }
    return Frames(tables, origin), fields


def _kind(text: str) -> int:
    """Index in :data:`RECORDS` of a ``record`` cell (stripped, any case), -1 when none."""
    t = text.strip().lower()
    return RECORDS.index(t) if t in RECORDS else -1
