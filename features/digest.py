"""Content digest of a canonical cohort: the provenance stamp carried into models and reports.

The digest is a SHA-256 over the canonical frames (table by table, column by column, values
in canonical order and dtype), so it is the same for the same data whether it came from CSV or
Parquet, in any row order, and changes when any value, unit conversion or row changes. It never
depends on the folder name or path.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

_VERSION = b"crs-risk cohort digest v1\n"


def _update_floats(h: hashlib._Hash, values: np.ndarray) -> None:
    arr = np.ascontiguousarray(values, dtype=np.float64)
    # One bit pattern for NaN and for zero, so equal content always hashes equally.
    arr = np.where(np.isnan(arr), np.nan, arr) + 0.0
    h.update(arr.tobytes())


def _update_texts(h: hashlib._Hash, values: list[str]) -> None:
    """Length-prefixed UTF-8 of each text, hashed as one buffer (one update per column)."""
    parts: list[bytes] = []
    for text in values:
        raw = str(text).encode("utf-8", "surrogatepass")
        parts.append(len(raw).to_bytes(8, "little"))
        parts.append(raw)
    h.update(b"".join(parts))


def _update_column(h: hashlib._Hash, series: pd.Series) -> None:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        h.update(b"category\n")
        _update_texts(h, [str(c) for c in dtype.categories])
        h.update(np.ascontiguousarray(series.cat.codes.to_numpy(), dtype=np.int64).tobytes())
    elif pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        h.update(f"number {dtype}\n".encode())
        _update_floats(h, series.to_numpy(dtype=np.float64, na_value=np.nan))
    else:
        h.update(b"text\n")
        codes, uniques = pd.factorize(series.astype("str"), sort=True)
        _update_texts(h, list(uniques))
        h.update(np.ascontiguousarray(codes, dtype=np.int64).tobytes())


def cohort_digest(patients: pd.DataFrame, measurements: pd.DataFrame, events: pd.DataFrame) -> str:
    """SHA-256 (hex) of the canonical cohort frames; frames must already be in canonical order."""
    h = hashlib.sha256(_VERSION)
    for name, frame in (("patients", patients), ("measurements", measurements), ("events", events)):
        h.update(f"table {name} rows={len(frame)}\n".encode())
        for column in frame.columns:
            h.update(f"column {column}\n".encode())
            _update_column(h, frame[column])
    return h.hexdigest()
