"""User-facing errors: bad input is reported as one clear message, never a traceback.

Every module raises :class:`CrsRiskError` (or a subclass) for problems a user can fix: bad files,
bad values, bad configuration. The CLI turns it into the message on stderr and exit code 2; the
service turns it into an HTTP 4xx. Messages name the file/field, row and rule, and never carry a
patient identifier or a raw patient row.
"""

from __future__ import annotations


class CrsRiskError(Exception):
    """A problem with the user's input or configuration (CLI exit code 2, HTTP 4xx)."""

    exit_code: int = 2


class CohortError(CrsRiskError):
    """A cohort that fails validation; ``problems`` holds every problem found."""

    def __init__(self, message: str, problems: list | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []
