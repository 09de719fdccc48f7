"""Minimum inputs a score needs, per task and landmark: below them the service abstains.

A model imputes whatever is missing, so it returns a number for a patient with no data at all
(the training median of every input: a "low risk" built from nothing). The table below states,
per task and landmark window, which clinical variables (``features.catalog`` variable names)
must be known at the landmark, each with the clinical rationale; a patient below it gets
"insufficient data" with the missing inputs named, never a probability (DESIGN.md: "a score is
given only when the inputs support it").

Rules are alternatives of complete sets: a rule holds when every variable of at least one of
its options is known. Pre-infusion, disease burden (marrow blasts or extramedullary disease) or
LDH with platelets (the pre-lymphodepletion burden and EASIX-type markers: Teachey DT et al.,
Cancer Discov 2016;6:664; Greenbaum U et al., Blood Adv 2022 — m-EASIX); after infusion, at
least one cytokine or CRP together with the temperature course (fever is CRS's first sign; the
cytokine/CRP trajectory carries the early-warning signal: Teachey 2016, Diorio C et al., Blood
Adv 2022); at the tocilizumab decision, an inflammatory marker (IL-6 or CRP) at or before it.

Owned by serving (issue 14); the catalog itself stays in ``features.catalog``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from features.catalog import CATALOG

CYTOKINES_OR_CRP: tuple[str, ...] = (
    "il6",
    "ifng",
    "sgp130",
    "sil6r",
    "il1ra",
    "il10",
    "mcp1",
    "il2",
    "il8",
    "tnfa",
    "crp",
    "ferritin",
)


@dataclass(frozen=True)
class Requirement:
    """Variables of which at least one must be known (``any_of``), in clinical words."""

    any_of: tuple[str, ...]
    label: str


@dataclass(frozen=True)
class Rule:
    """One task's minimum inputs from ``from_hours`` on (landmark hours; None = any).

    ``options``: alternative sets of requirements; the rule holds when every requirement of
    one option is met.
    """

    task: str
    from_hours: float | None
    options: tuple[tuple[Requirement, ...], ...]
    text: str
    rationale: str


BURDEN = Requirement(("marrow_blasts", "extramedullary_disease"), "disease burden (marrow blasts)")
LDH = Requirement(("ldh",), "LDH")
PLATELETS = Requirement(("platelets",), "platelets")
INFLAMMATION = Requirement(CYTOKINES_OR_CRP, "a cytokine (e.g. IL-6) or CRP")
TEMPERATURE = Requirement(("temperature",), "the temperature course")
IL6_OR_CRP = Requirement(("il6", "crp", "ferritin", "ifng"), "IL-6 or CRP")

RULES: tuple[Rule, ...] = (
    Rule(
        "severe_crs",
        0.0,
        ((BURDEN,), (LDH, PLATELETS)),
        "disease burden, or LDH and platelets",
        "Before infusion the risk is driven by tumour burden and endothelial/inflammatory "
        "state (marrow blasts, LDH, platelets as in m-EASIX); without any of them the model "
        "would score training medians.",
    ),
    Rule(
        "severe_crs",
        1.0,
        ((INFLAMMATION, TEMPERATURE),),
        "at least one cytokine or CRP, and the temperature course",
        "After infusion severe CRS announces itself through fever and rising cytokines/CRP; a "
        "score without either reads the absence of measurements as the absence of CRS.",
    ),
    Rule(
        "toci_refractory",
        None,
        ((IL6_OR_CRP,),),
        "IL-6 or CRP at or before the decision",
        "Tocilizumab failure is predicted from the inflammatory burden at the decision; "
        "without IL-6 or CRP the model has nothing patient-specific to read.",
    ),
)


def rule_for(task: str, hours: float | None) -> Rule | None:
    """The rule that applies to ``task`` at ``hours`` (latest ``from_hours`` ≤ hours)."""
    best: Rule | None = None
    for r in RULES:
        if r.task != task:
            continue
        if r.from_hours is None or hours is None:
            return r
        if r.from_hours <= hours and (best is None or (best.from_hours or 0) <= r.from_hours):
            best = r
    return best


@functools.cache
def _variable_columns(columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    return variable_columns(columns)


def variable_columns(columns: Sequence[str]) -> dict[str, np.ndarray]:
    """Positions of each variable's value columns among ``columns`` (no missingness
    indicators, no counts: a count of 0 or an indicator is not a measurement)."""
    out: dict[str, list[int]] = {}
    for j, c in enumerate(columns):
        spec = CATALOG.get(c)
        if spec is None or c.endswith("_missing") or spec.kind == "count" or c.endswith("_n"):
            continue
        out.setdefault(spec.variable, []).append(j)
    return {v: np.asarray(js, dtype=np.int64) for v, js in out.items()}


def known_variables(X: np.ndarray, columns: Sequence[str], variables: Sequence[str]) -> np.ndarray:
    """(rows × variables) booleans: the variable has at least one known value column."""
    X = np.atleast_2d(X)
    where = _variable_columns(tuple(columns))
    out = np.zeros((X.shape[0], len(variables)), dtype=bool)
    for k, v in enumerate(variables):
        js = where.get(v)
        if js is not None and len(js):
            out[:, k] = (~np.isnan(X[:, js])).any(axis=1)
    return out


@functools.cache
def _plan(
    rule: Rule, columns: tuple[str, ...]
) -> tuple[list[Requirement], np.ndarray, np.ndarray, list[list[int]]]:
    """A rule's requirements, the value columns that can meet any of them, which requirement
    each meets (columns × requirements, 0/1) and each option's requirements (computed once)."""
    reqs = list(dict.fromkeys(r for opt in rule.options for r in opt))
    by_var = _variable_columns(columns)
    where = [
        np.concatenate([by_var.get(v, np.zeros(0, dtype=np.int64)) for v in r.any_of]) for r in reqs
    ]
    used = np.unique(np.concatenate([np.zeros(0, dtype=np.int64), *where]))
    meets = np.zeros((len(used), len(reqs)))
    for k, js in enumerate(where):
        meets[np.searchsorted(used, js), k] = 1.0
    pos = {r: k for k, r in enumerate(reqs)}
    return reqs, used, meets, [[pos[r] for r in opt] for opt in rule.options]


def missing_inputs(
    task: str, hours: float | None, X: np.ndarray, columns: Sequence[str]
) -> list[list[str]]:
    """Per row of ``X`` (features in ``columns`` order, NaN = unknown): the missing inputs in
    clinical words ([] = enough data). The option closest to complete is the one named."""
    X = np.atleast_2d(X)
    rule = rule_for(task, hours)
    if rule is None:
        return [[] for _ in range(X.shape[0])]
    reqs, used, meets, options = _plan(rule, tuple(columns))
    # rows × requirements: some column of the requirement known (a count of known columns > 0)
    met = (~np.isnan(X[:, used])).astype(np.float64) @ meets > 0
    enough = np.zeros(X.shape[0], dtype=bool)
    for opt in options:
        enough |= met[:, opt].all(axis=1)
    out: list[list[str]] = [[] for _ in range(X.shape[0])]
    for i in np.flatnonzero(~enough).tolist():  # only patients below the minimum are worded
        lacking = [[reqs[k].label for k in opt if not met[i, k]] for opt in options]
        if len(options) == 1:
            out[i] = lacking[0]
        else:  # name every alternative: "disease burden, or LDH and platelets"
            out[i] = [" and ".join(m) for m in lacking]
    return out


def insufficient_text(task: str, hours: float | None, missing: Sequence[str]) -> str:
    """The "insufficient data" reason naming what is missing."""
    rule = rule_for(task, hours)
    needs = rule.text if rule is not None else "more data"
    rule_options = rule is not None and len(rule.options) > 1
    lacking = " or ".join(missing) if rule_options else ", ".join(missing)
    return f"insufficient data: this score needs {needs}; missing: {lacking}"
