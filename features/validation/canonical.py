"""The canonical outputs of a valid cohort: typed, unit-converted frames and records."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from features.records import ANALYTE_KEYS, Records, make_records
from features.schema import (
    SCHEMA,
    Column,
)
from features.validation.cells import SMALL
from features.validation.columns import Parsed
from features.validation.measurements import Measured
from features.validation.rows import rank_texts
from features.vocabulary import ANALYTES


def _strings(
    uniques: Sequence[str], codes: np.ndarray
) -> pd.Series | pd.api.extensions.ExtensionArray:
    """A pandas string column from codes into ``uniques`` (built in Arrow, no Python objects;
    a short column from Python objects, which skips Arrow's fixed cost per call)."""
    if codes.size <= SMALL:
        table = np.array([*uniques, None], dtype=object)
        return pd.array(table[codes], dtype="str")
    arr = pa.array(list(uniques), type=pa.string()).take(pa.array(codes, mask=codes < 0))
    return pa.chunked_array([arr], type=pa.string()).to_pandas().astype("str")


@functools.lru_cache(maxsize=32)
def _category(allowed: tuple[str, ...]) -> pd.CategoricalDtype:
    return pd.CategoricalDtype(list(allowed))


def _typed_column(
    p: Parsed, c: Column, rows: np.ndarray
) -> pd.Series | pd.api.extensions.ExtensionArray:
    """Column ``c`` of table ``p`` at ``rows`` in its declared dtype (all-missing when absent)."""
    n = rows.size
    if c.dtype == "category":
        assert c.allowed is not None
        codes = p.text[c.name].codes[rows] if c.name in p.text else np.full(n, -1)
        # codes index ``c.allowed`` by construction (``_check_allowed``): no re-validation
        return pd.Categorical.from_codes(codes, dtype=_category(c.allowed), validate=False)
    if c.dtype == "string":
        if c.name not in p.text:
            return pd.Series(np.full(n, np.nan), dtype="str")
        t = p.text[c.name]
        return _strings(t.uniques, t.codes[rows])
    values = p.num[c.name][rows] if c.name in p.num else np.full(n, np.nan)
    missing = np.isnan(values)
    if c.dtype == "bool":
        return pd.arrays.BooleanArray(values == 1.0, missing)
    if c.dtype == "int":
        return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), missing)
    return values


def typed_columns(
    p: Parsed, rows: np.ndarray, present_only: bool, text_as_objects: bool = False
) -> dict[str, Any]:
    """Rows ``rows`` of table ``p`` in declared dtypes (all schema columns, or present ones);
    ``text_as_objects``: free-text columns as object arrays (None = missing), not pandas."""
    out = {}
    for c in SCHEMA[p.name].columns:
        if present_only and c.name not in p.raw:
            continue
        if text_as_objects and c.dtype == "string":
            t = p.text.get(c.name)
            table = np.array([*(t.uniques if t else []), None], dtype=object)
            out[c.name] = table[t.codes[rows]] if t else np.full(rows.size, None, dtype=object)
        else:
            out[c.name] = _typed_column(p, c, rows)
    return out


def canonical_frame(p: Parsed, rows: np.ndarray, present_only: bool) -> pd.DataFrame:
    """:func:`typed_columns` as a frame."""
    return pd.DataFrame(typed_columns(p, rows, present_only), index=pd.RangeIndex(rows.size))


def row_orders(parsed: Mapping[str, Parsed]) -> tuple[np.ndarray, np.ndarray]:
    """Canonical row order of the patients (by id) and of the events (by id, time, event …)."""
    pat = parsed["patients"]
    p_order = np.flatnonzero(~pat.blank)
    ids = pat.text["patient_id"]
    p_order = p_order[np.argsort(rank_texts(ids.uniques)[ids.codes[p_order]], kind="stable")]
    ev = parsed["events"]
    e_rows = np.flatnonzero(~ev.blank)
    e_ids = ev.text["patient_id"]
    # missing dose/grade sort last; parsed numbers are never infinite (``numbers`` reports
    # them), so this is ``np.nan_to_num(x, nan=np.inf)`` without its per-call overhead
    dose = ev.num.get("dose_mg_per_kg", np.full(ev.n, np.nan))[e_rows]
    grade = ev.num.get("grade", np.full(ev.n, np.nan))[e_rows]
    keys_e = (
        np.where(np.isnan(dose), np.inf, dose),
        np.where(np.isnan(grade), np.inf, grade),
        ev.text["event"].codes[e_rows],
        ev.num["hours_from_infusion"][e_rows],
        rank_texts(e_ids.uniques)[e_ids.codes[e_rows]],
    )
    return p_order, e_rows[np.lexsort(keys_e)]


def canonical_frames(
    parsed: Mapping[str, Parsed], measured: Measured, p_order: np.ndarray, e_rows: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The canonical frames (patients and events in the given row orders)."""
    patients = canonical_frame(parsed["patients"], p_order, present_only=False)

    m = parsed["measurements"]
    rows = measured.order
    analyte = measured.analyte[rows]
    keys = list(ANALYTE_KEYS)
    units = [ANALYTES[k].canonical_unit for k in keys]
    measurements = pd.DataFrame(
        {
            "patient_id": _strings(m.text["patient_id"].uniques, m.text["patient_id"].codes[rows]),
            "hours_from_infusion": m.num["hours_from_infusion"][rows],
            "analyte": _strings(keys, analyte),
            "value": measured.value[rows],
            "unit": _strings(units, analyte),
            "qualifier": _typed_column(m, SCHEMA["measurements"].column("qualifier"), rows),
        }
    )

    events = canonical_frame(parsed["events"], e_rows, present_only=False)
    return patients, measurements, events


def feature_records(
    parsed: Mapping[str, Parsed], measured: Measured, p_order: np.ndarray, e_rows: np.ndarray
) -> Records:
    """The canonical cohort's :class:`Records` from the parsed columns (no frame is read back).

    Equal to ``features.records.records_of`` on the canonical frames: patient codes are rows
    of the canonical patients table, analyte and event codes index the vocabularies.
    """
    ids = parsed["patients"].text["patient_id"]
    position = {ids.uniques[c]: k for k, c in enumerate(ids.codes[p_order].tolist())}

    def codes_of(table: Parsed, rows: np.ndarray) -> np.ndarray:
        t = table.text["patient_id"]
        lookup = np.array([position.get(u, -1) for u in t.uniques] + [-1], dtype=np.int64)
        return lookup[t.codes[rows]]

    m, ev = parsed["measurements"], parsed["events"]
    rows = measured.order
    grade = ev.num.get("grade", np.full(ev.n, np.nan))
    return make_records(
        len(p_order),
        codes_of(m, rows),
        measured.analyte[rows],
        m.num["hours_from_infusion"][rows],
        measured.value[rows],
        codes_of(ev, e_rows),
        ev.text["event"].codes[e_rows],
        ev.num["hours_from_infusion"][e_rows],
        grade[e_rows],
        ev.text["indication"].codes[e_rows] if "indication" in ev.text else None,
    )
