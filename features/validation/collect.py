"""Collecting problems: rows of a rule become capped Problem entries that describe a cell's kind,
never its content."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from features.validation.problems import MAX_LISTED, Problem, Severity

Values: TypeAlias = pd.Series | np.ndarray | Sequence[Any] | Callable[[np.ndarray], Sequence[Any]]
Column_: TypeAlias = pd.Series | np.ndarray
Table: TypeAlias = pd.DataFrame | Mapping[str, np.ndarray | pd.Series | Sequence[Any]]
"""A table: a DataFrame, or column name → values (NumPy arrays; object arrays for text)."""


NOT_SCALAR = object()
ID_KIND = "the cell equals a patient id"
"""A cell whose text equals a patient identifier (a pasted-in id, or a code like "1" in a cohort
with numeric ids): said so, never shown."""

_DATE = re.compile(r"\d{1,4}[-./]\d{1,2}[-./]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?")


def cell_kind(value: Any) -> str:
    """What a cell holds in words, without its content: "text", "text with digits", "a number",
    "an infinite number", "a date", "true/false", "nothing" … (messages never show a cell)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return "nothing"
    if isinstance(value, bool | np.bool_):
        return "true/false"
    if isinstance(value, int | float | np.integer | np.floating | Decimal):
        f = float(value)
        if math.isnan(f):
            return "nothing"
        return "a number" if math.isfinite(f) else "an infinite number"
    if isinstance(value, dt.date | np.datetime64):  # pd.Timestamp is a datetime
        return "a date"
    if isinstance(value, dt.timedelta | np.timedelta64):
        return "a duration"
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return "a value that is neither text nor a number"
    text = value.strip()
    if not text:
        return "nothing"
    if _DATE.fullmatch(text):
        return "a date"
    if "_" not in text:  # Python reads 1_000; a data file should not
        try:
            f = float(text)
        except ValueError:
            pass
        else:
            return "a number" if math.isfinite(f) else "an infinite number"
    return "text with digits" if any(ch.isdigit() for ch in text) else "text"


def side_kind(value: float, bounds: tuple[float, float], converted: str = "") -> str:
    """Which side of ``bounds`` a value lies on, without the value (``converted``: "converted to
    °C" when the bounds are in another unit than the cell's)."""
    where = "above" if value > bounds[1] else "below"
    return f"the value{f', {converted},' if converted else ''} is {where} this range"


def scalar_text(value: Any) -> str | object | None:
    """Text of a missing, yes/no or number cell (None = missing; whole floats without ``.0``),
    :data:`NOT_SCALAR` for any other value (text is the caller's to clean or quote)."""
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
    return NOT_SCALAR


class Collector:
    """Accumulates problems and caps the rows listed per rule. A cell is described by its kind,
    never shown; ``hidden`` holds the patient ids, so a pasted-in id is named as such."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.hidden: set[str] = set()

    def is_id(self, value: Any) -> bool:
        scalar = scalar_text(value)
        if scalar is NOT_SCALAR:
            text = value if isinstance(value, str) else str(value)
            return text.strip() in self.hidden
        return scalar is not None and scalar in self.hidden

    def describe(self, value: Any, type_matters: bool = True) -> str | None:
        """The kind of a cell for a message (``None`` when the type says nothing to the rule)."""
        if self.hidden and self.is_id(value):
            return ID_KIND
        return f"the cell holds {cell_kind(value)}" if type_matters else None

    def add(
        self,
        file: str,
        rule: str,
        *,
        column: str | None = None,
        severity: Severity = "error",
    ) -> None:
        self.problems.append(Problem(file, None, column, None, rule, severity))

    def rows(
        self,
        file: str,
        where: np.ndarray,
        rule: str,
        *,
        column: str | None = None,
        values: Values | None = None,
        type_matters: bool = True,
        kinds: Callable[[np.ndarray], Sequence[str | None]] | None = None,
        detail: Callable[[np.ndarray], Sequence[str]] | None = None,
        severity: Severity = "error",
    ) -> int:
        """Report the rows where ``where`` holds (bool mask or 0-based positions); return count.

        ``values``: the cells, described by :meth:`describe` (their kind, or only whether one is
        a patient id when not ``type_matters``); ``kinds``: descriptions computed by the rule
        (e.g. :func:`side_kind`). ``detail`` adds to the rule per row (other rows, never cells).
        """
        if where.dtype == bool:
            if not where.any():  # the common case: nothing to report
                return 0
            idx = np.flatnonzero(where)
        else:
            idx = np.asarray(where, dtype=np.int64)
        if idx.size == 0:
            return 0
        listed = idx[:MAX_LISTED]
        shown: list[str | None]
        if kinds is not None:
            shown = list(kinds(listed))
        elif values is None:
            shown = [None] * listed.size
        else:
            if callable(values):
                cells = list(values(listed))
            elif isinstance(values, pd.Series):
                cells = values.iloc[listed].tolist()
            else:
                cells = [values[int(i)] for i in listed]
            shown = [self.describe(v, type_matters) for v in cells]
        details = list(detail(listed)) if detail is not None else None
        for k, i in enumerate(listed):
            text = rule if details is None else f"{rule} ({details[k]})"
            self.problems.append(Problem(file, int(i) + 1, column, shown[k], text, severity))
        rest = int(idx.size - listed.size)
        if rest:
            self.problems.append(Problem(file, None, column, None, rule, severity, more=rest))
        return int(idx.size)
