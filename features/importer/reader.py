"""The shared cell reader of one import: every source kind reads its cells through it.

It holds the read tables, the per-source reports and the list of problems, and applies the rules
common to every source: placeholders and empty cells (dropped, counted), value maps (must cover
every value), numbers, grades, times (days, hours or calendar dates, with the day-granular
placement of :class:`~features.mapping.TimeSpec`) and measurement values (ranges, imputed
constants, assay limits). Messages name file, row, column and rule, and where it helps the kind of
the offending cell (:meth:`Reader.kind`), never its content: a cell may hold a name or a hospital
number. Headers and the mapping's own entries (value-map keys, placeholders) may be shown.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import CrsRiskError
from features.importer.cells import cached_key, is_empty, parse_date, parse_number, patient_id
from features.importer.report import (
    R_EMPTY,
    R_EMPTY_ID,
    R_EMPTY_ROW,
    R_IMPUTED,
    R_MAPPED_MISSING,
    R_NO_TIME,
    SourceReport,
    placeholder_reason,
)
from features.importer.table import SourceTable, read_source
from features.mapping import (
    SKIP,
    AnalyteOptions,
    AnalyteValues,
    ColumnSpec,
    Mapping,
    MapTarget,
    TimeSpec,
    place_day,
    same_value,
    value_key,
)
from features.schema import GRADED_EVENTS, HOURS, INDICATIONS
from features.validation.collect import ID_KIND, cell_kind, side_kind
from features.vocabulary import ANALYTES, resolve_analyte, resolve_unit

MAX_LISTED_PROBLEMS = 60
R_NO_INFUSION = "no infusion date for the patient"
M_COLS = ["patient_id", "hours_from_infusion", "analyte", "value", "unit", "qualifier"]
E_COLS = ["patient_id", "hours_from_infusion", "event", "grade", "dose_mg_per_kg", "indication"]
PROV = ["_src", "_row", "_col"]


class Reader:
    """State of one import and the cell rules shared by every source kind."""

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
        # comparison key → the placeholder as the mapping spells it (shown in the report)
        self.placeholders: list[dict[str, str]] = [
            {value_key(v): str(v) for v in (*mapping.na_values, *s.na_values)}
            for s in mapping.sources
        ]
        self.measurements: list[tuple] = []
        self.events: list[tuple] = []
        self.patients: dict[str, dict[str, object]] = {}
        self.patient_rows: list[dict[str, int]] = []  # per source: patient id → first row
        self.id_keys: set[str] = set()  # comparison keys of every patient id (never shown)
        self.infusion: dict[str, tuple[dt.datetime, bool]] = {}
        self.analyte_cache: dict[int, dict[str, tuple[str | None, str | None]]] = {}
        self.lost_to_follow_up = 0
        self.value_hits: set[tuple[int, str, str, float]] = set()  # analyte_values that matched

    # -- problems ---------------------------------------------------------------------------
    def table(self, k: int) -> SourceTable:
        """The table read for source ``k`` (only asked for once :meth:`read_all` found it)."""
        t = self.tables[k]
        if t is None:
            raise RuntimeError(f"source {k} was not read")  # a bug, not a user error
        return t

    def problem(self, message: str) -> None:
        self.problems.append(message)

    def kind(self, value: object, type_matters: bool = True) -> str | None:
        """A cell described for a message, never shown: a patient id is said to be one, any
        other cell by its kind ("the cell holds text"), or ``None`` when not ``type_matters``."""
        if cached_key(value) in self.id_keys:
            return ID_KIND
        return f"the cell holds {cell_kind(value)}" if type_matters else None

    def described(self, message: str, value: object, type_matters: bool = True) -> str:
        """``message`` followed by :meth:`kind` of the cell, when there is one."""
        kind = self.kind(value, type_matters)
        return message if kind is None else f"{message}; {kind}"

    def cell_problem(self, k: int, i: int, j: int, message: str) -> None:
        t = self.table(k)
        self.problem(f"{t.file} row {t.row_number(i)}, {t.column_label(j)}: {message}")

    def mapping_problem(self, k: int, where: str, message: str) -> None:
        self.problem(f"mapping {self.name}: sources[{k}].{where}: {message}")

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

    # -- files and columns ------------------------------------------------------------------
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
            if len(hits) != 1:
                if hits:
                    why = f"matches {len(hits)} files; give more of its path"
                else:
                    given = ", ".join(sorted({p[0].name for p in self.files.values()})[:10])
                    why = f"not found among the sources ({given})"
                self.problem(f"{where}: {src.file!r} {why}")
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
        j, why = self.table(k).find(spec)
        if why is not None:
            self.mapping_problem(k, where, why)
        return j

    def ids(self, k: int) -> list[str | None]:
        """Patient id per row (``None`` for empty rows / empty ids, counted)."""
        src, t = self.mapping.sources[k], self.table(k)
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
            else:
                self.id_keys.add(cached_key(value))
                self.id_keys.add(cached_key(pid))
            out.append(pid)
        return out

    # -- cells ------------------------------------------------------------------------------
    def is_placeholder(self, k: int, value: object) -> bool:
        return bool(self.placeholders[k]) and cached_key(value) in self.placeholders[k]

    def map_value(
        self, k: int, i: int, j: int, values: dict[str, MapTarget] | None, value: object
    ) -> object:
        """Apply a value map (every value must be covered); ``None`` = mapped to missing."""
        if values is None:
            return value
        key = cached_key(value)
        if key not in values:
            message = f"value not in the value map ({', '.join(values)})"
            self.cell_problem(k, i, j, self.described(message, value))
            return None
        return values[key]

    def cell(
        self,
        k: int,
        i: int,
        j: int,
        spec: ColumnSpec | None,
        label: str,
        values: dict[str, MapTarget] | None = None,
    ) -> tuple[bool, object]:
        """``(True, value)`` for a usable (mapped) cell; counts empty/placeholder/missing."""
        value = self.table(k).cells[i, j]
        report = self.reports[k]
        if is_empty(value):
            report.drop(f"{label}{R_EMPTY}")
            return False, None
        if self.is_placeholder(k, value):
            report.drop(f"{label}{placeholder_reason(self.placeholders[k][cached_key(value)])}")
            return False, None
        values = values if values is not None else (spec.values if spec is not None else None)
        if values is not None:
            mapped = self.map_value(k, i, j, values, value)
            if mapped is None:
                if cached_key(value) in values:
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
                "; declare it under na_values if it means missing, or map it with values"
                if isinstance(value, str)
                else ""
            )
            self.cell_problem(k, i, j, self.described(f"{what} is not a number", value) + hint)
        return parsed

    def grade(self, k: int, i: int, j: int, value: object, event: str) -> int | None:
        parsed = parse_number(value)
        lo, hi = GRADED_EVENTS[event]
        if parsed is None or not parsed[0].is_integer() or not lo <= parsed[0] <= hi:
            message = f"grade is not a whole number in {lo}–{hi} for {event}"
            if parsed is None:
                message = self.described(message, value)
            elif not lo <= parsed[0] <= hi:
                message += f"; {side_kind(parsed[0], (lo, hi))}"
            else:
                message += "; the value is not a whole number"
            self.cell_problem(k, i, j, message)
            return None
        return int(parsed[0])

    def flag(self, k: int, i: int, j: int, spec: ColumnSpec, label: str) -> bool | None:
        """A boolean flag cell (after its value map); ``None`` = missing or not a boolean."""
        present, value = self.cell(k, i, j, spec, label)
        if not present:
            return None
        if not isinstance(value, bool | np.bool_):
            message = self.described("flag value is not a boolean", value)
            self.cell_problem(k, i, j, f"{message}; map it with values")
            return None
        return bool(value)

    def indication(
        self, k: int, i: int, spec: str | ColumnSpec | None, j: int | None, label: str
    ) -> str | None:
        """Indication of a drug event: the constant, or the (mapped) cell; ``None`` = unknown."""
        if spec is None or isinstance(spec, str):
            return spec
        assert j is not None, "an indication column is resolved before its cells are read"
        present, value = self.cell(k, i, j, spec, f"{label}indication ")
        if not present:
            return None
        text = str(value).strip().casefold()
        if text not in INDICATIONS:
            message = self.described(
                f"indication is not one of {', '.join(INDICATIONS)}", value, type_matters=False
            )
            self.cell_problem(k, i, j, f"{message}; map it with values")
            return None
        return text

    # -- times ------------------------------------------------------------------------------
    def in_contract(self, k: int, i: int, j: int, h: float, converted: str) -> float | None:
        """``h`` when within the contract's times, else a problem saying on which side (the
        time is never shown; ``converted``: how the cell became hours from infusion)."""
        assert HOURS.hard is not None  # the contract bounds every time
        lo, hi = HOURS.hard
        if not lo <= h <= hi:
            side = side_kind(h, (lo, hi), converted)
            self.cell_problem(
                k, i, j, f"time is outside the contract [{lo:g}, {hi:g}] h from infusion; {side}"
            )
            return None
        return h

    def hours(self, k: int, i: int, j: int, value: float, spec: TimeSpec) -> float | None:
        """Hours from infusion of a time in days or hours (placement of whole days applied)."""
        self.reports[k].placements.add(spec.describe_placement())
        t = value + spec.offset
        h = t if spec.unit == "hours" else place_day(t, spec.placed)
        converted = "" if spec.unit == "hours" else f"converted from {spec.unit} to hours"
        return self.in_contract(k, i, j, h, converted)

    def date_hours(
        self, k: int, i: int, j: int, value: object, spec: TimeSpec, pid: str
    ) -> float | None:
        """Hours from the patient's infusion of a calendar date(-time) cell."""
        self.reports[k].placements.add(spec.describe_placement())
        parsed = parse_date(value, spec.date_format)
        if parsed is None:
            fmt = spec.date_format or "ISO 8601, e.g. 2024-03-01 or 2024-03-01T14:30"
            self.cell_problem(k, i, j, self.described(f"not a date (expected {fmt})", value))
            return None
        origin = self.infusion.get(pid)
        if origin is None:
            self.reports[k].drop(R_NO_INFUSION)
            return None
        stamp, has_time = parsed
        if not has_time:
            placed = spec.placed
            if placed == "end_of_day":
                stamp += dt.timedelta(hours=24)
            elif not isinstance(placed, str):
                stamp += dt.timedelta(hours=float(placed))
        h = (stamp - origin[0]).total_seconds() / 3600.0
        return self.in_contract(k, i, j, h, "counted from the infusion date")

    def time_cell(
        self,
        k: int,
        i: int,
        j: int,
        spec: TimeSpec,
        fallback: float | None,
        pid: str,
        count: bool = True,
    ) -> float | None:
        """Hours of a time cell; ``fallback`` (source units) when empty; ``None`` = no time."""
        value = self.table(k).cells[i, j]
        if is_empty(value) or self.is_placeholder(k, value):
            if fallback is None:
                if count:
                    self.reports[k].drop(R_NO_TIME)
                return None
            return self.hours(k, i, j, fallback, spec)
        if spec.column is not None and spec.column.values is not None:
            value = self.map_value(k, i, j, spec.column.values, value)
            if value is None:
                return None
        if spec.unit == "date":
            return self.date_hours(k, i, j, value, spec, pid)
        parsed = self.number(k, i, j, value, "time")
        return None if parsed is None else self.hours(k, i, j, parsed[0], spec)

    # -- measurements and events ------------------------------------------------------------
    def analyte_key(self, src: AnalyteOptions, name: str) -> tuple[str | None, str | None]:
        """Vocabulary key for a source analyte name, or ``(None, reason to skip)``;
        ``(None, None)`` = unknown and not to be skipped (a problem). A reason names an analyte
        only by the mapping's own entry (its comparison key), never by a cell."""
        cache = self.analyte_cache.setdefault(id(src), {})
        if name not in cache:
            mapped = src.analytes.get(value_key(name))
            if mapped == SKIP:
                entry = value_key(name)
                cache[name] = None, f"analyte {entry!r} skipped (mapping says skip)"
            elif mapped is not None:
                cache[name] = mapped, None
            elif (key := resolve_analyte(name)) is not None:
                cache[name] = key, None
            elif src.unknown_analytes == "skip":
                cache[name] = None, "unknown analyte skipped (unknown_analytes: skip)"
            else:
                cache[name] = None, None
        return cache[name]

    def add_measurement(
        self,
        k: int,
        i: int,
        j: int,
        pid: str,
        hours: float,
        key: str,
        unit: str,
        value: object,
        rules: AnalyteValues | None = None,
    ) -> None:
        if isinstance(value, bool | np.bool_):
            value = float(value)
        parsed = self.number(k, i, j, value, "value", qualified=True)
        if parsed is None:
            return
        number, qualifier = parsed
        if rules is not None and rules.units_before:
            dated = self.dated_unit(k, pid, hours, key, rules)
            if dated is None:
                return
            unit = dated or unit
        canonical = ANALYTES[key].units[unit].to_canonical(number)
        if rules is not None:
            # declared in the canonical unit: compared after conversion (issue 17)
            if any(self.matched(k, key, "missing", m, canonical) for m in rules.missing):
                self.reports[k].drop(f"{key}: {R_IMPUTED}")
                return
            if rules.ceiling is not None and self.matched(
                k, key, "ceiling", rules.ceiling, canonical
            ):
                qualifier = qualifier or ">"
            if rules.floor is not None and self.matched(k, key, "floor", rules.floor, canonical):
                qualifier = qualifier or "<"
        lo, hi = ANALYTES[key].hard
        if not lo <= canonical <= hi:
            to = ANALYTES[key].canonical_unit
            side = side_kind(canonical, (lo, hi), "" if unit == to else f"converted to {to}")
            self.cell_problem(
                k,
                i,
                j,
                f"value of {key} is outside the possible range [{lo:g}, {hi:g}] {to}; {side}",
            )
            return
        # a tuple per row (columns M_COLS, _canonical, PROV): a dict would cost 5× the memory
        self.measurements.append((pid, hours, key, number, unit, qualifier, canonical, k, i, j))
        self.reports[k].measurements += 1

    def dated_unit(
        self, k: int, pid: str, hours: float, key: str, rules: AnalyteValues
    ) -> str | None:
        """The ``units_before`` unit of a row dated before one of its dates, ``""`` for a later
        row (the rule's unit), ``None`` when the patient has no infusion date (dropped, counted)."""
        origin = self.infusion.get(pid)
        if origin is None:
            self.reports[k].drop(R_NO_INFUSION)
            return None
        stamp = origin[0] + dt.timedelta(hours=hours)
        for cut, text in rules.unit_cuts():
            if stamp <= cut:
                unit = resolve_unit(key, text)
                assert unit is not None  # checked when the mapping was read
                self.reports[k].dated_units[(key, cut.date().isoformat(), unit)] += 1
                return unit
        return ""

    def matched(self, k: int, key: str, field: str, declared: float, canonical: float) -> bool:
        """``canonical`` equals the ``analyte_values`` value ``declared`` (noted as matched)."""
        if not same_value(canonical, declared):
            return False
        self.value_hits.add((k, key, field, declared))
        return True

    def unmatched_values(self) -> None:
        """List in each source's report the ``analyte_values`` that matched no value (a typo,
        or a value given in the source unit instead of the canonical one); not an error."""
        for k, src in enumerate(self.mapping.sources):
            for key, rules in (getattr(src, "analyte_values", None) or {}).items():
                unit = ANALYTES[key].canonical_unit
                for field, value in rules.declared():
                    if (k, key, field, value) not in self.value_hits:
                        self.reports[k].unmatched.append(
                            f"analyte_values.{key}.{field} {value:g} {unit} matched no value"
                        )
                for when, text in rules.units_before.items():
                    unit = resolve_unit(key, text) or text
                    if (key, when, unit) not in self.reports[k].dated_units:
                        self.reports[k].unmatched.append(
                            f"analyte_values.{key}.units_before {when} matched no row"
                        )

    def add_event(
        self,
        k: int,
        i: int,
        j: int,
        pid: str,
        hours: float,
        event: str,
        grade: int | None = None,
        dose: float = math.nan,
        indication: str | None = None,
    ) -> None:
        self.events.append((pid, hours, event, grade, dose, indication, k, i, j))  # E_COLS, PROV
        self.reports[k].events += 1

    def dose(self, k: int, i: int, j: int | None, spec: ColumnSpec | None, label: str) -> float:
        if j is None:
            return math.nan
        present, value = self.cell(k, i, j, spec, f"{label}dose ")
        if not present:
            return math.nan
        parsed = self.number(k, i, j, value, "dose")
        return math.nan if parsed is None else parsed[0]
