"""Entry points: a task applied to a cohort or its records, at one or several landmarks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from features.cohort import Cohort
from features.errors import CrsRiskError
from features.grading import (
    Course,
    GradeCourse,
)
from features.records import Records, prepared
from features.tasks.assignment import Assignment
from features.tasks.definition import Task, get_task, parse_landmark
from features.tasks.queries import per_patient_max
from features.tasks.severe import assign_severe
from features.tasks.toci import assign_toci


def assign(
    cohort: Cohort | Records,
    task: str | Task,
    landmark: str | float,
    require_label: bool = True,
    full_course: GradeCourse | Course | None = None,
) -> Assignment:
    """Landmark, eligibility, exclusion reason and label of every patient for ``task``.

    Eligibility at the landmark is :func:`landmark_rules` on the cohort cut at it, for training
    and serving alike. With ``require_label=True`` (training) the outcome-unknown exclusions and
    the label follow; with ``require_label=False`` (serving) ``y`` is NaN. ``full_course`` lets
    a caller reuse the uncut cohort's grade course across landmarks. ``cohort`` may be the
    cohort's :class:`Records` themselves (what the service validates a request into): the same
    rules on the same arrays, without frames.
    """
    task = get_task(task)
    name, hours = parse_landmark(task, landmark)
    prep: Cohort | None
    rec: Records | None
    if isinstance(cohort, Records):
        prep, rec = None, cohort
    else:
        prep = prepared(cohort)
        rec = prep.records
    assert rec is not None  # prepared() always builds the records
    if task.name == "severe_crs":
        assert hours is not None
        return assign_severe(prep, rec, task, (hours,), require_label, full_course)
    return assign_toci(prep, rec, task, name, require_label, full_course)


def assign_landmarks(
    cohort: Cohort | Records,
    task: str | Task,
    landmarks: Sequence[str | float],
    require_label: bool = False,
) -> Assignment:
    """:func:`assign` at several ``severe_crs`` landmarks in one pass.

    Row ``i * n + p`` is patient ``p`` at the ``i``-th landmark: eligibility, reason, label and
    the cut records are exactly those of ``assign(cohort, task, landmarks[i])`` for that
    patient, computed together (what one patient's trend across landmarks needs: the
    vectorised code runs once instead of once per landmark).
    """
    task = get_task(task)
    if task.name != "severe_crs":
        raise CrsRiskError(f"{task.name} has per-patient landmarks: use assign")
    hours_list: list[float] = []
    for lm in landmarks:
        h = parse_landmark(task, lm)[1]
        assert h is not None  # severe_crs landmarks are hours
        hours_list.append(float(h))
    hours = tuple(hours_list)
    if isinstance(cohort, Records):
        return assign_severe(None, cohort, task, hours, require_label, None)
    prep = prepared(cohort)
    assert prep.records is not None
    return assign_severe(None, prep.records, task, hours, require_label, None)


def data_horizon(records: Records, as_of_hours: float | np.ndarray | None = None) -> np.ndarray:
    """Hours up to which each patient's data reach: ``as_of_hours`` where given (not NaN), else
    the latest timed measurement or event (0 = nothing after infusion)."""
    latest = np.fmax(
        per_patient_max(records.m_p, records.m_t, records.n, 0.0),
        per_patient_max(records.e_p, records.e_t, records.n, 0.0),
    )
    if as_of_hours is None:
        return latest
    given = np.broadcast_to(np.asarray(as_of_hours, dtype=float), (records.n,))
    return np.where(np.isnan(given), latest, given)


def scorable_landmarks(
    records: Records,
    task: str | Task,
    landmarks: Sequence[str | float],
    as_of_hours: float | np.ndarray | None = None,
) -> list[list[str]]:
    """Per patient code, the landmarks of ``landmarks`` the data reach (landmark ≤
    :func:`data_horizon`) at which the patient is eligible (:func:`landmark_rules`), in the
    given order: the service scores at the last one.

    ``severe_crs``: whole-hour landmarks (``"48h"`` …); ``toci_refractory``: ``decision`` /
    ``first_toci``, reached once the patient's decision time or first dose is known.
    """
    task = get_task(task)
    names = [parse_landmark(task, lm)[0] for lm in landmarks]
    horizon = data_horizon(records, as_of_hours)
    n = records.n
    out: list[list[str]] = [[] for _ in range(n)]
    if not names:
        return out
    if task.name == "severe_crs":
        a = assign_landmarks(records, task, names)
        ok = (a.eligible & (a.landmark <= np.tile(horizon, len(names)))).reshape(len(names), n)
        for i, name in enumerate(names):
            for p in np.flatnonzero(ok[i]).tolist():
                out[p].append(name)
        return out
    for name in names:
        a = assign(records, task, name, require_label=False)
        for p in np.flatnonzero(a.eligible & (a.landmark <= horizon)).tolist():
            out[p].append(name)
    return out
