"""ASTCT 2019 grading: the guideline's boundary cases and the causal grade course."""

from __future__ import annotations

import numpy as np
import pytest

from features.grading import (
    astct_grade,
    derive_grades,
    grade_course,
    hypotension_grade,
    hypoxia_grade,
    is_fever,
)
from features.vocabulary import OxygenDevice as O
from features.vocabulary import to_canonical
from tests.features.feature_cohorts import events_frame, measurements_frame


def test_fever_boundary_is_38_0():
    assert is_fever([38.0, 37.9, 38.05, np.nan]).tolist() == [True, False, True, False]
    # 100.4 °F is 38.0 °C; floating-point conversion must not push it below the threshold
    assert is_fever([to_canonical("temperature", 100.4, "°F")]).tolist() == [True]
    assert is_fever([to_canonical("temperature", 100.2, "°F")]).tolist() == [False]


@pytest.mark.parametrize(
    ("device", "flow", "grade"),
    [
        (O.ROOM_AIR, np.nan, 0),
        (O.NASAL_CANNULA, 6.0, 2),  # exactly 6 L/min is low-flow
        (O.NASAL_CANNULA, 6.1, 3),  # above 6 L/min counts as high-flow
        (O.NASAL_CANNULA, np.nan, 2),
        (O.BLOW_BY, np.nan, 2),
        (O.HIGH_FLOW_NASAL_CANNULA, 30.0, 3),
        (O.FACEMASK, 10.0, 3),
        (O.NONINVASIVE_POSITIVE_PRESSURE, np.nan, 4),
        (O.MECHANICAL_VENTILATION, np.nan, 4),
        (np.nan, 2.0, 2),
        (np.nan, 8.0, 3),
        (np.nan, np.nan, 0),
    ],
)
def test_hypoxia_column(device, flow, grade):
    assert hypoxia_grade([device], [flow]).tolist() == [grade]


@pytest.mark.parametrize(
    ("hypotension", "vasopressors", "grade"),
    [
        (0, 0, 0),
        (1, 0, 2),  # hypotension not requiring vasopressors
        (1, 1, 3),  # one vasopressor (vasopressin not counted)
        (1, 2, 4),  # multiple vasopressors
        (np.nan, 1, 3),  # a running vasopressor implies hypotension
        (np.nan, np.nan, 0),
    ],
)
def test_hypotension_column(hypotension, vasopressors, grade):
    assert hypotension_grade([hypotension], [vasopressors]).tolist() == [grade]


def test_grade_is_worse_of_hypotension_and_hypoxia_and_needs_fever():
    temp = np.array([38.5, 38.5, 38.5, 38.5, 37.0, 37.0, 37.0, 38.0])
    hypo = np.array([0, 1, 1, 1, 1, 1, 0, np.nan])
    vaso = np.array([0, 0, 1, 2, 1, 1, 0, np.nan])
    dev = np.array(
        [O.ROOM_AIR, O.NASAL_CANNULA, O.NASAL_CANNULA, O.FACEMASK, O.FACEMASK] * 1
        + [
            O.NONINVASIVE_POSITIVE_PRESSURE,
            O.ROOM_AIR,
            np.nan,
        ]
    )
    flow = np.array([0, 4, 7, 10, 10, 0, 0, np.nan])
    exempt = np.array([0, 0, 0, 0, 0, 1, 1, 0])
    got = astct_grade(temp, hypo, vaso, dev, flow, exempt)
    # fever only → 1; NC 4 L + hypotension → 2; NC 7 L or 1 pressor → 3; 2 pressors → 4;
    # no fever, not exempt → 0; after tocilizumab/steroids fever not required → CPAP 4;
    # exempt but no support → 0; fever alone → 1
    assert got.tolist() == [1, 2, 3, 4, 0, 4, 0, 1]


def test_scalar_and_partial_inputs():
    assert astct_grade(39.0).tolist() == [1]
    assert astct_grade([39.0, 37.0], vasopressors=[2, 2]).tolist() == [4, 0]


def test_derived_grades_are_causal_with_fever_window_and_support_expiry():
    m = measurements_frame(
        [
            ("p", 10, "temperature", 38.4),
            ("p", 20, "vasopressors", 1),  # fever 10 h earlier is within 24 h → grade 3
            ("p", 40, "vasopressors", 1),  # last fever 30 h earlier, no drug → 0
            ("p", 50, "temperature", 38.9),  # vasopressor row from 40 h still holds → 3
            ("p", 80, "temperature", 38.2),  # vasopressor row expired (40 h old) → fever only 1
            ("q", 5, "oxygen_device", float(O.NASAL_CANNULA)),
            ("q", 5, "oxygen_flow", 6.0),
            ("q", 6, "temperature", 37.0),
            ("q", 30, "oxygen_flow", 6.1),  # nasal cannula code from 5 h has expired by now
        ]
    )
    e = events_frame([("q", 4, "tocilizumab")])
    d = derive_grades(m, e)
    got = {(r.patient_id, r.hours_from_infusion): r.grade for r in d.itertuples()}
    assert got == {
        ("p", 10.0): 1,
        ("p", 20.0): 3,
        ("p", 40.0): 0,
        ("p", 50.0): 3,
        ("p", 80.0): 1,
        ("q", 5.0): 2,  # after tocilizumab: low-flow O2 without fever is grade 2
        ("q", 6.0): 2,
        ("q", 30.0): 3,  # flow alone > 6 L/min
    }


def test_derivation_ignores_the_future():
    rows = [("p", 10, "temperature", 38.4), ("p", 20, "vasopressors", 1)]
    before = derive_grades(measurements_frame(rows), events_frame([]))
    later = [*rows, ("p", 25, "vasopressors", 2), ("p", 21, "temperature", 36.0)]
    after = derive_grades(measurements_frame(later), events_frame([("p", 22, "tocilizumab")]))
    early = after[after["hours_from_infusion"] <= 20].reset_index(drop=True)
    assert early.equals(before)


def test_grade_course_sources_and_summary():
    m = measurements_frame(
        [
            ("rec", 5, "temperature", 39.0),  # ignored: recorded events win
            ("der", 5, "temperature", 39.0),
            ("der", 6, "hypotension", 1),
        ]
    )
    e = events_frame(
        [
            ("rec", 30, "crs_onset", 1),
            ("rec", 40, "crs_grade", 3),
            ("rec", 40, "crs_grade", 2),  # same time: the higher grade holds
            ("rec", 90, "crs_resolved"),
            ("sum", 30, "crs_max_grade", 4),
            ("sum", None, "crs_grade", 3),
        ]
    )
    c = grade_course(m, e)
    steps = {
        (r.patient_id, r.hours_from_infusion): None if np.isnan(r.grade) else r.grade
        for r in c.steps.itertuples(index=False)
    }
    assert steps == {
        ("der", 5.0): 1,
        ("der", 6.0): 2,
        ("der", 30.0): None,  # derived grade expired: no support row for 24 h
        ("rec", 30.0): 1,
        ("rec", 40.0): 3,
        ("rec", 90.0): 0,
        ("sum", 30.0): 1,  # a timed maximum marks onset: grade ≥1 known, not the maximum
    }
    assert c.source.to_dict() == {"rec": "recorded", "der": "derived", "sum": "max_grade_onset"}
    assert sorted(c.summary["grade"].tolist()) == [3.0, 4.0]
    assert c.summary["hours_from_infusion"].isna().sum() == 1


def test_derived_grades_expire_after_24_h_without_a_supporting_row():
    """A derived grade is in force 24 h after its last support row, then unknown (NaN) — not
    in force forever — while the highest grade reached is kept."""
    m = measurements_frame(
        [
            ("p", 10, "temperature", 39.0),
            ("p", 12, "vasopressors", 1),  # grade 3 at 12 h
            ("p", 30, "temperature", 38.5),  # vasopressor row still holds → 3 at 30 h
            ("p", 80, "temperature", 37.0),  # 50 h later: expired at 54 h, then grade 0
        ]
    )
    c = grade_course(m, events_frame([]))
    steps = [
        (r.hours_from_infusion, None if np.isnan(r.grade) else r.grade)
        for r in c.steps.itertuples(index=False)
    ]
    assert steps == [(10.0, 1), (12.0, 3), (30.0, 3), (54.0, None), (80.0, 0), (104.0, None)]
    # the expiry is not an evaluation: derive_grades lists the support-row times only
    assert derive_grades(m, events_frame([]))["hours_from_infusion"].tolist() == [10, 12, 30, 80]


def test_vasopressin_alone_is_grade_3_and_never_makes_multiple_vasopressors():
    assert hypotension_grade(0, 0, vasopressin=1).tolist() == [3]
    assert hypotension_grade(1, 1, vasopressin=1).tolist() == [3]  # one vasopressor + vasopressin
    assert hypotension_grade(1, 2, vasopressin=1).tolist() == [4]
    assert astct_grade(39.0, vasopressin=1).tolist() == [3]
    m = measurements_frame(
        [
            ("a", 10, "temperature", 39.0),
            ("a", 11, "vasopressin", 1),  # vasopressin alone → 3 (was 2 with hypotension only)
            ("b", 10, "temperature", 39.0),
            ("b", 11, "vasopressors", 1),
            ("b", 11, "vasopressin", 1),  # one vasopressor with vasopressin → 3, not 4
        ]
    )
    d = derive_grades(m, events_frame([]))
    assert d.groupby("patient_id")["grade"].max().to_dict() == {"a": 3.0, "b": 3.0}
