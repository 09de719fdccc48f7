"""Cell-level reading shared by every source kind: column letters, empty cells, numbers with
``<``/``>`` qualifiers, patient ids, calendar dates and ``{group}`` templates.

Pure functions; nothing here knows about mappings or reports.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re

import numpy as np
import pandas as pd

from features.mapping import value_key


@functools.lru_cache(maxsize=65536, typed=True)
def cached_key(value: object) -> str:
    """:func:`features.mapping.value_key` memoised: an extract repeats the same few cells."""
    return value_key(value)


def column_letter(index: int) -> str:
    """0-based column index → spreadsheet letter (0 → A, 26 → AA)."""
    letters = ""
    n = index + 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def letter_index(letter: str) -> int:
    """Spreadsheet letter → 0-based column index (A → 0, AA → 26)."""
    n = 0
    for ch in letter.upper():
        n = n * 26 + ord(ch) - 64
    return n - 1


def norm_header(text: object) -> str:
    """Header text with whitespace collapsed (titles often carry stray spaces)."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    if isinstance(text, float) and text.is_integer():
        text = int(text)
    return " ".join(str(text).split())


def is_empty(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    return isinstance(value, str) and not value.strip()


_QUALIFIED = re.compile(r"^\s*(<=?|>=?|≤|≥)\s*(\S.*)$")


def parse_number(value: object, qualified: bool = False) -> tuple[float, str | None] | None:
    """A finite number (and a ``<``/``>`` qualifier when allowed) from a cell, or ``None``."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
        return (number, None) if math.isfinite(number) else None
    text = str(value).strip()
    qualifier = None
    match = _QUALIFIED.match(text)
    if match:
        if not qualified:
            return None
        qualifier = "<" if match.group(1) in ("<", "<=", "≤") else ">"
        text = match.group(2)
    try:
        number = float(text)
    except ValueError:
        return None
    return (number, qualifier) if math.isfinite(number) else None


def patient_id(value: object) -> str | None:
    """Patient ids as strings: ``277``, ``277.0`` and ``" 277 "`` are the same patient."""
    if is_empty(value):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    return str(value).strip()


_TEMPLATE = re.compile(r"\{(\w+)\}")


def fill_template(text: str, groups: dict[str, str]) -> str:
    """Replace ``{name}`` by the match group ``name``; other braces stay as they are (headers
    may contain braces). A ``{name}`` the match does not define raises ``KeyError(name)``."""

    def one(m: re.Match[str]) -> str:
        if m.group(1) not in groups:
            raise KeyError(m.group(1))
        return groups[m.group(1)]

    return _TEMPLATE.sub(one, text)


def parse_date(value: object, fmt: str | None) -> tuple[dt.datetime, bool] | None:
    """A calendar date from a cell: ``(datetime, has_time_of_day)`` or ``None``.

    Spreadsheet dates arrive as datetimes; text is read with ``fmt`` (strptime) or as ISO 8601.
    A time of exactly 00:00 is a date without time of day (the day is known, not the hour).
    """
    if isinstance(value, pd.Timestamp):
        stamp = value.to_pydatetime()
    elif isinstance(value, dt.datetime):
        stamp = value
    elif isinstance(value, dt.date):
        stamp = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        try:
            stamp = dt.datetime.strptime(text, fmt) if fmt else dt.datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    stamp = stamp.replace(tzinfo=None)
    return stamp, stamp.time() != dt.time(0, 0)
