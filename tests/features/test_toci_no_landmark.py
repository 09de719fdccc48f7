"""``assign`` for ``toci_refractory`` when no patient has the landmark (no anti-IL-6 decision,
no timed tocilizumab — the usual single request) skips the landmark rules and the course of
the empty cut: every field of the assignment must equal what the general path gives."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from features.grading import Course, course_of_records, derived_of
from features.records import Records
from features.synth.simulate import simulate
from features.tasks import assign
from features.validation import Outputs, validate_tables

TOCI = "toci_refractory"


@pytest.fixture(scope="module")
def records() -> Records:
    sim = simulate(150, seed=21)
    tables = {"patients": sim.patients, "measurements": sim.measurements, "events": sim.events}
    rec = validate_tables(tables, "sim", outputs=Outputs(records=True)).records
    assert rec is not None
    return rec


def same(a: np.ndarray, b: np.ndarray, what: str) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape, what
    if a.dtype == object:
        assert a.tolist() == b.tolist(), what
    else:
        assert a.tobytes() == b.tobytes(), what  # bit for bit


@pytest.mark.parametrize("require_label", [False, True])
@pytest.mark.parametrize("landmark", ["decision", "first_toci"])
def test_patients_without_the_landmark_are_assigned_as_in_a_mixed_cohort(
    records: Records, landmark: str, require_label: bool
) -> None:
    whole = assign(records, TOCI, landmark, require_label=require_label)  # the general path
    none = np.isnan(whole.landmark)
    assert none.any() and not none.all()
    some = np.flatnonzero(none)
    for keep in (none, np.isin(np.arange(records.n), some[:1]), np.zeros(records.n, dtype=bool)):
        sub = records.select(keep)
        a = assign(sub, TOCI, landmark, require_label=require_label)
        for f in ("landmark", "eligible", "y", "reason", "label_unknown", "clauses"):
            same(getattr(a, f), getattr(whole, f)[keep], f"{landmark} n={sub.n}: {f}")
        assert not a.eligible.any()
        # the cut records and their course: what the general path computes
        at = sub.cut(a.landmark)
        for f in dataclasses.fields(Records):
            if f.name != "n":
                same(getattr(a.records, f.name), getattr(at, f.name), f"records {f.name}")
        assert a.records.n == sub.n
        course = course_of_records(at, derived_of(sub).cut(a.landmark))
        for f in dataclasses.fields(Course):
            if f.name != "n":
                same(getattr(a.grades, f.name), getattr(course, f.name), f"course {f.name}")
        assert a.grades.n == course.n == sub.n
        assert a.course.steps.empty  # the frame view works on it


def test_the_shared_uncut_course_is_the_course_derived_from_the_records(records: Records) -> None:
    """``serving.scoring`` computes the uncut course once with the shared derived grades and
    hands it to the reached check, which computed it from the records themselves before."""
    shared = course_of_records(records, derived_of(records))
    fresh = course_of_records(records)
    assert shared.n == fresh.n == records.n
    for f in dataclasses.fields(Course):
        if f.name != "n":
            same(getattr(shared, f.name), getattr(fresh, f.name), f.name)
