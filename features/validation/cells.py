"""Cell parsing: text codes, numbers and booleans of whole columns, bad cells marked."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.validation.collect import NOT_SCALAR, scalar_text

NULL_TOKENS: tuple[str, ...] = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL")
"""Cell texts read as a missing value (CSV and text columns alike)."""

TRUE_TOKENS: frozenset[str] = frozenset({"true", "1", "1.0", "yes"})
FALSE_TOKENS: frozenset[str] = frozenset({"false", "0", "0.0", "no"})

_NULL_SET = frozenset(NULL_TOKENS)


@dataclass
class Codes:
    """A text column as integer codes into cleaned distinct values (-1 = missing)."""

    codes: np.ndarray
    uniques: list[str]

    def text(self, idx: np.ndarray) -> list[str | None]:
        return [self.uniques[c] if c >= 0 else None for c in self.codes[idx]]


SMALL = 256  # below this many cells a dict beats pandas' hash table (call overhead)


def _factorize(series: pd.Series | np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Codes into the distinct values, in order of appearance (-1 = missing), as pandas does."""
    if isinstance(series, np.ndarray) and series.dtype == object and len(series) <= SMALL:
        try:
            lookup: dict[Any, int] = {}
            # ``v == v`` is False for NaN; None and NaN are missing (code -1), as in pandas
            codes = [
                lookup.setdefault(v, len(lookup)) if v is not None and v == v else -1
                for v in series
            ]
            return np.array(codes, dtype=np.int64), list(lookup)
        except TypeError:  # unhashable cells, pd.NA: the general path below handles them
            pass
    try:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    except TypeError:  # unhashable cells (lists, dicts) from exotic Parquet columns
        cells = series if isinstance(series, pd.Series) else pd.Series(series, dtype=object)
        codes, uniques = pd.factorize(
            cells.map(lambda v: v if v is None or isinstance(v, str | int | float) else repr(v)),
            use_na_sentinel=True,
        )
    return np.asarray(codes, dtype=np.int64), list(uniques)


def _clean_text(value: Any) -> str | None:
    """The cell as stripped text, ``None`` when missing (empty or a :data:`NULL_TOKENS` text)."""
    if type(value) is str:  # the common case first (10⁴ distinct ids in a large request)
        text = value.strip()
        return None if text in _NULL_SET else text
    scalar = scalar_text(value)
    if scalar is not NOT_SCALAR:
        return scalar  # type: ignore[return-value]  # NOT_SCALAR ruled out: str or None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    return None if text in _NULL_SET else text


def text_codes(series: pd.Series) -> Codes:
    if isinstance(series, np.ndarray) and series.dtype == object and len(series) <= SMALL:
        fast = _small_text_codes(series)
        if fast is not None:
            return fast
    codes, raw = _factorize(series)
    cleaned = [_clean_text(u) for u in raw]
    remap = np.full(len(cleaned) + 1, -1, dtype=np.int64)  # last slot maps code -1 to -1
    lookup: dict[str, int] = {}
    for i, text in enumerate(cleaned):
        if text is not None:
            remap[i] = lookup.setdefault(text, len(lookup))
    return Codes(remap[codes], list(lookup))


def _small_text_codes(values: np.ndarray) -> Codes | None:
    """:func:`text_codes` of a short object column in one pass (a request's columns): each
    distinct cell is cleaned once, in order of appearance, exactly as the general path does
    (factorize, clean the distinct cells, merge cells that clean to the same text). ``None``
    for a cell the dict cannot take (unhashable, ``pd.NA``): the general path decides."""
    seen: dict[Any, int] = {}  # raw cell → final code (-1 = missing)
    lookup: dict[str, int] = {}  # cleaned text → final code
    codes = []
    try:
        for v in values:
            c = seen.get(v)
            if c is None:
                if v is None or v != v:  # None and NaN: missing, as in pandas' factorize
                    c = -1
                else:
                    text = _clean_text(v)
                    c = -1 if text is None else lookup.setdefault(text, len(lookup))
                seen[v] = c
            codes.append(c)
    except TypeError:
        return None
    return Codes(np.array(codes, dtype=np.int64), list(lookup))


def _float_or_bad(value: Any) -> float | None:
    """Parse one distinct cell: a float, NaN for missing, ``None`` when not a finite number."""
    if isinstance(value, bool | np.bool_):
        return float(value)
    try:
        if isinstance(value, int | float | np.integer | np.floating | Decimal):
            f = float(value)
        else:
            text = _clean_text(value)
            if text is None:
                return math.nan
            f = float(text.replace("_", "x"))  # Python accepts 1_000; a data file should not
    except (ValueError, TypeError, OverflowError):
        return None
    if math.isnan(f):
        return math.nan
    return f if math.isfinite(f) else None


def numbers(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Parse a column as float64: values (NaN = missing or bad) and the mask of bad cells."""
    dtype = series.dtype
    n = len(series)
    if isinstance(series, np.ndarray) and dtype.kind in "fiu":  # plain NumPy numbers: no
        values = series.astype(np.float64)  # pandas dtype checks (as the numeric path below)
        bad = np.isinf(values)
        values[bad] = np.nan
        return values, bad
    if pd.api.types.is_bool_dtype(dtype):
        values = np.array(_floats(series), copy=True)
        return values, np.zeros(n, dtype=bool)
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        # copied: the frame's own buffer may be read-only and is never modified
        values = np.array(_floats(series), copy=True)
        bad = np.isinf(values)
        values[bad] = np.nan
        return values, bad
    if isinstance(dtype, pd.StringDtype):
        # Fast path: Arrow casts the whole column; falls back to pandas only when a cell is bad.
        try:
            arr = pc.utf8_trim_whitespace(pa.array(series))
            values = np.asarray(
                pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
            ).copy()
            bad = np.isinf(values)
            values[bad] = np.nan
            return values, bad
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass
    if (
        isinstance(dtype, pd.StringDtype | pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
    ):
        codes, raw = _factorize(series)
        parsed = [_float_or_bad(u) for u in raw]
        table = np.array([math.nan if p is None else p for p in parsed] + [math.nan])
        bad_u = np.array([p is None for p in parsed] + [False])
        return table[codes], bad_u[codes]
    # datetimes, durations, intervals, complex numbers …: not numbers in this contract
    present = np.asarray(pd.notna(series), dtype=bool)
    return np.full(n, np.nan), present


def _floats(values: pd.Series | np.ndarray) -> np.ndarray:
    """A numeric or boolean column as float64 (NaN = missing)."""
    if isinstance(values, np.ndarray):
        return values.astype(np.float64)
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def bools(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Parse true/false/1/0/yes/no (any case) as 1.0/0.0; NaN = missing; mask of bad cells."""
    codes = text_codes(series)
    table = np.full(len(codes.uniques) + 1, np.nan)
    bad_u = np.zeros(len(codes.uniques) + 1, dtype=bool)
    for i, text in enumerate(codes.uniques):
        low = text.lower()
        if low in TRUE_TOKENS:
            table[i] = 1.0
        elif low in FALSE_TOKENS:
            table[i] = 0.0
        else:
            bad_u[i] = True
    return table[codes.codes], bad_u[codes.codes]


def fmt_range(bounds: tuple[float, float], unit: str | None) -> str:
    lo, hi = bounds
    text = f"{lo:g}–{hi:g}" if math.isfinite(hi) else f"≥ {lo:g}"
    return f"{text} {unit}" if unit else text
