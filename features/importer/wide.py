"""``wide_measurements`` sources: one row per patient and time point (a flowsheet or a
patient-day table). Each row gives measurements (optionally with a per-row unit column and value
maps), a CRS grade from which the course is derived, and row events (daily drug, ICU or ICANS
columns, with their indication), all at the row's time."""

from __future__ import annotations

import math

from features.importer.cells import parse_number
from features.importer.events import derive_crs
from features.importer.measurements import BadUnits, measure_cells, measure_columns
from features.importer.reader import Reader
from features.mapping import ColumnSpec, RowEventRule, WideMeasurementsSource
from features.schema import GRADED_EVENTS


def read_wide(r: Reader, k: int, src: WideMeasurementsSource, ids: list[str | None]) -> None:
    before = len(r.problems)
    measures = measure_columns(r, k, src, per_patient=False)
    tj = r.resolve(k, src.time.column, "time.column")
    gj = r.resolve(k, src.crs_grade, "crs_grade")
    rules = [_resolve_rule(r, k, n, rule) for n, rule in enumerate(src.events)]
    r.reports[k].columns_used = (
        len(measures) + 1 + (gj is not None) + sum(len(c) for c in rules if c is not None)
    )
    if len(r.problems) > before:
        return
    assert tj is not None  # required: resolved, else a problem returned above
    grades: list[tuple[str, float, int, int]] = []
    bad_units = BadUnits()
    candidates: list[dict] = []
    for i, pid in enumerate(ids):
        if pid is None:
            continue
        hours = r.time_cell(k, i, tj, src.time, src.time.number("fallback"), pid)
        if hours is None:
            continue
        measure_cells(r, k, i, pid, hours, measures, bad_units)
        if gj is not None:
            present, value = r.cell(k, i, gj, src.crs_grade, "CRS grade: ")
            if present:
                grade = r.grade(k, i, gj, value, "crs_grade")
                if grade is not None:
                    grades.append((pid, hours, grade, i))
        for n, rule in enumerate(src.events):
            event = _row_event(r, k, i, pid, hours, rule, rules[n])
            if event is not None:
                candidates.append({**event, "_rule": n})
    bad_units.report(r, k)
    derive_crs(r, k, gj, grades, src.crs_events)
    first: dict[tuple[int, str], float] = {}
    for c in candidates:
        if src.events[c["_rule"]].first_only:
            key = (c["_rule"], c["pid"])
            first[key] = min(first.get(key, math.inf), c["hours"])
    for c in candidates:
        if src.events[c["_rule"]].first_only and c["hours"] != first[(c["_rule"], c["pid"])]:
            continue
        r.add_event(
            k, c["i"], c["j"], c["pid"], c["hours"], c["event"], c["grade"], c["dose"], c["ind"]
        )


def _resolve_rule(r: Reader, k: int, n: int, rule: RowEventRule) -> dict[str, int]:
    where = f"events[{n}]"
    cols = {
        "flag": r.resolve(k, rule.flag, f"{where}.flag"),
        "grade": r.resolve(k, rule.grade, f"{where}.grade"),
        "dose": r.resolve(k, rule.dose, f"{where}.dose"),
        "indication": r.resolve(k, rule.indication, f"{where}.indication")
        if isinstance(rule.indication, ColumnSpec)
        else None,
    }
    return {name: j for name, j in cols.items() if j is not None}


def _row_event(
    r: Reader,
    k: int,
    i: int,
    pid: str,
    hours: float,
    rule: RowEventRule,
    cols: dict[str, int],
) -> dict | None:
    """The event one row gives under ``rule`` (or ``None``: flag false/missing, no grade)."""
    label = f"{rule.event}: "
    grade = None
    if rule.event in GRADED_EVENTS:
        j = cols["grade"]
        present, value = r.cell(k, i, j, rule.grade, f"{label}grade ")
        if not present:
            return None
        lowest = GRADED_EVENTS[rule.event][0]
        if lowest > 0 and parse_number(value) == (0.0, None):
            return None  # grade 0 of an event that starts at 1 (ICANS): no event that day
        grade = r.grade(k, i, j, value, rule.event)
        if grade is None:
            return None
    else:
        j = cols["flag"]
        assert rule.flag is not None  # a rule without grade has a flag (mapping check)
        if not r.flag(k, i, j, rule.flag, f"{label}flag "):
            return None
    return {
        "i": i,
        "j": j,
        "pid": pid,
        "hours": hours,
        "event": rule.event,
        "grade": grade,
        "dose": r.dose(k, i, cols.get("dose"), rule.dose, label),
        "ind": r.indication(k, i, rule.indication, cols.get("indication"), label),
    }
