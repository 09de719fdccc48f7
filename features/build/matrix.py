"""The feature matrix at a landmark: measurement, temperature, CRS course and treatment."""

from __future__ import annotations

import numpy as np

from features.build.layout import (
    AFFECTED,
    COLUMN,
    COURSE_COLS,
    DYN,
    FEATURE_COLUMNS,
    IS_NOT_CRS,
    IS_SECOND,
    LOG,
    N_PATIENT,
    PRE_LD,
    PRE_LD_J,
    STAT_COLS,
    STEROID,
    TEMP,
    TOCI,
    TRACKED,
    TRACKED_OF,
    TREATMENT_COLS,
)
from features.catalog import (
    BASELINE_LABS,
)
from features.grading import FEVER_WINDOW_H, Course, fever_values
from features.records import (
    Records,
)
from features.tasks import (
    Assignment,
    last_grade,
    max_grade,
)


def _measurement_features(rec: Records, lm: np.ndarray, n: int, out: np.ndarray) -> None:
    """Per (patient, tracked analyte) statistics of the cut records, into columns of ``out``."""
    a_all = TRACKED_OF[rec.m_a]
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
        y = np.where(LOG[a], np.log10(1.0 + np.clip(v, 0.0, None)), v)
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
    count = stats["n"][:, DYN]
    out[:, STAT_COLS["last"]] = stats["last"][:, DYN]
    out[:, STAT_COLS["max"]] = stats["max"][:, DYN]
    out[:, STAT_COLS["fold_change"]] = stats["fold_change"][:, DYN]
    out[:, STAT_COLS["slope_24h"]] = stats["slope"][:, DYN]
    out[:, STAT_COLS["hours_since_first"]] = lm[:, None] - stats["first_t"][:, DYN]
    out[:, STAT_COLS["n"]] = count
    out[:, STAT_COLS["missing"]] = (count == 0).astype(float)
    pre = stats["base"][:, PRE_LD_J]
    out[:, PRE_LD] = pre
    ldh, crp, plt, cre = (
        pre[:, BASELINE_LABS.index(x)] for x in ("ldh", "crp", "platelets", "creatinine")
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        plt_ok = np.where(plt > 0, plt, np.nan)
        out[:, COLUMN["easix_pre_ld"]] = ldh * cre / plt_ok
        out[:, COLUMN["m_easix_pre_ld"]] = ldh * (crp / 10.0) / plt_ok  # CRP mg/L → mg/dL
    # temperature and fever
    n_temp = stats["n"][:, TEMP]
    out[:, COLUMN["temperature_max"]] = stats["max"][:, TEMP]
    out[:, COLUMN["temperature_last"]] = stats["last"][:, TEMP]
    out[:, COLUMN["temperature_n"]] = n_temp
    out[:, COLUMN["temperature_missing"]] = (n_temp == 0).astype(float)
    hot = (a == TEMP) & fever_values(v)
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
    out[:, COURSE_COLS] = np.column_stack(
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
    for_crs = ~IS_NOT_CRS[rec.e_i]
    toci = ee == TOCI
    first = np.full(n, np.inf)
    np.minimum.at(first, ep[toci], rec.e_t[toci])
    given = np.isfinite(first)
    first[~given] = np.nan

    def any_of(mask: np.ndarray) -> np.ndarray:
        return (np.bincount(ep[mask], minlength=n)[:n] > 0).astype(float)

    cols = [
        given.astype(float),
        lm - first,
        any_of((ee == STEROID) & for_crs),
        any_of(IS_SECOND[ee] & for_crs),
    ]
    with np.errstate(invalid="ignore"):
        after = rec.m_t > first[rec.m_p]
    for code in AFFECTED:
        rows = after & (rec.m_a == code)
        cols.append((np.bincount(rec.m_p[rows], minlength=n)[:n] > 0).astype(float))
    out[:, TREATMENT_COLS] = np.column_stack(cols)


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
