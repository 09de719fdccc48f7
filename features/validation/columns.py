"""One parsed table and its column rules: presence, types, allowed values and ranges."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.schema import (
    SCHEMA,
    Column,
)
from features.validation.cells import Codes, bools, fmt_range, numbers, text_codes
from features.validation.collect import Collector, Column_, Table, side_kind
from features.validation.problems import Problem


@dataclass
class Parsed:
    """A table after structural checks and type parsing (nothing reported per row yet)."""

    name: str
    file: str
    n: int
    raw: dict[str, Column_] = field(default_factory=dict)  # present known columns, as given
    text: dict[str, Codes] = field(default_factory=dict)  # string and category columns
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


def parse_table(name: str, frame: Table, file: str, col: Collector) -> Parsed:
    """Structural checks (columns) and typed parsing of every known column."""
    schema = SCHEMA[name]
    labels, column, n_rows = _columns(frame)
    parsed = Parsed(name, file, n_rows)
    names = [str(c).lstrip("\ufeff").strip() for c in labels]
    known = {c.name for c in schema.columns}
    positions: dict[str, int] = {}
    for j, label in enumerate(names):
        if label in known:
            if label in positions:
                col.add(file, "column appears more than once in the header", column=label)
                if label == "patient_id":  # not read, but its cells are ids all the same
                    col.hidden.update(text_codes(column(j)).uniques)
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
            parsed.text[c.name] = text_codes(series)
        elif c.dtype == "bool":
            parsed.num[c.name], parsed.bad[c.name] = bools(series)
        else:
            parsed.num[c.name], parsed.bad[c.name] = numbers(series)
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


def check_columns(p: Parsed, col: Collector) -> None:
    """Per-cell rules declared on the columns: type, missing, allowed values, hard/soft ranges."""
    schema = SCHEMA[p.name]
    if p.n == 0:  # no cell to check (a request without events): only map the category codes
        for c in schema.columns:
            if c.dtype == "category" and c.allowed is not None and c.name in p.text:
                p.text[c.name] = Codes(p.text[c.name].codes, list(c.allowed))
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
                col.rows(p.file, frac, "not a whole number", column=c.name)
                values[frac] = np.nan
                p.bad[c.name] |= frac
            _check_ranges(p, c, values, col)


def _check_allowed(p: Parsed, c: Column, col: Collector) -> None:
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
        type_matters=False,
    )
    p.text[c.name] = Codes(table[codes.codes], list(c.allowed))


@functools.lru_cache(maxsize=64)
def _allowed_lookup(allowed: tuple[str, ...]) -> dict[str, int]:
    """Position of each allowed spelling by its lower-case text (a constant per column)."""
    return {a.lower(): i for i, a in enumerate(allowed)}


def _check_ranges(p: Parsed, c: Column, values: np.ndarray, col: Collector) -> None:
    if c.name == "grade" and p.name == "events":
        return  # graded per event type in check_events (the event's own range)
    present = ~np.isnan(values) & ~p.blank
    hard_bad = np.zeros(p.n, dtype=bool)

    def sides(bounds: tuple[float, float]) -> Callable[[np.ndarray], list[str]]:
        return lambda idx: [side_kind(values[i], bounds) for i in idx]

    if c.hard is not None:
        hard_bad = present & ((values < c.hard[0]) | (values > c.hard[1]))
        if hard_bad.any():
            col.rows(
                p.file,
                hard_bad,
                f"impossible value: outside {fmt_range(c.hard, c.unit)}",
                column=c.name,
                kinds=sides(c.hard),
            )
    if c.soft is not None:
        soft_bad = present & ~hard_bad & ((values < c.soft[0]) | (values > c.soft[1]))
        if soft_bad.any():
            col.rows(
                p.file,
                soft_bad,
                f"implausible value: outside {fmt_range(c.soft, c.unit)}",
                column=c.name,
                kinds=sides(c.soft),
                severity="warning",
            )
