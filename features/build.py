"""Deterministic per-patient feature table at a landmark (no learning happens here).

``build_features(cohort, task, landmark)`` → :class:`features.table.FeatureTable`: one row per
eligible patient, the fixed column list of ``features.catalog.catalog_for`` (all float64, NaN =
missing), the label, identifiers and subgroup columns separately, and a summary (eligible,
events, exclusions by reason, missingness per feature, derivation notes).

Every feature is computed from the cohort *cut at the landmark* (``features.landmark.cut``), so
nothing recorded after the landmark, and no event with unknown time, can enter a feature. Each
patient's row depends only on that patient's data. The same code builds one patient's row at
serving time (:func:`build_patient_features`).

Definitions (units are canonical, ``features.vocabulary``):

- baseline of an analyte = its earliest value at or before infusion (hours ≤ 0), i.e. the
  pre-lymphodepletion draw when there is one; EASIX = LDH × creatinine / platelets and
  m-EASIX = LDH × CRP[mg/dL] / platelets on baseline values, CRP converted from mg/L (÷10) as
  published (Pennisi M et al., Blood Adv 2021;5:3397);
- per analyte up to the landmark: last value, maximum, fold change = maximum / baseline,
  least-squares slope per 24 h (on log10(1 + x) for log-scale analytes), hours since the first
  value, number of values, missing indicator. Values at a detection limit enter at the limit;
- temperature: maximum, last, count, fever present (≥38.0 °C in the 24 h up to the landmark),
  hours since the first fever, febrile count;
- CRS course from the grade course of the cut cohort (``features.grading``): CRS present, highest
  grade so far, grade in force (missing once a derived grade has expired), hours since onset;
  for ``toci_refractory`` the grade and hours since onset at the first dose, and the dose's time;
- treatment so far (``severe_crs`` after infusion; issue 11 §5): tocilizumab given, hours since
  its first dose, corticosteroids given and siltuximab/anakinra given (for CRS or with no
  recorded indication), and whether IL-6, sIL-6R and CRP were measured after the first
  tocilizumab dose (tocilizumab itself moves them; explanations say so:
  ``features.catalog.after_tocilizumab_note``).

Vectorised with NumPy over (patient, analyte) groups of the cohort's records
(``features.records.Records``: the long tables as arrays, built once by :func:`prepare`), into
one float64 matrix (:data:`FEATURE_COLUMNS`); a task's table selects its catalog columns. No
Python loop over patients and no per-landmark pandas work, so the same code builds one
patient's row for the service in about a millisecond and 10⁵ patients' tables in seconds.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.catalog import (
    BASELINE_LABS,
    DYNAMIC_ANALYTES,
    HIGH_BURDEN_BLASTS_PCT,
    LOG_SCALE,
    TOCI_AFFECTED,
    _slug,
    catalog_for,
)
from features.cohort import Cohort
from features.errors import CrsRiskError
from features.grading import FEVER_WINDOW_H, SOURCE_NAMES, Course, GradeCourse, fever_values
from features.io import load_cohort
from features.records import (
    ANALYTE_CODE,
    ANALYTE_KEYS,
    EVENT_CODE,
    INDICATION_CODE,
    PreparedCohort,
    Records,
    prepared,
)
from features.schema import LYMPHODEPLETION, PRODUCTS
from features.table import FeatureTable
from features.tasks import (
    Assignment,
    Task,
    assign,
    course_of,
    exclusion_summary,
    get_task,
    last_grade,
    max_grade,
    parse_landmark,
)

TRACKED: tuple[str, ...] = (*DYNAMIC_ANALYTES, "temperature")
_TEMP = TRACKED.index("temperature")
_LOG = np.array([a in LOG_SCALE for a in TRACKED])
# tracked index of each vocabulary analyte code (-1 = not tracked; the extra slot maps code -1)
_TRACKED_OF = np.array([TRACKED.index(k) if k in TRACKED else -1 for k in ANALYTE_KEYS] + [-1])
GROUP_COLUMNS: tuple[str, ...] = ("center", "age_band", "product", "marrow_burden")


# --- preparation -----------------------------------------------------------------------------
def prepare(cohort: Cohort) -> PreparedCohort:
    """Integer patient/analyte/event codes and (patient, analyte, time) order, once per cohort.

    The result is the same cohort carrying its :class:`~features.records.Records`; every task
    and landmark built from it reuses them (the cut keeps the order).
    """
    return prepared(cohort)


# --- feature families ------------------------------------------------------------------------
_TRUTH = {
    "true": 1.0,
    "1": 1.0,
    "1.0": 1.0,
    "yes": 1.0,
    "false": 0.0,
    "0": 0.0,
    "0.0": 0.0,
    "no": 0.0,
}


def _array(column: pd.Series | np.ndarray | Any) -> Any:
    """The values behind a column: a Series' array, else the column itself."""
    return column.array if isinstance(column, pd.Series) else column


def _float(series: pd.Series | np.ndarray | Any) -> np.ndarray:
    """Numbers or booleans (nullable or not, or their text) as float64 with NaN for missing."""
    values = _array(series)
    dtype = values.dtype
    if isinstance(values, np.ndarray) and dtype.kind in "fiub":
        return values.astype(np.float64)
    if isinstance(values, _MASKED):  # what ``to_numpy(float, na_value=nan)`` returns, without
        out = values._data.astype(np.float64)  # its per-call dispatch (the validator's columns)
        out[values._mask] = np.nan
        return out
    if pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)
    ):
        return np.asarray(values.to_numpy(dtype=float, na_value=np.nan), dtype=float)
    text = pd.Series(values).astype("string").str.strip().str.lower()
    truth = text.map(_TRUTH).astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    number = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isnan(truth), number, truth)


_MASKED = (pd.arrays.BooleanArray, pd.arrays.IntegerArray, pd.arrays.FloatingArray)


def _indicators(values: pd.Series | Any, levels: tuple[str, ...]) -> np.ndarray:
    """(n, levels) 1/0 per level (exact text match), NaN where the value is missing."""
    arr = _array(values)
    if isinstance(arr, pd.Categorical):
        return _level_table(arr.dtype, levels)[arr.codes]
    codes, uniques = pd.factorize(pd.Series(arr).astype("string"))
    return _hits([str(u) for u in uniques], levels)[codes]


def _hits(texts: list[str], levels: tuple[str, ...]) -> np.ndarray:
    """Rows 1/0 per level for each text, and a last all-NaN row for code -1 (missing)."""
    hit = np.array([[t == level for level in levels] for t in texts], dtype=float)
    return np.vstack([hit.reshape(len(texts), len(levels)), np.full((1, len(levels)), np.nan)])


@functools.lru_cache(maxsize=64)
def _level_table(dtype: pd.CategoricalDtype, levels: tuple[str, ...]) -> np.ndarray:
    """:func:`_hits` of a category dtype's categories (a constant per dtype: computed once)."""
    table = _hits([str(c) for c in dtype.categories], levels)
    table.flags.writeable = False
    return table


_FLOAT_PATIENT = ("age_years", "weight_kg", "car_t_dose", "marrow_blasts_pct")
_BOOL_PATIENT = ("prior_hsct", "prior_blinatumomab", "prior_inotuzumab", "extramedullary_disease")
_LEVELS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("sex", ("M",), ("sex_male",)),
    ("product", PRODUCTS, tuple(f"product_{_slug(x)}" for x in PRODUCTS)),
    ("lymphodepletion", LYMPHODEPLETION, tuple(f"lymphodepletion_{x}" for x in LYMPHODEPLETION)),
)
_DYN = [j for j, an in enumerate(TRACKED) if an != "temperature"]
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
    *_FLOAT_PATIENT,
    *_BOOL_PATIENT,
    *(name for _, _, names in _LEVELS for name in names),
    "high_marrow_burden",
    *(f"{TRACKED[j]}_{stat}" for j in _DYN for stat in _STATS),
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


def _cols(names: list[str] | tuple[str, ...]) -> np.ndarray:
    return np.array([COLUMN[c] for c in names], dtype=np.int64)


_STAT_COLS = {stat: _cols([f"{TRACKED[j]}_{stat}" for j in _DYN]) for stat in _STATS}
_PRE_LD = _cols([f"{an}_pre_ld" for an in BASELINE_LABS])
_PRE_LD_J = np.array([TRACKED.index(an) for an in BASELINE_LABS])
_COURSE_COLS = _cols(_COURSE)
_TREATMENT_COLS = _cols(_TREATMENT)
_TOCI, _STEROID = EVENT_CODE["tocilizumab"], EVENT_CODE["corticosteroids"]
_SECOND = np.array([EVENT_CODE["siltuximab"], EVENT_CODE["anakinra"]])
_NOT_CRS = np.array([INDICATION_CODE["icans"], INDICATION_CODE["other"]])
_AFFECTED = np.array([ANALYTE_CODE[a] for a in TOCI_AFFECTED])


def patient_features(patients: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
    """The time-free features of every patient row (the first :data:`N_PATIENT` columns).

    ``patients``: the patients frame, or its typed columns by name (the validator's arrays).
    The same at every landmark, so a caller scoring several landmarks computes them once.
    """
    n = len(patients) if isinstance(patients, pd.DataFrame) else len(patients["patient_id"])
    out = np.empty((n, N_PATIENT))
    j = 0
    for col in (*_FLOAT_PATIENT, *_BOOL_PATIENT):
        out[:, j] = _float(patients[col])
        j += 1
    for col, levels, _ in _LEVELS:
        out[:, j : j + len(levels)] = _indicators(patients[col], levels)
        j += len(levels)
    blasts = out[:, COLUMN["marrow_blasts_pct"]]
    with np.errstate(invalid="ignore"):
        out[:, j] = np.where(
            np.isnan(blasts), np.nan, (blasts >= HIGH_BURDEN_BLASTS_PCT).astype(float)
        )
    return out


def _measurement_features(rec: Records, lm: np.ndarray, n: int, out: np.ndarray) -> None:
    """Per (patient, tracked analyte) statistics of the cut records, into columns of ``out``."""
    a_all = _TRACKED_OF[rec.m_a]
    keep = a_all >= 0
    p = rec.m_p[keep]
    a = a_all[keep]
    t = rec.m_t[keep]
    v = rec.m_v[keep]
    k = len(TRACKED)
    key = p * k + a
    shape = (n, k)
    # column-major, like the matrix they are copied into (whole columns move at once)
    names = ("last", "max", "base", "slope", "first_t", "fold_change")
    buf = np.full((len(names), k, n), np.nan)  # one allocation; each ``.T`` is (n, k), F-order
    stats = {s: buf[i].T for i, s in enumerate(names)}
    stats["n"] = np.zeros(shape, order="F")
    if len(key):
        starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
        ends = np.append(starts[1:], len(key))
        cnt = (ends - starts).astype(float)
        gp, ga = p[starts], a[starts]
        y = np.where(_LOG[a], np.log10(1.0 + np.clip(v, 0.0, None)), v)
        dt = (t - np.repeat(t[starts], ends - starts)) / 24.0  # days since the group's first
        s_t = np.add.reduceat(dt, starts)
        s_y = np.add.reduceat(y, starts)
        s_tt = np.add.reduceat(dt * dt, starts)
        s_ty = np.add.reduceat(dt * y, starts)
        den = cnt * s_tt - s_t * s_t
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = np.where(
                (cnt >= 2) & (den > 0), (cnt * s_ty - s_t * s_y) / np.where(den > 0, den, 1), np.nan
            )
            base = np.where(t[starts] <= 0, v[starts], np.nan)
            vmax = np.maximum.reduceat(v, starts)
            fold = np.where(base > 0, vmax / np.where(base > 0, base, 1), np.nan)
        for name, values in (
            ("last", v[ends - 1]),
            ("max", vmax),
            ("base", base),
            ("slope", slope),
            ("first_t", t[starts]),
            ("n", cnt),
            ("fold_change", fold),
        ):
            stats[name][gp, ga] = values
    count = stats["n"][:, _DYN]
    out[:, _STAT_COLS["last"]] = stats["last"][:, _DYN]
    out[:, _STAT_COLS["max"]] = stats["max"][:, _DYN]
    out[:, _STAT_COLS["fold_change"]] = stats["fold_change"][:, _DYN]
    out[:, _STAT_COLS["slope_24h"]] = stats["slope"][:, _DYN]
    out[:, _STAT_COLS["hours_since_first"]] = lm[:, None] - stats["first_t"][:, _DYN]
    out[:, _STAT_COLS["n"]] = count
    out[:, _STAT_COLS["missing"]] = (count == 0).astype(float)
    pre = stats["base"][:, _PRE_LD_J]
    out[:, _PRE_LD] = pre
    ldh, crp, plt, cre = (
        pre[:, BASELINE_LABS.index(x)] for x in ("ldh", "crp", "platelets", "creatinine")
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        plt_ok = np.where(plt > 0, plt, np.nan)
        out[:, COLUMN["easix_pre_ld"]] = ldh * cre / plt_ok
        out[:, COLUMN["m_easix_pre_ld"]] = ldh * (crp / 10.0) / plt_ok  # CRP mg/L → mg/dL
    # temperature and fever
    n_temp = stats["n"][:, _TEMP]
    out[:, COLUMN["temperature_max"]] = stats["max"][:, _TEMP]
    out[:, COLUMN["temperature_last"]] = stats["last"][:, _TEMP]
    out[:, COLUMN["temperature_n"]] = n_temp
    out[:, COLUMN["temperature_missing"]] = (n_temp == 0).astype(float)
    hot = (a == _TEMP) & fever_values(v)
    fp, ft = p[hot], t[hot]
    first_fever = np.full(n, np.nan)
    last_fever = np.full(n, np.nan)
    fever_n = np.zeros(n)
    if len(fp):
        change = fp[1:] != fp[:-1]
        first = np.concatenate(([True], change))
        last = np.concatenate((change, [True]))
        first_fever[fp[first]] = ft[first]
        last_fever[fp[last]] = ft[last]
        fever_n = np.bincount(fp, minlength=n).astype(float)[:n]
    with np.errstate(invalid="ignore"):
        recent = (lm - last_fever) <= FEVER_WINDOW_H
    out[:, COLUMN["fever_present"]] = np.where(n_temp > 0, recent.astype(float), np.nan)
    out[:, COLUMN["fever_hours_since_first"]] = lm - first_fever
    out[:, COLUMN["fever_n"]] = fever_n


def _course_features(course: Course, lm: np.ndarray, n: int, out: np.ndarray) -> None:
    current = last_grade(course, n)
    onset = np.full(n, np.nan)
    on = course.grade >= 1
    if on.any():
        codes = course.code[on]
        first = np.r_[True, codes[1:] != codes[:-1]]
        onset[codes[first]] = course.hours[on][first]
    since = lm - onset
    out[:, _COURSE_COLS] = np.column_stack(
        (
            np.where(np.isnan(current), np.nan, current >= 1),  # crs_present (NaN: expired)
            max_grade(course, n),  # crs_max_grade_so_far
            current,  # crs_grade_current
            since,  # crs_hours_since_onset
            current,  # toci_crs_grade
            since,  # toci_hours_since_onset
            lm,  # toci_hours_from_infusion
        )
    )


def _treatment_features(rec: Records, lm: np.ndarray, n: int, out: np.ndarray) -> None:
    """Treatment given up to the landmark (the cut records hold timed events only): tocilizumab
    given and hours since its first dose, corticosteroids and siltuximab/anakinra given for CRS
    or with no recorded indication, and whether IL-6, sIL-6R and CRP were measured after the
    first tocilizumab dose."""
    ee, ep = rec.e_e, rec.e_p
    for_crs = ~np.isin(rec.e_i, _NOT_CRS)
    toci = ee == _TOCI
    first = np.full(n, np.inf)
    np.minimum.at(first, ep[toci], rec.e_t[toci])
    given = np.isfinite(first)
    first[~given] = np.nan

    def any_of(mask: np.ndarray) -> np.ndarray:
        return (np.bincount(ep[mask], minlength=n)[:n] > 0).astype(float)

    cols = [
        given.astype(float),
        lm - first,
        any_of((ee == _STEROID) & for_crs),
        any_of(np.isin(ee, _SECOND) & for_crs),
    ]
    with np.errstate(invalid="ignore"):
        after = rec.m_t > first[rec.m_p]
    for code in _AFFECTED:
        rows = after & (rec.m_a == code)
        cols.append((np.bincount(rec.m_p[rows], minlength=n)[:n] > 0).astype(float))
    out[:, _TREATMENT_COLS] = np.column_stack(cols)


def _steps_of(course: Course, keep: np.ndarray) -> Course:
    """The course steps of the patients where ``keep``, codes renumbered (no summary)."""
    new = np.cumsum(keep) - 1
    sel = keep[course.code]
    empty = np.zeros(0)
    return Course(
        int(keep.sum()),
        new[course.code[sel]],
        course.hours[sel],
        course.grade[sel],
        course.source[keep],
        empty.astype(np.int64),
        empty,
        empty,
    )


def feature_matrix(
    assignment: Assignment,
    patient: np.ndarray,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Every feature (columns :data:`FEATURE_COLUMNS`, float64, NaN = missing) of the patients
    at ``rows`` (default all) at the assignment's landmark.

    Computed from the cohort cut at the landmark (``assignment.records``) and its grade course;
    ``patient`` is :func:`patient_features` of all patients (the same at every landmark).
    """
    rec, course, lm = assignment.records, assignment.grades, assignment.landmark
    if rows is not None and len(rows) != rec.n:
        keep = np.zeros(rec.n, dtype=bool)
        keep[rows] = True
        rec, course, lm = rec.select(keep), _steps_of(course, keep), lm[rows]
        patient = patient[rows]
    n = rec.n
    out = np.empty((n, len(FEATURE_COLUMNS)), order="F")  # columns contiguous, as in a frame
    out[:, :N_PATIENT] = patient
    _measurement_features(rec, lm, n, out)
    _course_features(course, lm, n, out)
    _treatment_features(rec, lm, n, out)
    return out


# --- groups and summary ----------------------------------------------------------------------
def _band(values: np.ndarray, edges: list[float], labels: list[str]) -> np.ndarray:
    """Label of the half-open interval [edges[i], edges[i+1]) holding each value, or "unknown"."""
    idx = np.searchsorted(np.asarray(edges), values, side="right") - 1
    ok = ~np.isnan(values) & (idx >= 0) & (idx < len(labels))
    return np.where(
        ok, np.asarray(labels, dtype=object)[np.clip(idx, 0, len(labels) - 1)], "unknown"
    )


def _groups(patients: pd.DataFrame) -> pd.DataFrame:
    """Subgroup columns for fairness/calibration checks (never features)."""
    age = _band(
        _float(patients["age_years"]), [0, 3, 10, 18, np.inf], ["<3", "3–9", "10–17", "≥18"]
    )
    blasts = _float(patients["marrow_blasts_pct"])
    burden = _band(blasts, [0, 5, HIGH_BURDEN_BLASTS_PCT, np.inf], ["<5%", "5–39%", "≥40%"])
    return pd.DataFrame(
        {
            "center": patients["center"].astype(str).to_numpy(),
            "age_band": age,
            "product": patients["product"].astype("string").fillna("unknown").to_numpy(),
            "marrow_burden": burden,
        }
    ).astype(str)


def _source_counts(course: Course, eligible_codes: np.ndarray) -> dict[str, int]:
    names = np.asarray(SOURCE_NAMES, dtype=object)[course.source[eligible_codes]]
    kinds, counts = np.unique(names.astype(str), return_counts=True)
    return {str(k): int(v) for k, v in zip(kinds, counts, strict=True)}


def _table(
    prepared: Cohort,
    task: Task,
    name: str,
    assignment: Assignment,
    require_label: bool,
) -> FeatureTable:
    names = [s.name for s in catalog_for(task, name)]
    elig = np.flatnonzero(assignment.eligible)
    patients = prepared.patients.iloc[elig]
    # Features of eligible patients only (each patient's row depends only on their own data).
    matrix = feature_matrix(assignment, patient_features(prepared.patients), elig)
    X = pd.DataFrame(matrix[:, _cols(names)], columns=names, copy=False)  # a fresh array
    y_raw = assignment.y[elig]
    y = (
        pd.Series(y_raw.astype(np.int64), name="y")
        if require_label
        else pd.Series(pd.array([pd.NA] * len(elig), dtype="Int64"), name="y")
    )
    ids = pd.Series(patients["patient_id"].astype(str).to_numpy(), name="patient_id")
    reasons = pd.Series(assignment.reason[assignment.reason != ""], dtype=object)
    exclusions = {str(k): int(v) for k, v in reasons.value_counts(sort=False).items()}
    order = {r: i for i, r in enumerate(dict.fromkeys(assignment.reason[assignment.reason != ""]))}
    exclusions = dict(sorted(exclusions.items(), key=lambda kv: (-kv[1], order[kv[0]])))
    frac = X.isna().mean() if len(X) else pd.Series(0.0, index=names)
    missingness = {c: float(frac[c]) for c in names}
    derivation = [
        *assignment.notes,
        "grade course source among eligible patients: "
        + ", ".join(f"{k} {v}" for k, v in _source_counts(assignment.grades, elig).items()),
    ]
    counted = exclusion_summary(assignment)
    summary: dict[str, Any] = {
        "task": task.name,
        "landmark": name,
        "patients": len(prepared.patients),
        "eligible": len(elig),
        "events": int(y.sum()) if require_label else None,
        "exclusions": exclusions,
        **{
            key: counted[key]
            for key in (
                "excluded_at_landmark",
                "excluded_outcome_unknown",
                "positive_clauses",
                "positive_clause_combinations",
            )
        },
        "missingness": missingness,
        "derivation": derivation,
        "parameters": task.card()["parameters"],
        "cohort": {"source": prepared.source, "digest": prepared.digest},
    }
    return FeatureTable(
        task=task.name,
        landmark=name,
        X=X,
        y=y,
        ids=ids,
        groups=_groups(patients),
        summary=summary,
    )


# --- public API ------------------------------------------------------------------------------
def build_features(
    cohort: Cohort,
    task: str | Task,
    landmark: str | float,
    require_label: bool = True,
    *,
    full_course: GradeCourse | Course | None = None,
) -> FeatureTable:
    """The model-ready table of ``task`` at ``landmark`` (``"0h"``…``"72h"``, 48, ``"first_toci"``).

    ``require_label=False`` (serving) applies only eligibility rules that use data up to the
    landmark and returns ``y`` as NA. ``full_course`` reuses the uncut cohort's grade course
    (see :func:`build_landmarks`).
    """
    task = get_task(task)
    name, _ = parse_landmark(task, landmark)
    prepared = prepare(cohort)
    if require_label and full_course is None:
        full_course = course_of(prepared)
    assignment = assign(prepared, task, name, require_label, full_course)
    return _table(prepared, task, name, assignment, require_label)


def build_patient_features(cohort: Cohort, task: str | Task, landmark: str | float) -> FeatureTable:
    """Features for patients at serving time: no label, same code path as training.

    Patients not eligible at the landmark (e.g. already grade ≥3) get no row; the reason is in
    ``summary["exclusions"]``.
    """
    return build_features(cohort, task, landmark, require_label=False)


def build_landmarks(
    cohort: Cohort,
    task: str | Task,
    landmarks: tuple[str | float, ...] | None = None,
    require_label: bool = True,
) -> dict[str, FeatureTable]:
    """Tables of ``task`` at several landmarks (default: all of the task's), sharing preparation."""
    task = get_task(task)
    prepared = prepare(cohort)
    full = course_of(prepared) if require_label else None
    out = {}
    for lm in landmarks if landmarks is not None else task.landmarks:
        table = build_features(prepared, task, lm, require_label, full_course=full)
        out[table.landmark] = table
    return out


# --- exclusion counts for training logs and the model card -----------------------------------
COUNT_KEYS: tuple[str, ...] = (
    "exclusions",
    "excluded_at_landmark",
    "excluded_outcome_unknown",
    "positive_clauses",
    "positive_clause_combinations",
)


def exclusion_counts(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The aggregate counts of one table's summary (no identifiers): eligible, events and
    exclusions by reason — all, at the landmark, outcome unknown — and the positive labels by
    refractory clause. What training logs and the model card shows."""
    return {
        "eligible": summary.get("eligible"),
        "events": summary.get("events"),
        **{k: dict(summary.get(k, {})) for k in COUNT_KEYS},
    }


def exclusion_report(tables: Mapping[str, FeatureTable]) -> dict[str, Any]:
    """:func:`exclusion_counts` of every landmark's table of one task (``{"task", "landmarks":
    {name: counts}}``): the training run logs it as a JSON artifact."""
    task = next((t.task for t in tables.values()), None)
    return {
        "task": task,
        "landmarks": {name: exclusion_counts(t.summary) for name, t in tables.items()},
    }


# --- files and the CLI report ----------------------------------------------------------------
META_KEY = b"crs_risk_feature_table"


def write_table(table: FeatureTable, out: Path) -> Path:
    """Write ids, groups, ``y``, ``X`` to ``.parquet`` (summary in the file metadata) or ``.csv``.

    The output is the user's local file like the cohort itself: the ``patient_id`` column is the
    join key and never a feature.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise CrsRiskError(f"--out {out.name}: the table must be .parquet or .csv")
    frame = pd.concat(
        [table.ids.to_frame(), table.groups, table.y.astype("Int64").to_frame(), table.X], axis=1
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.to_csv(out, index=False, float_format="%.10g")
        return out
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(arrow.schema.metadata or {})
    meta[META_KEY] = json.dumps(
        {"task": table.task, "landmark": table.landmark, "summary": table.summary}
    ).encode()
    pq.write_table(arrow.replace_schema_metadata(meta), out)
    return out


def read_table(path: Path) -> FeatureTable:
    """Read a table written by :func:`write_table` (``.parquet``) back into a FeatureTable."""
    arrow = pq.read_table(path)
    meta = json.loads((arrow.schema.metadata or {})[META_KEY])
    frame = arrow.to_pandas()
    feature_cols = [c for c in frame.columns if c not in ("patient_id", "y", *GROUP_COLUMNS)]
    return FeatureTable(
        task=meta["task"],
        landmark=meta["landmark"],
        X=frame[feature_cols].astype(np.float64),
        y=frame["y"],
        ids=frame["patient_id"].astype(str),
        groups=frame[list(GROUP_COLUMNS)],
        summary=meta["summary"],
    )


@dataclass(frozen=True)
class BuildReport:
    """What ``crs-risk features build`` prints: counts, exclusions, missingness, the file."""

    table: FeatureTable
    out: Path | None

    def render(self) -> str:
        s = self.table.summary
        eligible, events = s["eligible"], s["events"]
        lines = [
            f"features build: task {s['task']} at landmark {s['landmark']} "
            f"(cohort {s['cohort']['source']}, digest {str(s['cohort']['digest'])[:12]})",
            f"patients: {s['patients']}  eligible: {eligible}  events: {events}"
            + (f" ({events / eligible:.1%})" if eligible and events is not None else ""),
            "exclusions by reason:",
        ]
        unknown = s.get("excluded_outcome_unknown", {})
        lines += [
            f"  {n:6d}  {r}" + ("  [outcome unknown]" if r in unknown else "")
            for r, n in s["exclusions"].items()
        ] or ["  none"]
        if s.get("positive_clauses"):
            lines.append("positive labels by clause (a patient can meet several):")
            lines += [f"  {n:6d}  {c}" for c, n in s["positive_clauses"].items()]
        lines.append("derivation:")
        lines += [f"  - {d}" for d in s["derivation"]]
        miss = s["missingness"]
        missing = {k: v for k, v in miss.items() if v > 0}
        lines.append(
            f"missingness per feature ({len(miss) - len(missing)} of {len(miss)} features "
            "complete; the rest below):"
        )
        width = max((len(k) for k in missing), default=0)
        lines += [f"  {k:<{width}}  {v:6.1%}" for k, v in missing.items()]
        if self.out is not None:
            lines.append(
                f"written: {self.out} ({len(self.table.X)} rows × {self.table.X.shape[1]} features)"
            )
        return "\n".join(lines)


def build_to_file(
    directory: Path, task: str = "severe_crs", landmark: str = "48", out: Path | None = None
) -> BuildReport:
    """Load the cohort folder, build one table and write it (nothing written if none eligible)."""
    task_obj = get_task(task)
    parse_landmark(task_obj, landmark)  # fail on a bad option before reading the cohort
    cohort = load_cohort(Path(directory))
    table = build_features(cohort, task_obj, landmark)
    if table.summary["eligible"] == 0:
        reasons = "; ".join(f"{r}: {n}" for r, n in table.summary["exclusions"].items())
        raise CrsRiskError(
            f"no eligible patient for {task_obj.name} at {table.landmark} in cohort "
            f"{cohort.source} ({reasons}); nothing written"
        )
    if out is not None:
        write_table(table, Path(out))
    return BuildReport(table, None if out is None else Path(out))
