"""Which columns a model may use: compact pre-specified sets and uninformative-column drops.

With tens of events, a model given 200 candidate columns mostly learns noise (Riley RD et al.
2020, BMJ 368:m441; Steyerberg EW, Clinical Prediction Models, 2019, ch. 11: pre-specify a few
predictors from clinical knowledge rather than select them from the data). So:

- the logistic reference model always uses a compact clinical set, fixed per task and landmark
  before any data are seen (``COMPACT_*`` with ``COMPACT_RATIONALE``); after infusion it holds
  the treatment so far (issue 11 §5: IL-6 measured after tocilizumab is raised by the drug and
  must be read beside it), at the cost of fever, ferritin and second-line drugs
  (``COMPACT_AFTER_INFUSION_DROPPED`` says why each);
- a model whose declared columns need more patients than Riley's minimum for the cohort is
  restricted to the same compact set (``resolve_columns`` says so);
- columns missing for every patient or constant across the cohort carry no information and are
  dropped before any fit (a label-free rule on the whole cohort, so it leaks nothing);
- ``cytokine_max`` is a published-style compact baseline at every landmark: a plain logistic
  model on the maxima so far of IL-6, IFN-γ, IL-10, CRP, ferritin and the CRS grade so far (the
  variables of Teachey DT et al. 2016, Cancer Discov 6:664 and Diorio C et al. 2022, Blood Adv).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from features.sample_size import riley_sample_size

COMPACT_PRE_INFUSION: tuple[str, ...] = (
    "marrow_blasts_pct",  # disease burden: the strongest pre-infusion predictor
    "extramedullary_disease",
    "ldh_pre_ld",  # tumour burden / cell turnover
    "platelets_pre_ld",  # endothelial reserve (EASIX family)
    "crp_pre_ld",  # baseline inflammation
    "ferritin_pre_ld",
)
COMPACT_AFTER_INFUSION: tuple[str, ...] = (
    "marrow_blasts_pct",  # disease burden
    "ldh_max",
    "platelets_last",
    "crp_max",  # inflammation so far
    "il6_max",  # the cytokines of the CRS cascade
    "ifng_max",
    "crs_max_grade_so_far",  # the course so far
    "crs_hours_since_onset",
    # treatment so far (issue 11 §5): tocilizumab raises serum IL-6 by blocking its receptor
    # (Nishimoto N et al. 2008, Blood 112:3959), so IL-6 after a dose is not risk by itself.
    # One column carries "given" and "hours since the first dose": missing without a dose, and
    # the imputer's ``_was_missing`` indicator is "not given" (a separate toci_given would
    # duplicate that indicator).
    "toci_hours_since_first",
    "steroids_given",  # corticosteroids for CRS lower cytokines and the grade
)
COMPACT_AFTER_INFUSION_DROPPED: dict[str, str] = {
    "temperature_max": "fever ≥ 38 °C is what makes CRS grade ≥ 1, so the grade so far carries it",
    "ferritin_max": "rises later than IL-6 and CRP and tracks them (Teachey DT et al. 2016)",
    "second_line_given": "siltuximab or anakinra before grade 3 is rare: near-constant at a "
    "landmark, it would be dropped as uninformative",
    "toci_given": "carried by toci_hours_since_first (missing = not given)",
}
"""Why the after-infusion set leaves these out (it stays ≤ 10 predictors with treatment in)."""
COMPACT_TOCI: tuple[str, ...] = (
    "marrow_blasts_pct",
    "ldh_max",
    "platelets_last",
    "crp_max",
    "ferritin_max",
    "il6_max",
    "ifng_max",
    "temperature_max",
    "toci_crs_grade",  # grade when tocilizumab was given (treatment so far)
    "toci_hours_since_onset",
)
COMPACT_RATIONALE = (
    "pre-specified clinical set (≤ 10 predictors): disease burden, LDH, platelets, CRP, IL-6, "
    "IFN-γ, CRS grade so far, hours since onset and treatment so far (tocilizumab and hours "
    "since its first dose, corticosteroids for CRS: tocilizumab raises IL-6, so IL-6 is read "
    "beside it; fever is in the grade, ferritin tracks CRP and IL-6, second-line drugs before "
    "grade 3 are rare) — for the tocilizumab task the grade and hours since onset at the first "
    "dose — chosen from the literature before seeing the data, not selected on it"
)
CYTOKINE_MAX: tuple[str, ...] = (
    "il6_max",
    "ifng_max",
    "il10_max",
    "crp_max",
    "ferritin_max",
    "crs_max_grade_so_far",
)


def compact_columns(task: str, landmark: str, catalog: list[Any]) -> list[str]:
    """The compact clinical set of a task and landmark (those the landmark's catalog has)."""
    if task == "toci_refractory":
        wanted = COMPACT_TOCI
    elif landmark == "0h":
        wanted = COMPACT_PRE_INFUSION
    else:
        wanted = COMPACT_AFTER_INFUSION
    names = {s.name for s in catalog}
    return [c for c in wanted if c in names]


def uninformative(X: pd.DataFrame, columns: list[str]) -> dict[str, str]:
    """Columns missing for every patient or constant over the cohort → the reason."""
    out: dict[str, str] = {}
    for c in columns:
        if c not in X.columns:
            continue
        values = X[c]
        if not values.notna().any():
            out[c] = "missing for every patient"
        elif values.nunique(dropna=True) <= 1 and not values.isna().any():
            out[c] = "constant"
    return out


@dataclass
class ColumnChoice:
    """The columns a model gets and why (logged with the run)."""

    columns: list[str]
    dropped: dict[str, str] = field(default_factory=dict)
    compact: bool = False
    note: str = ""


def resolve_columns(
    model: str,
    declared: list[str],
    *,
    task: str,
    landmark: str,
    catalog: list[Any],
    X: pd.DataFrame,
    y: pd.Series,
) -> ColumnChoice:
    """Columns for a learned model: compact for logreg, or when Riley's minimum is not met."""
    dropped = uninformative(X, declared)
    compact = compact_columns(task, landmark, catalog)
    note = ""
    use_compact = model == "logreg"
    if use_compact:
        note = f"logistic reference model: {COMPACT_RATIONALE}"
    else:
        usable = [c for c in declared if c not in dropped]
        size = riley_sample_size(len(y), int(y.sum()), max(1, len(usable)))
        if not size.adequate:
            use_compact = True
            note = (
                f"Riley minimum sample size not met for {len(usable)} candidate columns "
                f"(n = {size.n_patients} < {size.min_n}): restricted to the {COMPACT_RATIONALE}"
            )
    if use_compact:
        chosen = [c for c in compact if c in declared] or compact
        dropped = uninformative(X, chosen)
        return ColumnChoice([c for c in chosen if c not in dropped], dropped, True, note)
    return ColumnChoice([c for c in declared if c not in dropped], dropped, False, note)
