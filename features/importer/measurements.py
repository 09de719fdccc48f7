"""Measurement sources: ``long_measurements`` (one value per row), ``wide_measurements`` (one row
per patient and time, analyte columns, optional per-row unit column) and ``patient_measurements``
(one row per patient, each column one analyte at one time). Value maps, imputed constants and
assay limits declared in the mapping are applied here, through the shared :class:`Reader`."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from features.importer.cells import fill_template, is_empty, parse_number
from features.importer.reader import Reader
from features.importer.report import rows_text
from features.importer.table import SourceTable
from features.mapping import (
    AnalyteValues,
    ColumnSpec,
    LongMeasurementsSource,
    MapTarget,
    MeasureRule,
    PatientMeasurementsSource,
    TimeSpec,
    WideMeasurementsSource,
)
from features.vocabulary import ANALYTES
from features.vocabulary import resolve_unit as _resolve_unit

resolve_unit = functools.lru_cache(maxsize=4096)(_resolve_unit)  # pure; extracts repeat units
MAX_FIRST_ROWS = 10
"""Distinct unaccepted cells of one rule named by their first row; the rest are counted."""


@dataclass
class Measure:
    """One resolved measurement column (of a wide or per-patient source)."""

    index: int
    analyte: str | None  # vocabulary key; None = skipped
    unit: str | None  # None with unit_index = the row's unit column
    time: TimeSpec | None = None
    time_index: int | None = None  # resolved time column (per-patient kinds)
    time_value: float | None = None  # resolved constant time
    fallback: float | None = None
    skip_reason: str | None = None
    values: dict[str, MapTarget] | None = None
    unit_index: int | None = None
    unit_spec: ColumnSpec | None = None
    rules: AnalyteValues | None = None


def first_rows(t: SourceTable, firsts: list[int], noun: str) -> str:
    """Where to find distinct unaccepted cells without showing them: the first row of each."""
    if len(firsts) == 1:
        return f"first at row {t.row_number(firsts[0])}"
    listed = ", ".join(str(t.row_number(i)) for i in firsts[:MAX_FIRST_ROWS])
    more = ", …" if len(firsts) > MAX_FIRST_ROWS else ""
    return f"{len(firsts)} distinct {noun}, first at rows {listed}{more}"


class BadUnits:
    """Units not accepted for an analyte, collected per (analyte, column) and reported once: a
    count of rows and of distinct units, each named by its first row (a unit cell could hold
    anything, so it is never shown)."""

    def __init__(self) -> None:
        self.at: dict[tuple[str, int], dict[str, list[int]]] = {}

    def add(self, key: str, unit: str, j: int, i: int) -> None:
        self.at.setdefault((key, j), {}).setdefault(unit, []).append(i)

    def report(self, r: Reader, k: int) -> None:
        t = r.table(k)
        for (key, j), units in self.at.items():
            n = sum(len(rows) for rows in units.values())
            firsts = sorted(rows[0] for rows in units.values())
            r.problem(
                f"{t.file} {t.column_label(j)}: unit not accepted for {key} in {rows_text(n)} "
                f"({first_rows(t, firsts, 'units')}) "
                f"(accepted: {', '.join(ANALYTES[key].units)})"
            )


def read_long(r: Reader, k: int, src: LongMeasurementsSource, ids: list[str | None]) -> None:
    before = len(r.problems)
    tj = r.resolve(k, src.time.column, "time.column")
    aj = r.resolve(k, src.analyte, "analyte")
    vj = r.resolve(k, src.value, "value")
    uj = r.resolve(k, src.unit_column, "unit_column")
    qj = r.resolve(k, src.qualifier, "qualifier")
    r.reports[k].columns_used = 4 + (uj is not None) + (qj is not None)
    if len(r.problems) > before:
        return
    # required columns: resolved, else a problem returned above
    assert tj is not None and aj is not None and vj is not None
    report, t = r.reports[k], r.table(k)
    unknown: dict[str, list[int]] = {}  # analyte cell text → its rows (never shown)
    bad_units = BadUnits()
    fixed_unit: dict[str, list[int]] = {}
    for i, pid in enumerate(ids):
        if pid is None:
            continue
        present, name = r.cell(k, i, aj, src.analyte, "analyte: ")
        if not present:
            continue
        key, skip = r.analyte_key(src, str(name))
        if key is None:
            if skip is None:
                unknown.setdefault(str(name), []).append(i)
            else:
                report.drop(skip)
            continue
        present, value = r.cell(k, i, vj, src.value, "")
        if not present:
            continue
        unit_text: object = src.unit
        if uj is not None:
            present, unit_text = r.cell(k, i, uj, src.unit_column, "unit: ")
            if not present:
                continue
        unit = resolve_unit(key, str(unit_text))
        if unit is None:
            if uj is None:
                fixed_unit.setdefault(key, []).append(i)
            else:
                bad_units.add(key, str(unit_text), uj, i)
            continue
        if qj is not None:
            q = t.cells[i, qj]
            if not is_empty(q):
                q = str(q).strip()
                if q not in ("<", ">"):
                    message = r.described("qualifier is not '<' or '>'", q, type_matters=False)
                    r.cell_problem(k, i, qj, message)
                    continue
                value = f"{q}{value}"
        hours = r.time_cell(k, i, tj, src.time, src.time.number("fallback"), pid)
        if hours is None:
            continue
        r.add_measurement(k, i, vj, pid, hours, key, unit, value, src.analyte_values.get(key))
    for key, at in fixed_unit.items():
        r.mapping_problem(
            k,
            "unit",
            f"{src.unit!r} is not accepted for {key}, the analyte of {rows_text(len(at))} of "
            f"{t.file} (first at row {t.row_number(at[0])}) "
            f"(accepted: {', '.join(ANALYTES[key].units)})",
        )
    bad_units.report(r, k)
    if unknown:
        n = sum(len(rows) for rows in unknown.values())
        firsts = sorted(rows[0] for rows in unknown.values())
        r.problem(
            f"{t.file}, {t.column_label(aj)}: unknown analyte in {rows_text(n)} "
            f"({first_rows(t, firsts, 'names')}); map each under analytes (to a key or 'skip') "
            "or set unknown_analytes: skip"
        )


def measure_columns(
    r: Reader, k: int, src: WideMeasurementsSource | PatientMeasurementsSource, per_patient: bool
) -> list[Measure]:
    """Resolve every measurement rule of a wide or per-patient source to its columns."""
    t = r.table(k)
    out: list[Measure] = []
    owner: dict[int, int] = {}
    for n, rule in enumerate(src.measurements):
        where = f"measurements[{n}]"
        matches: list[tuple[int, dict[str, str]]] = []
        if rule.column is not None:
            j = r.resolve(k, rule.column, f"{where}.column")
            if j is None:
                continue
            matches = [(j, {})]
        else:
            assert rule.match is not None, "a rule without a column has a match (mapping check)"
            pattern = re.compile(rule.match, re.IGNORECASE)
            for j in range(t.n_columns):
                m = pattern.fullmatch(t.path_text(j))
                if m:
                    matches.append((j, {g: v for g, v in m.groupdict().items() if v is not None}))
            if not matches:
                r.mapping_problem(
                    k,
                    f"{where}.match",
                    f"no column of {t.file} has a header path matching {rule.match!r} (paths "
                    f"look like {t.path_text(min(1, t.n_columns - 1))!r})",
                )
                continue
        for j, groups in matches:
            if j in owner:
                r.mapping_problem(
                    k, where, f"{t.column_label(j)} is already taken by measurements[{owner[j]}]"
                )
                continue
            owner[j] = n
            measure = measure_column(r, k, src, rule, where, j, groups, per_patient)
            if measure is not None:
                out.append(measure)
    return out


def measure_column(
    r: Reader,
    k: int,
    src: WideMeasurementsSource | PatientMeasurementsSource,
    rule: MeasureRule,
    where: str,
    j: int,
    groups: dict[str, str],
    per_patient: bool,
) -> Measure | None:
    t = r.table(k)
    at = f"{where} ({t.column_label(j)})"
    name = rule.analyte or groups.get("analyte", "")
    key, skip = r.analyte_key(src, name)
    if key is None:
        if skip is None:
            r.mapping_problem(
                k,
                at,
                f"unknown analyte {name!r}; map it under analytes (to a key or 'skip') or set "
                "unknown_analytes: skip",
            )
            return None
        return Measure(j, None, None, skip_reason=skip)
    values = rule.values if rule.values is not None else getattr(rule.column, "values", None)
    measure = Measure(j, key, None, rule.time, values=values, rules=src.analyte_values.get(key))
    if rule.unit_column is not None:
        measure.unit_index = r.resolve(k, rule.unit_column, f"{where}.unit_column")
        measure.unit_spec = rule.unit_column
        if measure.unit_index is None:
            return None
    else:
        unit_text = rule.unit or groups.get("unit", "")
        measure.unit = resolve_unit(key, unit_text)
        if measure.unit is None:
            r.mapping_problem(
                k,
                at,
                f"unit {unit_text!r} is not accepted for {key} "
                f"(accepted: {', '.join(ANALYTES[key].units)})",
            )
            return None
    if not per_patient:
        return measure
    spec = rule.time
    assert spec is not None, "a per-patient measurement rule declares its time (mapping check)"
    try:
        if spec.column is not None:
            column = spec.column
            if column.header is not None and rule.match is not None:
                column = column.model_copy(update={"header": fill_template(column.header, groups)})
            tj, why = t.find(column)
            if why is not None:
                r.mapping_problem(k, f"{at}.time.column", why)
                return None
            measure.time_index = tj
        else:
            assert spec.value is not None, "a time without a column has a value (mapping check)"
            measure.time_value = template_number(r, k, spec.value, groups, f"{at}.time.value")
        if spec.fallback is not None:
            measure.fallback = template_number(r, k, spec.fallback, groups, f"{at}.time.fallback")
    except KeyError as exc:
        r.mapping_problem(k, at, f"time template names group {exc} that match does not define")
        return None
    return measure


def template_number(
    r: Reader, k: int, value: float | str, groups: dict[str, str], where: str
) -> float | None:
    if not isinstance(value, str):
        return float(value)
    text = fill_template(value, groups)
    parsed = parse_number(text)
    if parsed is None:
        r.mapping_problem(k, where, f"{text!r} is not a number")
        return None
    return parsed[0]


def measure_cells(
    r: Reader,
    k: int,
    i: int,
    pid: str,
    hours: float | None,
    measures: list[Measure],
    bad_units: BadUnits,
) -> None:
    """The measurement cells of one row (``hours`` = the row's time, wide tables)."""
    report = r.reports[k]
    for m in measures:
        if m.analyte is None:
            present, _ = r.cell(k, i, m.index, None, "")
            if present:
                assert m.skip_reason is not None  # a measure without analyte is a skipped one
                report.drop(m.skip_reason)
            continue
        present, value = r.cell(k, i, m.index, None, "", values=m.values)
        if not present:
            continue
        unit = m.unit
        if m.unit_index is not None:
            present, text = r.cell(k, i, m.unit_index, m.unit_spec, f"{m.analyte} unit: ")
            if not present:
                continue
            unit = resolve_unit(m.analyte, str(text))
            if unit is None:
                bad_units.add(m.analyte, str(text), m.unit_index, i)
                continue
        h = hours
        if m.time_index is not None:
            assert m.time is not None  # resolved from the rule's time (measure_column)
            h = r.time_cell(k, i, m.time_index, m.time, m.fallback, pid)
        elif m.time_value is not None:
            assert m.time is not None
            h = r.hours(k, i, m.index, m.time_value, m.time)
        if h is None:
            continue
        assert unit is not None  # a fixed unit was resolved in measure_column
        r.add_measurement(k, i, m.index, pid, h, m.analyte, unit, value, m.rules)


def read_patient_measurements(r: Reader, k: int, src: PatientMeasurementsSource) -> None:
    before = len(r.problems)
    measures = measure_columns(r, k, src, per_patient=True)
    r.reports[k].columns_used = len(measures)
    if len(r.problems) > before:
        return
    bad_units = BadUnits()
    for pid, i in r.patient_rows[k].items():
        measure_cells(r, k, i, pid, None, measures, bad_units)
    bad_units.report(r, k)
