"""The feature catalog: every column of the model-ready table, with its clinical meaning.

For each feature: clinical label, unit, group, description, plausible range (low, high) in the
feature's unit, expected direction of effect on risk (+1 / −1 / 0 = none assumed), the clinical
``variable`` it belongs to (so SHAP values of derived columns such as ``il6_max``,
``il6_missing`` sum back to ``il6``), and the source analyte. Training reads the ranges for
winsorising and the directions for monotone constraints; SHAP displays and the model card read
labels and units; the service checks inputs against the ranges.

Directions follow published associations with severe CRS: higher pre-infusion marrow burden
(Kadauke JCO 2021; Caballero-Bellón Front Immunol 2023), CAR T dose, Cy/Flu lymphodepletion and
low platelets (Hay Blood 2017), EASIX/m-EASIX (Pennisi Blood Adv 2021; pediatric Blood Adv
2025;9:270), IL-6, IFN-γ, sgp130, sIL-6R, IL-1RA (Teachey Cancer Discov 2016), IL-10, IL-2,
MCP-1 (Hay 2017; Su Front Immunol 2024), CRP and ferritin (Lee Lancet 2015; McNerney Blood Adv
2023), fever early and high (Kadauke 2021). ARI-0001 with split dosing had less severe CRS than
tisagenlecleucel (Ortiz-Maldonado Mol Ther 2021). Where no association was read, the direction
is 0. Plausible ranges for analytes are the vocabulary's soft ranges (implausible outside).

The columns of a task/landmark are a fixed list (:func:`catalog_for`), whatever the cohort
holds: an analyte a cohort lacks yields all-missing columns plus missing indicators, so a model
trained on one cohort can score another.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal

import pandas as pd

from features.errors import CrsRiskError
from features.schema import LYMPHODEPLETION, PATIENTS, PRODUCTS
from features.vocabulary import ANALYTES

Applies = Literal["all", "after_infusion", "severe_after_infusion", "severe_treatment", "toci"]

# Analytes followed over time (every cytokine of the vocabulary, then the labs).
CYTOKINES: tuple[str, ...] = tuple(k for k, a in ANALYTES.items() if a.group == "cytokines")
LABS: tuple[str, ...] = ("crp", "ferritin", "ldh", "platelets", "creatinine", "fibrinogen")
DYNAMIC_ANALYTES: tuple[str, ...] = (*CYTOKINES, *LABS)
BASELINE_LABS: tuple[str, ...] = ("ldh", "crp", "ferritin", "platelets", "creatinine")
# Analytes whose distribution spans orders of magnitude: logged before modelling, slopes on
# the log10(1 + x) scale.
LOG_SCALE: frozenset[str] = frozenset((*CYTOKINES, "crp", "ferritin", "ldh"))
HIGH_BURDEN_BLASTS_PCT = 40.0  # Kadauke JCO 2021: ≥40% marrow blasts = high tumour burden
# Analytes that tocilizumab itself moves: blocking the IL-6 receptor raises serum IL-6 and
# sIL-6R and lowers CRP (Nishimoto N et al., Blood 2008;112:3959), so a value measured after a
# dose is not the same signal as before it.
TOCI_AFFECTED: tuple[str, ...] = ("il6", "sil6r", "crp")
AFTER_TOCI_NOTE = "measured after tocilizumab"

_DIRECTION: dict[str, int] = {
    **{a: 0 for a in DYNAMIC_ANALYTES},
    **{
        a: 1
        for a in (
            *("il6", "ifng", "sgp130", "sil6r", "il1ra", "il10", "mcp1", "il2", "gmcsf"),
            *("crp", "ferritin", "ldh", "creatinine"),
        )
    },
    "platelets": -1,
}


@dataclass(frozen=True)
class FeatureSpec:
    """One feature column (see module docstring)."""

    name: str
    label: str
    unit: str
    group: str
    description: str
    low: float
    high: float
    direction: int
    variable: str
    source_analyte: str | None = None
    kind: str = "continuous"  # continuous | binary | count | grade
    skewed: bool = False  # log-transform before modelling
    applies: Applies = "all"

    @property
    def range(self) -> tuple[float, float]:
        return (self.low, self.high)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _bounds(bounds: tuple[float, float] | None) -> tuple[float, float]:
    """A schema column's declared bounds (every column the catalog reads declares them)."""
    assert bounds is not None, "a catalog feature needs declared schema bounds"
    return bounds


def _patient_specs() -> list[FeatureSpec]:
    age, weight, blasts, dose = (
        PATIENTS.column(c) for c in ("age_years", "weight_kg", "marrow_blasts_pct", "car_t_dose")
    )
    pc, dz, tx, bl = "patient characteristics", "disease burden", "CAR T treatment", "baseline labs"
    specs = [
        FeatureSpec("age_years", "Age", "years", pc, age.description, *_bounds(age.hard), 0, "age"),
        FeatureSpec(
            "weight_kg", "Weight", "kg", pc, weight.description, *_bounds(weight.hard), 0, "weight"
        ),
        FeatureSpec(
            "sex_male",
            "Male sex",
            "yes/no",
            pc,
            "1 = male, 0 = female.",
            0,
            1,
            0,
            "sex",
            kind="binary",
        ),
    ]
    for p in PRODUCTS:
        specs.append(
            FeatureSpec(
                f"product_{_slug(p)}",
                f"Product: {p}",
                "yes/no",
                tx,
                f"1 if the CAR T product is {p}.",
                0,
                1,
                -1 if p == "ARI-0001" else 0,
                "product",
                kind="binary",
            )
        )
    for col, label in (
        ("prior_hsct", "Prior allogeneic HSCT"),
        ("prior_blinatumomab", "Prior blinatumomab"),
        ("prior_inotuzumab", "Prior inotuzumab ozogamicin"),
    ):
        specs.append(
            FeatureSpec(
                col,
                label,
                "yes/no",
                pc,
                PATIENTS.column(col).description,
                0,
                1,
                0,
                col,
                kind="binary",
            )
        )
    specs += [
        FeatureSpec(
            "marrow_blasts_pct",
            "Marrow blasts",
            "%",
            dz,
            blasts.description,
            0,
            100,
            1,
            "marrow_blasts",
        ),
        FeatureSpec(
            "high_marrow_burden",
            "High marrow burden (≥40% blasts)",
            "yes/no",
            dz,
            "1 if bone-marrow blasts ≥40% before infusion (Kadauke JCO 2021).",
            0,
            1,
            1,
            "marrow_blasts",
            kind="binary",
        ),
        FeatureSpec(
            "extramedullary_disease",
            "Extramedullary disease",
            "yes/no",
            dz,
            PATIENTS.column("extramedullary_disease").description,
            0,
            1,
            0,
            "extramedullary_disease",
            kind="binary",
        ),
    ]
    for ld in LYMPHODEPLETION:
        specs.append(
            FeatureSpec(
                f"lymphodepletion_{ld}",
                f"Lymphodepletion: {ld}",
                "yes/no",
                tx,
                f"1 if lymphodepletion was {ld}.",
                0,
                1,
                1 if ld == "flu_cy" else 0,
                "lymphodepletion",
                kind="binary",
            )
        )
    specs.append(
        FeatureSpec(
            "car_t_dose",
            "CAR T cell dose",
            "10^6 cells/kg",
            tx,
            dose.description,
            *_bounds(dose.soft),
            1,
            "car_t_dose",
            skewed=True,
        )
    )
    for a in BASELINE_LABS:
        an = ANALYTES[a]
        specs.append(
            FeatureSpec(
                f"{a}_pre_ld",
                f"{an.label} before lymphodepletion",
                an.canonical_unit,
                bl,
                f"Earliest {an.label} recorded at or before infusion (the pre-lymphodepletion "
                "draw when there is one).",
                *an.soft,
                _DIRECTION[a],
                a,
                a,
                skewed=a in LOG_SCALE,
            )
        )
    specs += [
        FeatureSpec(
            "easix_pre_ld",
            "EASIX before lymphodepletion",
            "score",
            bl,
            "LDH (U/L) × creatinine (mg/dL) / platelets (10^9/L), pre-lymphodepletion "
            "values (Pennisi Blood Adv 2021).",
            0,
            1000,
            1,
            "easix",
            skewed=True,
        ),
        FeatureSpec(
            "m_easix_pre_ld",
            "m-EASIX before lymphodepletion",
            "score",
            bl,
            "LDH (U/L) × CRP (mg/dL; = mg/L ÷ 10) / platelets (10^9/L), "
            "pre-lymphodepletion values (Pennisi Blood Adv 2021).",
            0,
            1000,
            1,
            "m_easix",
            skewed=True,
        ),
    ]
    return specs


def _dynamic_specs(a: str) -> list[FeatureSpec]:
    an = ANALYTES[a]
    u = an.canonical_unit
    group = "cytokines" if a in CYTOKINES else "labs"
    d = _DIRECTION[a]
    log = a in LOG_SCALE
    lo, hi = an.soft
    slope_unit = "log10(1+x) per 24 h" if log else f"{u} per 24 h"
    slope_lim = 5.0 if log else float(hi)
    lab = an.label
    return [
        FeatureSpec(
            f"{a}_last",
            f"{lab}, last value",
            u,
            group,
            f"Most recent {lab} at or before the landmark.",
            lo,
            hi,
            d,
            a,
            a,
            skewed=log,
        ),
        FeatureSpec(
            f"{a}_max",
            f"{lab}, maximum",
            u,
            group,
            f"Highest {lab} up to the landmark.",
            lo,
            hi,
            d,
            a,
            a,
            skewed=log,
        ),
        FeatureSpec(
            f"{a}_fold_change",
            f"{lab}, fold change from baseline",
            "ratio",
            group,
            f"Highest {lab} up to the landmark divided by the patient's baseline (earliest "
            "value at or before infusion); missing without a positive baseline.",
            0,
            1e4,
            d,
            a,
            a,
            skewed=True,
        ),
        FeatureSpec(
            f"{a}_slope_24h",
            f"{lab}, slope",
            slope_unit,
            group,
            f"Least-squares slope of {lab}"
            + (" on the log10(1 + value) scale" if log else "")
            + " per 24 h over all values up to the landmark (≥2 times needed).",
            -slope_lim,
            slope_lim,
            d,
            a,
            a,
        ),
        FeatureSpec(
            f"{a}_hours_since_first",
            f"{lab}, time since first value",
            "h",
            group,
            f"Hours from the first {lab} value to the landmark.",
            0,
            24 * 60,
            0,
            a,
            a,
        ),
        FeatureSpec(
            f"{a}_n",
            f"{lab}, number of values",
            "count",
            group,
            f"Number of {lab} values up to the landmark.",
            0,
            500,
            0,
            a,
            a,
            kind="count",
        ),
        FeatureSpec(
            f"{a}_missing",
            f"{lab} not measured",
            "yes/no",
            group,
            f"1 if no {lab} value was recorded up to the landmark.",
            0,
            1,
            0,
            a,
            a,
            kind="binary",
        ),
    ]


def _temperature_specs() -> list[FeatureSpec]:
    t = ANALYTES["temperature"]
    vs = "vital signs"
    lo, hi = t.soft
    return [
        FeatureSpec(
            "temperature_max",
            "Highest temperature",
            "°C",
            vs,
            "Highest body temperature up to the landmark.",
            lo,
            hi,
            1,
            "temperature",
            "temperature",
        ),
        FeatureSpec(
            "temperature_last",
            "Last temperature",
            "°C",
            vs,
            "Most recent body temperature at or before the landmark.",
            lo,
            hi,
            1,
            "temperature",
            "temperature",
        ),
        FeatureSpec(
            "temperature_n",
            "Number of temperature readings",
            "count",
            vs,
            "Temperature readings up to the landmark.",
            0,
            2000,
            0,
            "temperature",
            "temperature",
            kind="count",
        ),
        FeatureSpec(
            "temperature_missing",
            "Temperature not recorded",
            "yes/no",
            vs,
            "1 if no temperature was recorded up to the landmark.",
            0,
            1,
            0,
            "temperature",
            "temperature",
            kind="binary",
        ),
        FeatureSpec(
            "fever_present",
            "Fever at the landmark",
            "yes/no",
            vs,
            "1 if a temperature ≥38.0 °C was recorded in the 24 h up to the landmark, 0 "
            "if temperatures were recorded without one, missing if none.",
            0,
            1,
            1,
            "temperature",
            "temperature",
            kind="binary",
        ),
        FeatureSpec(
            "fever_hours_since_first",
            "Time since first fever",
            "h",
            vs,
            "Hours from the first temperature ≥38.0 °C to the landmark (missing if no fever).",
            0,
            24 * 60,
            0,
            "temperature",
            "temperature",
        ),
        FeatureSpec(
            "fever_n",
            "Number of febrile readings",
            "count",
            vs,
            "Temperature readings ≥38.0 °C up to the landmark.",
            0,
            2000,
            1,
            "temperature",
            "temperature",
            kind="count",
        ),
    ]


def _course_specs() -> list[FeatureSpec]:
    cc = "CRS course"
    return [
        FeatureSpec(
            "crs_present",
            "CRS present",
            "yes/no",
            cc,
            "1 if the ASTCT grade in force at the landmark is ≥1.",
            0,
            1,
            1,
            "crs_grade",
            kind="binary",
            applies="after_infusion",
        ),
        FeatureSpec(
            "crs_max_grade_so_far",
            "Highest CRS grade so far",
            "ASTCT grade",
            cc,
            "Highest ASTCT grade at or before the landmark (0 = no CRS).",
            0,
            5,
            1,
            "crs_grade",
            kind="grade",
            applies="after_infusion",
        ),
        FeatureSpec(
            "crs_grade_current",
            "Current CRS grade",
            "ASTCT grade",
            cc,
            "ASTCT grade in force at the landmark.",
            0,
            5,
            1,
            "crs_grade",
            kind="grade",
            applies="severe_after_infusion",
        ),
        FeatureSpec(
            "crs_hours_since_onset",
            "Time since CRS onset",
            "h",
            cc,
            "Hours from CRS onset (first grade ≥1) to the landmark; missing without CRS.",
            0,
            24 * 60,
            0,
            "crs_onset",
            applies="severe_after_infusion",
        ),
        FeatureSpec(
            "toci_crs_grade",
            "CRS grade at first tocilizumab",
            "ASTCT grade",
            cc,
            "ASTCT grade in force at the first tocilizumab dose.",
            0,
            5,
            1,
            "crs_grade",
            kind="grade",
            applies="toci",
        ),
        FeatureSpec(
            "toci_hours_since_onset",
            "CRS duration at first tocilizumab",
            "h",
            cc,
            "Hours from CRS onset to the first tocilizumab dose; missing without a recorded onset.",
            0,
            24 * 60,
            0,
            "crs_onset",
            applies="toci",
        ),
        FeatureSpec(
            "toci_hours_from_infusion",
            "Time of first tocilizumab",
            "h",
            cc,
            "Hours from infusion to the first tocilizumab dose.",
            0,
            24 * 60,
            0,
            "toci_time",
            applies="toci",
        ),
    ]


def _treatment_specs() -> list[FeatureSpec]:
    """Treatment received up to the landmark (``severe_crs`` after infusion): issue 11 §5.

    No direction is assumed: treatment marks a sicker patient and lowers the risk at once."""
    tr = "treatment so far"

    def flag(name: str, label: str, text: str, variable: str) -> FeatureSpec:
        return FeatureSpec(
            name,
            label,
            "yes/no",
            tr,
            text,
            0,
            1,
            0,
            variable,
            kind="binary",
            applies="severe_treatment",
        )

    specs = [
        flag(
            "toci_given",
            "Tocilizumab given",
            "1 if a tocilizumab dose was given at or before the landmark.",
            "toci_given",
        ),
        FeatureSpec(
            "toci_hours_since_first",
            "Time since first tocilizumab",
            "h",
            tr,
            "Hours from the first tocilizumab dose to the landmark; missing without a dose.",
            0,
            24 * 14,
            0,
            "toci_given",
            applies="severe_treatment",
        ),
        flag(
            "steroids_given",
            "Corticosteroids given (for CRS)",
            "1 if a corticosteroid was given at or before the landmark for CRS or with no "
            "recorded indication (indication icans or other does not count).",
            "steroids_given",
        ),
        flag(
            "second_line_given",
            "Second-line anti-cytokine given",
            "1 if siltuximab or anakinra was given at or before the landmark (indication icans "
            "or other does not count).",
            "second_line_given",
        ),
    ]
    for a in TOCI_AFFECTED:
        label = ANALYTES[a].label
        specs.append(
            FeatureSpec(
                f"{a}_after_toci",
                f"{label} {AFTER_TOCI_NOTE}",
                "yes/no",
                tr,
                f"1 if a {label} value up to the landmark was measured after the first "
                "tocilizumab dose (tocilizumab itself moves it).",
                0,
                1,
                0,
                f"{a}_after_toci",  # its own variable: the analyte's value keeps its headline
                a,
                kind="binary",
                applies="severe_treatment",
            )
        )
    return specs


def after_tocilizumab_note(column: str, flags: Mapping[str, float]) -> str:
    """``" (measured after tocilizumab)"`` for a feature of an analyte tocilizumab moves when
    the patient's ``<analyte>_after_toci`` flag (in ``flags``) is 1, else ``""``: what an
    explanation adds to the value's text."""
    spec = CATALOG.get(column)
    if spec is None or spec.source_analyte not in TOCI_AFFECTED or spec.kind == "binary":
        return ""
    flag = flags.get(f"{spec.source_analyte}_after_toci")
    return f" ({AFTER_TOCI_NOTE})" if flag is not None and flag >= 0.5 else ""


def _build() -> dict[str, FeatureSpec]:
    specs = _patient_specs()
    for a in DYNAMIC_ANALYTES:
        specs += _dynamic_specs(a)
    specs += _temperature_specs() + _course_specs() + _treatment_specs()
    out = {s.name: s for s in specs}
    assert len(out) == len(specs), "duplicate feature names"
    return out


CATALOG: dict[str, FeatureSpec] = _build()


def _applies(spec: FeatureSpec, task: str, after_infusion: bool, landmark: str) -> bool:
    if spec.applies == "all":
        return True
    if spec.applies == "after_infusion":
        return after_infusion
    if spec.applies == "severe_after_infusion":  # the course at the landmark
        return (task == "severe_crs" and after_infusion) or landmark == "decision"
    if spec.applies == "severe_treatment":
        return task == "severe_crs" and after_infusion
    return task == "toci_refractory" and landmark != "decision"


def catalog_for(task: object, landmark: str | float) -> list[FeatureSpec]:
    """The fixed, ordered feature list of ``task`` (name or Task) at ``landmark``.

    CRS-course features appear only after infusion (at 0 h they are structurally zero);
    treatment-so-far features for ``severe_crs`` after infusion; for ``toci_refractory`` the
    first-dose features at ``first_toci`` and the course at the landmark at ``decision``
    (scored without a dose: no dose feature).
    """
    name = str(getattr(task, "name", task))
    text = str(landmark).strip().lower().replace("-", "_")
    if name == "toci_refractory" or text in ("first_toci", "decision"):
        after = True
    else:
        try:
            hours = float(text[:-1] if text.endswith("h") else text)
        except ValueError:
            raise CrsRiskError(f"landmark {landmark!r} is not valid for {name}") from None
        after = hours > 0
    return [s for s in CATALOG.values() if _applies(s, name, after, text)]


def feature_names(task: object, landmark: str | float) -> list[str]:
    """Column names of :func:`catalog_for`, in order."""
    return [s.name for s in catalog_for(task, landmark)]


def catalog_frame(specs: list[FeatureSpec] | None = None) -> pd.DataFrame:
    """The catalog as a table (one row per feature) for documentation and the model card."""
    rows = [asdict(s) for s in (specs if specs is not None else CATALOG.values())]
    return pd.DataFrame(rows)


# Suffixes added by ``features.transformers`` to a catalog column's name.
_DERIVED_SUFFIXES: tuple[str, ...] = ("_was_missing",)


def variable_of(column: str) -> str:
    """Clinical variable of a (possibly transformer-derived) column, for summing SHAP values."""
    name = column.split("__")[-1]  # ColumnTransformer prefixes such as ``num__``
    for suffix in _DERIVED_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in CATALOG:
            name = name[: -len(suffix)]
    spec = CATALOG.get(name)
    return spec.variable if spec is not None else name
