"""Validation problems and the report: one finding per rule and row, rendered without any cell's
content (the engineering standard: never the submitted value or a patient id)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from features.cohort import Cohort
from features.records import Records
from features.validation.summary import render_summary

Severity = Literal["error", "warning"]

MAX_LISTED = 20
"""Rows listed per (file, column, rule); the rest are counted in one extra entry."""

HIDDEN = "<patient id hidden>"
_ROWS_NOTE = "rows are data rows: row 1 is the first record after the header (CSV line = row + 1)"


@dataclass(frozen=True)
class Problem:
    """One validation finding. ``row`` is the 1-based data row (``None`` = file or column level).

    ``kind`` describes the offending cell without its content ("the cell holds text", "the value
    is above this range"), or is ``None`` when the rule says it all. ``more`` > 0 marks the entry
    that stands for that many further rows of the rule listed above.
    """

    file: str
    row: int | None
    column: str | None
    kind: str | None
    rule: str
    severity: Severity = "error"
    more: int = 0

    def render(self) -> str:
        where = self.file if self.row is None else f"{self.file}:{self.row}"
        parts = [where]
        if self.column is not None:
            parts.append(f"column={self.column}")
        text = f"{' '.join(parts)} — {self.rule}"
        if self.kind is not None:
            text += f"; {self.kind}"
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
        """Every problem, one per line as ``file:row column=… — rule[; kind of cell]``."""
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
        lines = [f"cohort {self.source!r} is valid.", *render_summary(self.summary)]
        if self.warnings:
            lines.append(f"{self.n_warnings:,} warning(s); {_ROWS_NOTE}.")
            lines.append(self.render_problems())
        return "\n".join(lines)
