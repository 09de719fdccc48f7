"""Cross-row and cross-table rules shared by the tables: repeats, order, unknown patients."""

from __future__ import annotations

import itertools

import numpy as np

from features.records import ANALYTE_KEYS
from features.validation.cells import SMALL
from features.validation.collect import Collector
from features.validation.columns import Parsed


def _first_rows(codes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """For each code, the first row (0-based) where ``mask`` holds; -1 when none."""
    first = np.full(int(codes.max(initial=-1)) + 2, -1, dtype=np.int64)
    idx = np.flatnonzero(mask & (codes >= 0))
    if idx.size:
        uniq, pos = np.unique(codes[idx], return_index=True)
        first[uniq] = idx[pos]
    return first


def repeat_rows(codes: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (where ``mask``) whose code already occurred on an earlier masked row, and firsts."""
    first = _first_rows(codes, mask)
    idx = np.flatnonzero(mask & (codes >= 0))
    repeat = np.zeros(len(codes), dtype=bool)
    repeat[idx] = first[codes[idx]] != idx
    return repeat, first


def rank_texts(uniques: list[str]) -> np.ndarray:
    """Rank of each distinct text in sorted (code point) order, plus -1 for the missing code."""
    if len(uniques) == 1:  # one patient: nothing to sort
        return np.array([0, -1], dtype=np.int64)
    order = (
        np.argsort(np.array(uniques, dtype=object), kind="stable")
        if uniques
        else np.zeros(0, dtype=np.int64)
    )
    rank = np.empty(len(uniques) + 1, dtype=np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(len(uniques))
    rank[-1] = -1
    return rank


ANALYTE_RANK = rank_texts(list(ANALYTE_KEYS))  # sorted-key rank of each analyte code


def check_patients(p: Parsed, col: Collector) -> None:
    if p.usable and p.n == 0:
        col.add(p.file, "no patients: the table has no data rows")
    if "patient_id" not in p.text:
        return
    ids = p.text["patient_id"]
    repeat, first = repeat_rows(ids.codes, ~p.blank)
    col.rows(
        p.file,
        repeat,
        "duplicate patient_id (one row per infusion)",
        column="patient_id",
        detail=lambda idx: [f"first at row {first[ids.codes[i]] + 1}" for i in idx],
    )


def unknown_patients(p: Parsed, known: set[str] | None, col: Collector) -> None:
    if known is None or "patient_id" not in p.text:
        return
    ids = p.text["patient_id"]
    absent = np.array([u not in known for u in ids.uniques] + [False])
    col.rows(
        p.file,
        absent[ids.codes] & ~p.blank,
        "patient_id not found in the patients table",
        column="patient_id",
    )


def is_sorted(*keys: np.ndarray) -> bool:
    """Whether rows are already in lexsort order of ``keys`` (last key primary); NaN sorts last."""
    n = keys[0].size
    if n < 2:
        return True
    if n <= SMALL:  # a few rows: Python's tuple order is the same test without array calls
        if any(k.dtype.kind == "f" and not np.isfinite(k).all() for k in keys):
            return False  # as below: NaN or infinities go to lexsort
        rows = list(zip(*(k.tolist() for k in reversed(keys)), strict=True))
        return all(a <= b for a, b in itertools.pairwise(rows))
    tie = np.ones(n - 1, dtype=bool)
    for key in reversed(keys):
        a, b = key[:-1], key[1:]
        if key.dtype.kind == "f":
            a = np.where(np.isnan(a), np.inf, a)
            b = np.where(np.isnan(b), np.inf, b)
            if np.isinf(a).any() or np.isinf(b).any():
                return False  # keep it simple: let lexsort decide when infinities/NaN appear
        if (tie & (a > b)).any():
            return False
        tie &= a == b
    return True
