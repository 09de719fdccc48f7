"""Per-patient input warnings of one model, vectorised over rows (single and batch alike).

Against the model's stored training distribution (``training.distribution``): a value below
or above its training range — the smallest/largest value seen for a synthetic cohort (and in
files written before issue 12), a bound with at least 5 training patients at or beyond it for
a real cohort, so no single patient's value is stored or shown — a binary level no training
patient had (an unseen product); and, for the variables the model actually uses, those
unknown at the landmark and imputed with a typical value. A model registered before the
distribution was stored falls back to the catalog's plausible ranges and says so.

The same function serves one patient and 10⁴: a batch gets exactly the single route's
warnings.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from features.catalog import CATALOG
from serving.wording import value_words
from training.distribution import PRODUCT_PREFIX, bounds, range_k

Warning_ = dict[str, Any]


def _number(value: float, unit: str, digits: int = 0) -> str:
    """A value with its unit, to 3 significant figures (``digits`` more when asked)."""
    if unit in ("count", "ratio", "score") or unit.startswith("log10"):
        unit = ""
    if unit == "yes/no":
        return "yes" if value >= 0.5 else "no"
    text = f"{value:,.{digits}f}" if abs(value) >= 1000 else f"{value:.{3 + digits}g}"
    return f"{text} {unit}".strip()


def _apart(
    column: str, value: float, edge: float, unit: str, edges: dict[tuple[str, float, int], str]
) -> tuple[str, str]:
    """A value outside the training range and the range's bound, in words that differ: with
    more decimals when the usual rounding makes them read the same ("5 h earlier is above the
    highest value (5 h earlier)" would contradict itself). ``edges``: bounds in words by
    (column, bound, decimals), filled here (a batch words each bound once)."""
    for digits in range(4):
        words = value_words(column, value, _number(value, unit, digits), digits)
        known = edges.get((column, edge, digits))
        bound = (
            known
            if known is not None
            else value_words(column, edge, _number(edge, unit, digits), digits)
        )
        edges[(column, edge, digits)] = bound
        if words != bound:
            break
    return words, bound


@dataclass(frozen=True)
class ModelChecks:
    """A model's arrays for the warnings, built once per loaded model."""

    low: np.ndarray
    high: np.ndarray
    source: str  # "training" | "catalog"
    labels: tuple[str, ...]
    units: tuple[str, ...]
    unseen: tuple[tuple[int, float, str], ...]  # (column, level never seen, what it means)
    members: np.ndarray  # used variables' value columns, group after group
    starts: np.ndarray
    group_labels: tuple[str, ...]
    products: tuple[str, ...] | None
    variable_of: np.ndarray  # per column: an integer code of its clinical variable
    range_k: int | None = None  # training range: ≥ k patients beyond each bound; None: min/max

    @functools.cached_property
    def unseen_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``unseen`` as (columns, levels) arrays, to compare every row with all at once."""
        return (
            np.array([j for j, _, _ in self.unseen], dtype=np.int64),
            np.array([level for _, level, _ in self.unseen], dtype=float),
        )

    def first_of_variable(self, flags: np.ndarray) -> np.ndarray:
        """Mask keeping, per row, only the first flagged column of each variable."""
        keep = np.zeros_like(flags)
        rows, cols = np.nonzero(flags)
        if rows.size:
            key = rows * (int(self.variable_of.max()) + 1) + self.variable_of[cols]
            _, first = np.unique(key, return_index=True)
            keep[rows[first], cols[first]] = True
        return keep


def model_checks(
    columns: Sequence[str], distribution: dict[str, Any] | None, used: frozenset[str] | None
) -> ModelChecks:
    """The checks of a model with input ``columns`` (``distribution`` None: catalog ranges)."""
    specs = [CATALOG.get(c) for c in columns]
    if distribution is not None:
        cols = distribution.get("columns", {})
        low, high = [], []
        for c, spec in zip(columns, specs, strict=True):
            b = bounds(cols.get(c))
            # counts of measurements and missing indicators describe practice, not the patient
            clinical = (
                spec is not None
                and spec.kind not in ("count",)
                and not c.endswith(("_n", "_missing"))
            )
            low.append(b[0] if b and clinical else -np.inf)
            high.append(b[1] if b and clinical else np.inf)
        source = "training"
        unseen = []
        for j, c in enumerate(columns):
            levels = cols.get(c, {}).get("levels")
            if levels is None or cols.get(c, {}).get("n", 0) == 0:
                continue
            for level in (0.0, 1.0):
                if level not in levels and level == 1.0:
                    spec = specs[j]
                    what = spec.label if spec else c
                    if c.startswith(PRODUCT_PREFIX):
                        what = f"product {what.split(': ', 1)[-1]}"
                    unseen.append((j, level, what))
        products = distribution.get("products")
    else:
        low = [s.low if s else -np.inf for s in specs]
        high = [s.high if s else np.inf for s in specs]
        source, unseen, products = "catalog", [], None
    groups: dict[str, list[int]] = {}
    for j, (c, s) in enumerate(zip(columns, specs, strict=True)):
        if s is None or c.endswith("_missing") or s.kind == "count" or c.endswith("_n"):
            continue
        if used is not None and s.variable not in used:
            continue
        groups.setdefault(s.variable, []).append(j)
    sizes = [len(js) for js in groups.values()]
    return ModelChecks(
        np.asarray(low, dtype=float),
        np.asarray(high, dtype=float),
        source,
        tuple(s.label if s else c for c, s in zip(columns, specs, strict=True)),
        tuple(s.unit if s else "" for s in specs),
        tuple(unseen),
        np.array([j for js in groups.values() for j in js], dtype=np.int64),
        np.cumsum([0, *sizes[:-1]], dtype=np.int64),
        tuple(CATALOG[columns[js[0]]].label.split(",")[0] for js in groups.values()),
        tuple(products) if products is not None else None,
        _variable_codes(columns, specs),
        range_k(distribution) if distribution is not None else None,
    )


def _variable_codes(columns: Sequence[str], specs: Sequence[Any]) -> np.ndarray:
    codes: dict[str, int] = {}
    return np.array(
        [
            codes.setdefault(s.variable if s else c, len(codes))
            for c, s in zip(columns, specs, strict=True)
        ],
        dtype=np.int64,
    )


def row_warnings(
    checks: ModelChecks, columns: Sequence[str], X: np.ndarray, landmark: str
) -> list[list[Warning_]]:
    """Per row of ``X`` (model input columns, NaN = unknown): its warnings as dicts."""
    X = np.atleast_2d(X)
    n = X.shape[0]
    out: list[list[Warning_]] = [[] for _ in range(n)]
    if checks.source == "catalog":
        note = {
            "code": "no_training_distribution",
            "field": None,
            "message": "this model was registered without its training distribution: inputs "
            "are checked against the catalog's plausible ranges only",
        }
        for row in out:
            row.append(note)
    with np.errstate(invalid="ignore"):
        outside = (checks.low > X) | (checks.high < X)
    # one warning per clinical variable (its first column outside), not one per summary
    outside &= checks.first_of_variable(outside)
    rows, cols = np.nonzero(outside)
    code = "outside_training_data" if checks.source == "training" else "outside_plausible_range"
    where = "the training data" if checks.source == "training" else "the plausible range"
    said: dict[tuple[int, float], Warning_] = {}  # one text per distinct (column, value)
    bounds_said: dict[tuple[str, float, int], str] = {}  # the bounds in words
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        v = float(X[i, j])
        known = said.get((j, v))
        if known is not None:
            out[i].append(known)
            continue
        lo, hi, unit = checks.low[j], checks.high[j], checks.units[j]
        edge = lo if v < lo else hi
        value, edge_words = _apart(columns[j], v, edge, unit, bounds_said)
        if checks.source == "training" and checks.range_k is not None:
            # a real cohort's bound (training.distribution): not any one patient's value
            side = "below" if v < lo else "above"
            message = (
                f"{checks.labels[j]}: {value} is {side} the training range ({edge_words}, a "
                f"bound with at least {checks.range_k} training patients at or beyond it, so "
                "no single patient's value is shown); the model has seen few patients like this"
            )
        else:
            side = (
                f"below the lowest value in {where}"
                if v < lo
                else f"above the highest value in {where}"
            )
            message = (
                f"{checks.labels[j]}: {value} is {side} ({edge_words}); the model has not "
                "seen patients like this"
            )
        said[(j, v)] = w = {"code": code, "field": columns[j], "message": message}
        out[i].append(w)
    if checks.unseen:  # every (column, level) at once; the warnings in the same order
        u_cols, u_levels = checks.unseen_arrays
        hits = X[:, u_cols] == u_levels
        seen = ", ".join(checks.products) if checks.products else "none recorded"
        for k in np.flatnonzero(hits.any(axis=0)).tolist():
            j, _, what = checks.unseen[k]
            is_product = what.startswith("product ")
            for i in np.flatnonzero(hits[:, k]).tolist():
                out[i].append(
                    {
                        "code": "unseen_product" if is_product else "outside_training_data",
                        "field": columns[j],
                        "message": f"{what}: no patient in the training data had it"
                        + (f" (trained on: {seen})" if is_product else ""),
                    }
                )
    if len(checks.starts):
        missing = np.logical_and.reduceat(np.isnan(X[:, checks.members]), checks.starts, axis=1)
        packed = np.packbits(missing, axis=1)
        texts: dict[bytes, Warning_] = {}  # one warning per distinct pattern of gaps
        for i in np.flatnonzero(missing.any(axis=1)).tolist():
            key = packed[i].tobytes()
            gaps = texts.get(key)
            if gaps is None:
                names = [checks.group_labels[g] for g in np.flatnonzero(missing[i]).tolist()]
                texts[key] = gaps = {
                    "code": "missing_imputed",
                    "field": None,
                    "message": f"not known at {landmark}, the model assumed typical values "
                    f"for: {', '.join(names)}",
                }
            out[i].append(gaps)
    return out
