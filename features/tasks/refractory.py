"""The tocilizumab-refractory label: which clause made a patient refractory, or why unknown.

Definition (issue 11 §4; Jain T, Smith M, Shah NN, Blood 2023;141:2430 call refractory CRS
disease that persists or progresses beyond initial tocilizumab; the cut-offs are declared task
parameters of ``features.tasks.Task``). With ``t0`` the first timed tocilizumab dose and ``W``
the task's ``window_hours`` (default 72 h), a patient is refractory when any enabled clause holds:

- ``second_line``: a second-line agent (siltuximab, anakinra, corticosteroids by default) timed
  in ``(t0, t0 + W]`` and given for CRS. Indication ``icans`` or ``other`` never counts;
  indication ``crs`` counts. With no recorded indication, siltuximab and anakinra count; a
  corticosteroid counts per ``steroids_without_indication``: ``crs_in_force`` (default) — only
  while CRS grade ≥1 is in force at the dose (grade course of the whole record; an expired
  derived grade is not "in force") and no ICANS is recorded at or before it (the contract has no
  ICANS resolution event, so a recorded ICANS stays in force); ``never``; ``always``. Agents given
  at ``t0`` together with the first dose are not an escalation.
- ``worsening``: a timed grade ≥3 in ``(t0, t0 + W]`` above the grade in force at ``t0``.
- ``no_improvement``: an *observed* grade ``no_improvement_hours`` (24 h) after the last of the
  first ``no_improvement_doses`` (2) tocilizumab doses given in ``[t0, t0 + W]`` that is ≥
  max(grade at ``t0``, 1). Observed means: a derived grade in force then (not expired), or a
  recorded course that is resolved by then (grade 0) or has a recorded step at or after then
  (the record goes on). Otherwise the clause is *unknown*, never positive.

The label is 1 when any clause holds (the clauses are kept: ``clauses``), 0 when every enabled
clause is decided negative, and unknown otherwise — then the patient is excluded with the
reason of the first undecided clause. Lost to follow-up within the window (before a positive
clause) and lost with no time (no CRS information) make the outcome unknown as well.
Summary-only courses (``crs_max_grade`` only): the worsening clause is decided negative when the
maximum is < 3 and unknown otherwise; no improvement is unknown (no grade is observed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.grading import (
    DERIVED,
    MAX_GRADE_ONSET,
    RECORDED,
    Course,
    course_of_records,
    derived_of,
)
from features.records import INDICATION_CODE, Records
from features.tasks.definition import Task
from features.tasks.queries import (
    count_per_patient,
    grade_in_force,
    is_event,
    last_grade,
    per_patient_max,
    per_patient_min,
)

_CRS, _ICANS, _OTHER = (INDICATION_CODE[x] for x in ("crs", "icans", "other"))


@dataclass(frozen=True)
class RefractoryLabel:
    """Per patient: ``y`` (1/0, NaN = undecided), the positive ``clauses`` ("a+b"), the
    outcome-unknown exclusion rules in order (only for patients not positive) and notes."""

    y: np.ndarray
    clauses: np.ndarray
    exclusions: list[tuple[np.ndarray, str]]
    notes: list[str]


def _steroid_counts(rec: Records, rows: np.ndarray, task: Task, full: Course) -> np.ndarray:
    """Whether each corticosteroid row (indices ``rows``) without an indication counts."""
    rule = task.steroids_without_indication
    if rule != "crs_in_force":
        return np.full(len(rows), rule == "always", dtype=bool)
    code, t = rec.e_p[rows], rec.e_t[rows]
    grade, _ = grade_in_force(full, code, t)
    icans = is_event(rec, "icans")
    first_icans = per_patient_min(rec.e_p[icans], rec.e_t[icans], rec.n)
    with np.errstate(invalid="ignore"):
        return (grade >= 1) & ~(first_icans[code] <= t)


def _second_line(
    rec: Records, task: Task, full: Course, t0: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(positive, unknown) per patient for the second-line clause."""
    n = rec.n
    rows = np.flatnonzero(is_event(rec, task.second_line_agents))
    ind = rec.e_i[rows]
    not_for_crs = (ind == _ICANS) | (ind == _OTHER)
    rows = rows[~not_for_crs]
    ind = rec.e_i[rows]
    t, code = rec.e_t[rows], rec.e_p[rows]
    steroid = is_event(rec, "corticosteroids")[rows]
    counts = np.ones(len(rows), dtype=bool)
    unrecorded_steroid = steroid & (ind != _CRS)
    timed = ~np.isnan(t)
    sel = unrecorded_steroid & timed
    counts[sel] = _steroid_counts(rec, rows[sel], task, full)
    start = t0[code]
    with np.errstate(invalid="ignore"):
        in_window = timed & (t > start) & (t <= start + task.window_hours)
    positive = count_per_patient(code, n, in_window & counts) > 0
    # an untimed agent that would count (or might: a steroid whose context cannot be read)
    might = ~unrecorded_steroid | (task.steroids_without_indication != "never")
    unknown = count_per_patient(code, n, ~timed & might) > 0
    return positive, unknown


def _worsening(
    task: Task, full: Course, t0: np.ndarray, g0: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(positive, unknown) per patient for the worsening clause."""
    n = full.n
    start = t0[full.code]
    with np.errstate(invalid="ignore"):
        hit = (
            (full.hours > start)
            & (full.hours <= start + task.window_hours)
            & (full.grade >= 3)
            & (full.grade > g0[full.code])
        )
    positive = count_per_patient(full.code, n, hit) > 0
    summary_max = per_patient_max(full.s_code, full.s_grade, n, 0.0)
    timed = (full.source == RECORDED) | (full.source == DERIVED)
    unknown = ~timed & (summary_max >= 3)
    return positive, unknown


def _eval_time(rec: Records, task: Task, t0: np.ndarray) -> np.ndarray:
    """``no_improvement_hours`` after the last of the first doses given in ``[t0, t0 + W]``."""
    toci = np.flatnonzero(is_event(rec, "tocilizumab") & ~np.isnan(rec.e_t))
    code, hours = rec.e_p[toci], rec.e_t[toci]
    with np.errstate(invalid="ignore"):
        keep = hours <= t0[code] + task.window_hours
    code, hours = code[keep], hours[keep]
    order = np.lexsort((hours, code))
    code, hours = code[order], hours[order]
    t_eval = np.full(rec.n, np.nan)
    if len(code):
        starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
        n_doses = np.diff(np.r_[starts, len(code)])
        ref = starts + np.minimum(n_doses, task.no_improvement_doses) - 1
        t_eval[code[ref]] = hours[ref] + task.no_improvement_hours
    return t_eval


def _no_improvement(
    rec: Records, task: Task, full: Course, t0: np.ndarray, g0: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(positive, unknown) per patient: the grade observed at the evaluation time."""
    n = rec.n
    t_eval = _eval_time(rec, task, t0)
    at = course_of_records(rec.cut(t_eval), derived_of(rec).cut(t_eval))
    g = last_grade(at, n)
    rec_step = (full.source[full.code] == RECORDED) & (full.hours >= t_eval[full.code])
    later = count_per_patient(full.code, n, rec_step) > 0
    observed = np.where(
        at.source == DERIVED,
        ~np.isnan(g),
        (at.source == RECORDED) & (later | (g == 0)),
    )
    lost = is_event(rec, "lost_to_follow_up")
    first_lost = per_patient_min(rec.e_p[lost], rec.e_t[lost], n)
    with np.errstate(invalid="ignore"):
        observed &= ~(first_lost <= t_eval) & ~np.isnan(t_eval)
        positive = observed & (g >= np.fmax(g0, 1.0))
    return positive, ~observed


def refractory_label(rec: Records, task: Task, full: Course, t0: np.ndarray) -> RefractoryLabel:
    """The refractory label of every patient with a first tocilizumab dose at ``t0`` (NaN =
    none: those patients are excluded before the label is read). ``full``: the grade course of
    the uncut records."""
    n = rec.n
    at0 = course_of_records(rec.cut(t0), derived_of(rec).cut(t0))
    g0 = last_grade(at0, n)
    clauses = {
        "second_line": lambda: _second_line(rec, task, full, t0),
        "worsening": lambda: _worsening(task, full, t0, g0),
        "no_improvement": lambda: _no_improvement(rec, task, full, t0, g0),
    }
    results = {name: clauses[name]() for name in clauses if name in task.refractory_criteria}
    positive = np.zeros(n, dtype=bool)
    combo = np.full(n, "", dtype=object)
    for name, (pos, _) in results.items():
        positive |= pos
        combo[pos] = np.where(combo[pos] == "", name, combo[pos] + "+" + name)
    unknown = {name: unk & ~positive for name, (_, unk) in results.items()}
    lost = is_event(rec, "lost_to_follow_up")
    lost_untimed = count_per_patient(rec.e_p, n, lost & np.isnan(rec.e_t)) > 0
    first_lost = per_patient_min(rec.e_p[lost], rec.e_t[lost], n)
    silt = is_event(rec, "siltuximab")
    silt_untimed = count_per_patient(rec.e_p, n, silt & np.isnan(rec.e_t)) > 0
    with np.errstate(invalid="ignore"):
        lost_window = first_lost <= t0 + task.window_hours
    h = f"{task.no_improvement_hours:g} h"
    exclusions = [
        (silt_untimed, "siltuximab time unknown (line of therapy unknown)"),
        (g0 == 0, "CRS grade 0 at the first tocilizumab dose after the decision (pre-emptive)"),
        (np.isnan(g0), "CRS grade at the first tocilizumab dose unknown"),
        (lost_untimed & ~positive, "no CRS information (lost to follow-up, time unknown)"),
        (
            lost_window & ~positive,
            "lost to follow-up within the window after the first dose (outcome unknown)",
        ),
    ]
    texts = {
        "second_line": "second-line agent at unknown time (cannot place it in the window)",
        "worsening": "worsening undecidable: only a whole-course maximum grade ≥3 is recorded",
        "no_improvement": f"no observed CRS grade {h} after the dose(s) (no improvement "
        "undecidable)",
    }
    exclusions += [(unknown[name], texts[name]) for name in results]
    y = positive.astype(float)
    any_unknown = np.zeros(n, dtype=bool)
    for mask, _ in exclusions:
        any_unknown |= mask
    y[any_unknown & ~positive] = np.nan
    summary_only = full.source == MAX_GRADE_ONSET
    notes = [
        f"refractory within {task.window_hours:g} h of the first tocilizumab dose; clauses: "
        + ", ".join(results)
        + "; corticosteroids without a recorded indication count "
        + {
            "crs_in_force": "only while CRS grade ≥1 is in force and no ICANS is recorded",
            "never": "never",
            "always": "always",
        }[task.steroids_without_indication],
    ]
    if summary_only.any():
        notes.append(
            f"{int(summary_only.sum())} patient(s) with only a max-grade summary: worsening "
            "decided only when the maximum is < 3, no improvement undecidable"
        )
    return RefractoryLabel(y, combo, exclusions, notes)
