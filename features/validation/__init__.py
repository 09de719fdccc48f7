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
the file has no blank lines). Each problem names file, row, column and rule, and where it helps the
*kind* of the offending cell ("the cell holds text", "the value is above this range", "the cell
equals a patient id"), never its content: a cell may hold a name or a hospital number, and messages
reach terminals and CI logs. Many problems of one kind are
listed up to :data:`MAX_LISTED` rows, followed by one entry counting the rest.

Event ordering rules follow the ASTCT consensus definitions of CRS onset, grade and resolution
(Lee DW et al., Biol Blood Marrow Transplant 2019;25:625).

Layout (one step each, lowest first): ``summary`` (the counts a user checks first),
``problems`` (Problem, ValidationReport), ``collect`` (rows of a rule → capped, id-safe
problems), ``cells`` (cell parsing), ``columns`` (one parsed table, column rules), ``rows``
(cross-row and cross-table rules), ``measurements`` (measurement rules, unit canonicalisation),
``events`` (event rules), ``canonical`` (canonical frames and feature-time records), ``check``
(the entry point :func:`validate_tables` and its :class:`Outputs`).
"""

from __future__ import annotations

from features.validation.cells import FALSE_TOKENS, NULL_TOKENS, TRUE_TOKENS
from features.validation.check import (
    FOR_SCORING,
    FOR_USER,
    FOR_WRITER,
    Outputs,
    validate_frames,
    validate_tables,
)
from features.validation.problems import MAX_LISTED, Problem, Severity, ValidationReport
from features.validation.summary import TIME_WINDOWS

__all__ = [
    "FALSE_TOKENS",
    "FOR_SCORING",
    "FOR_USER",
    "FOR_WRITER",
    "MAX_LISTED",
    "NULL_TOKENS",
    "TIME_WINDOWS",
    "TRUE_TOKENS",
    "Outputs",
    "Problem",
    "Severity",
    "ValidationReport",
    "validate_frames",
    "validate_tables",
]
