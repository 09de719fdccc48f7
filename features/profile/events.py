"""Per event: ASTCT CRS grade by day after infusion, the grade in force when each treatment was
given, and ICANS — read from the same grade course the tasks use (``features.tasks.course_of``:
recorded course, else derived from support rows by ASTCT 2019 (Lee DW et al. 2019), else onset
of a per-patient maximum)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.cohort import Cohort
from features.grading import MAX_GRADE_ONSET, NO_COURSE
from features.profile.rows import patient_codes
from features.schema import DRUG_EVENTS
from features.tasks import course_of

GRADES = 6  # ASTCT 0 … 5
MAX_DAYS = 28


@dataclass(frozen=True)
class EventStats:
    days: int  # days 0 … days-1 (day 0 = ≤ 24 h, day d = (24d, 24(d+1)] h)
    grade_by_day: np.ndarray  # (days, GRADES): patients by highest grade in force that day
    with_course: int  # patients with a timed course (recorded or derived)
    onset_only: int  # patients whose course is only the onset of a per-patient maximum
    no_course: int
    max_grade: np.ndarray  # (GRADES,) patients by maximum grade (course or summary)
    onset_by_max_grade: np.ndarray  # (days, GRADES): patients by CRS onset day × maximum grade
    treatment_grade: dict[str, np.ndarray]  # drug → (GRADES + 1,) doses by grade then (last=none)
    treatment_untimed: dict[str, int]
    first_dose_day: dict[str, np.ndarray]  # drug → (days,) patients by day of the first dose
    icans_grade: np.ndarray  # (GRADES,) patients by maximum ICANS grade
    icans_day: np.ndarray  # (days,) patients by day of first timed ICANS
    icans_untimed: int


def _day(hours: np.ndarray, days: int) -> np.ndarray:
    return np.clip(np.ceil(np.maximum(hours, 0.0) / 24.0).astype(np.int64) - 1, 0, days - 1)


def _grade_at(
    code: np.ndarray, hours: np.ndarray, grade: np.ndarray, qc: np.ndarray, qh: np.ndarray
) -> np.ndarray:
    """Grade in force at (``qc``, ``qh``) from steps sorted by (code, hours); -1 = none yet."""
    span = 1e5
    key = code * span + (hours + 1e4)
    qkey = qc * span + (qh + 1e4)
    i = np.searchsorted(key, qkey, side="right") - 1
    ok = (i >= 0) & (code[np.maximum(i, 0)] == qc)
    return np.where(ok, grade[np.maximum(i, 0)], -1.0)


def event_stats(cohort: Cohort) -> EventStats:
    """CRS by day, treatment timing against the grade, ICANS (see the module docstring)."""
    course = course_of(cohort)
    n = course.n
    ev = cohort.events
    t_ev = ev["hours_from_infusion"].to_numpy(dtype=float)
    last = np.nanmax(np.r_[course.hours, t_ev, 24.0 * 14]) if len(ev) else 24.0 * 14
    days = int(min(MAX_DAYS, max(1, np.ceil(last / 24.0))))
    code, hours, grade = course.code, course.hours, course.grade.astype(float)
    # highest grade in force during each day: grade at the day's start, or any step in it
    grid = np.full((n, days), -1.0)
    for d in range(days):
        grid[:, d] = _grade_at(code, hours, grade, np.arange(n), np.full(n, 24.0 * d))
    # an expired derived grade is a NaN step (grade unknown until the next support row, see
    # features.grading): it counts as "no grade known", never as a grade
    finite = ~np.isnan(grade)
    grid[np.isnan(grid)] = -1.0
    step_day = _day(hours, days)
    np.maximum.at(grid, (code[finite], step_day[finite]), grade[finite])
    timed = (course.source != NO_COURSE) & (course.source != MAX_GRADE_ONSET)
    g = grid[timed].astype(np.int64)
    by_day = np.zeros((days, GRADES), dtype=np.int64)
    for d in range(days):
        col = g[:, d]
        by_day[d] = np.bincount(np.maximum(col, 0), minlength=GRADES)[:GRADES]
    best = np.full(n, -1.0)
    if finite.any():
        np.maximum.at(best, code[finite], grade[finite])
    ok = ~np.isnan(course.s_grade)
    np.maximum.at(best, course.s_code[ok], course.s_grade[ok])
    max_grade = np.bincount(np.maximum(best, 0).astype(np.int64), minlength=GRADES)[:GRADES]
    onset = np.full(n, np.inf)
    up = grade >= 1
    np.minimum.at(onset, code[up], hours[up])
    has = np.isfinite(onset) & (best >= 1)
    onset_by = np.zeros((days, GRADES), dtype=np.int64)
    np.add.at(onset_by, (_day(onset[has], days), best[has].astype(np.int64)), 1)

    names = ev["event"].astype(str).to_numpy()
    codes = patient_codes(cohort, ev["patient_id"])
    treatment_grade, untimed, first_day = {}, {}, {}
    for drug in DRUG_EVENTS:
        sel = (names == drug) & (codes >= 0)
        t = t_ev[sel]
        c = codes[sel]
        has_t = ~np.isnan(t)
        untimed[drug] = int((~has_t).sum())
        at = np.nan_to_num(_grade_at(code, hours, grade, c[has_t], t[has_t]), nan=-1.0)
        at = at.astype(np.int64)
        counts = np.bincount(np.where(at < 0, GRADES, at), minlength=GRADES + 1)
        treatment_grade[drug] = counts[: GRADES + 1]
        first = np.full(n, np.inf)
        np.minimum.at(first, c[has_t], t[has_t])
        f = first[np.isfinite(first)]
        first_day[drug] = np.bincount(_day(f, days), minlength=days)[:days]
    icans = (names == "icans") & (codes >= 0)
    ig = ev.loc[icans, "grade"].to_numpy(dtype=float, na_value=np.nan)
    ic, it = codes[icans], t_ev[icans]
    worst = np.full(n, -1.0)
    np.maximum.at(worst, ic, np.nan_to_num(ig, nan=0.0))
    icans_grade = np.bincount(worst[worst >= 0].astype(np.int64), minlength=GRADES)[:GRADES]
    first = np.full(n, np.inf)
    np.minimum.at(first, ic[~np.isnan(it)], it[~np.isnan(it)])
    f = first[np.isfinite(first)]
    return EventStats(
        days=days,
        grade_by_day=by_day,
        with_course=int(timed.sum()),
        onset_only=int((course.source == MAX_GRADE_ONSET).sum()),
        no_course=int((course.source == NO_COURSE).sum()),
        max_grade=max_grade,
        onset_by_max_grade=onset_by,
        treatment_grade=treatment_grade,
        treatment_untimed=untimed,
        first_dose_day=first_day,
        icans_grade=icans_grade,
        icans_day=np.bincount(_day(f, days), minlength=days)[:days],
        icans_untimed=len(np.unique(ic[np.isnan(it)])),
    )
