"""The feature column layout: every column the builder computes and index arrays into it."""

from __future__ import annotations

import numpy as np

from features.catalog import (
    BASELINE_LABS,
    DYNAMIC_ANALYTES,
    LOG_SCALE,
    TOCI_AFFECTED,
    _slug,
)
from features.records import (
    ANALYTE_CODE,
    ANALYTE_KEYS,
    EVENT_CODE,
    INDICATION_CODE,
    code_set,
)
from features.schema import LYMPHODEPLETION, PRODUCTS

TRACKED: tuple[str, ...] = (*DYNAMIC_ANALYTES, "temperature")
TEMP = TRACKED.index("temperature")
LOG = np.array([a in LOG_SCALE for a in TRACKED])
# tracked index of each vocabulary analyte code (-1 = not tracked; the extra slot maps code -1)
TRACKED_OF = np.array([TRACKED.index(k) if k in TRACKED else -1 for k in ANALYTE_KEYS] + [-1])

FLOAT_PATIENT = ("age_years", "weight_kg", "car_t_dose", "marrow_blasts_pct")
BOOL_PATIENT = ("prior_hsct", "prior_blinatumomab", "prior_inotuzumab", "extramedullary_disease")
LEVELS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("sex", ("M",), ("sex_male",)),
    ("product", PRODUCTS, tuple(f"product_{_slug(x)}" for x in PRODUCTS)),
    ("lymphodepletion", LYMPHODEPLETION, tuple(f"lymphodepletion_{x}" for x in LYMPHODEPLETION)),
)
DYN = [j for j, an in enumerate(TRACKED) if an != "temperature"]
_STATS = ("last", "max", "fold_change", "slope_24h", "hours_since_first", "n", "missing")
_COURSE = (
    "crs_present",
    "crs_max_grade_so_far",
    "crs_grade_current",
    "crs_hours_since_onset",
    "toci_crs_grade",
    "toci_hours_since_onset",
    "toci_hours_from_infusion",
)
_TREATMENT = (
    "toci_given",
    "toci_hours_since_first",
    "steroids_given",
    "second_line_given",
    *(f"{a}_after_toci" for a in TOCI_AFFECTED),
)
FEATURE_COLUMNS: tuple[str, ...] = (
    *FLOAT_PATIENT,
    *BOOL_PATIENT,
    *(name for _, _, names in LEVELS for name in names),
    "high_marrow_burden",
    *(f"{TRACKED[j]}_{stat}" for j in DYN for stat in _STATS),
    *(f"{an}_pre_ld" for an in BASELINE_LABS),
    "easix_pre_ld",
    "m_easix_pre_ld",
    "temperature_max",
    "temperature_last",
    "temperature_n",
    "temperature_missing",
    "fever_present",
    "fever_hours_since_first",
    "fever_n",
    *_COURSE,
    *_TREATMENT,
)
"""Every feature the builder computes, in the column order of :func:`feature_matrix`."""
COLUMN: dict[str, int] = {name: j for j, name in enumerate(FEATURE_COLUMNS)}
N_PATIENT = COLUMN["high_marrow_burden"] + 1  # the time-free block comes first


def column_indices(names: list[str] | tuple[str, ...]) -> np.ndarray:
    return np.array([COLUMN[c] for c in names], dtype=np.int64)


STAT_COLS = {stat: column_indices([f"{TRACKED[j]}_{stat}" for j in DYN]) for stat in _STATS}
PRE_LD = column_indices([f"{an}_pre_ld" for an in BASELINE_LABS])
PRE_LD_J = np.array([TRACKED.index(an) for an in BASELINE_LABS])
COURSE_COLS = column_indices(_COURSE)
TREATMENT_COLS = column_indices(_TREATMENT)
TOCI, STEROID = EVENT_CODE["tocilizumab"], EVENT_CODE["corticosteroids"]
# membership tables by code (``table[codes]``, a lookup instead of np.isin)
IS_SECOND = code_set(("siltuximab", "anakinra"), EVENT_CODE)
IS_NOT_CRS = code_set(("icans", "other"), INDICATION_CODE)
AFFECTED = np.array([ANALYTE_CODE[a] for a in TOCI_AFFECTED])
