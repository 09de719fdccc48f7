"""Flags on the values of one assay analyte: constant imputation, assay limits, unit mix.

- Constant imputation and limits written as numbers are *heaping*: one exact value far more
  frequent than its neighbours (digit-preference and heaping checks in data-quality practice;
  e.g. Lyon Group, "Data quality assessment" — here reduced to a count ratio that a rounded
  lab, whose neighbouring values tie as often, does not reach).
- A unit mix is a two-component mixture whose components sit a unit factor apart on the log
  scale; bimodality is judged with Ashman's D (Ashman KM et al. 1994, J Classification
  11:117–138: D > 2 for a clean separation) and BIC (Schwarz 1978).
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from features.catalog import DYNAMIC_ANALYTES
from features.mapping import VALUE_RTOL
from features.profile.rows import AnalyteRows
from features.profile.rules import Flag, FlagRules
from features.profile.windows import Windows
from features.vocabulary import ANALYTES

ASSAYS: frozenset[str] = frozenset(DYNAMIC_ANALYTES)
INIT = {"init_params": "random_from_data", "random_state": 0, "covariance_type": "diag"}


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _declared(v: float) -> str:
    """``v`` for an ``analyte_values`` fix: at least 6 significant digits, and as many more as
    the import's match tolerance needs (a converted 2300 pmol/L ferritin is 1023.587… ng/mL;
    1023.59 would match nothing)."""
    for digits in range(6, 18):
        text = f"{v:.{digits}g}"
        if math.isclose(float(text), v, rel_tol=VALUE_RTOL / 10):
            return text
    return repr(v)


def _patients_at(rows: AnalyteRows, value: float) -> int:
    """Patients with a plain row of exactly ``value``."""
    sel = rows.plain & (rows.value == value)
    return int(np.count_nonzero(np.bincount(rows.patient[sel])))


def _spike(counts: np.ndarray, k: int) -> np.ndarray:
    """count ÷ the largest count among the ``k`` nearest distinct values on each side."""
    n = len(counts)
    neighbour = np.zeros(n)
    for s in range(1, k + 1):
        neighbour[s:] = np.maximum(neighbour[s:], counts[:-s] if s < n else 0)
        neighbour[: n - s] = np.maximum(neighbour[: n - s], counts[s:] if s < n else 0)
    return counts / np.maximum(neighbour, 1.0)


def heaping_flags(rows: AnalyteRows, rules: FlagRules) -> list[Flag]:
    """Suspected assay limits and constant imputation in one analyte (plain values only)."""
    if rows.analyte not in ASSAYS or not rows.plain.any():
        return []
    values, counts = np.unique(rows.value[rows.plain], return_counts=True)
    n = int(counts.sum())
    n_pat = int(np.count_nonzero(np.bincount(rows.patient)))
    spike = _spike(counts.astype(float), rules.spike_neighbours)
    above = n - np.cumsum(counts)  # values strictly greater than values[i]
    below = np.cumsum(counts) - counts  # values strictly smaller
    allowed = min(rules.limit_beyond * n, rules.limit_beyond_max)
    share = counts / max(n, 1)
    # patients are counted only where a flag is possible (a few values, not every distinct one)
    possible = (spike >= rules.spike_ratio) & (
        ((counts >= rules.limit_count) & (np.minimum(above, below) <= allowed))
        | (share >= rules.imputation_share)
    )
    patients = np.zeros(len(values), dtype=np.int64)
    for j in np.flatnonzero(possible):
        patients[j] = _patients_at(rows, float(values[j]))
    unit = ANALYTES[rows.analyte].canonical_unit
    label = ANALYTES[rows.analyte].label
    out: list[Flag] = []
    limits: set[int] = set()
    for side, beyond in (("upper", above), ("lower", below)):
        cand = np.flatnonzero(
            (beyond <= allowed)
            & (counts >= rules.limit_count)
            & (patients >= rules.limit_patients)
            & (spike >= rules.spike_ratio)
        )
        if not len(cand):
            continue
        i = int(cand[np.argmax(counts[cand])])
        limits.add(i)
        word = "ceiling" if side == "upper" else "floor"
        out.append(
            Flag(
                kind="assay_limit",
                subject=rows.analyte,
                evidence=(
                    f"{label}: {_fmt(values[i])} {unit} written {counts[i]} times without a "
                    f"qualifier in {patients[i]} patients, {int(beyond[i])} of {n} values "
                    f"{'above' if side == 'upper' else 'below'} it, {spike[i]:.0f}× as frequent "
                    f"as its neighbouring values — looks like an assay {word}"
                    + (
                        f" (it is {100 * counts[i] / n:.0f}% of the values: if it fills missing "
                        f"cells instead, declare analyte_values: {{{rows.analyte}: {{missing: "
                        f"[{_declared(values[i])}]}}}})"
                        if counts[i] >= rules.imputation_share * n
                        else ""
                    )
                ),
                fix=(
                    f"declare it in the import mapping: analyte_values: {{{rows.analyte}: "
                    f"{{{word}: {_declared(values[i])}}}}} on the source, in {unit} whatever "
                    f"the source's unit (rows become '{'>' if side == 'upper' else '<'}' "
                    f"{_fmt(values[i])}), or write the qualifier column of the measurements table"
                ),
                numbers={
                    "value": float(values[i]),
                    "count": float(counts[i]),
                    "patients": float(patients[i]),
                    "share": float(counts[i] / n),
                    "beyond": float(beyond[i]),
                },
            )
        )
    cand = np.flatnonzero(
        (share >= rules.imputation_share)
        & (patients >= rules.imputation_patients)
        & (patients >= rules.imputation_patient_share * n_pat)
        & (spike >= rules.spike_ratio)
    )
    for i in (int(c) for c in cand if int(c) not in limits):
        out.append(
            Flag(
                kind="constant_imputation",
                subject=rows.analyte,
                evidence=(
                    f"{label}: {_fmt(values[i])} {unit} is {100 * share[i]:.0f}% of the "
                    f"analyte's {n} values, in {patients[i]} of {n_pat} patients, "
                    f"{spike[i]:.0f}× as frequent as its neighbouring values — looks like a "
                    "fill value for missing cells"
                ),
                fix=(
                    f"declare it in the import mapping: analyte_values: {{{rows.analyte}: "
                    f"{{missing: [{_declared(values[i])}]}}}} on the source, in {unit} whatever "
                    "the source's unit (those cells become not measured)"
                ),
                numbers={
                    "value": float(values[i]),
                    "count": float(counts[i]),
                    "patients": float(patients[i]),
                    "share": float(share[i]),
                },
            )
        )
    return out


def _mixture(x: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """Two-component fit of ``x``: separation, Ashman's D, smaller weight, sd ratio, BIC gain,
    weight of the lower component."""
    X = x.reshape(-1, 1)
    # started at the quartiles: deterministic, and no k-means initialisation (slow on a
    # shared machine, where its thread pool oversubscribes the cores)
    with threadpool_limits(limits=1):  # one column: BLAS threads only add contention
        one = GaussianMixture(1, means_init=[[np.median(x)]], **INIT).fit(X)
        two = GaussianMixture(2, means_init=np.quantile(x, [0.25, 0.75]).reshape(2, 1), **INIT).fit(
            X
        )
    mu = two.means_.ravel()
    sd = np.sqrt(two.covariances_.ravel())
    wt = two.weights_.ravel()
    sep = float(abs(mu[1] - mu[0]))
    d = math.sqrt(2) * sep / math.sqrt(sd[0] ** 2 + sd[1] ** 2)
    gain = float(one.bic(X) - two.bic(X))
    return sep, d, float(wt.min()), float(sd.max() / sd.min()), gain, float(wt[np.argmin(mu)])


def _unit_fix(key: str, factor: float) -> str:
    """What the import mapping can say about rows in another unit (issue 17 §4: no pandas)."""
    units = [
        u
        for u, c in ANALYTES[key].units.items()
        if c.offset == 0
        and any(math.isclose(c.scale, f, rel_tol=0.05) for f in (factor, 1 / factor))
    ]
    canonical = ANALYTES[key].canonical_unit
    some = (
        f" (a unit of {key} ×{factor:g} from {canonical}: {', '.join(units)})"
        if units
        else f" (no unit of {key} the contract accepts is ×{factor:g} from {canonical}: check "
        "the source first)"
    )
    return (
        f"a part of the {ANALYTES[key].label} values is in a unit ×{factor:g} away from the "
        f"declared one{some}. In the import mapping: if the unit changed on a date, declare "
        f"analyte_values: {{{key}: {{units_before: {{<date of the change>: <earlier unit>}}}}}} "
        "on the source (rows dated before it are read in that unit; needs infusion dates); if "
        "the rows come from another file, give that source's measurement rule its own unit; if "
        "a column tells them apart (unit, centre, lab), map it to units with unit_column and a "
        "value map. The contract then converts every row"
    )


def unit_mix_flag(rows: AnalyteRows, windows: Windows, rules: FlagRules) -> Flag | None:
    """A unit mix in one analyte: in some time window up to the last landmark, the log10
    values form two clusters that are shifted copies of each other (similar spread) a unit
    factor apart. Within one window the time course is comparable; what biology makes
    bimodal there (CRS and no CRS a day after infusion) differs in spread, a unit does not."""
    if rows.analyte not in ASSAYS:
        return None
    ok = rows.plain & (rows.value > 0)
    x_all = np.log10(rows.value[ok])
    w_all = windows.index(rows.hours[ok])
    smallest = min(math.log10(f) for f in rules.unit_factors)
    for wi, label in enumerate(windows.labels[:-1]):
        x = x_all[w_all == wi]
        if len(x) < rules.unit_min_values or np.ptp(x) < smallest:
            continue
        if len(x) > rules.unit_sample:
            x = np.random.default_rng(0).choice(x, rules.unit_sample, replace=False)
        sep, d, weight, sd_ratio, gain, low = _mixture(x)
        near = [f for f in rules.unit_factors if abs(sep - math.log10(f)) <= rules.unit_tolerance]
        if not (
            near
            and gain >= rules.unit_bic_gain
            and weight >= rules.unit_min_weight
            and d >= rules.unit_ashman_d
            and sd_ratio <= rules.unit_sd_ratio
        ):
            continue
        factor = near[0]
        name = ANALYTES[rows.analyte].label
        return Flag(
            kind="unit_mix",
            subject=rows.analyte,
            evidence=(
                f"{name}, window {label}: log10 values form two clusters {sep:.2f} decades "
                f"apart (≈ ×{factor:g}) with similar spread (sd ratio {sd_ratio:.2f}), holding "
                f"{100 * low:.0f}% (lower) and {100 * (1 - low):.0f}% (upper) of {len(x)} "
                f"values; Ashman's D {d:.1f}, BIC gain {gain:.0f} over one cluster"
            ),
            fix=_unit_fix(rows.analyte, factor),
            numbers={
                "factor": float(factor),
                "separation_decades": sep,
                "ashman_d": float(d),
                "lower_share": low,
            },
        )
    return None


def value_flags(rows: AnalyteRows, windows: Windows, rules: FlagRules) -> list[Flag]:
    """Every value flag of one analyte."""
    flags = heaping_flags(rows, rules)
    mix = unit_mix_flag(rows, windows, rules)
    return [*flags, mix] if mix is not None else flags
