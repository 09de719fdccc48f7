"""``patients`` and ``per_patient_events`` sources: one row per patient (or, with ``rows:
repeated``, a patient-day table whose patient columns repeat on every row), patient fields,
the infusion date and per-patient events."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from features.importer.cells import cached_key, is_empty, parse_date, parse_number, patient_id
from features.importer.reader import Reader
from features.importer.report import R_REPEATED_PATIENT
from features.mapping import ColumnSpec, PatientEventRule, PatientsSource
from features.schema import GRADED_EVENTS, PATIENTS
from features.validation.collect import side_kind


def per_patient_rows(r: Reader, k: int, ids: list[str | None]) -> dict[str, int]:
    """Patient id → its row. Repeats are an error, or with ``rows: repeated`` one patient when
    every patient column (and the infusion date) agrees, an error naming the column otherwise."""
    src, t = r.mapping.sources[k], r.table(k)
    repeated = isinstance(src, PatientsSource) and src.rows == "repeated"
    compared: list[int] = []
    if isinstance(src, PatientsSource) and repeated:
        specs = list(src.columns.values())
        infusion = r.mapping.infusion
        if infusion is not None and infusion.source == src.name:
            specs.append(infusion.column)
        compared = sorted({j for s in specs if (j := t.find(s)[0]) is not None})
    rows: dict[str, int] = {}
    for i, pid in enumerate(ids):
        if pid is None:
            continue
        first = rows.get(pid)
        if first is None:
            rows[pid] = i
            continue
        if not repeated:
            r.problem(
                f"{t.file} rows {t.row_number(first)} and {t.row_number(i)}: the same patient id "
                f"twice in a one-row-per-patient source ({src.kind}; a patient-day table needs "
                "rows: repeated)"
            )
            continue
        differ = [j for j in compared if cached_key(t.cells[first, j]) != cached_key(t.cells[i, j])]
        for j in differ:
            r.problem(
                f"{t.file} rows {t.row_number(first)} and {t.row_number(i)}, {t.column_label(j)}: "
                "conflicting values for one patient in a repeated patient column"
            )
        if not differ:
            r.reports[k].drop(R_REPEATED_PATIENT)
    return rows


def _kind_of(r: Reader, cell: object, type_matters: bool) -> str | None:
    """``Reader.kind`` of one cell, for :func:`patient_value` (it never shows the cell)."""
    return r.kind(cell, type_matters)


def patient_value(
    name: str, value: object, shown: str | None, kind: Callable[[bool], str | None]
) -> tuple[bool, object]:
    """Coerce one patient field value to the contract's type; ``(False, why)`` if it can't.

    ``shown``: the value as a message may show it (a mapping constant), ``None`` for a cell
    (never shown: ``kind(type_matters)`` describes it instead)."""
    col = PATIENTS.column(name)
    what = "value" if shown is None else f"value {shown}"

    def rejected(rule: str, type_matters: bool, hint: str = "") -> tuple[bool, str]:
        described = kind(type_matters) if shown is None else None
        return False, f"{name}: {what} {rule}" + (f"; {described}" if described else "") + hint

    if col.dtype == "bool":
        if isinstance(value, bool | np.bool_):
            return True, bool(value)
        return rejected("is not a boolean", True, "; map it with values: {…: true}")
    if col.dtype in ("string", "category"):
        text = patient_id(value) if not isinstance(value, str) else value.strip()
        if col.allowed is not None and text not in col.allowed:
            return rejected(f"not allowed ({', '.join(col.allowed)})", False)
        return True, text
    parsed = parse_number(value)
    if parsed is None:
        return rejected("is not a number", True)
    number = parsed[0]
    if col.hard is not None and not col.hard[0] <= number <= col.hard[1]:
        rule = f"outside the possible range {col.hard}"
        if shown is None:
            rule += f"; {side_kind(number, col.hard)}"
        return rejected(rule, False)
    return True, number


def read_patients(r: Reader, k: int, src: PatientsSource) -> None:
    cols = {name: r.resolve(k, spec, f"columns.{name}") for name, spec in src.columns.items()}
    constants: dict[str, object] = {}
    for name, value in src.constants.items():
        ok, out = patient_value(name, value, repr(value), lambda _: None)
        if ok:
            constants[name] = out
        else:
            r.mapping_problem(k, "constants", str(out))
    found = {name: j for name, j in cols.items() if j is not None}
    if len(found) < len(cols):
        return
    for pid, i in r.patient_rows[k].items():
        record = r.patients.setdefault(pid, {})
        record.update(constants)
        for name, j in found.items():
            present, cell = r.cell(k, i, j, src.columns[name], f"{name}: ")
            if not present:
                continue
            ok, out = patient_value(name, cell, None, functools.partial(_kind_of, r, cell))
            if ok:
                record[name] = out
            else:
                r.cell_problem(k, i, j, str(out))
    r.reports[k].patients = len(r.patient_rows[k])
    r.reports[k].columns_used = len(cols) + 1


def read_infusion(r: Reader) -> None:
    """Infusion date(-time) per patient, the origin of ``unit: date`` times (never written)."""
    spec = r.mapping.infusion
    if spec is None:
        return
    k = next(n for n, s in enumerate(r.mapping.sources) if s.name == spec.source)
    j = r.resolve(k, spec.column, "infusion.column")
    if j is None:
        return
    for pid, i in r.patient_rows[k].items():
        value = r.table(k).cells[i, j]
        if is_empty(value) or r.is_placeholder(k, value):
            r.reports[k].drop("infusion date: empty (the patient's dated rows are dropped)")
            continue
        parsed = parse_date(value, spec.date_format)
        if parsed is None:
            fmt = spec.date_format or "ISO 8601, e.g. 2024-03-01"
            r.cell_problem(
                k, i, j, r.described(f"infusion date is not a date (expected {fmt})", value)
            )
            continue
        r.infusion[pid] = parsed


def read_patient_events(r: Reader, k: int, rules: list[PatientEventRule]) -> None:
    before = len(r.problems)
    resolved = []
    for n, rule in enumerate(rules):
        where = f"events[{n}]"
        flag = r.resolve(k, rule.flag, f"{where}.flag")
        grade = (
            r.resolve(k, rule.grade, f"{where}.grade")
            if isinstance(rule.grade, ColumnSpec)
            else None
        )
        dose = r.resolve(k, rule.dose, f"{where}.dose")
        ind = (
            r.resolve(k, rule.indication, f"{where}.indication")
            if isinstance(rule.indication, ColumnSpec)
            else None
        )
        time_src = k
        if rule.time is not None and rule.time.source is not None:
            time_src = next(
                m for m, s in enumerate(r.mapping.sources) if s.name == rule.time.source
            )
        time_col = None
        if rule.time is not None and rule.time.column is not None:
            if r.tables[time_src] is None:
                continue
            j, why = r.table(time_src).find(rule.time.column)
            if why is not None:
                r.mapping_problem(k, f"{where}.time.column", why)
                continue
            time_col = j
        resolved.append((rule, flag, grade, dose, ind, time_src, time_col))
        r.reports[k].columns_used += sum(x is not None for x in (flag, grade, dose, ind))
    if len(resolved) != len(rules) or len(r.problems) > before:
        return
    for pid, i in r.patient_rows[k].items():
        for rule, flag, grade_col, dose_col, ind_col, time_src, time_col in resolved:
            one_patient_event(
                r, k, i, pid, rule, flag, grade_col, dose_col, ind_col, time_src, time_col
            )


def one_patient_event(
    r: Reader,
    k: int,
    i: int,
    pid: str,
    rule: PatientEventRule,
    flag: int | None,
    grade_col: int | None,
    dose_col: int | None,
    ind_col: int | None,
    time_src: int,
    time_col: int | None,
) -> None:
    label = f"{rule.event}: "
    if flag is not None:
        assert rule.flag is not None  # the flag column was resolved from it
        if not r.flag(k, i, flag, rule.flag, f"{label}flag "):
            return
    grade: int | None = None
    if rule.event in GRADED_EVENTS:
        if grade_col is None:
            assert not isinstance(rule.grade, ColumnSpec)  # a grade column resolves to grade_col
            grade = rule.grade
        else:
            assert isinstance(rule.grade, ColumnSpec)
            present, value = r.cell(k, i, grade_col, rule.grade, f"{label}grade ")
            if not present:
                return
            grade = r.grade(k, i, grade_col, value, rule.event)
            if grade is None:
                return
    hours = math.nan
    if time_col is not None:
        assert rule.time is not None  # the time column was resolved from it
        ti = r.patient_rows[time_src].get(pid) if time_src != k else i
        if ti is not None:
            fallback = rule.time.number("fallback")
            h = r.time_cell(time_src, ti, time_col, rule.time, fallback, pid, count=False)
            r.reports[k].placements.add(rule.time.describe_placement())
            hours = math.nan if h is None else h
        if flag is None and rule.event not in GRADED_EVENTS and math.isnan(hours):
            return
    elif rule.time is not None and (value_h := rule.time.number("value")) is not None:
        h = r.hours(k, i, flag or 0, value_h, rule.time)
        if h is None:
            return
        hours = h
    dose = r.dose(k, i, dose_col, rule.dose, label)
    indication = r.indication(k, i, rule.indication, ind_col, label)
    col = next(c for c in (grade_col, flag, dose_col, time_col, 0) if c is not None)
    r.add_event(k, i, col, pid, hours, rule.event, grade, dose, indication)
