"""Task declarations, landmarks, eligibility and labels of both tasks."""

from __future__ import annotations

import numpy as np
import pytest

from features.errors import CrsRiskError
from features.tasks import (
    SEVERE_CRS,
    TOCI_REFRACTORY,
    assign,
    get_task,
    parse_landmark,
)
from features.vocabulary import OxygenDevice
from tests.features.feature_cohorts import make_cohort, patient


def _by_id(cohort, a):
    ids = cohort.patients["patient_id"].tolist()
    return {
        pid: (bool(e), None if np.isnan(y) else int(y), r)
        for pid, e, y, r in zip(ids, a.eligible, a.y, a.reason, strict=True)
    }


# --- declarations ----------------------------------------------------------------------------
def test_tasks_declare_what_a_model_card_states():
    for task in (SEVERE_CRS, TOCI_REFRACTORY):
        card = task.card()
        for key in (
            "description",
            "outcome",
            "eligibility",
            "prediction_time",
            "observation_window",
            "required_inputs",
            "landmarks",
            "parameters",
        ):
            assert card[key], (task.name, key)
    assert SEVERE_CRS.landmarks == ("0h", "24h", "48h", "72h")
    assert TOCI_REFRACTORY.landmarks == ("first_toci",)
    assert "≥3" in SEVERE_CRS.outcome
    assert "siltuximab" in TOCI_REFRACTORY.outcome and "24 h" in TOCI_REFRACTORY.outcome


def test_parameters_are_configurable_and_validated():
    t = get_task("severe_crs", severity_threshold=2, landmark_hours=(0.0, 12.0))
    assert t.landmarks == ("0h", "12h") and "≥2" in t.outcome
    assert get_task(t) is t
    r = get_task("toci_refractory", refractory_criteria=("second_line",))
    assert "no improvement" not in r.outcome
    with pytest.raises(CrsRiskError, match="unknown task"):
        get_task("sepsis")
    with pytest.raises(CrsRiskError, match="unknown task parameter"):
        get_task("severe_crs", thresold=3)
    with pytest.raises(CrsRiskError, match="severity_threshold"):
        get_task("severe_crs", severity_threshold=7)
    with pytest.raises(CrsRiskError, match="second_line_agents"):
        get_task("toci_refractory", second_line_agents=("tocilizumab",))
    with pytest.raises(CrsRiskError, match="refractory_criteria"):
        get_task("toci_refractory", refractory_criteria=("vibes",))


@pytest.mark.parametrize("given", [48, 48.0, "48", "48h", " 48H "])
def test_landmark_spellings(given):
    assert parse_landmark(SEVERE_CRS, given) == ("48h", 48.0)


@pytest.mark.parametrize(
    ("task", "given"), [(SEVERE_CRS, 36), (SEVERE_CRS, "first_toci"), (TOCI_REFRACTORY, 48)]
)
def test_bad_landmarks_are_user_errors(task, given):
    with pytest.raises(CrsRiskError, match="landmark"):
        parse_landmark(task, given)


# --- severe_crs ------------------------------------------------------------------------------
def test_severe_crs_eligibility_and_labels_at_48h():
    c = make_cohort(
        [patient(p) for p in ("none", "late", "early", "at", "mild", "dead", "dies_later")],
        [],
        [
            ("late", 20, "crs_onset", 1),
            ("late", 60, "crs_grade", 3),  # severe after the landmark → label 1
            ("early", 20, "crs_onset", 2),
            ("early", 30, "crs_grade", 3),  # severe before → not scored
            ("early", 40, "crs_grade", 1),  # even if it improved since
            ("at", 48, "crs_grade", 3),  # exactly at the landmark counts as reached
            ("mild", 10, "crs_onset", 1),
            ("mild", 50, "crs_grade", 2),
            ("dead", 47, "death"),
            ("dies_later", 90, "death"),  # death without CRS grade 5 is not the outcome
        ],
    )
    got = _by_id(c, assign(c, "severe_crs", 48))
    assert got == {
        "none": (True, 0, ""),
        "late": (True, 1, ""),
        "early": (False, None, "grade ≥3 at or before the landmark (outcome already reached)"),
        "at": (False, None, "grade ≥3 at or before the landmark (outcome already reached)"),
        "mild": (True, 0, ""),
        "dead": (False, None, "died at or before the landmark"),
        "dies_later": (True, 0, ""),
    }
    # at 0 h everybody is scored and the labels are the whole-course maxima
    at0 = _by_id(c, assign(c, "severe_crs", "0h"))
    assert {p: v[1] for p, v in at0.items()} == {
        "none": 0,
        "late": 1,
        "early": 1,
        "at": 1,
        "mild": 0,
        "dead": 0,
        "dies_later": 0,
    }


def test_severity_threshold_is_a_parameter():
    c = make_cohort(
        [patient("a"), patient("b")],
        [],
        [("a", 20, "crs_onset", 2), ("b", 20, "crs_onset", 1), ("b", 60, "crs_grade", 2)],
    )
    got = _by_id(c, assign(c, get_task("severe_crs", severity_threshold=2), 48))
    assert got["a"][0] is False and got["b"] == (True, 1, "")


def test_max_grade_only_cohort_derivation():
    """car22-like: only crs_max_grade timed at onset (or with unknown onset)."""
    c = make_cohort(
        [patient(p) for p in ("late", "early", "mild", "unknown_onset", "no_crs")],
        [],
        [
            ("late", 96, "crs_max_grade", 3),
            ("early", 24, "crs_max_grade", 4),
            ("mild", 24, "crs_max_grade", 2),
            ("unknown_onset", None, "crs_max_grade", 3),
        ],
    )
    at48 = _by_id(c, assign(c, "severe_crs", 48))
    assert at48["late"] == (True, 1, "")  # onset after the landmark: grade 0 at it
    assert at48["early"][0] is False and "escalation time unknown" in at48["early"][2]
    assert at48["mild"] == (True, 0, "")
    assert at48["unknown_onset"][0] is False and "unknown time" in at48["unknown_onset"][2]
    assert at48["no_crs"] == (True, 0, "")
    at0 = _by_id(c, assign(c, "severe_crs", 0))  # pre-infusion: nobody had CRS yet
    assert {p: v[1] for p, v in at0.items()} == {
        "late": 1,
        "early": 1,
        "mild": 0,
        "unknown_onset": 1,
        "no_crs": 0,
    }
    assert any("crs_max_grade" in n for n in assign(c, "severe_crs", 0).notes)


def test_grades_derived_from_support_rows_when_none_recorded():
    c = make_cohort(
        [patient("a"), patient("b")],
        [
            ("a", 30, "temperature", 39.0),
            ("a", 36, "vasopressors", 1.0),  # grade 3 at 36 h
            ("b", 30, "temperature", 39.0),
            ("b", 60, "temperature", 38.6),
            ("b", 60, "oxygen_device", float(OxygenDevice.FACEMASK)),  # grade 3 at 60 h
        ],
        [],
    )
    got = _by_id(c, assign(c, "severe_crs", 48))
    assert got["a"][0] is False and got["b"] == (True, 1, "")


def test_require_label_false_uses_only_data_up_to_the_landmark():
    c = make_cohort(
        [patient("a"), patient("b"), patient("c")],
        [],
        [
            ("a", 20, "crs_grade", 3),
            ("b", 60, "crs_grade", 3),
            ("c", None, "death"),  # unknown time: a labelling problem, not a serving one
        ],
    )
    got = _by_id(c, assign(c, "severe_crs", 48, require_label=False))
    assert got["a"][0] is False and "already reached" in got["a"][2]
    assert got["b"] == (True, None, "") and got["c"] == (True, None, "")
    labelled = _by_id(c, assign(c, "severe_crs", 48))
    assert labelled["c"] == (False, None, "death with unknown time")


# --- toci_refractory -------------------------------------------------------------------------
def test_toci_refractory_population_and_second_line_label():
    c = make_cohort(
        [patient(p) for p in ("resp", "refr", "silt1", "silt_only", "none", "untimed", "co")],
        [],
        [
            ("resp", 40, "crs_onset", 2),
            ("resp", 50, "tocilizumab"),
            ("resp", 60, "crs_grade", 1),
            ("resp", 80, "crs_resolved"),
            ("refr", 40, "crs_onset", 2),
            ("refr", 50, "tocilizumab"),
            ("refr", 90, "siltuximab"),  # second-line after the first dose
            ("refr", 85, "crs_grade", 1),
            ("silt1", 40, "crs_onset", 2),
            ("silt1", 45, "siltuximab"),  # first-line siltuximab, then tocilizumab
            ("silt1", 50, "tocilizumab"),
            ("silt_only", 40, "crs_onset", 2),
            ("silt_only", 45, "siltuximab"),
            ("untimed", 40, "crs_onset", 2),
            ("untimed", None, "tocilizumab"),
            ("co", 40, "crs_onset", 2),
            ("co", 50, "tocilizumab"),
            ("co", 50, "corticosteroids"),  # given with the first dose: not an escalation
            ("co", 70, "crs_resolved"),
        ],
    )
    a = assign(c, "toci_refractory", "first_toci")
    got = _by_id(c, a)
    assert got["resp"] == (True, 0, "")
    assert got["refr"] == (True, 1, "")
    assert got["co"] == (True, 0, "")
    assert got["silt1"] == (
        False,
        None,
        "siltuximab at or before the first tocilizumab dose (first-line)",
    )
    assert got["silt_only"] == (False, None, "siltuximab first-line (no tocilizumab)")
    assert got["none"] == (False, None, "no tocilizumab")
    assert got["untimed"] == (False, None, "tocilizumab time unknown")
    lm = dict(zip(c.patients["patient_id"], a.landmark, strict=True))
    assert lm["resp"] == 50 and np.isnan(lm["none"])


def test_toci_no_improvement_criterion():
    c = make_cohort(
        [patient(p) for p in ("same", "better", "worse", "two_doses_better", "fever_only")],
        [],
        [
            ("same", 40, "crs_onset", 2),
            ("same", 50, "tocilizumab"),  # grade 2 still 24 h later → refractory
            ("better", 40, "crs_onset", 2),
            ("better", 50, "tocilizumab"),
            ("better", 70, "crs_grade", 1),
            ("worse", 40, "crs_onset", 2),
            ("worse", 50, "tocilizumab"),
            ("worse", 60, "crs_grade", 3),
            ("two_doses_better", 40, "crs_onset", 2),
            ("two_doses_better", 50, "tocilizumab"),
            ("two_doses_better", 60, "tocilizumab"),  # evaluated 24 h after the 2nd dose
            ("two_doses_better", 83, "crs_grade", 1),
            ("fever_only", 50, "tocilizumab"),  # pre-emptive, no CRS grade ever → 0
        ],
    )
    got = _by_id(c, assign(c, "toci_refractory", "first_toci"))
    assert {p: v[1] for p, v in got.items()} == {
        "same": 1,
        "better": 0,
        "worse": 1,
        "two_doses_better": 0,
        "fever_only": 0,
    }
    only_second_line = get_task("toci_refractory", refractory_criteria=("second_line",))
    got2 = _by_id(c, assign(c, only_second_line, "first_toci"))
    assert all(v[1] == 0 for v in got2.values())
    one_dose = get_task("toci_refractory", no_improvement_doses=1)
    got3 = _by_id(c, assign(c, one_dose, "first_toci"))
    assert got3["two_doses_better"][1] == 1  # 24 h after the first dose it was still grade 2
