"""Validate cohort tables against the contract and build the canonical, unit-normalised cohort.

Every rule reads its declaration from ``features.schema`` (tables, columns, types, allowed values,
ranges, event vocabulary) and ``features.vocabulary`` (analytes, units, conversions, ranges), so
the contract lives in one place and ``docs/cohort-format.md`` is generated from the same source.

The checks are vectorised (NumPy / pandas / pyarrow over whole columns; Python loops only run over
the *distinct* values of a column, the analytes or the event types), so ten million measurement
rows validate in seconds. pandera was considered and not used: its error reports carry raw index
labels and failure cases (patient identifiers included), cannot name the 1-based file row, and
the cross-table and per-patient ordering rules would be custom checks anyway.

Rows are **data rows**: row 1 is the first record after the header (for CSV: line = row + 1 when
the file has no blank lines). Each problem names file, row, column, the offending value and the
rule; a value that equals a patient identifier is never shown. Many problems of one kind are
listed up to :data:`MAX_LISTED` rows, followed by one entry counting the rest.

Event ordering rules follow the ASTCT consensus definitions of CRS onset, grade and resolution
(Lee DW et al., Biol Blood Marrow Transplant 2019;25:625).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.cohort import Cohort
from features.digest import cohort_digest
from features.records import PreparedCohort, Records, make_records
from features.schema import (
    DRUG_EVENTS,
    EVENTS,
    GRADED_EVENTS,
    SCHEMA,
    TABLES,
    Column,
)
from features.vocabulary import ANALYTES, resolve_analyte, resolve_unit

Severity = Literal["error", "warning"]

MAX_LISTED = 20
"""Rows listed per (file, column, rule); the rest are counted in one extra entry."""

NULL_TOKENS: tuple[str, ...] = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL")
"""Cell texts read as a missing value (CSV and text columns alike)."""

TRUE_TOKENS: frozenset[str] = frozenset({"true", "1", "1.0", "yes"})
FALSE_TOKENS: frozenset[str] = frozenset({"false", "0", "0.0", "no"})

TIME_WINDOWS: tuple[tuple[str, float, float], ...] = (
    ("pre-infusion (≤ 0 h)", -math.inf, 0.0),
    ("(0, 24] h", 0.0, 24.0),
    ("(24, 48] h", 24.0, 48.0),
    ("(48, 72] h", 48.0, 72.0),
    ("> 72 h", 72.0, math.inf),
)
"""Summary windows of measurement times, the landmark cut's boundaries: lower bound exclusive,
upper inclusive (a value at 0 h is pre-infusion, at 24 h it is known at the 24 h landmark)."""

ANALYTE_KEYS: tuple[str, ...] = tuple(ANALYTES)
# per analyte code (an extra last slot for unknown analytes): ranges, whole-number flag
_HARD_LOW = np.array([a.hard[0] for a in ANALYTES.values()] + [-np.inf])
_HARD_HIGH = np.array([a.hard[1] for a in ANALYTES.values()] + [np.inf])
_SOFT_LOW = np.array([a.soft[0] for a in ANALYTES.values()] + [-np.inf])
_SOFT_HIGH = np.array([a.soft[1] for a in ANALYTES.values()] + [np.inf])
_INTEGER = np.array([a.integer for a in ANALYTES.values()] + [False])
_VOCABULARY = sorted({*ANALYTE_KEYS, *(a.label for a in ANALYTES.values())})
_resolve_unit = functools.lru_cache(maxsize=4096)(resolve_unit)  # pure: same text, same unit


@functools.lru_cache(maxsize=4096)
def _analyte_code(name: str) -> int:
    """Index in :data:`ANALYTE_KEYS` of an analyte name or alias (-2 = unknown); pure, cached."""
    key = resolve_analyte(name)
    return ANALYTE_KEYS.index(key) if key is not None else -2


@functools.lru_cache(maxsize=4096)
def _unit_factor(ai: int, text: str) -> tuple[float, float] | None:
    """(scale, offset) of unit ``text`` for analyte code ``ai``, None when not accepted."""
    key = ANALYTE_KEYS[ai]
    declared = _resolve_unit(key, text)
    if declared is None:
        return None
    conv = ANALYTES[key].units[declared]
    return conv.scale, conv.offset


_NULL_SET = frozenset(NULL_TOKENS)
_HIDDEN = "<patient id hidden>"
_ROWS_NOTE = "rows are data rows: row 1 is the first record after the header (CSV line = row + 1)"


# --- problems and report -------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One validation finding. ``row`` is the 1-based data row (``None`` = file or column level).

    ``more`` > 0 marks the entry that stands for that many further rows of the rule listed above.
    """

    file: str
    row: int | None
    column: str | None
    value: str | None
    rule: str
    severity: Severity = "error"
    more: int = 0

    def render(self) -> str:
        where = self.file if self.row is None else f"{self.file}:{self.row}"
        parts = [where]
        if self.column is not None:
            parts.append(f"column={self.column}")
        if self.value is not None:
            parts.append(f"value={self.value}")
        text = f"{' '.join(parts)} — {self.rule}"
        if self.more:
            text += f" (… and {self.more:,} more rows)"
        return text


@dataclass
class ValidationReport:
    """Outcome of validating one cohort: problems, a summary, and the cohort when valid."""

    source: str
    problems: list[Problem]
    summary: dict[str, Any] = field(default_factory=dict)
    cohort: Cohort | None = None
    frames: dict[str, pd.DataFrame] | None = field(default=None, repr=False)
    """Typed (not unit-converted) frames as given, for writers; only set when requested."""
    records: Records | None = field(default=None, repr=False)
    """The valid cohort's records (``validate_frames(records=True)``)."""
    patient_columns: dict[str, Any] | None = field(default=None, repr=False)
    """The valid patients table's typed columns, canonical order (``records=True``)."""

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def n_errors(self) -> int:
        """Number of offending rows/files over all error entries (overflow entries included)."""
        return sum(p.more or 1 for p in self.errors)

    @property
    def n_warnings(self) -> int:
        return sum(p.more or 1 for p in self.warnings)

    def render_problems(self) -> str:
        """Every problem, one per line as ``file:row column=… value=… — rule``."""
        lines: list[str] = []
        for title, items in (("errors", self.errors), ("warnings", self.warnings)):
            if items:
                lines.append(f"{title}:")
                lines.extend(f"  {p.render()}" for p in items)
        return "\n".join(lines)

    def render(self) -> str:
        """Human text: the summary when valid, else every problem (warnings after errors)."""
        if not self.ok:
            head = (
                f"cohort {self.source!r} is NOT valid: {self.n_errors:,} error(s), "
                f"{self.n_warnings:,} warning(s); {_ROWS_NOTE}."
            )
            return f"{head}\n{self.render_problems()}"
        lines = [f"cohort {self.source!r} is valid.", *_render_summary(self.summary)]
        if self.warnings:
            lines.append(f"{self.n_warnings:,} warning(s); {_ROWS_NOTE}.")
            lines.append(self.render_problems())
        return "\n".join(lines)


def _fmt_count_map(counts: Mapping[str, int]) -> str:
    return " · ".join(f"{k} {v:,}" for k, v in counts.items()) or "none"


def _render_summary(s: Mapping[str, Any]) -> list[str]:
    if not s:
        return []
    lines = [
        f"patients: {s['patients']:,} in {len(s['centres'])} centre(s): "
        f"{_fmt_count_map(s['centres'])}",
        f"measurements: {s['measurements']:,} rows"
        + (
            f" ({s['duplicates_dropped']:,} identical duplicates dropped)"
            if s["duplicates_dropped"]
            else ""
        ),
        f"  by analyte: {_fmt_count_map(s['measurements_by_analyte'])}",
        f"  by time window: {_fmt_count_map(s['measurements_by_window'])}",
        f"events: {s['events']:,} rows, {s['events_unknown_time']:,} with unknown time",
        f"  by type: {_fmt_count_map(s['events_by_type'])}",
        "missing values per patient column: "
        + " · ".join(f"{k} {v:.0%}" for k, v in s["missing_by_patient_column"].items()),
    ]
    if s["absent_patient_columns"]:
        lines.append(f"  absent optional columns: {', '.join(s['absent_patient_columns'])}")
    return lines


# --- collecting problems -------------------------------------------------------------------------
Values: TypeAlias = pd.Series | np.ndarray | Sequence[Any] | Callable[[np.ndarray], Sequence[Any]]
Column_: TypeAlias = pd.Series | np.ndarray
Table: TypeAlias = pd.DataFrame | Mapping[str, np.ndarray | pd.Series | Sequence[Any]]
"""A table: a DataFrame, or column name → values (NumPy arrays; object arrays for text)."""


_NOT_SCALAR = object()


def _scalar_text(value: Any) -> str | object | None:
    """Text of a missing, yes/no or number cell (None = missing; whole floats without ``.0``),
    :data:`_NOT_SCALAR` for any other value (text is the caller's to clean or quote)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        f = float(value)
        if math.isnan(f):
            return None
        return str(int(f)) if f.is_integer() and abs(f) < 1e15 else repr(f)
    return _NOT_SCALAR


class _Collector:
    """Accumulates problems, caps the rows listed per rule and hides patient identifiers."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.hidden: set[str] = set()

    def show(self, value: Any) -> str | None:
        scalar = _scalar_text(value)
        if scalar is not _NOT_SCALAR:
            return scalar  # type: ignore[return-value]
        text = value if isinstance(value, str) else str(value)
        if text.strip() in self.hidden:
            return _HIDDEN
        if len(text) > 40:
            text = text[:39] + "…"
        return repr(text)

    def add(
        self,
        file: str,
        rule: str,
        *,
        column: str | None = None,
        value: Any = None,
        severity: Severity = "error",
    ) -> None:
        self.problems.append(Problem(file, None, column, self.show(value), rule, severity))

    def rows(
        self,
        file: str,
        where: np.ndarray,
        rule: str,
        *,
        column: str | None = None,
        values: Values | None = None,
        detail: Callable[[np.ndarray], Sequence[str]] | None = None,
        severity: Severity = "error",
    ) -> int:
        """Report the rows where ``where`` holds (bool mask or 0-based positions); return count."""
        if where.dtype == bool:
            if not where.any():  # the common case: nothing to report
                return 0
            idx = np.flatnonzero(where)
        else:
            idx = np.asarray(where, dtype=np.int64)
        if idx.size == 0:
            return 0
        listed = idx[:MAX_LISTED]
        if values is None:
            shown: list[str | None] = [None] * listed.size
        elif callable(values):
            shown = [self.show(v) for v in values(listed)]
        elif isinstance(values, pd.Series):
            shown = [self.show(v) for v in values.iloc[listed].tolist()]
        else:
            shown = [self.show(values[int(i)]) for i in listed]
        details = list(detail(listed)) if detail is not None else None
        for k, i in enumerate(listed):
            text = rule if details is None else f"{rule} ({details[k]})"
            self.problems.append(Problem(file, int(i) + 1, column, shown[k], text, severity))
        rest = int(idx.size - listed.size)
        if rest:
            self.problems.append(Problem(file, None, column, None, rule, severity, more=rest))
        return int(idx.size)


# --- parsing columns -----------------------------------------------------------------------------
@dataclass
class _Codes:
    """A text column as integer codes into cleaned distinct values (-1 = missing)."""

    codes: np.ndarray
    uniques: list[str]

    def text(self, idx: np.ndarray) -> list[str | None]:
        return [self.uniques[c] if c >= 0 else None for c in self.codes[idx]]


_SMALL = 256  # below this many cells a dict beats pandas' hash table (call overhead)


def _factorize(series: pd.Series | np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Codes into the distinct values, in order of appearance (-1 = missing), as pandas does."""
    if isinstance(series, np.ndarray) and series.dtype == object and len(series) <= _SMALL:
        try:
            lookup: dict[Any, int] = {}
            # ``v == v`` is False for NaN; None and NaN are missing (code -1), as in pandas
            codes = [
                lookup.setdefault(v, len(lookup)) if v is not None and v == v else -1
                for v in series
            ]
            return np.array(codes, dtype=np.int64), list(lookup)
        except TypeError:  # unhashable cells, pd.NA: the general path below handles them
            pass
    try:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    except TypeError:  # unhashable cells (lists, dicts) from exotic Parquet columns
        cells = series if isinstance(series, pd.Series) else pd.Series(series, dtype=object)
        codes, uniques = pd.factorize(
            cells.map(lambda v: v if v is None or isinstance(v, str | int | float) else repr(v)),
            use_na_sentinel=True,
        )
    return np.asarray(codes, dtype=np.int64), list(uniques)


def _clean_text(value: Any) -> str | None:
    """The cell as stripped text, ``None`` when missing (empty or a :data:`NULL_TOKENS` text)."""
    if type(value) is str:  # the common case first (10⁴ distinct ids in a large request)
        text = value.strip()
        return None if text in _NULL_SET else text
    scalar = _scalar_text(value)
    if scalar is not _NOT_SCALAR:
        return scalar  # type: ignore[return-value]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    return None if text in _NULL_SET else text


def _text_codes(series: pd.Series) -> _Codes:
    if isinstance(series, np.ndarray) and series.dtype == object and len(series) <= _SMALL:
        fast = _small_text_codes(series)
        if fast is not None:
            return fast
    codes, raw = _factorize(series)
    cleaned = [_clean_text(u) for u in raw]
    remap = np.full(len(cleaned) + 1, -1, dtype=np.int64)  # last slot maps code -1 to -1
    lookup: dict[str, int] = {}
    for i, text in enumerate(cleaned):
        if text is not None:
            remap[i] = lookup.setdefault(text, len(lookup))
    return _Codes(remap[codes], list(lookup))


def _small_text_codes(values: np.ndarray) -> _Codes | None:
    """:func:`_text_codes` of a short object column in one pass (a request's columns): each
    distinct cell is cleaned once, in order of appearance, exactly as the general path does
    (factorize, clean the distinct cells, merge cells that clean to the same text). ``None``
    for a cell the dict cannot take (unhashable, ``pd.NA``): the general path decides."""
    seen: dict[Any, int] = {}  # raw cell → final code (-1 = missing)
    lookup: dict[str, int] = {}  # cleaned text → final code
    codes = []
    try:
        for v in values:
            c = seen.get(v)
            if c is None:
                if v is None or v != v:  # None and NaN: missing, as in pandas' factorize
                    c = -1
                else:
                    text = _clean_text(v)
                    c = -1 if text is None else lookup.setdefault(text, len(lookup))
                seen[v] = c
            codes.append(c)
    except TypeError:
        return None
    return _Codes(np.array(codes, dtype=np.int64), list(lookup))


def _float_or_bad(value: Any) -> float | None:
    """Parse one distinct cell: a float, NaN for missing, ``None`` when not a finite number."""
    if isinstance(value, bool | np.bool_):
        return float(value)
    try:
        if isinstance(value, int | float | np.integer | np.floating | Decimal):
            f = float(value)
        else:
            text = _clean_text(value)
            if text is None:
                return math.nan
            f = float(text.replace("_", "x"))  # Python accepts 1_000; a data file should not
    except (ValueError, TypeError, OverflowError):
        return None
    if math.isnan(f):
        return math.nan
    return f if math.isfinite(f) else None


def _numbers(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Parse a column as float64: values (NaN = missing or bad) and the mask of bad cells."""
    dtype = series.dtype
    n = len(series)
    if isinstance(series, np.ndarray) and dtype.kind in "fiu":  # plain NumPy numbers: no
        values = series.astype(np.float64)  # pandas dtype checks (as the numeric path below)
        bad = np.isinf(values)
        values[bad] = np.nan
        return values, bad
    if pd.api.types.is_bool_dtype(dtype):
        values = np.array(_floats(series), copy=True)
        return values, np.zeros(n, dtype=bool)
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        # copied: the frame's own buffer may be read-only and is never modified
        values = np.array(_floats(series), copy=True)
        bad = np.isinf(values)
        values[bad] = np.nan
        return values, bad
    if isinstance(dtype, pd.StringDtype):
        # Fast path: Arrow casts the whole column; falls back to pandas only when a cell is bad.
        try:
            arr = pc.utf8_trim_whitespace(pa.array(series))
            values = np.asarray(
                pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
            ).copy()
            bad = np.isinf(values)
            values[bad] = np.nan
            return values, bad
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass
    if (
        isinstance(dtype, pd.StringDtype | pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
    ):
        codes, raw = _factorize(series)
        parsed = [_float_or_bad(u) for u in raw]
        table = np.array([math.nan if p is None else p for p in parsed] + [math.nan])
        bad_u = np.array([p is None for p in parsed] + [False])
        return table[codes], bad_u[codes]
    # datetimes, durations, intervals, complex numbers …: not numbers in this contract
    present = np.asarray(pd.notna(series), dtype=bool)
    return np.full(n, np.nan), present


def _floats(values: pd.Series | np.ndarray) -> np.ndarray:
    """A numeric or boolean column as float64 (NaN = missing)."""
    if isinstance(values, np.ndarray):
        return values.astype(np.float64)
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _bools(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Parse true/false/1/0/yes/no (any case) as 1.0/0.0; NaN = missing; mask of bad cells."""
    codes = _text_codes(series)
    table = np.full(len(codes.uniques) + 1, np.nan)
    bad_u = np.zeros(len(codes.uniques) + 1, dtype=bool)
    for i, text in enumerate(codes.uniques):
        low = text.lower()
        if low in TRUE_TOKENS:
            table[i] = 1.0
        elif low in FALSE_TOKENS:
            table[i] = 0.0
        else:
            bad_u[i] = True
    return table[codes.codes], bad_u[codes.codes]


def _fmt_range(bounds: tuple[float, float], unit: str | None) -> str:
    lo, hi = bounds
    text = f"{lo:g}–{hi:g}" if math.isfinite(hi) else f"≥ {lo:g}"
    return f"{text} {unit}" if unit else text


# --- one parsed table ----------------------------------------------------------------------------
@dataclass
class _Parsed:
    """A table after structural checks and type parsing (nothing reported per row yet)."""

    name: str
    file: str
    n: int
    raw: dict[str, Column_] = field(default_factory=dict)  # present known columns, as given
    text: dict[str, _Codes] = field(default_factory=dict)  # string and category columns
    num: dict[str, np.ndarray] = field(default_factory=dict)  # float, int and bool columns
    bad: dict[str, np.ndarray] = field(default_factory=dict)  # cells of the wrong type
    blank: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    usable: bool = True  # structure good enough for row checks

    def missing(self, column: str) -> np.ndarray:
        if column in self.text:
            return self.text[column].codes < 0
        return np.isnan(self.num[column]) & ~self.bad[column]


def _columns(frame: Table) -> tuple[list[Any], Callable[[int], Column_], int]:
    """Labels, a column getter by position and the row count of a frame or a column mapping."""
    if isinstance(frame, pd.DataFrame):
        default_index = isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0
        default_index = default_index and frame.index.step == 1

        def get(j: int) -> Column_:
            series = frame.iloc[:, j]
            return series if default_index else series.reset_index(drop=True)

        return list(frame.columns), get, len(frame)
    arrays = [v if isinstance(v, np.ndarray | pd.Series) else np.asarray(v) for v in frame.values()]
    sizes = {len(a) for a in arrays}
    if len(sizes) > 1:
        raise ValueError("columns of one table must have the same length")
    return list(frame), arrays.__getitem__, sizes.pop() if sizes else 0


def _parse_table(name: str, frame: Table, file: str, col: _Collector) -> _Parsed:
    """Structural checks (columns) and typed parsing of every known column."""
    schema = SCHEMA[name]
    labels, column, n_rows = _columns(frame)
    parsed = _Parsed(name, file, n_rows)
    names = [str(c).lstrip("\ufeff").strip() for c in labels]
    known = {c.name for c in schema.columns}
    positions: dict[str, int] = {}
    for j, label in enumerate(names):
        if label in known:
            if label in positions:
                col.add(file, "column appears more than once in the header", column=label)
            else:
                positions[label] = j
    if names and not positions:
        sep = next((s for s in (";", "\t", "|") if len(names) == 1 and s in names[0]), None)
        if sep is not None:
            col.add(file, f"the header looks {sep!r}-separated; cohort CSV files use commas")
        else:
            col.add(
                file,
                "no expected column found in the header (expected: "
                f"{', '.join(schema.required)}); the first line must be the header",
            )
        parsed.usable = False
        return parsed
    for label in names:
        if label not in known:
            hint = difflib.get_close_matches(label, sorted(known), n=1)
            rule = "unknown column, ignored" + (f" (did you mean {hint[0]!r}?)" if hint else "")
            col.problems.append(Problem(file, None, label or "<empty name>", None, rule, "warning"))
    for c in schema.columns:
        if c.required and c.name not in positions:
            col.add(file, "required column missing", column=c.name)
            parsed.usable = False
    for c in schema.columns:
        if c.name not in positions:
            continue
        series = column(positions[c.name])
        parsed.raw[c.name] = series
        if c.dtype in ("string", "category"):
            parsed.text[c.name] = _text_codes(series)
        elif c.dtype == "bool":
            parsed.num[c.name], parsed.bad[c.name] = _bools(series)
        else:
            parsed.num[c.name], parsed.bad[c.name] = _numbers(series)
    if parsed.n:
        blank = np.ones(parsed.n, dtype=bool)
        for name in parsed.raw:
            blank &= parsed.missing(name)
            if not blank.any():  # no candidate left (the usual case after the first column)
                break
        parsed.blank = blank
    else:
        parsed.blank = np.zeros(0, dtype=bool)
    return parsed


def _check_columns(p: _Parsed, col: _Collector) -> None:
    """Per-cell rules declared on the columns: type, missing, allowed values, hard/soft ranges."""
    schema = SCHEMA[p.name]
    if p.n == 0:  # no cell to check (a request without events): only map the category codes
        for c in schema.columns:
            if c.dtype == "category" and c.allowed is not None and c.name in p.text:
                p.text[c.name] = _Codes(p.text[c.name].codes, list(c.allowed))
        return
    any_blank = bool(p.blank.any())
    if any_blank:
        col.rows(p.file, p.blank, "empty row, ignored", severity="warning")
    for c in schema.columns:
        if c.name not in p.raw:
            continue
        if c.name in p.bad:
            rule = {
                "bool": "not a boolean (use true/false, 1/0 or yes/no)",
                "int": "not a number",
                "float": "not a number",
            }[c.dtype]
            col.rows(p.file, p.bad[c.name], rule, column=c.name, values=p.raw[c.name])
        missing = p.missing(c.name) & ~p.blank if any_blank else p.missing(c.name)
        if not c.nullable:
            col.rows(p.file, missing, "missing value in a required field", column=c.name)
        if c.dtype == "category" and c.allowed is not None:
            _check_allowed(p, c, col)
        if c.name in p.num and c.dtype in ("float", "int"):
            values = p.num[c.name]
            if c.dtype == "int":
                frac = ~np.isnan(values) & (values != np.round(values))
                col.rows(p.file, frac, "not a whole number", column=c.name, values=p.raw[c.name])
                values[frac] = np.nan
                p.bad[c.name] |= frac
            _check_ranges(p, c, values, col)


def _check_allowed(p: _Parsed, c: Column, col: _Collector) -> None:
    """Map a category column onto its declared spellings (case-insensitive), report others."""
    assert c.allowed is not None
    codes = p.text[c.name]
    lookup = _allowed_lookup(c.allowed)
    table = np.full(len(codes.uniques) + 1, -1, dtype=np.int64)
    bad_u = np.zeros(len(codes.uniques) + 1, dtype=bool)
    for i, text in enumerate(codes.uniques):
        j = lookup.get(text.lower())
        if j is None:
            bad_u[i] = True
        else:
            table[i] = j
    bad = bad_u[codes.codes] & ~p.blank
    shown = ", ".join(c.allowed) if len(c.allowed) <= 20 else "see docs/cohort-format.md"
    col.rows(
        p.file,
        bad,
        f"value not allowed (allowed: {shown})",
        column=c.name,
        values=codes.text,
    )
    p.text[c.name] = _Codes(table[codes.codes], list(c.allowed))


@functools.lru_cache(maxsize=64)
def _allowed_lookup(allowed: tuple[str, ...]) -> dict[str, int]:
    """Position of each allowed spelling by its lower-case text (a constant per column)."""
    return {a.lower(): i for i, a in enumerate(allowed)}


def _check_ranges(p: _Parsed, c: Column, values: np.ndarray, col: _Collector) -> None:
    if c.name == "grade" and p.name == "events":
        return  # graded per event type in _check_events (the event's own range)
    present = ~np.isnan(values) & ~p.blank
    hard_bad = np.zeros(p.n, dtype=bool)
    if c.hard is not None:
        hard_bad = present & ((values < c.hard[0]) | (values > c.hard[1]))
        if hard_bad.any():
            col.rows(
                p.file,
                hard_bad,
                f"impossible value: outside {_fmt_range(c.hard, c.unit)}",
                column=c.name,
                values=p.raw[c.name],
            )
    if c.soft is not None:
        soft_bad = present & ~hard_bad & ((values < c.soft[0]) | (values > c.soft[1]))
        if soft_bad.any():
            col.rows(
                p.file,
                soft_bad,
                f"implausible value: outside {_fmt_range(c.soft, c.unit)}",
                column=c.name,
                values=p.raw[c.name],
                severity="warning",
            )


# --- cross-row and cross-table rules -------------------------------------------------------------
def _first_rows(codes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """For each code, the first row (0-based) where ``mask`` holds; -1 when none."""
    first = np.full(int(codes.max(initial=-1)) + 2, -1, dtype=np.int64)
    idx = np.flatnonzero(mask & (codes >= 0))
    if idx.size:
        uniq, pos = np.unique(codes[idx], return_index=True)
        first[uniq] = idx[pos]
    return first


def _repeat_rows(codes: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (where ``mask``) whose code already occurred on an earlier masked row, and firsts."""
    first = _first_rows(codes, mask)
    idx = np.flatnonzero(mask & (codes >= 0))
    repeat = np.zeros(len(codes), dtype=bool)
    repeat[idx] = first[codes[idx]] != idx
    return repeat, first


def _rank(uniques: list[str]) -> np.ndarray:
    """Rank of each distinct text in sorted (code point) order, plus -1 for the missing code."""
    if len(uniques) == 1:  # one patient: nothing to sort
        return np.array([0, -1], dtype=np.int64)
    order = (
        np.argsort(np.array(uniques, dtype=object), kind="stable")
        if uniques
        else np.zeros(0, dtype=np.int64)
    )
    rank = np.empty(len(uniques) + 1, dtype=np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(len(uniques))
    rank[-1] = -1
    return rank


_ANALYTE_RANK = _rank(list(ANALYTE_KEYS))  # sorted-key rank of each analyte code


def _check_patients(p: _Parsed, col: _Collector) -> None:
    if p.usable and p.n == 0:
        col.add(p.file, "no patients: the table has no data rows")
    if "patient_id" not in p.text:
        return
    ids = p.text["patient_id"]
    repeat, first = _repeat_rows(ids.codes, ~p.blank)
    col.rows(
        p.file,
        repeat,
        "duplicate patient_id (one row per infusion)",
        column="patient_id",
        detail=lambda idx: [f"first at row {first[ids.codes[i]] + 1}" for i in idx],
    )


def _unknown_patients(p: _Parsed, known: set[str] | None, col: _Collector) -> None:
    if known is None or "patient_id" not in p.text:
        return
    ids = p.text["patient_id"]
    absent = np.array([u not in known for u in ids.uniques] + [False])
    col.rows(
        p.file,
        absent[ids.codes] & ~p.blank,
        "patient_id not found in the patients table",
        column="patient_id",
    )


@dataclass
class _Measured:
    """Measurement columns resolved against the vocabulary (for the canonical frame)."""

    analyte: np.ndarray  # index into ANALYTE_KEYS, -1 = unknown/missing
    value: np.ndarray  # canonical unit, NaN = missing/invalid
    order: np.ndarray  # canonical row order (non-blank rows, identical duplicates dropped)
    dropped: int


def _check_measurements(p: _Parsed, col: _Collector) -> _Measured | None:
    if not {"analyte", "unit", "value"} <= set(p.raw):
        return None
    names = p.text["analyte"]
    key_of = np.array([*map(_analyte_code, names.uniques), -1], dtype=np.int64)
    akey = key_of[names.codes]
    col.rows(
        p.file,
        (akey == -2) & ~p.blank,
        "unknown analyte (see the analyte table in docs/cohort-format.md)",
        column="analyte",
        values=names.text,
        detail=lambda idx: [
            f"did you mean {m[0]!r}?"
            if (m := difflib.get_close_matches(str(t).lower(), _VOCABULARY, n=1))
            else "no close match"
            for t in names.text(idx)
        ],
    )
    akey[akey == -2] = -1

    units = p.text["unit"]
    n_a, n_u = len(ANALYTE_KEYS), len(units.uniques)
    scale = np.full((n_a + 1, n_u + 1), np.nan)
    offset = np.zeros((n_a + 1, n_u + 1))
    a_idx = np.where(akey >= 0, akey, n_a)
    u_idx = np.where(units.codes >= 0, units.codes, n_u)
    # only the (analyte, unit) pairs that occur: the rows read no other cell of the tables
    for pair in np.unique(a_idx * (n_u + 1) + u_idx).tolist():
        ai, ui = divmod(pair, n_u + 1)
        if ai < n_a and ui < n_u:
            factor = _unit_factor(ai, units.uniques[ui])
            if factor is not None:
                scale[ai, ui], offset[ai, ui] = factor
    row_scale = scale[a_idx, u_idx]
    unit_bad = (akey >= 0) & (units.codes >= 0) & np.isnan(row_scale) & ~p.blank
    for ai in np.unique(akey[unit_bad]) if unit_bad.any() else ():
        a = ANALYTES[ANALYTE_KEYS[ai]]
        col.rows(
            p.file,
            unit_bad & (akey == ai),
            f"unit not accepted for {a.key} (accepted: {', '.join(a.units)})",
            column="unit",
            values=units.text,
        )

    raw_value = p.num["value"]
    canon = raw_value * row_scale + offset[a_idx, u_idx]
    ok = ~np.isnan(canon) & ~p.blank
    lo_h, hi_h = _HARD_LOW[a_idx], _HARD_HIGH[a_idx]
    lo_s, hi_s = _SOFT_LOW[a_idx], _SOFT_HIGH[a_idx]
    hard_bad = ok & ((canon < lo_h) | (canon > hi_h))
    soft_bad = ok & ~hard_bad & ((canon < lo_s) | (canon > hi_s))
    integer = _INTEGER[a_idx]
    frac_bad = ok & ~hard_bad & integer & (canon != np.round(canon))

    def shown(idx: np.ndarray) -> list[str]:
        unit_text = units.text(idx)
        return [f"{col.show(raw_value[i])} {unit_text[k] or ''}".strip() for k, i in enumerate(idx)]

    def converted(key: str) -> Callable[[np.ndarray], list[str]]:
        unit = ANALYTES[key].canonical_unit
        return lambda idx: [f"= {canon[i]:.6g} {unit} in the canonical unit" for i in idx]

    checks: tuple[tuple[np.ndarray, str, Severity], ...] = (
        (hard_bad, "impossible", "error"),
        (soft_bad, "implausible", "warning"),
    )
    for mask, kind, severity in checks:
        for ai in np.unique(akey[mask]) if mask.any() else ():
            a = ANALYTES[ANALYTE_KEYS[ai]]
            bounds = a.hard if kind == "impossible" else a.soft
            col.rows(
                p.file,
                mask & (akey == ai),
                f"{kind} {a.key} value: outside {_fmt_range(bounds, a.canonical_unit)}",
                column="value",
                values=shown,
                detail=converted(a.key),
                severity=severity,
            )
    for ai in np.unique(akey[frac_bad]) if frac_bad.any() else ():
        a = ANALYTES[ANALYTE_KEYS[ai]]
        col.rows(
            p.file,
            frac_bad & (akey == ai),
            f"{a.key} takes whole numbers only ({a.canonical_unit})",
            column="value",
            values=shown,
        )
    canon[hard_bad | frac_bad] = np.nan

    # Duplicates: same patient, time and analyte. Sorting once gives both the duplicate check
    # and the canonical order (patient id text, time, analyte key).
    keep = ~p.blank
    if "patient_id" not in p.text or "hours_from_infusion" not in p.num:
        return _Measured(akey, canon, np.flatnonzero(keep), 0)
    ids = p.text["patient_id"]
    prank = _rank(ids.uniques)[ids.codes]
    arank = _ANALYTE_RANK[a_idx]
    hours = p.num["hours_from_infusion"]
    order = np.flatnonzero(keep)
    key_cols = (arank[order], hours[order], prank[order])
    if not _is_sorted(*key_cols):
        order = order[np.lexsort(key_cols)]
    qual = p.text["qualifier"].codes if "qualifier" in p.text else np.full(p.n, -1)
    po, ho, ao = prank[order], hours[order], akey[order]
    same = (po[1:] == po[:-1]) & (ho[1:] == ho[:-1]) & (ao[1:] == ao[:-1])
    same &= (po[1:] >= 0) & ~np.isnan(ho[1:]) & (ao[1:] >= 0)
    same &= ~np.isnan(canon[order[1:]]) & ~np.isnan(canon[order[:-1]])  # bad values: reported
    dup_pos = np.flatnonzero(same) + 1  # positions in `order` repeating the previous key
    dropped = 0
    if dup_pos.size:
        starts = np.ones(order.size, dtype=bool)
        starts[dup_pos] = False
        group_first = order[np.maximum.accumulate(np.where(starts, np.arange(order.size), 0))]
        rows = order[dup_pos]
        firsts = group_first[dup_pos]
        identical = (canon[rows] == canon[firsts]) & (qual[rows] == qual[firsts])
        conflict_mask = np.zeros(p.n, dtype=bool)
        conflict_mask[rows[~identical]] = True
        ident_mask = np.zeros(p.n, dtype=bool)
        ident_mask[rows[identical]] = True
        first_of = np.full(p.n, -1, dtype=np.int64)
        first_of[rows] = firsts
        col.rows(
            p.file,
            conflict_mask,
            "conflicting duplicate: same patient, time and analyte with a different value",
            column="value",
            values=shown,
            detail=lambda idx: [
                f"row {first_of[i] + 1} has {canon[first_of[i]]:.6g} "
                f"{ANALYTES[ANALYTE_KEYS[akey[i]]].canonical_unit}"
                for i in idx
            ],
        )
        col.rows(
            p.file,
            ident_mask,
            "identical duplicate of an earlier row, dropped",
            column="value",
            values=shown,
            detail=lambda idx: [f"same as row {first_of[i] + 1}" for i in idx],
            severity="warning",
        )
        dropped = int(identical.sum())
        drop = np.zeros(order.size, dtype=bool)
        drop[dup_pos[identical]] = True
        order = order[~drop]
    return _Measured(akey, canon, order, dropped)


def _is_sorted(*keys: np.ndarray) -> bool:
    """Whether rows are already in lexsort order of ``keys`` (last key primary); NaN sorts last."""
    n = keys[0].size
    if n < 2:
        return True
    if n <= _SMALL:  # a few rows: Python's tuple order is the same test without array calls
        if any(k.dtype.kind == "f" and not np.isfinite(k).all() for k in keys):
            return False  # as below: NaN or infinities go to lexsort
        rows = list(zip(*(k.tolist() for k in reversed(keys)), strict=True))
        return all(a <= b for a, b in itertools.pairwise(rows))
    tie = np.ones(n - 1, dtype=bool)
    for key in reversed(keys):
        a, b = key[:-1], key[1:]
        if key.dtype.kind == "f":
            a = np.where(np.isnan(a), np.inf, a)
            b = np.where(np.isnan(b), np.inf, b)
            if np.isinf(a).any() or np.isinf(b).any():
                return False  # keep it simple: let lexsort decide when infinities/NaN appear
        if (tie & (a > b)).any():
            return False
        tie &= a == b
    return True


def _check_events(p: _Parsed, col: _Collector) -> None:
    if "event" not in p.text or p.n == 0:
        return
    event = p.text["event"].codes  # index into EVENTS after _check_allowed
    names = np.array([*EVENTS, ""], dtype=object)
    grade = p.num.get("grade", np.full(p.n, np.nan))
    graded_bad = p.bad.get("grade", np.zeros(p.n, dtype=bool))
    rows_ok = (event >= 0) & ~p.blank
    for e_idx in np.unique(event[rows_ok]).tolist():  # the event types present, in EVENTS order
        e = EVENTS[e_idx]
        this = rows_ok & (event == e_idx)
        if e in GRADED_EVENTS:
            lo, hi = GRADED_EVENTS[e]
            col.rows(
                p.file,
                this & np.isnan(grade) & ~graded_bad,
                f"grade required for {e}",
                column="grade",
            )
            col.rows(
                p.file,
                this & ~np.isnan(grade) & ((grade < lo) | (grade > hi)),
                f"grade outside {lo}–{hi}, the range of {e}",
                column="grade",
                values=p.raw.get("grade"),
            )
        else:
            col.rows(
                p.file,
                this & ~np.isnan(grade),
                f"grade given for {e}, which is not a graded event (leave it empty)",
                column="grade",
                values=p.raw.get("grade"),
            )
        if e not in DRUG_EVENTS and "dose_mg_per_kg" in p.num:
            col.rows(
                p.file,
                this & ~np.isnan(p.num["dose_mg_per_kg"]),
                f"dose given for {e}, which is not a drug event",
                column="dose_mg_per_kg",
                values=p.raw["dose_mg_per_kg"],
                severity="warning",
            )
        if e not in DRUG_EVENTS and "indication" in p.text:
            col.rows(
                p.file,
                this & (p.text["indication"].codes >= 0),
                f"indication given for {e}, which is not a drug event (leave it empty)",
                column="indication",
                values=p.raw.get("indication"),
            )
    if "patient_id" not in p.text or "hours_from_infusion" not in p.num:
        return
    pid = p.text["patient_id"].codes
    ok = rows_ok & (pid >= 0)
    hours = p.num.get("hours_from_infusion", np.full(p.n, np.nan))
    timed = ok & ~np.isnan(hours)
    n_pid = len(p.text["patient_id"].uniques) + 1

    def is_(name: str) -> np.ndarray:
        return event == EVENTS.index(name)

    for name, rule in (
        ("crs_onset", "more than one crs_onset for this patient"),
        ("death", "death recorded more than once for this patient"),
    ):
        repeat, first = _repeat_rows(pid, ok & is_(name))

        def detail(idx: np.ndarray, first: np.ndarray = first) -> list[str]:
            return [f"first at row {first[pid[i]] + 1}" for i in idx]

        col.rows(
            p.file,
            repeat,
            rule,
            column="event",
            values=names[event],
            detail=detail,
        )

    def earliest(mask: np.ndarray) -> np.ndarray:
        out = np.full(n_pid, np.inf)
        np.minimum.at(out, pid[mask], hours[mask])
        return out

    onset = earliest(timed & is_("crs_onset"))
    after_onset = is_("crs_grade") | is_("crs_resolved") | is_("crs_max_grade")
    onset_of_row = onset[np.where(pid >= 0, pid, n_pid - 1)]
    # no crs_onset at all is allowed (e.g. crs_max_grade alone, timed at onset)
    early = timed & after_onset & np.isfinite(onset_of_row) & (hours < onset_of_row)
    col.rows(
        p.file,
        early,
        "timed before this patient's crs_onset",
        column="hours_from_infusion",
        values=p.raw["hours_from_infusion"],
        detail=lambda idx: [f"{names[event[i]]}; crs_onset at {onset[pid[i]]:g} h" for i in idx],
    )
    death = earliest(timed & is_("death"))
    late = timed & ~is_("death") & (hours > death[np.where(pid >= 0, pid, n_pid - 1)])
    col.rows(
        p.file,
        late,
        "timed after this patient's death",
        column="hours_from_infusion",
        values=p.raw["hours_from_infusion"],
        detail=lambda idx: [f"{names[event[i]]}; death at {death[pid[i]]:g} h" for i in idx],
    )
    _check_icu(p, col, pid, hours, timed & is_("icu_admission"), timed & is_("icu_discharge"))


def _check_icu(
    p: _Parsed,
    col: _Collector,
    pid: np.ndarray,
    hours: np.ndarray,
    admit: np.ndarray,
    discharge: np.ndarray,
) -> None:
    """Pair the k-th discharge of a patient with the k-th admission (both in time order)."""

    def ranked(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of ``mask`` in (patient, time, row) order with their rank k within the patient."""
        rows = np.flatnonzero(mask)
        rows = rows[np.lexsort((rows, hours[rows], pid[rows]))]
        who = pid[rows]
        starts = np.flatnonzero(np.r_[True, who[1:] != who[:-1]]) if rows.size else rows
        first = np.repeat(starts, np.diff(np.r_[starts, rows.size]))
        return who, np.arange(rows.size) - first, rows

    # the k-th discharge of a patient pairs with the k-th admission (NumPy, not a merge: cheap for
    # one request and for a million rows alike)
    d_pid, d_k, d_rows = ranked(discharge)
    a_pid, a_k, a_rows = ranked(admit)
    width = int(max(d_k.max(initial=0), a_k.max(initial=0))) + 1
    a_key = a_pid.astype(np.int64) * width + a_k
    d_key = d_pid.astype(np.int64) * width + d_k
    pos = np.searchsorted(a_key, d_key)  # a_key is sorted: (patient, k) order
    found = pos < a_key.size
    found[found] = a_key[pos[found]] == d_key[found]
    admitted = np.full(d_rows.size, np.nan)
    admitted[found] = hours[a_rows[pos[found]]]
    before = found & (hours[d_rows] < admitted)
    admitted_at = dict(zip(d_rows[before].tolist(), admitted[before].tolist(), strict=True))
    col.rows(
        p.file,
        np.sort(d_rows[before]),
        "icu_discharge before its icu_admission",
        column="hours_from_infusion",
        values=p.raw["hours_from_infusion"],
        detail=lambda idx: [f"admission at {admitted_at[int(i)]:g} h" for i in idx],
    )
    col.rows(
        p.file,
        np.sort(d_rows[~found]),
        "icu_discharge without an earlier icu_admission",
        column="event",
        severity="warning",
    )


# --- canonical frames ----------------------------------------------------------------------------
def _strings(
    uniques: Sequence[str], codes: np.ndarray
) -> pd.Series | pd.api.extensions.ExtensionArray:
    """A pandas string column from codes into ``uniques`` (built in Arrow, no Python objects;
    a short column from Python objects, which skips Arrow's fixed cost per call)."""
    if codes.size <= _SMALL:
        table = np.array([*uniques, None], dtype=object)
        return pd.array(table[codes], dtype="str")
    arr = pa.array(list(uniques), type=pa.string()).take(pa.array(codes, mask=codes < 0))
    return pa.chunked_array([arr], type=pa.string()).to_pandas().astype("str")


@functools.lru_cache(maxsize=32)
def _category(allowed: tuple[str, ...]) -> pd.CategoricalDtype:
    return pd.CategoricalDtype(list(allowed))


def _typed_column(
    p: _Parsed, c: Column, rows: np.ndarray
) -> pd.Series | pd.api.extensions.ExtensionArray:
    """Column ``c`` of table ``p`` at ``rows`` in its declared dtype (all-missing when absent)."""
    n = rows.size
    if c.dtype == "category":
        assert c.allowed is not None
        codes = p.text[c.name].codes[rows] if c.name in p.text else np.full(n, -1)
        # codes index ``c.allowed`` by construction (``_check_allowed``): no re-validation
        return pd.Categorical.from_codes(codes, dtype=_category(c.allowed), validate=False)
    if c.dtype == "string":
        if c.name not in p.text:
            return pd.Series(np.full(n, np.nan), dtype="str")
        t = p.text[c.name]
        return _strings(t.uniques, t.codes[rows])
    values = p.num[c.name][rows] if c.name in p.num else np.full(n, np.nan)
    missing = np.isnan(values)
    if c.dtype == "bool":
        return pd.arrays.BooleanArray(values == 1.0, missing)
    if c.dtype == "int":
        return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), missing)
    return values


def _typed_columns(
    p: _Parsed, rows: np.ndarray, present_only: bool, text_as_objects: bool = False
) -> dict[str, Any]:
    """Rows ``rows`` of table ``p`` in declared dtypes (all schema columns, or present ones);
    ``text_as_objects``: free-text columns as object arrays (None = missing), not pandas."""
    out = {}
    for c in SCHEMA[p.name].columns:
        if present_only and c.name not in p.raw:
            continue
        if text_as_objects and c.dtype == "string":
            t = p.text.get(c.name)
            table = np.array([*(t.uniques if t else []), None], dtype=object)
            out[c.name] = table[t.codes[rows]] if t else np.full(rows.size, None, dtype=object)
        else:
            out[c.name] = _typed_column(p, c, rows)
    return out


def _frame(p: _Parsed, rows: np.ndarray, present_only: bool) -> pd.DataFrame:
    """:func:`_typed_columns` as a frame."""
    return pd.DataFrame(_typed_columns(p, rows, present_only), index=pd.RangeIndex(rows.size))


def _orders(parsed: Mapping[str, _Parsed]) -> tuple[np.ndarray, np.ndarray]:
    """Canonical row order of the patients (by id) and of the events (by id, time, event …)."""
    pat = parsed["patients"]
    p_order = np.flatnonzero(~pat.blank)
    ids = pat.text["patient_id"]
    p_order = p_order[np.argsort(_rank(ids.uniques)[ids.codes[p_order]], kind="stable")]
    ev = parsed["events"]
    e_rows = np.flatnonzero(~ev.blank)
    e_ids = ev.text["patient_id"]
    # missing dose/grade sort last; parsed numbers are never infinite (``_numbers`` reports
    # them), so this is ``np.nan_to_num(x, nan=np.inf)`` without its per-call overhead
    dose = ev.num.get("dose_mg_per_kg", np.full(ev.n, np.nan))[e_rows]
    grade = ev.num.get("grade", np.full(ev.n, np.nan))[e_rows]
    keys_e = (
        np.where(np.isnan(dose), np.inf, dose),
        np.where(np.isnan(grade), np.inf, grade),
        ev.text["event"].codes[e_rows],
        ev.num["hours_from_infusion"][e_rows],
        _rank(e_ids.uniques)[e_ids.codes[e_rows]],
    )
    return p_order, e_rows[np.lexsort(keys_e)]


def _canonical(
    parsed: Mapping[str, _Parsed], measured: _Measured, p_order: np.ndarray, e_rows: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The canonical frames (patients and events in the given row orders)."""
    patients = _frame(parsed["patients"], p_order, present_only=False)

    m = parsed["measurements"]
    rows = measured.order
    analyte = measured.analyte[rows]
    keys = list(ANALYTE_KEYS)
    units = [ANALYTES[k].canonical_unit for k in keys]
    measurements = pd.DataFrame(
        {
            "patient_id": _strings(m.text["patient_id"].uniques, m.text["patient_id"].codes[rows]),
            "hours_from_infusion": m.num["hours_from_infusion"][rows],
            "analyte": _strings(keys, analyte),
            "value": measured.value[rows],
            "unit": _strings(units, analyte),
            "qualifier": _typed_column(m, SCHEMA["measurements"].column("qualifier"), rows),
        }
    )

    events = _frame(parsed["events"], e_rows, present_only=False)
    return patients, measurements, events


def _records(
    parsed: Mapping[str, _Parsed], measured: _Measured, p_order: np.ndarray, e_rows: np.ndarray
) -> Records:
    """The canonical cohort's :class:`Records` from the parsed columns (no frame is read back).

    Equal to ``features.records.records_of`` on the canonical frames: patient codes are rows
    of the canonical patients table, analyte and event codes index the vocabularies.
    """
    ids = parsed["patients"].text["patient_id"]
    position = {ids.uniques[c]: k for k, c in enumerate(ids.codes[p_order].tolist())}

    def codes_of(table: _Parsed, rows: np.ndarray) -> np.ndarray:
        t = table.text["patient_id"]
        lookup = np.array([position.get(u, -1) for u in t.uniques] + [-1], dtype=np.int64)
        return lookup[t.codes[rows]]

    m, ev = parsed["measurements"], parsed["events"]
    rows = measured.order
    grade = ev.num.get("grade", np.full(ev.n, np.nan))
    return make_records(
        len(p_order),
        codes_of(m, rows),
        measured.analyte[rows],
        m.num["hours_from_infusion"][rows],
        measured.value[rows],
        codes_of(ev, e_rows),
        ev.text["event"].codes[e_rows],
        ev.num["hours_from_infusion"][e_rows],
        grade[e_rows],
        ev.text["indication"].codes[e_rows] if "indication" in ev.text else None,
    )


def _summary(
    patients: pd.DataFrame, measurements: pd.DataFrame, events: pd.DataFrame, dropped: int
) -> dict[str, Any]:
    """Counts a user checks first: patients, centres, measurements per analyte and window …"""
    hours = measurements["hours_from_infusion"].to_numpy()
    edges = [w[1] for w in TIME_WINDOWS[1:]]
    window = np.searchsorted(edges, hours, side="left")  # (lo, hi]: as the landmark cut
    window_counts = np.bincount(window, minlength=len(TIME_WINDOWS))
    by_analyte = measurements["analyte"].value_counts()
    by_event = events["event"].value_counts()
    absent = [
        c.name
        for c in SCHEMA["patients"].columns
        if not c.required and patients[c.name].isna().all() and len(patients)
    ]
    return {
        "patients": len(patients),
        "centres": {
            str(k): int(v) for k, v in patients["center"].value_counts().sort_index().items()
        },
        "measurements": len(measurements),
        "duplicates_dropped": dropped,
        "measurements_by_analyte": {
            k: int(by_analyte[k]) for k in ANALYTE_KEYS if k in by_analyte.index
        },
        "measurements_by_window": {
            w[0]: int(n) for w, n in zip(TIME_WINDOWS, window_counts, strict=True)
        },
        "events": len(events),
        "events_by_type": {e: int(by_event.get(e, 0)) for e in EVENTS if by_event.get(e, 0)},
        "events_unknown_time": int(events["hours_from_infusion"].isna().sum()),
        "missing_by_patient_column": {
            c.name: float(patients[c.name].isna().mean()) if len(patients) else 0.0
            for c in SCHEMA["patients"].columns
        },
        "absent_patient_columns": absent,
    }


# --- entry point ---------------------------------------------------------------------------------
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
    """Validate the three cohort tables; when valid the report carries the canonical ``Cohort``.

    ``tables`` maps table name to its frame (absent or ``None`` = file missing) or to a mapping
    column name → values (a request's records, without building a DataFrame); ``files`` names
    the file of each table in messages (default ``frame.attrs["file"]``, else the table name).
    ``prior`` holds problems already found while reading (a table with a prior problem is not
    reported missing again). ``keep_frames`` keeps the typed, unconverted frames for writers.
    ``summary=False`` skips the counts shown to a user and ``digest=False`` the content digest
    (``Cohort.digest`` is then ""): a scoring request needs neither, and both cost more than
    the checks themselves for one patient. Every rule runs either way. ``records=True`` also
    returns what the feature code computes on, built from the validated columns rather than
    read back from frames: ``report.records`` (``features.records.Records``) and
    ``report.patient_columns`` (the patients table's typed columns, canonical order), and the
    cohort comes already prepared (``features.records.PreparedCohort``). ``frames=False``
    (with ``records=True``) builds no canonical frames at all (``report.cohort`` is None): a
    scoring service that never reads them saves most of the work for one patient.
    """
    col = _Collector()
    col.problems.extend(prior)
    prior_files = {p.file for p in prior}
    parsed: dict[str, _Parsed] = {}
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
        parsed[name] = _parse_table(name, frame, file, col)
        if "patient_id" in parsed[name].text:
            col.hidden.update(parsed[name].text["patient_id"].uniques)
    # unknown-column names are shown before the hidden set is complete: redact them now
    col.problems = [
        Problem(p.file, p.row, _HIDDEN, p.value, p.rule, p.severity, p.more)
        if p.column is not None and p.column.strip() in col.hidden
        else p
        for p in col.problems
    ]

    known: set[str] | None = None
    if "patients" in parsed and "patient_id" in parsed["patients"].text:
        pat = parsed["patients"]
        known = set(pat.text["patient_id"].uniques)
    measured: _Measured | None = None
    for name, p in parsed.items():
        if not p.usable and not p.raw:
            continue
        _check_columns(p, col)
        if name == "patients":
            _check_patients(p, col)
        else:
            _unknown_patients(p, known, col)
        if name == "measurements":
            measured = _check_measurements(p, col)
        if name == "events":
            _check_events(p, col)

    report = ValidationReport(source, col.problems)
    if not report.ok or measured is None or set(parsed) != set(TABLES):
        return report
    if not all(p.usable for p in parsed.values()):  # pragma: no cover - implies an error above
        return report
    p_order, e_rows = _orders(parsed)
    if records:
        report.records = _records(parsed, measured, p_order, e_rows)
        report.patient_columns = _typed_columns(
            parsed["patients"], p_order, present_only=False, text_as_objects=True
        )
    elif not frames:
        raise ValueError("frames=False needs records=True: nothing would be returned")
    if frames:
        patients, measurements, events = _canonical(parsed, measured, p_order, e_rows)
        if summary:
            report.summary = _summary(patients, measurements, events, measured.dropped)
        report.cohort = Cohort(
            patients=patients,
            measurements=measurements,
            events=events,
            source=source,
            digest=cohort_digest(patients, measurements, events) if digest else "",
            warnings=tuple(p.render() for p in report.warnings),
        )
        if records:
            report.cohort = PreparedCohort(
                **{f.name: getattr(report.cohort, f.name) for f in dataclasses.fields(Cohort)},
                records=report.records,
            )
    if keep_frames:
        report.frames = {
            name: _frame(p, np.flatnonzero(~p.blank), present_only=True)
            for name, p in parsed.items()
        }
    return report
