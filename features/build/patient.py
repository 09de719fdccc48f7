"""Time-free patient features: characteristics known before infusion, one row each."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from features.build.layout import BOOL_PATIENT, COLUMN, FLOAT_PATIENT, LEVELS, N_PATIENT
from features.catalog import (
    HIGH_BURDEN_BLASTS_PCT,
)

_TRUTH = {
    "true": 1.0,
    "1": 1.0,
    "1.0": 1.0,
    "yes": 1.0,
    "false": 0.0,
    "0": 0.0,
    "0.0": 0.0,
    "no": 0.0,
}


def _array(column: pd.Series | np.ndarray | Any) -> Any:
    """The values behind a column: a Series' array, else the column itself."""
    return column.array if isinstance(column, pd.Series) else column


def float_column(series: pd.Series | np.ndarray | Any) -> np.ndarray:
    """Numbers or booleans (nullable or not, or their text) as float64 with NaN for missing."""
    values = _array(series)
    dtype = values.dtype
    if isinstance(values, np.ndarray) and dtype.kind in "fiub":
        return values.astype(np.float64)
    if isinstance(values, _MASKED):  # what ``to_numpy(float, na_value=nan)`` returns, without
        out = values._data.astype(np.float64)  # its per-call dispatch (the validator's columns)
        out[values._mask] = np.nan
        return out
    if pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)
    ):
        return np.asarray(values.to_numpy(dtype=float, na_value=np.nan), dtype=float)
    text = pd.Series(values).astype("string").str.strip().str.lower()
    truth = text.map(_TRUTH).astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    number = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isnan(truth), number, truth)


_MASKED = (pd.arrays.BooleanArray, pd.arrays.IntegerArray, pd.arrays.FloatingArray)


def _indicators(values: pd.Series | Any, levels: tuple[str, ...]) -> np.ndarray:
    """(n, levels) 1/0 per level (exact text match), NaN where the value is missing."""
    arr = _array(values)
    if isinstance(arr, pd.Categorical):
        return _level_table(arr.dtype, levels)[arr.codes]
    codes, uniques = pd.factorize(pd.Series(arr).astype("string"))
    return _hits([str(u) for u in uniques], levels)[codes]


def _hits(texts: list[str], levels: tuple[str, ...]) -> np.ndarray:
    """Rows 1/0 per level for each text, and a last all-NaN row for code -1 (missing)."""
    hit = np.array([[t == level for level in levels] for t in texts], dtype=float)
    return np.vstack([hit.reshape(len(texts), len(levels)), np.full((1, len(levels)), np.nan)])


@functools.lru_cache(maxsize=64)
def _level_table(dtype: pd.CategoricalDtype, levels: tuple[str, ...]) -> np.ndarray:
    """:func:`_hits` of a category dtype's categories (a constant per dtype: computed once)."""
    table = _hits([str(c) for c in dtype.categories], levels)
    table.flags.writeable = False
    return table


def patient_features(patients: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
    """The time-free features of every patient row (the first :data:`N_PATIENT` columns).

    ``patients``: the patients frame, or its typed columns by name (the validator's arrays).
    The same at every landmark, so a caller scoring several landmarks computes them once.
    """
    n = len(patients) if isinstance(patients, pd.DataFrame) else len(patients["patient_id"])
    out = np.empty((n, N_PATIENT))
    j = 0
    for col in (*FLOAT_PATIENT, *BOOL_PATIENT):
        out[:, j] = float_column(patients[col])
        j += 1
    for col, levels, _ in LEVELS:
        out[:, j : j + len(levels)] = _indicators(patients[col], levels)
        j += len(levels)
    blasts = out[:, COLUMN["marrow_blasts_pct"]]
    with np.errstate(invalid="ignore"):
        out[:, j] = np.where(
            np.isnan(blasts), np.nan, (blasts >= HIGH_BURDEN_BLASTS_PCT).astype(float)
        )
    return out
