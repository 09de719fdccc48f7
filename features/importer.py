"""``crs-risk cohort import``: a real extract → a cohort folder, through a declarative mapping.

The mapping (:mod:`features.mapping`) says which file holds what; this module reads the files
(CSV/TSV or Excel, several header rows), finds the declared columns, converts every cell and
hands three frames to :func:`features.io.write_cohort`, which validates before writing anything.

Rules applied to every source, each counted in the :class:`ImportReport`:

- an empty cell means *not measured* (dropped, counted); a declared placeholder (``na_values``)
  means missing (dropped, counted by placeholder); anything else that does not parse is an error;
- a value map (``values``) must cover every value of its column (no silent pass-through);
- rows of patients absent from the patient table are dropped (counted);
- a second, identical value for the same patient, time and analyte (or event) is dropped as a
  duplicate; a conflicting one is an error (or kept-first with ``duplicates: keep_first``);
- values outside the analyte's possible range and times outside the contract are errors.

Messages name file, row number (as in the spreadsheet or text editor), column letter and header,
value and rule; they never carry a patient id or a raw row. Any problem stops the import before
anything is written, and every problem is listed (one per line).
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import CrsRiskError
from features.mapping import (
    PER_PATIENT_KINDS,
    SKIP,
    ColumnSpec,
    LongEventsSource,
    LongMeasurementsSource,
    Mapping,
    MeasureRule,
    PatientEventRule,
    PatientMeasurementsSource,
    PatientsSource,
    PerPatientEventsSource,
    TimeSpec,
    WideMeasurementsSource,
    load_mapping,
    value_key,
)
from features.schema import EVENTS, GRADED_EVENTS, HOURS, PATIENTS
from features.vocabulary import ANALYTES, resolve_analyte, resolve_unit

MAX_LISTED_PROBLEMS = 60
ONE_ROW_PER_PATIENT = (*PER_PATIENT_KINDS, "patient_measurements")
EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls")

R_EMPTY = "empty = not measured"
R_EMPTY_ROW = "empty row"
R_EMPTY_ID = "empty patient id"
R_NOT_IN_PATIENTS = "patient not in the patient table"
R_NO_TIME = "time empty and no fallback"
R_DUPLICATE = "duplicate of an identical value already imported (same patient, time, analyte)"
R_DUPLICATE_EVENT = "duplicate of an identical event already imported"
R_CONFLICT_KEPT = "conflicting duplicate dropped (duplicates: keep_first)"
R_MAPPED_MISSING = "mapped to missing by the value map"


def _rows(n: int) -> str:
    return f"{n} row" + ("" if n == 1 else "s")


@functools.lru_cache(maxsize=65536, typed=True)
def _cached_key(value: object) -> str:
    """:func:`value_key` memoised: an extract repeats the same few texts and numbers."""
    return value_key(value)


@functools.lru_cache(maxsize=4096)
def _unit_of(key: str, unit: str) -> str | None:
    return resolve_unit(key, unit)


def _placeholder(value: object) -> str:
    return f"placeholder {value!r} = missing"


def column_letter(index: int) -> str:
    """0-based column index → spreadsheet letter (0 → A, 26 → AA)."""
    letters = ""
    n = index + 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def letter_index(letter: str) -> int:
    """Spreadsheet letter → 0-based column index (A → 0, AA → 26)."""
    n = 0
    for ch in letter.upper():
        n = n * 26 + ord(ch) - 64
    return n - 1


def _norm(text: object) -> str:
    """Header text with whitespace collapsed (titles often carry stray spaces)."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    if isinstance(text, float) and text.is_integer():
        text = int(text)
    return " ".join(str(text).split())


def _is_empty(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    return isinstance(value, str) and not value.strip()


_QUALIFIED = re.compile(r"^\s*(<=?|>=?|≤|≥)\s*(\S.*)$")


def parse_number(value: object, qualified: bool = False) -> tuple[float, str | None] | None:
    """A finite number (and a ``<``/``>`` qualifier when allowed) from a cell, or ``None``."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
        return (number, None) if math.isfinite(number) else None
    text = str(value).strip()
    qualifier = None
    match = _QUALIFIED.match(text)
    if match:
        if not qualified:
            return None
        qualifier = "<" if match.group(1) in ("<", "<=", "≤") else ">"
        text = match.group(2)
    try:
        number = float(text)
    except ValueError:
        return None
    return (number, qualifier) if math.isfinite(number) else None


def patient_id(value: object) -> str | None:
    """Patient ids as strings: ``277``, ``277.0`` and ``" 277 "`` are the same patient."""
    if _is_empty(value):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    return str(value).strip()


# --- reading --------------------------------------------------------------------------------
@dataclass
class SourceTable:
    """The cells of one source below its header rows, with each column's header path."""

    file: str
    cells: np.ndarray  # object array (rows x columns), data rows only
    paths: list[tuple[str, ...]]
    header_rows: int

    @property
    def n_columns(self) -> int:
        return self.cells.shape[1]

    def row_number(self, i: int) -> int:
        """1-based row number as a spreadsheet or text editor shows it."""
        return self.header_rows + i + 1

    def path_text(self, j: int) -> str:
        return " / ".join(self.paths[j])

    def column_label(self, j: int) -> str:
        text = self.path_text(j)
        return f"column {column_letter(j)}" + (f" ({text!r})" if text else "")

    def find(self, spec: ColumnSpec) -> tuple[int | None, str | None]:
        """Index of the column ``spec`` addresses, or ``(None, why not)``."""
        if spec.letter is not None or spec.position is not None:
            j = letter_index(spec.letter) if spec.letter is not None else spec.position - 1
            if j >= self.n_columns:
                return None, (
                    f"column {spec.describe()} is beyond the last column "
                    f"({column_letter(self.n_columns - 1)}) of {self.file}"
                )
            return j, None
        if self.header_rows == 0:
            return None, f"{self.file} has no header rows: address columns by letter or position"
        wanted = _norm(spec.header).casefold()
        hits = [j for j in range(self.n_columns) if wanted in self._suffixes(j)]
        if len(hits) == 1:
            return hits[0], None
        if not hits:
            names = sorted({p[-1] for p in self.paths if p})
            close = difflib.get_close_matches(_norm(spec.header), names, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            return None, f"column {spec.describe()} not found in {self.file}{hint}"
        letters = ", ".join(column_letter(j) for j in hits[:6]) + (", …" if len(hits) > 6 else "")
        return None, (
            f"column {spec.describe()} matches {len(hits)} columns of {self.file} ({letters}); "
            f"give more of its header path (e.g. {self.path_text(hits[0])!r}) or its letter"
        )

    def _suffixes(self, j: int) -> set[str]:
        parts = [p.casefold() for p in self.paths[j]]
        return {" / ".join(parts[k:]) for k in range(len(parts))}


def _header_paths(header: pd.DataFrame) -> list[tuple[str, ...]]:
    """Header path per column. Upper header rows are merged cells in a spreadsheet: a blank cell
    inherits its left neighbour's text while every row above it also continues the same group."""
    rows, cols = header.shape
    filled = [[_norm(header.iat[r, j]) for j in range(cols)] for r in range(rows)]
    for r in range(rows - 1):
        for j in range(1, cols):
            if not filled[r][j] and all(filled[q][j] == filled[q][j - 1] for q in range(r)):
                filled[r][j] = filled[r][j - 1]
    return [tuple(filled[r][j] for r in range(rows) if filled[r][j]) for j in range(cols)]


def read_source(
    path: Path, sheet: str | int | None, header_rows: int, delimiter: str | None
) -> SourceTable:
    """Read a CSV/TSV or Excel source as raw cells (no type guessing, no default NA strings)."""
    try:
        if path.suffix.lower() in EXCEL_SUFFIXES:
            raw = pd.read_excel(
                path,
                sheet_name=0 if sheet is None else sheet,
                header=None,
                dtype=object,
                keep_default_na=False,
                na_values=[],
            )
        else:
            sep = delimiter or ("\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
            raw = pd.read_csv(
                path,
                sep=sep,
                header=None,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                skip_blank_lines=False,
                encoding="utf-8-sig",
            )
    except ValueError as exc:  # unknown sheet, malformed file
        raise CrsRiskError(f"{path.name}: cannot be read ({exc})") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise CrsRiskError(f"{path.name}: cannot be read ({type(exc).__name__}: {exc})") from None
    raw = raw.astype(object)
    raw.columns = range(raw.shape[1])
    if raw.shape[0] < header_rows:
        raise CrsRiskError(f"{path.name}: fewer rows than the {header_rows} header rows declared")
    paths = _header_paths(raw.iloc[:header_rows]) if header_rows else [()] * raw.shape[1]
    cells = raw.iloc[header_rows:].to_numpy(dtype=object)
    return SourceTable(path.name, cells, paths, header_rows)


def collect_files(sources: list[Path]) -> dict[str, list[Path]]:
    """Files of the extract by lower-case file name (folders are searched recursively)."""
    files: dict[str, list[Path]] = {}
    for src in sources:
        src = Path(src)
        if src.is_dir():
            found = [p for p in sorted(src.rglob("*")) if p.is_file()]
        elif src.is_file():
            found = [src]
        else:
            raise CrsRiskError(f"source {src}: no such file or folder")
        for p in found:
            same = files.setdefault(p.name.casefold(), [])
            if not any(p.resolve() == q.resolve() for q in same):  # given twice: one file
                same.append(p)
    return files


# --- report ---------------------------------------------------------------------------------
@dataclass
class SourceReport:
    """What one source contributed and what was dropped, by reason."""

    label: str
    kind: str
    rows: int = 0
    columns_used: int = 0
    patients: int = 0
    measurements: int = 0
    events: int = 0
    dropped: Counter = field(default_factory=Counter)

    def drop(self, reason: str, n: int = 1) -> None:
        if n:
            self.dropped[reason] += n


@dataclass
class ImportReport:
    """Result of an import: per source rows read and dropped (by reason), totals written."""

    mapping: str
    out: Path
    fmt: str
    sources: list[SourceReport]
    n_patients: int = 0
    n_measurements: int = 0
    n_events: int = 0
    analytes: dict[str, int] = field(default_factory=dict)
    event_counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    ok: bool = True

    def render(self) -> str:
        lines = [f"import with mapping {self.mapping} → {self.out} ({self.fmt})"]
        for s in self.sources:
            made = [
                f"{n} {what}"
                for n, what in (
                    (s.patients, "patients"),
                    (s.measurements, "measurements"),
                    (s.events, "events"),
                )
                if n
            ]
            cols = f", {s.columns_used} columns used" if s.columns_used else ""
            lines.append(
                f"- {s.label} [{s.kind}]: {s.rows} rows read{cols} → "
                + (", ".join(made) if made else "nothing")
            )
            for reason, n in sorted(s.dropped.items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"    dropped {n}: {reason}")
        lines.append(
            f"written: {self.n_patients} patients, {self.n_measurements} measurements, "
            f"{self.n_events} events"
        )
        if self.analytes:
            lines.append(
                "measurements by analyte: "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.analytes.items()))
            )
        if self.event_counts:
            lines.append(
                "events: " + ", ".join(f"{k} {v}" for k, v in sorted(self.event_counts.items()))
            )
        if self.warnings:
            lines.append(f"validation warnings ({len(self.warnings)}):")
            lines.extend(f"  {w}" for w in self.warnings)
        return "\n".join(lines)


# --- the run --------------------------------------------------------------------------------
_M_COLS = ["patient_id", "hours_from_infusion", "analyte", "value", "unit", "qualifier"]
_E_COLS = ["patient_id", "hours_from_infusion", "event", "grade", "dose_mg_per_kg"]
_PROV = ["_src", "_row", "_col"]


@dataclass
class _Measure:
    """One resolved measurement column (of a wide or per-patient source)."""

    index: int
    analyte: str | None  # vocabulary key; None = skipped
    unit: str | None
    time: TimeSpec | None = None
    time_index: int | None = None  # resolved time column (per-patient kinds)
    time_value: float | None = None  # resolved constant time
    fallback: float | None = None
    skip_reason: str | None = None


class _Import:
    """One import: read and resolve every source, convert, check, hand over to the writer."""

    def __init__(self, mapping: Mapping, mapping_name: str, files: dict[str, list[Path]]) -> None:
        self.mapping = mapping
        self.name = mapping_name
        self.files = files
        self.problems: list[str] = []
        self.tables: list[SourceTable | None] = []
        self.reports = [
            SourceReport(f"{s.name} ({s.file})" if s.name else s.file, s.kind)
            for s in mapping.sources
        ]
        self.placeholders = [
            {value_key(v) for v in (*mapping.na_values, *s.na_values)} for s in mapping.sources
        ]
        self.measurements: list[dict] = []
        self.events: list[dict] = []
        self.patients: dict[str, dict[str, object]] = {}
        self.patient_rows: list[dict[str, int]] = []  # per source: patient id → row index
        self.analyte_cache: dict[int, dict[str, tuple[str | None, str | None]]] = {}

    # -- problems ---------------------------------------------------------------------------
    def problem(self, message: str) -> None:
        self.problems.append(message)

    def cell_problem(self, k: int, i: int, j: int, message: str) -> None:
        t = self.tables[k]
        self.problem(f"{t.file} row {t.row_number(i)}, {t.column_label(j)}: {message}")

    def raise_if_problems(self) -> None:
        if not self.problems:
            return
        shown = self.problems[:MAX_LISTED_PROBLEMS]
        more = len(self.problems) - len(shown)
        tail = [f"… and {more} more"] if more else []
        count = f"{len(self.problems)} problem" + ("s" if len(self.problems) != 1 else "")
        raise CrsRiskError(
            f"import with mapping {self.name} failed ({count}; nothing written):\n"
            + "\n".join([*shown, *tail])
        )

    # -- reading and resolving --------------------------------------------------------------
    def read_all(self) -> None:
        for k, src in enumerate(self.mapping.sources):
            where = f"mapping {self.name}: sources[{k}].file"
            wanted = Path(src.file)
            hits = [
                p
                for p in self.files.get(wanted.name.casefold(), [])
                if len(wanted.parts) == 1
                or tuple(x.casefold() for x in p.parts[-len(wanted.parts) :])
                == tuple(x.casefold() for x in wanted.parts)
            ]
            if not hits:
                given = ", ".join(sorted({p[0].name for p in self.files.values()})[:10])
                self.problem(f"{where}: {src.file!r} not found among the sources ({given})")
                self.tables.append(None)
                continue
            if len(hits) > 1:
                self.problem(
                    f"{where}: {src.file!r} matches {len(hits)} files; give more of its path"
                )
                self.tables.append(None)
                continue
            try:
                self.tables.append(read_source(hits[0], src.sheet, src.header_rows, src.delimiter))
            except CrsRiskError as exc:
                self.problem(f"{where}: {exc}")
                self.tables.append(None)

    def resolve(self, k: int, spec: ColumnSpec | None, where: str) -> int | None:
        if spec is None or self.tables[k] is None:
            return None
        j, why = self.tables[k].find(spec)
        if why is not None:
            self.problem(f"mapping {self.name}: sources[{k}].{where}: {why}")
        return j

    def is_placeholder(self, k: int, value: object) -> bool:
        return bool(self.placeholders[k]) and _cached_key(value) in self.placeholders[k]

    def map_value(self, k: int, i: int, j: int, spec: ColumnSpec | None, value: object) -> object:
        """Apply ``spec.values`` (every value must be covered); ``None`` = mapped to missing."""
        if spec is None or spec.values is None:
            return value
        key = value_key(value)
        if key not in spec.values:
            self.cell_problem(
                k, i, j, f"value {value!r} is not in the value map ({', '.join(spec.values)})"
            )
            return None
        return spec.values[key]

    def cell(
        self, k: int, i: int, j: int, spec: ColumnSpec | None, label: str
    ) -> tuple[bool, object]:
        """``(True, value)`` for a usable (mapped) cell; counts empty/placeholder/missing."""
        value = self.tables[k].cells[i, j]
        report = self.reports[k]
        if _is_empty(value):
            report.drop(f"{label}{R_EMPTY}")
            return False, None
        if self.is_placeholder(k, value):
            report.drop(f"{label}{_placeholder(value)}")
            return False, None
        if spec is not None and spec.values is not None:
            mapped = self.map_value(k, i, j, spec, value)
            if mapped is None:
                if value_key(value) in spec.values:
                    report.drop(f"{label}{R_MAPPED_MISSING}")
                return False, None
            return True, mapped
        return True, value

    def number(
        self, k: int, i: int, j: int, value: object, what: str, qualified: bool = False
    ) -> tuple[float, str | None] | None:
        parsed = parse_number(value, qualified)
        if parsed is None:
            hint = (
                "; declare it under na_values if it means missing" if isinstance(value, str) else ""
            )
            self.cell_problem(k, i, j, f"{what} {value!r} is not a number{hint}")
        return parsed

    def hours(self, k: int, i: int, j: int, value: float, spec: TimeSpec) -> float | None:
        h = (value + spec.offset) * spec.scale
        lo, hi = HOURS.hard
        if not lo <= h <= hi:
            self.cell_problem(
                k,
                i,
                j,
                f"time {value!r} {spec.unit} = {h:g} h is outside the contract [{lo:g}, {hi:g}] h",
            )
            return None
        return h

    def ids(self, k: int) -> list[str | None]:
        """Patient id per row (``None`` for empty rows / empty ids, counted)."""
        src, t = self.mapping.sources[k], self.tables[k]
        j = self.resolve(k, src.id_column, "id_column")
        out: list[str | None] = []
        if j is None:
            return out
        report = self.reports[k]
        empty_rows = pd.isna(t.cells).all(axis=1)
        for i in range(t.cells.shape[0]):
            if empty_rows[i]:
                report.drop(R_EMPTY_ROW)
                out.append(None)
                continue
            report.rows += 1
            value = t.cells[i, j]
            pid = None if self.is_placeholder(k, value) else patient_id(value)
            if pid is None:
                report.drop(R_EMPTY_ID)
            out.append(pid)
        return out

    # -- per-patient sources ----------------------------------------------------------------
    def per_patient_rows(self, k: int, ids: list[str | None]) -> dict[str, int]:
        rows: dict[str, int] = {}
        for i, pid in enumerate(ids):
            if pid is None:
                continue
            if pid in rows:
                t = self.tables[k]
                self.problem(
                    f"{t.file} rows {t.row_number(rows[pid])} and {t.row_number(i)}: the same "
                    "patient id twice in a one-row-per-patient source "
                    f"({self.mapping.sources[k].kind})"
                )
                continue
            rows[pid] = i
        return rows

    def patient_value(self, name: str, value: object) -> tuple[bool, object]:
        """Coerce one patient field value to the contract's type; ``(False, why)`` if it can't."""
        col = PATIENTS.column(name)
        if col.dtype == "bool":
            if isinstance(value, bool | np.bool_):
                return True, bool(value)
            return (
                False,
                f"{name}: value {value!r} is not a boolean; map it with values: {{…: true}}",
            )
        if col.dtype in ("string", "category"):
            text = patient_id(value) if not isinstance(value, str) else value.strip()
            if col.allowed is not None and text not in col.allowed:
                return False, f"{name}: value {value!r} not allowed ({', '.join(col.allowed)})"
            return True, text
        parsed = parse_number(value)
        if parsed is None:
            return False, f"{name}: value {value!r} is not a number"
        number = parsed[0]
        if col.hard is not None and not col.hard[0] <= number <= col.hard[1]:
            return False, f"{name}: value {number:g} outside the possible range {col.hard}"
        return True, number

    def do_patients(self, k: int, src: PatientsSource) -> None:
        cols = {
            name: self.resolve(k, spec, f"columns.{name}") for name, spec in src.columns.items()
        }
        constants: dict[str, object] = {}
        for name, value in src.constants.items():
            ok, out = self.patient_value(name, value)
            if ok:
                constants[name] = out
            else:
                self.problem(f"mapping {self.name}: sources[{k}].constants.{out}")
        if any(j is None for j in cols.values()):
            return
        report = self.reports[k]
        for pid, i in self.patient_rows[k].items():
            record = self.patients.setdefault(pid, {})
            record.update(constants)
            for name, j in cols.items():
                present, value = self.cell(k, i, j, src.columns[name], f"{name}: ")
                if not present:
                    continue
                ok, out = self.patient_value(name, value)
                if ok:
                    record[name] = out
                else:
                    self.cell_problem(k, i, j, str(out))
        report.patients = len(self.patient_rows[k])
        report.columns_used = len(cols) + 1

    def do_patient_events(self, k: int, rules: list[PatientEventRule]) -> None:
        before = len(self.problems)
        report = self.reports[k]
        resolved = []
        for r, rule in enumerate(rules):
            where = f"events[{r}]"
            flag = self.resolve(k, rule.flag, f"{where}.flag")
            grade = (
                self.resolve(k, rule.grade, f"{where}.grade")
                if isinstance(rule.grade, ColumnSpec)
                else None
            )
            dose = self.resolve(k, rule.dose, f"{where}.dose")
            time_src = k
            if rule.time is not None and rule.time.source is not None:
                time_src = next(
                    n for n, s in enumerate(self.mapping.sources) if s.name == rule.time.source
                )
            time_col = None
            if rule.time is not None and rule.time.column is not None:
                if self.tables[time_src] is None:
                    continue
                j, why = self.tables[time_src].find(rule.time.column)
                if why is not None:
                    self.problem(f"mapping {self.name}: sources[{k}].{where}.time.column: {why}")
                    continue
                time_col = j
            resolved.append((rule, flag, grade, dose, time_src, time_col))
            report.columns_used += sum(x is not None for x in (flag, grade, dose))
        if len(resolved) != len(rules) or len(self.problems) > before:
            return
        for pid, i in self.patient_rows[k].items():
            for rule, flag, grade_col, dose_col, time_src, time_col in resolved:
                self.one_patient_event(
                    k, i, pid, rule, flag, grade_col, dose_col, time_src, time_col
                )

    def one_patient_event(
        self,
        k: int,
        i: int,
        pid: str,
        rule: PatientEventRule,
        flag: int | None,
        grade_col: int | None,
        dose_col: int | None,
        time_src: int,
        time_col: int | None,
    ) -> None:
        label = f"{rule.event}: "
        if flag is not None:
            present, value = self.cell(k, i, flag, rule.flag, f"{label}flag ")
            if not present:
                return
            if not isinstance(value, bool | np.bool_):
                self.cell_problem(
                    k, i, flag, f"flag value {value!r} is not a boolean; map it with values"
                )
                return
            if not value:
                return
        grade = None
        if rule.event in GRADED_EVENTS:
            if grade_col is None:
                grade = rule.grade
            else:
                present, value = self.cell(k, i, grade_col, rule.grade, f"{label}grade ")
                if not present:
                    return
                grade = self.grade(k, i, grade_col, value, rule.event)
                if grade is None:
                    return
        hours = math.nan
        if time_col is not None:
            ti = self.patient_rows[time_src].get(pid) if time_src != k else i
            if ti is not None:
                hours = self.time_cell(
                    time_src, ti, time_col, rule.time, rule.time.number("fallback"), count=False
                )
                hours = math.nan if hours is None else hours
            if flag is None and rule.event not in GRADED_EVENTS and math.isnan(hours):
                return
        elif rule.time is not None and rule.time.value is not None:
            hours = self.hours(k, i, flag or 0, rule.time.number("value"), rule.time)
            if hours is None:
                return
        dose = math.nan
        if dose_col is not None:
            present, value = self.cell(k, i, dose_col, rule.dose, f"{label}dose ")
            if present:
                parsed = self.number(k, i, dose_col, value, "dose")
                dose = math.nan if parsed is None else parsed[0]
        self.events.append(
            {
                "patient_id": pid,
                "hours_from_infusion": hours,
                "event": rule.event,
                "grade": grade,
                "dose_mg_per_kg": dose,
                "_src": k,
                "_row": i,
                "_col": next(c for c in (grade_col, flag, dose_col, time_col, 0) if c is not None),
            }
        )
        self.reports[k].events += 1

    def grade(self, k: int, i: int, j: int, value: object, event: str) -> int | None:
        parsed = parse_number(value)
        lo, hi = GRADED_EVENTS[event]
        if parsed is None or not parsed[0].is_integer() or not lo <= parsed[0] <= hi:
            self.cell_problem(
                k, i, j, f"grade {value!r} is not a whole number in {lo}–{hi} for {event}"
            )
            return None
        return int(parsed[0])

    def time_cell(
        self, k: int, i: int, j: int, spec: TimeSpec, fallback: float | None, count: bool = True
    ) -> float | None:
        """Hours of a time cell; ``fallback`` (source units) when empty; ``None`` = no time."""
        value = self.tables[k].cells[i, j]
        if _is_empty(value) or self.is_placeholder(k, value):
            if fallback is None:
                if count:
                    self.reports[k].drop(R_NO_TIME)
                return None
            return self.hours(k, i, j, fallback, spec)
        if spec.column is not None and spec.column.values is not None:
            value = self.map_value(k, i, j, spec.column, value)
            if value is None:
                return None
        parsed = self.number(k, i, j, value, "time")
        return None if parsed is None else self.hours(k, i, j, parsed[0], spec)

    # -- measurement columns ----------------------------------------------------------------
    def analyte_key(self, src: object, name: str) -> tuple[str | None, str | None]:
        cache = self.analyte_cache.setdefault(id(src), {})
        if name not in cache:
            cache[name] = self._analyte_key(src, name)
        return cache[name]

    def _analyte_key(self, src: object, name: str) -> tuple[str | None, str | None]:
        """Vocabulary key for a source analyte name, or ``(None, reason to skip)``;
        ``(None, None)`` = unknown and not to be skipped (a problem)."""
        mapped = src.analytes.get(value_key(name))
        if mapped == SKIP:
            return None, f"analyte {name!r} skipped (mapping says skip)"
        if mapped is not None:
            return mapped, None
        key = resolve_analyte(name)
        if key is not None:
            return key, None
        if src.unknown_analytes == "skip":
            return None, f"unknown analyte {name!r} skipped (unknown_analytes: skip)"
        return None, None

    def measure_columns(self, k: int, src: object, per_patient: bool) -> list[_Measure]:
        t = self.tables[k]
        out: list[_Measure] = []
        owner: dict[int, int] = {}
        for r, rule in enumerate(src.measurements):
            where = f"measurements[{r}]"
            matches: list[tuple[int, dict[str, str]]] = []
            if rule.column is not None:
                j = self.resolve(k, rule.column, f"{where}.column")
                if j is None:
                    continue
                matches = [(j, {})]
            else:
                pattern = re.compile(rule.match, re.IGNORECASE)
                for j in range(t.n_columns):
                    m = pattern.fullmatch(t.path_text(j))
                    if m:
                        matches.append(
                            (j, {g: v for g, v in m.groupdict().items() if v is not None})
                        )
                if not matches:
                    self.problem(
                        f"mapping {self.name}: sources[{k}].{where}.match: no column of {t.file} "
                        f"has a header path matching {rule.match!r} (paths look like "
                        f"{t.path_text(min(1, t.n_columns - 1))!r})"
                    )
                    continue
            for j, groups in matches:
                if j in owner:
                    self.problem(
                        f"mapping {self.name}: sources[{k}].{where}: {t.column_label(j)} is "
                        f"already taken by measurements[{owner[j]}]"
                    )
                    continue
                owner[j] = r
                m = self.measure_column(k, src, rule, where, j, groups, per_patient)
                if m is not None:
                    out.append(m)
        return out

    def measure_column(
        self,
        k: int,
        src: object,
        rule: MeasureRule,
        where: str,
        j: int,
        groups: dict[str, str],
        per_patient: bool,
    ) -> _Measure | None:
        t = self.tables[k]
        at = f"mapping {self.name}: sources[{k}].{where} ({t.column_label(j)})"
        name = rule.analyte or groups.get("analyte", "")
        key, skip = self.analyte_key(src, name)
        if key is None:
            if skip is None:
                self.problem(
                    f"{at}: unknown analyte {name!r}; map it under analytes (to a key or "
                    "'skip') or set unknown_analytes: skip"
                )
                return None
            return _Measure(j, None, None, skip_reason=skip)
        unit_text = rule.unit or groups.get("unit", "")
        unit = resolve_unit(key, unit_text)
        if unit is None:
            self.problem(
                f"{at}: unit {unit_text!r} is not accepted for {key} "
                f"(accepted: {', '.join(ANALYTES[key].units)})"
            )
            return None
        measure = _Measure(j, key, unit, rule.time)
        if not per_patient:
            return measure
        spec = rule.time
        try:
            if spec.column is not None:
                column = spec.column
                if column.header is not None:
                    column = column.model_copy(update={"header": column.header.format(**groups)})
                tj, why = t.find(column)
                if why is not None:
                    self.problem(f"{at}: time.column: {why}")
                    return None
                measure.time_index = tj
            else:
                measure.time_value = self.template_number(spec.value, groups, f"{at}: time.value")
            if spec.fallback is not None:
                measure.fallback = self.template_number(
                    spec.fallback, groups, f"{at}: time.fallback"
                )
        except KeyError as exc:
            self.problem(f"{at}: time template names group {exc} that match does not define")
            return None
        return measure

    def template_number(
        self, value: float | str, groups: dict[str, str], where: str
    ) -> float | None:
        if not isinstance(value, str):
            return float(value)
        text = value.format(**groups)
        parsed = parse_number(text)
        if parsed is None:
            self.problem(f"{where}: {text!r} is not a number")
            return None
        return parsed[0]

    def add_measurement(
        self, k: int, i: int, j: int, pid: str, hours: float, key: str, unit: str, value: object
    ) -> None:
        parsed = self.number(k, i, j, value, "value", qualified=True)
        if parsed is None:
            return
        number, qualifier = parsed
        canonical = ANALYTES[key].units[unit].to_canonical(number)
        lo, hi = ANALYTES[key].hard
        if not lo <= canonical <= hi:
            self.cell_problem(
                k,
                i,
                j,
                f"value {number:g} {unit} of {key} is outside the possible range "
                f"[{lo:g}, {hi:g}] {ANALYTES[key].canonical_unit}",
            )
            return
        self.measurements.append(
            {
                "patient_id": pid,
                "hours_from_infusion": hours,
                "analyte": key,
                "value": number,
                "unit": unit,
                "qualifier": qualifier,
                "_canonical": canonical,
                "_src": k,
                "_row": i,
                "_col": j,
            }
        )
        self.reports[k].measurements += 1

    def measure_cells(
        self, k: int, i: int, pid: str, hours: float | None, measures: list[_Measure]
    ) -> None:
        """The measurement cells of one row (``hours`` = the row's time, wide tables)."""
        report = self.reports[k]
        for m in measures:
            if m.analyte is None:
                present, _ = self.cell(k, i, m.index, None, "")
                if present:
                    report.drop(m.skip_reason)
                continue
            present, value = self.cell(k, i, m.index, None, "")
            if not present:
                continue
            h = hours
            if m.time_index is not None:
                h = self.time_cell(k, i, m.time_index, m.time, m.fallback)
            elif m.time_value is not None:
                h = self.hours(k, i, m.index, m.time_value, m.time)
            if h is None:
                continue
            self.add_measurement(k, i, m.index, pid, h, m.analyte, m.unit, value)

    def do_patient_measurements(self, k: int, src: PatientMeasurementsSource) -> None:
        before = len(self.problems)
        measures = self.measure_columns(k, src, per_patient=True)
        self.reports[k].columns_used = len(measures)
        if len(self.problems) > before:
            return
        for pid, i in self.patient_rows[k].items():
            self.measure_cells(k, i, pid, None, measures)

    def do_wide(self, k: int, src: WideMeasurementsSource, ids: list[str | None]) -> None:
        before = len(self.problems)
        measures = self.measure_columns(k, src, per_patient=False)
        tj = self.resolve(k, src.time.column, "time.column")
        gj = self.resolve(k, src.crs_grade, "crs_grade")
        self.reports[k].columns_used = len(measures) + 1 + (gj is not None)
        if len(self.problems) > before:
            return
        grades: list[tuple[str, float, int, int]] = []
        for i, pid in enumerate(ids):
            if pid is None:
                continue
            hours = self.time_cell(k, i, tj, src.time, src.time.number("fallback"))
            if hours is None:
                continue
            self.measure_cells(k, i, pid, hours, measures)
            if gj is not None:
                present, value = self.cell(k, i, gj, src.crs_grade, "CRS grade: ")
                if present:
                    grade = self.grade(k, i, gj, value, "crs_grade")
                    if grade is not None:
                        grades.append((pid, hours, grade, i))
        self.derive_crs(k, gj, grades, src.crs_events)

    def derive_crs(
        self, k: int, gj: int | None, grades: list[tuple[str, float, int, int]], wanted: list[str]
    ) -> None:
        """Per-row grades → ``crs_onset`` (first grade ≥1), ``crs_grade`` at each later change,
        ``crs_max_grade`` (timed at onset; unknown time when the course never left grade 0)."""
        if not grades:
            return
        frame = pd.DataFrame(grades, columns=["pid", "hours", "grade", "row"])
        frame = frame.sort_values(["pid", "hours", "row"], kind="stable")
        for pid, rows in frame.groupby("pid", sort=False):
            rows = rows.drop_duplicates("hours", keep="last")
            onset_h = math.nan
            current = 0
            new: list[tuple[str, float, int, int]] = []
            for hours, grade, row in zip(rows["hours"], rows["grade"], rows["row"], strict=True):
                if math.isnan(onset_h):
                    if grade >= 1:
                        onset_h = hours
                        new.append(("crs_onset", hours, min(grade, 4), row))
                        current = grade
                elif grade != current:
                    new.append(("crs_grade", hours, grade, row))
                    current = grade
            new.append(
                ("crs_max_grade", onset_h, int(rows["grade"].max()), int(rows["row"].iloc[0]))
            )
            for event, hours, grade, row in new:
                if event in wanted:
                    self.events.append(
                        {
                            "patient_id": pid,
                            "hours_from_infusion": hours,
                            "event": event,
                            "grade": grade,
                            "dose_mg_per_kg": math.nan,
                            "_src": k,
                            "_row": row,
                            "_col": gj,
                        }
                    )
                    self.reports[k].events += 1

    def do_long(self, k: int, src: LongMeasurementsSource, ids: list[str | None]) -> None:
        before = len(self.problems)
        tj = self.resolve(k, src.time.column, "time.column")
        aj = self.resolve(k, src.analyte, "analyte")
        vj = self.resolve(k, src.value, "value")
        uj = self.resolve(k, src.unit_column, "unit_column")
        qj = self.resolve(k, src.qualifier, "qualifier")
        self.reports[k].columns_used = 4 + (uj is not None) + (qj is not None)
        if len(self.problems) > before:
            return
        report = self.reports[k]
        unknown: Counter = Counter()
        bad_units: dict[tuple[str, str], list[int]] = {}
        for i, pid in enumerate(ids):
            if pid is None:
                continue
            present, name = self.cell(k, i, aj, src.analyte, "analyte: ")
            if not present:
                continue
            key, skip = self.analyte_key(src, str(name))
            if key is None:
                if skip is None:
                    unknown[str(name)] += 1
                else:
                    report.drop(skip)
                continue
            present, value = self.cell(k, i, vj, src.value, "")
            if not present:
                continue
            unit_text = src.unit
            if uj is not None:
                present, unit_text = self.cell(k, i, uj, src.unit_column, "unit: ")
                if not present:
                    continue
            unit = _unit_of(key, str(unit_text))
            if unit is None:
                bad_units.setdefault((key, str(unit_text)), []).append(i)
                continue
            if qj is not None:
                q = self.tables[k].cells[i, qj]
                if not _is_empty(q):
                    q = str(q).strip()
                    if q not in ("<", ">"):
                        self.cell_problem(k, i, qj, f"qualifier {q!r} is not '<' or '>'")
                        continue
                    value = f"{q}{value}"
            hours = self.time_cell(k, i, tj, src.time, src.time.number("fallback"))
            if hours is None:
                continue
            self.add_measurement(k, i, vj, pid, hours, key, unit, value)
        t = self.tables[k]
        for (key, unit_text), at in bad_units.items():
            accepted = f"(accepted: {', '.join(ANALYTES[key].units)})"
            first = f"first at row {t.row_number(at[0])}"
            if uj is None:
                self.problem(
                    f"mapping {self.name}: sources[{k}].unit: {unit_text!r} is not accepted for "
                    f"{key}, the analyte of {_rows(len(at))} of {t.file} ({first}) {accepted}"
                )
            else:
                self.problem(
                    f"{t.file} {t.column_label(uj)}: unit {unit_text!r} is not accepted for {key} "
                    f"in {_rows(len(at))} ({first}) {accepted}"
                )
        for name, n in unknown.most_common():
            self.problem(
                f"{self.tables[k].file}, {self.tables[k].column_label(aj)}: unknown analyte "
                f"{name!r} in {_rows(n)}; map it under analytes (to a key or 'skip') or set "
                "unknown_analytes: skip"
            )

    def do_long_events(self, k: int, src: LongEventsSource, ids: list[str | None]) -> None:
        before = len(self.problems)
        tj = self.resolve(k, src.time.column, "time.column")
        ej = self.resolve(k, src.event, "event")
        gj = self.resolve(k, src.grade, "grade")
        dj = self.resolve(k, src.dose, "dose")
        self.reports[k].columns_used = 3 + (gj is not None) + (dj is not None)
        if len(self.problems) > before:
            return
        for i, pid in enumerate(ids):
            if pid is None:
                continue
            present, name = self.cell(k, i, ej, src.event, "event: ")
            if not present:
                continue
            event = str(name).strip()
            if event not in EVENTS:
                self.cell_problem(
                    k,
                    i,
                    ej,
                    f"event {name!r} is not an event ({', '.join(EVENTS)}); map it with values",
                )
                continue
            grade = None
            if event in GRADED_EVENTS:
                if gj is None:
                    self.cell_problem(k, i, ej, f"{event} needs a grade column")
                    continue
                present, value = self.cell(k, i, gj, src.grade, f"{event}: grade ")
                if not present:
                    continue
                grade = self.grade(k, i, gj, value, event)
                if grade is None:
                    continue
            hours = self.time_cell(k, i, tj, src.time, src.time.number("fallback"), count=False)
            dose = math.nan
            if dj is not None:
                present, value = self.cell(k, i, dj, src.dose, f"{event}: dose ")
                if present:
                    parsed = self.number(k, i, dj, value, "dose")
                    dose = math.nan if parsed is None else parsed[0]
            self.events.append(
                {
                    "patient_id": pid,
                    "hours_from_infusion": math.nan if hours is None else hours,
                    "event": event,
                    "grade": grade,
                    "dose_mg_per_kg": dose,
                    "_src": k,
                    "_row": i,
                    "_col": ej,
                }
            )
            self.reports[k].events += 1

    # -- assembling -------------------------------------------------------------------------
    def run(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        self.read_all()
        self.raise_if_problems()
        sources = self.mapping.sources
        all_ids = [self.ids(k) for k in range(len(sources))]
        self.patient_rows = [
            self.per_patient_rows(k, all_ids[k]) if s.kind in ONE_ROW_PER_PATIENT else {}
            for k, s in enumerate(sources)
        ]
        for k, src in enumerate(sources):
            if isinstance(src, PatientsSource):
                self.do_patients(k, src)
        for k, src in enumerate(sources):
            if isinstance(src, PatientsSource | PerPatientEventsSource):
                self.do_patient_events(k, src.events)
            elif isinstance(src, LongMeasurementsSource):
                self.do_long(k, src, all_ids[k])
            elif isinstance(src, WideMeasurementsSource):
                self.do_wide(k, src, all_ids[k])
            elif isinstance(src, PatientMeasurementsSource):
                self.do_patient_measurements(k, src)
            elif isinstance(src, LongEventsSource):
                self.do_long_events(k, src, all_ids[k])
        self.raise_if_problems()
        patients = self.patient_frame()
        measurements = self.measurement_frame(set(patients["patient_id"]))
        events = self.event_frame(set(patients["patient_id"]))
        self.raise_if_problems()
        return patients, measurements, events

    def patient_frame(self) -> pd.DataFrame:
        rows = [{"patient_id": pid, **fields} for pid, fields in self.patients.items()]
        frame = pd.DataFrame(rows, columns=[c.name for c in PATIENTS.columns])
        for col in PATIENTS.columns:
            dtype = {"bool": "boolean", "float": "float64", "int": "Int64"}.get(col.dtype, "string")
            frame[col.name] = frame[col.name].astype(dtype)
        return frame.sort_values("patient_id", kind="stable").reset_index(drop=True)

    def keep_known(self, frame: pd.DataFrame, known: set[str]) -> pd.DataFrame:
        unknown = ~frame["patient_id"].isin(known)
        for k, n in frame.loc[unknown, "_src"].value_counts().items():
            self.reports[int(k)].drop(R_NOT_IN_PATIENTS, int(n))
            kind = "measurements" if "analyte" in frame else "events"
            setattr(self.reports[int(k)], kind, getattr(self.reports[int(k)], kind) - int(n))
        return frame.loc[~unknown]

    def duplicates(
        self, frame: pd.DataFrame, key: list[str], same: list[str], what: str
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
        for i in np.flatnonzero(later):
            first, row = frame.iloc[first_of[tuples[i]]], frame.iloc[i]
            k = int(row["_src"])
            if all(_same(row[c], first[c]) for c in same):
                self.reports[k].drop(R_DUPLICATE if what == "measurement" else R_DUPLICATE_EVENT)
            elif self.mapping.duplicates == "keep_first":
                self.reports[k].drop(R_CONFLICT_KEPT)
            else:
                ta, tb = self.tables[int(first["_src"])], self.tables[k]
                noun = "analyte" if what == "measurement" else "event"
                self.problem(
                    f"conflicting {what}s for the same patient, time and {noun}: "
                    f"{ta.file} row {ta.row_number(int(first['_row']))}, "
                    f"{ta.column_label(int(first['_col']))} vs {tb.file} row "
                    f"{tb.row_number(int(row['_row']))}, {tb.column_label(int(row['_col']))} "
                    "(set duplicates: keep_first to keep the first)"
                )
            counted = what + "s"
            setattr(self.reports[k], counted, getattr(self.reports[k], counted) - 1)
        return frame.loc[~later]

    def measurement_frame(self, known: set[str]) -> pd.DataFrame:
        frame = pd.DataFrame(self.measurements, columns=[*_M_COLS, "_canonical", *_PROV])
        frame = self.keep_known(frame, known)
        frame = self.duplicates(
            frame,
            ["patient_id", "hours_from_infusion", "analyte"],
            ["_canonical", "qualifier"],
            "measurement",
        )
        frame = frame.sort_values(["patient_id", "hours_from_infusion", "analyte"], kind="stable")
        out = frame[_M_COLS].reset_index(drop=True)
        out["hours_from_infusion"] = out["hours_from_infusion"].astype("float64")
        out["value"] = out["value"].astype("float64")
        out["qualifier"] = out["qualifier"].astype("string")
        return out

    def event_frame(self, known: set[str]) -> pd.DataFrame:
        frame = pd.DataFrame(self.events, columns=[*_E_COLS, *_PROV])
        frame = self.keep_known(frame, known)
        frame = self.duplicates(
            frame,
            ["patient_id", "hours_from_infusion", "event"],
            ["grade", "dose_mg_per_kg"],
            "event",
        )
        frame = frame.sort_values(
            ["patient_id", "hours_from_infusion", "event"], kind="stable", na_position="last"
        )
        out = frame[_E_COLS].reset_index(drop=True)
        out["hours_from_infusion"] = out["hours_from_infusion"].astype("float64")
        out["grade"] = out["grade"].astype("Int64")
        out["dose_mg_per_kg"] = out["dose_mg_per_kg"].astype("float64")
        return out


def _same(a: object, b: object) -> bool:
    """Equal values for duplicate detection (missing equals missing; floats to 1e-9)."""
    if pd.isna(a) or pd.isna(b):
        return bool(pd.isna(a) and pd.isna(b))
    if isinstance(a, int | float | np.integer | np.floating):
        return bool(np.isclose(float(a), float(b), rtol=1e-9, atol=0.0))
    return a == b


def convert(
    mapping: Mapping, sources: list[Path], mapping_name: str = "mapping"
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[SourceReport]]:
    """Read an extract through ``mapping``: ``(patients, measurements, events, per-source
    reports)`` in the cohort contract's columns, or :class:`CrsRiskError` listing every problem."""
    run = _Import(mapping, mapping_name, collect_files(sources))
    patients, measurements, events = run.run()
    return patients, measurements, events, run.reports


def import_cohort(
    mapping: Path | str, sources: list[Path], out: Path | str, fmt: str = "csv"
) -> ImportReport:
    """``crs-risk cohort import``: convert ``sources`` through the mapping file and write the
    cohort folder ``out`` (validated first by :func:`features.io.write_cohort`; nothing is
    written when anything fails)."""
    from features.io import write_cohort

    mapping_path = Path(mapping)
    if fmt not in ("csv", "parquet"):
        raise CrsRiskError(f"--format {fmt!r}: use csv or parquet")
    if not sources:
        raise CrsRiskError("give at least one source file or folder of the extract")
    parsed = load_mapping(mapping_path)
    patients, measurements, events, reports = convert(parsed, list(sources), mapping_path.name)
    written = write_cohort(Path(out), patients, measurements, events, fmt=fmt)
    return ImportReport(
        mapping=mapping_path.name,
        out=Path(out),
        fmt=fmt,
        sources=reports,
        n_patients=len(patients),
        n_measurements=len(measurements),
        n_events=len(events),
        analytes=measurements["analyte"].value_counts().to_dict(),
        event_counts=events["event"].value_counts().to_dict(),
        warnings=[p.render() for p in written.warnings],
    )
