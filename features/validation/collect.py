"""Collecting problems: rows of a rule become capped, id-safe Problem entries."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from features.validation.problems import HIDDEN, MAX_LISTED, Problem, Severity

Values: TypeAlias = pd.Series | np.ndarray | Sequence[Any] | Callable[[np.ndarray], Sequence[Any]]
Column_: TypeAlias = pd.Series | np.ndarray
Table: TypeAlias = pd.DataFrame | Mapping[str, np.ndarray | pd.Series | Sequence[Any]]
"""A table: a DataFrame, or column name → values (NumPy arrays; object arrays for text)."""


NOT_SCALAR = object()


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
    """Accumulates problems, caps the rows listed per rule and hides patient identifiers."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.hidden: set[str] = set()

    def show(self, value: Any) -> str | None:
        scalar = scalar_text(value)
        if scalar is not NOT_SCALAR:
            return scalar  # type: ignore[return-value]  # NOT_SCALAR ruled out: str or None
        text = value if isinstance(value, str) else str(value)
        if text.strip() in self.hidden:
            return HIDDEN
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
