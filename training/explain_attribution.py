"""Per-patient attribution in clinical words: SHAP log-odds per clinical variable, labelled.

Contributions are reported per *clinical variable*: Shapley values are additive, so the values of
the columns derived from one variable (summaries, missing indicators, one-hot levels, log
transforms) are summed to the variable the catalog names (``features.catalog.variable_of``), and
shown with its label, unit and the patient's value in original units before any learned
transform: "IL-6, maximum: 1,250 pg/mL → +0.84 log-odds". m-EASIX (one coefficient on the
composite) is one variable shown with its parts; a threshold rule says whether it was met.
The explainer (``training.explain.ModelExplainer``) computes the values; this module words them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.special import expit

from features.catalog import CATALOG, TOCI_AFFECTED, FeatureSpec, after_tocilizumab_note
from features.vocabulary import ANALYTES

if TYPE_CHECKING:
    from training.explain import ModelExplainer

# Labels of clinical variables that are neither one analyte nor one feature.
VARIABLE_LABELS: dict[str, str] = {
    "product": "CAR T product",
    "lymphodepletion": "Lymphodepletion",
    "crs_grade": "CRS grade",
    "crs_onset": "CRS onset",
    "toci_time": "Time of first tocilizumab",
    "marrow_blasts": "Marrow blasts",
    "sex": "Sex",
    "temperature": "Temperature / fever",
    "m_easix": "m-EASIX",
    "easix": "EASIX",
}
M_EASIX_PARTS = ("ldh_last", "crp_last", "platelets_last")
AFTER_TOCI_FLAGS: tuple[str, ...] = tuple(f"{a}_after_toci" for a in TOCI_AFFECTED)
"""The full feature row's ``<analyte>_after_toci`` flags (``features.build``): an explanation
reads them from the row even when the model does not take them as inputs (the compact clinical
set does not), so "measured after tocilizumab" never depends on the model's columns."""


def toci_flags(row: Any, columns: Sequence[str] | None = None) -> dict[str, float]:
    """The ``<analyte>_after_toci`` flags of one full feature row: a mapping, Series or 1-row
    DataFrame by name, or an array in ``columns`` order; flags the row lacks are left out."""
    if columns is not None:
        values = np.asarray(row, dtype=np.float64).reshape(-1)
        index = {c: j for j, c in enumerate(columns)}
        return {f: float(values[index[f]]) for f in AFTER_TOCI_FLAGS if f in index}
    if isinstance(row, pd.DataFrame):
        if len(row) != 1:
            return {}
        return {f: float(row[f].iloc[0]) for f in AFTER_TOCI_FLAGS if f in row.columns}
    if isinstance(row, Mapping | pd.Series):
        return {f: float(row[f]) for f in AFTER_TOCI_FLAGS if f in row}
    return {}


# --- formatting ------------------------------------------------------------------------------
def format_number(value: float) -> str:
    """Clinical rounding: 1,250 · 312 · 38.9 · 2.35 · 0.0412."""
    a = abs(value)
    if a >= 1000:
        return f"{value:,.0f}"
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a == 0:
        return "0"
    return f"{value:.3g}"


def format_log_odds(value: float) -> str:
    """Signed with a true minus sign: ``+0.84`` / ``−0.12``."""
    return f"{value:+.2f}".replace("-", "−")


def format_value(spec: FeatureSpec | None, value: float | None) -> str:
    """A raw feature value in its catalog unit ("1,250 pg/mL", "yes", "grade 2", "×12.0")."""
    if value is None or not math.isfinite(value):
        return "not measured" if spec is not None and spec.source_analyte else "unknown"
    if spec is None:
        return format_number(value)
    if spec.kind == "binary" or spec.unit == "yes/no":
        return "yes" if value >= 0.5 else "no"
    if spec.unit == "ASTCT grade":
        return f"grade {value:.0f}"
    if spec.unit == "count":
        return f"{value:.0f}"
    if spec.unit == "ratio":
        return f"×{format_number(value)}"
    if spec.unit == "score":
        return format_number(value)
    return f"{format_number(value)} {spec.unit}"


# --- catalog helpers -------------------------------------------------------------------------
def specs_of(catalog: Sequence[FeatureSpec] | Mapping[str, FeatureSpec] | None) -> dict:
    base = dict(CATALOG)
    if catalog is None:
        return base
    if isinstance(catalog, Mapping):
        return {**base, **catalog}
    return {**base, **{s.name: s for s in catalog}}


def variable_label(name: str, specs: Mapping[str, FeatureSpec]) -> str:
    """Display label of a clinical variable ("IL-6", "CAR T product", "Age")."""
    if name in VARIABLE_LABELS:
        return VARIABLE_LABELS[name]
    if name in ANALYTES:
        return ANALYTES[name].label
    members = [s for s in specs.values() if s.variable == name]
    if len(members) == 1:
        return members[0].label
    return name.replace("_", " ")


def one_hot_prefix(members: Sequence[FeatureSpec | None]) -> bool:
    """Members are the levels of one categorical variable ("Product: X", "Product: Y")."""
    return (
        len(members) > 1
        and all(s is not None and s.kind == "binary" and ": " in s.label for s in members)
        and len({s.label.split(": ")[0] for s in members if s is not None}) == 1
    )


# --- one patient's reasons --------------------------------------------------------------------
@dataclass(frozen=True)
class Contribution:
    """One clinical variable's share of a patient's log-odds, in words and numbers."""

    variable: str
    label: str  # clinical variable ("IL-6")
    feature: str  # the input column shown ("il6_max")
    feature_label: str  # its label ("IL-6, maximum")
    value: float | None  # raw value in the catalog unit; None = missing
    value_text: str  # "1,250 pg/mL"
    unit: str
    log_odds: float

    @property
    def text(self) -> str:
        """'IL-6, maximum: 1,250 pg/mL → +0.84 log-odds'."""
        change = format_log_odds(self.log_odds)
        return f"{self.feature_label}: {self.value_text} → {change} log-odds"


@dataclass(frozen=True)
class PatientExplanation:
    """One patient's risk and its reasons (the service returns ``to_dict()``).

    ``log_odds = base_value + Σ contributions + other_log_odds`` (the uncalibrated model's
    margin); ``probability`` is what the logged (calibrated) model returns for the patient.
    """

    probability: float
    log_odds: float
    base_value: float
    contributions: tuple[Contribution, ...]
    other_log_odds: float
    n_other: int
    family: str
    calibrated: bool

    @property
    def model_probability(self) -> float:
        """Uncalibrated probability expit(log-odds)."""
        return float(expit(self.log_odds))

    @property
    def base_probability(self) -> float:
        return float(expit(self.base_value))

    def to_dict(self) -> dict[str, Any]:
        return {
            "probability": self.probability,
            "log_odds": self.log_odds,
            "base_value": self.base_value,
            "base_probability": self.base_probability,
            "model_probability": self.model_probability,
            "contributions": [{**asdict(c), "text": c.text} for c in self.contributions],
            "other_log_odds": self.other_log_odds,
            "n_other": self.n_other,
            "family": self.family,
            "calibrated": self.calibrated,
        }

    def lines(self) -> list[str]:
        """The reasons as sentences, largest first, then the rest summed."""
        out = [c.text for c in self.contributions]
        if self.n_other:
            out.append(
                f"{self.n_other} other variables together → "
                f"{format_log_odds(self.other_log_odds)} log-odds"
            )
        return out


# --- wording a variable's contribution --------------------------------------------------------
def headline(ex: ModelExplainer, variable: str, x: np.ndarray, per_input: np.ndarray) -> int:
    """Input column shown for a variable: the level that is 1 for one-hot variables, else
    the member carrying the largest share of the variable's contribution."""
    members = ex._members[variable]
    if ex._one_hot[variable]:
        on = [i for i in members if x[i] >= 0.5]
        if on:
            return int(on[0])
    shares = np.abs(per_input[members])
    return int(members[int(np.argmax(shares))])


def contribution(
    ex: ModelExplainer,
    variable: str,
    value: float,
    x: np.ndarray,
    per_input: np.ndarray,
    flags: Mapping[str, float] | None = None,
) -> Contribution:
    """The variable's contribution worded: label, the input shown, its value in catalog units.

    ``flags``: the patient's ``<analyte>_after_toci`` flags from the full feature row
    (:func:`toci_flags`); without them, those among the model's inputs."""
    label = ex.variable_labels[variable]
    if variable == "m_easix" and "m_easix_score" in ex.columns:
        ldh, crp, plt = (x[ex.input_columns.index(c)] for c in M_EASIX_PARTS)
        ok = all(math.isfinite(v) for v in (ldh, crp, plt)) and plt > 0
        score = ldh * (crp / 10.0) / plt if ok else None
        parts = ", ".join(
            f"{ex.specs[c].label.split(',')[0]} "
            f"{format_value(ex.specs[c], x[ex.input_columns.index(c)])}"
            for c in M_EASIX_PARTS
        )
        text = (format_number(score) if score is not None else "not computable") + (f" ({parts})")
        return Contribution(
            variable,
            label,
            "m_easix_score",
            "m-EASIX (LDH × CRP[mg/dL] / platelets, latest values)",
            score,
            text,
            "score",
            value,
        )
    i = headline(ex, variable, x, per_input)
    name = ex.input_columns[i]
    spec = ex.specs.get(name)
    raw = float(x[i])
    if ex._one_hot[variable]:
        on = [j for j in ex._members[variable] if x[j] >= 0.5]
        level = ex.specs[ex.input_columns[on[0]]].label.split(": ", 1)[1] if on else "other"
        return Contribution(variable, label, name, label, raw, level, "", value)
    text = format_value(spec, raw)
    # issue 11 §5 (features.catalog): a cytokine measured after tocilizumab says so, read
    # from the full feature row when given (the model need not take the flag as an input)
    flag = f"{spec.source_analyte}_after_toci" if spec is not None else ""
    if flags is not None and flag in flags:
        text += after_tocilizumab_note(name, {flag: flags[flag]})
    elif flag in ex.input_columns:
        text += after_tocilizumab_note(name, {flag: x[ex.input_columns.index(flag)]})
    if ex._rule is not None:
        t = ex._rule["thresholds"][ex.input_columns.index(name)]
        met = math.isfinite(raw) and raw >= t
        text += f" (rule ≥{format_number(float(t))}: {'met' if met else 'not met'})"
    return Contribution(
        variable,
        label,
        name,
        spec.label if spec is not None else name,
        raw if math.isfinite(raw) else None,
        text,
        spec.unit if spec is not None else "",
        value,
    )
