"""Measurement rules and unit canonicalisation: analyte, unit, value range, duplicates."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from features.records import ANALYTE_KEYS
from features.validation.cells import fmt_range
from features.validation.collect import Collector, side_kind
from features.validation.columns import Parsed
from features.validation.problems import Severity
from features.validation.rows import ANALYTE_RANK, is_sorted, rank_texts
from features.vocabulary import ANALYTES, Analyte, resolve_analyte, resolve_unit

# per analyte code (an extra last slot for unknown analytes): ranges, whole-number flag
_HARD_LOW = np.array([a.hard[0] for a in ANALYTES.values()] + [-np.inf])
_HARD_HIGH = np.array([a.hard[1] for a in ANALYTES.values()] + [np.inf])
_SOFT_LOW = np.array([a.soft[0] for a in ANALYTES.values()] + [-np.inf])
_SOFT_HIGH = np.array([a.soft[1] for a in ANALYTES.values()] + [np.inf])
_INTEGER = np.array([a.integer for a in ANALYTES.values()] + [False])
_VOCABULARY = sorted({*ANALYTE_KEYS, *(a.label for a in ANALYTES.values())})
_resolve_unit = functools.lru_cache(maxsize=4096)(resolve_unit)  # pure: same text, same unit


@functools.lru_cache(maxsize=4096)
def _analyte_code(name: str) -> int:
    """Index in :data:`ANALYTE_KEYS` of an analyte name or alias (-2 = unknown); pure, cached."""
    key = resolve_analyte(name)
    return ANALYTE_KEYS.index(key) if key is not None else -2


@functools.lru_cache(maxsize=4096)
def _unit_factor(ai: int, text: str) -> tuple[float, float] | None:
    """(scale, offset) of unit ``text`` for analyte code ``ai``, None when not accepted."""
    key = ANALYTE_KEYS[ai]
    declared = _resolve_unit(key, text)
    if declared is None:
        return None
    conv = ANALYTES[key].units[declared]
    return conv.scale, conv.offset


@dataclass
class Measured:
    """Measurement columns resolved against the vocabulary (for the canonical frame)."""

    analyte: np.ndarray  # index into ANALYTE_KEYS, -1 = unknown/missing
    value: np.ndarray  # canonical unit, NaN = missing/invalid
    order: np.ndarray  # canonical row order (non-blank rows, identical duplicates dropped)
    dropped: int


def check_measurements(p: Parsed, col: Collector) -> Measured | None:
    if not {"analyte", "unit", "value"} <= set(p.raw):
        return None
    names = p.text["analyte"]
    key_of = np.array([*map(_analyte_code, names.uniques), -1], dtype=np.int64)
    akey = key_of[names.codes]
    col.rows(
        p.file,
        (akey == -2) & ~p.blank,
        "unknown analyte (see the analyte table in docs/cohort-format.md)",
        column="analyte",
        values=names.text,
        type_matters=False,
        detail=lambda idx: [
            f"did you mean {m[0]!r}?"
            if (m := difflib.get_close_matches(str(t).lower(), _VOCABULARY, n=1))
            else "no close match"
            for t in names.text(idx)
        ],
    )
    akey[akey == -2] = -1

    units = p.text["unit"]
    n_a, n_u = len(ANALYTE_KEYS), len(units.uniques)
    scale = np.full((n_a + 1, n_u + 1), np.nan)
    offset = np.zeros((n_a + 1, n_u + 1))
    a_idx = np.where(akey >= 0, akey, n_a)
    u_idx = np.where(units.codes >= 0, units.codes, n_u)
    # only the (analyte, unit) pairs that occur: the rows read no other cell of the tables
    for pair in np.unique(a_idx * (n_u + 1) + u_idx).tolist():
        ai, ui = divmod(pair, n_u + 1)
        if ai < n_a and ui < n_u:
            factor = _unit_factor(ai, units.uniques[ui])
            if factor is not None:
                scale[ai, ui], offset[ai, ui] = factor
    row_scale = scale[a_idx, u_idx]
    unit_bad = (akey >= 0) & (units.codes >= 0) & np.isnan(row_scale) & ~p.blank
    for ai in np.unique(akey[unit_bad]) if unit_bad.any() else ():
        a = ANALYTES[ANALYTE_KEYS[ai]]
        col.rows(
            p.file,
            unit_bad & (akey == ai),
            f"unit not accepted for {a.key} (accepted: {', '.join(a.units)})",
            column="unit",
            values=units.text,
            type_matters=False,
        )

    raw_value = p.num["value"]
    canon = raw_value * row_scale + offset[a_idx, u_idx]
    ok = ~np.isnan(canon) & ~p.blank
    lo_h, hi_h = _HARD_LOW[a_idx], _HARD_HIGH[a_idx]
    lo_s, hi_s = _SOFT_LOW[a_idx], _SOFT_HIGH[a_idx]
    hard_bad = ok & ((canon < lo_h) | (canon > hi_h))
    soft_bad = ok & ~hard_bad & ((canon < lo_s) | (canon > hi_s))
    integer = _INTEGER[a_idx]
    frac_bad = ok & ~hard_bad & integer & (canon != np.round(canon))

    def sides(a: Analyte, bounds: tuple[float, float]) -> Callable[[np.ndarray], list[str]]:
        """Above or below ``bounds`` (in the canonical unit, converted from the row's unit)."""

        def kinds(idx: np.ndarray) -> list[str]:
            converts = (row_scale[idx] != 1.0) | (offset[a_idx[idx], u_idx[idx]] != 0.0)
            to = f"converted to {a.canonical_unit}"
            return [
                side_kind(canon[i], bounds, to if c else "")
                for i, c in zip(idx, converts, strict=True)
            ]

        return kinds

    checks: tuple[tuple[np.ndarray, str, Severity], ...] = (
        (hard_bad, "impossible", "error"),
        (soft_bad, "implausible", "warning"),
    )
    for mask, kind, severity in checks:
        for ai in np.unique(akey[mask]) if mask.any() else ():
            a = ANALYTES[ANALYTE_KEYS[ai]]
            bounds = a.hard if kind == "impossible" else a.soft
            col.rows(
                p.file,
                mask & (akey == ai),
                f"{kind} {a.key} value: outside {fmt_range(bounds, a.canonical_unit)}",
                column="value",
                kinds=sides(a, bounds),
                severity=severity,
            )
    for ai in np.unique(akey[frac_bad]) if frac_bad.any() else ():
        a = ANALYTES[ANALYTE_KEYS[ai]]
        col.rows(
            p.file,
            frac_bad & (akey == ai),
            f"{a.key} takes whole numbers only ({a.canonical_unit})",
            column="value",
        )
    canon[hard_bad | frac_bad] = np.nan

    # Duplicates: same patient, time and analyte. Sorting once gives both the duplicate check
    # and the canonical order (patient id text, time, analyte key).
    keep = ~p.blank
    if "patient_id" not in p.text or "hours_from_infusion" not in p.num:
        return Measured(akey, canon, np.flatnonzero(keep), 0)
    ids = p.text["patient_id"]
    prank = rank_texts(ids.uniques)[ids.codes]
    arank = ANALYTE_RANK[a_idx]
    hours = p.num["hours_from_infusion"]
    order = np.flatnonzero(keep)
    key_cols = (arank[order], hours[order], prank[order])
    if not is_sorted(*key_cols):
        order = order[np.lexsort(key_cols)]
    qual = p.text["qualifier"].codes if "qualifier" in p.text else np.full(p.n, -1)
    po, ho, ao = prank[order], hours[order], akey[order]
    same = (po[1:] == po[:-1]) & (ho[1:] == ho[:-1]) & (ao[1:] == ao[:-1])
    same &= (po[1:] >= 0) & ~np.isnan(ho[1:]) & (ao[1:] >= 0)
    same &= ~np.isnan(canon[order[1:]]) & ~np.isnan(canon[order[:-1]])  # bad values: reported
    dup_pos = np.flatnonzero(same) + 1  # positions in `order` repeating the previous key
    dropped = 0
    if dup_pos.size:
        starts = np.ones(order.size, dtype=bool)
        starts[dup_pos] = False
        group_first = order[np.maximum.accumulate(np.where(starts, np.arange(order.size), 0))]
        rows = order[dup_pos]
        firsts = group_first[dup_pos]
        identical = (canon[rows] == canon[firsts]) & (qual[rows] == qual[firsts])
        conflict_mask = np.zeros(p.n, dtype=bool)
        conflict_mask[rows[~identical]] = True
        ident_mask = np.zeros(p.n, dtype=bool)
        ident_mask[rows[identical]] = True
        first_of = np.full(p.n, -1, dtype=np.int64)
        first_of[rows] = firsts
        col.rows(
            p.file,
            conflict_mask,
            "conflicting duplicate: same patient, time and analyte with a different value",
            column="value",
            detail=lambda idx: [f"differs from row {first_of[i] + 1}" for i in idx],
        )
        col.rows(
            p.file,
            ident_mask,
            "identical duplicate of an earlier row, dropped",
            column="value",
            detail=lambda idx: [f"same as row {first_of[i] + 1}" for i in idx],
            severity="warning",
        )
        dropped = int(identical.sum())
        drop = np.zeros(order.size, dtype=bool)
        drop[dup_pos[identical]] = True
        order = order[~drop]
    return Measured(akey, canon, order, dropped)
