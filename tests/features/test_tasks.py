"""Task declarations, landmarks, eligibility and labels of both tasks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.errors import CrsRiskError
from features.tasks import (
    SEVERE_CRS,
    TOCI_REFRACTORY,
    assign,
    exclusion_summary,
    get_task,
    parse_landmark,
    scorable_landmarks,
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
    assert TOCI_REFRACTORY.landmarks == ("decision", "first_toci")
    assert "≥3" in SEVERE_CRS.outcome
    assert "siltuximab" in TOCI_REFRACTORY.outcome and "24 h" in TOCI_REFRACTORY.outcome
    for text in (TOCI_REFRACTORY.outcome, TOCI_REFRACTORY.eligibility):
        assert "tocilizumab failure" in text and "siltuximab benefit" in text


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


@pytest.mark.parametrize("given", [0, 36, "120h", 336])
def test_any_whole_hour_up_to_day_14_is_a_severe_landmark(given):
    hours = float(str(given).rstrip("h"))
    assert parse_landmark(SEVERE_CRS, given) == (f"{hours:g}h", hours)


@pytest.mark.parametrize(
    ("task", "given"),
    [
        (SEVERE_CRS, 36.5),
        (SEVERE_CRS, 337),
        (SEVERE_CRS, -24),
        (SEVERE_CRS, "first_toci"),
        (TOCI_REFRACTORY, 48),
    ],
)
def test_bad_landmarks_are_user_errors(task, given):
    with pytest.raises(CrsRiskError, match="landmark") as err:
        parse_landmark(task, given)
    assert "\n" not in str(err.value)


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
    unknown = "CRS grade at the landmark unknown"
    # onset at or before the landmark: the grade in force is unknown whatever the maximum —
    # grade 4 and grade 2 alike (the old code kept "mild" as a negative: y forced to 0)
    assert at48["early"][0] is False and unknown in at48["early"][2]
    assert at48["mild"][0] is False and unknown in at48["mild"][2]
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
    # the same exclusion at serving time (decided from what is known at 48 h only)
    served = _by_id(c, assign(c, "severe_crs", 48, require_label=False))
    assert served["early"][2] == served["mild"][2] == at48["mild"][2]
    summary = exclusion_summary(assign(c, "severe_crs", 48))
    assert summary["excluded_at_landmark"] == {at48["mild"][2]: 2}
    assert summary["excluded_outcome_unknown"] == {at48["unknown_onset"][2]: 1}
    assert summary["eligible"] == 2 and summary["positives"] == 1


def _summary_form(sim, maxima_of=lambda m: m):
    """The simulated cohort with its CRS course reduced to crs_max_grade timed at onset."""
    from features.validation import validate_tables

    ev = sim.events
    course = ev["event"].isin(["crs_onset", "crs_grade", "crs_resolved", "crs_max_grade"])
    graded = ev[ev["event"].isin(["crs_onset", "crs_grade"])]
    maxima = graded.groupby("patient_id")["grade"].max()
    onset = graded.groupby("patient_id")["hours_from_infusion"].min().reindex(maxima.index)
    summary = pd.DataFrame(
        {
            "patient_id": maxima.index,
            "hours_from_infusion": onset.to_numpy(),
            "event": "crs_max_grade",
            "grade": maxima_of(maxima.to_numpy()),
        }
    )
    support = ["temperature", "hypotension", "vasopressors", "vasopressin", "oxygen_device"]
    meas = sim.measurements[~sim.measurements["analyte"].isin([*support, "oxygen_flow"])]
    tables = {
        "patients": sim.patients,
        "measurements": meas,
        "events": pd.concat([ev[~course], summary], ignore_index=True),
    }
    report = validate_tables(tables, "summary")
    assert report.ok, report.render()
    return report.cohort


def test_summary_only_cohort_eligibility_does_not_depend_on_the_outcome():
    """Issue 11 §2 on a synthetic cohort reduced to summary form (crs_max_grade at onset).

    The old rule excluded onset ≤ L patients with maximum ≥3 and kept those below as negatives,
    so crs_present at 48 h predicted y = 0 (AUROC < 0.5). Now eligibility at 48 h is the same
    whatever the maxima (here: permuted between patients), exclusions are counted, and the
    eligible patients' labels are those of the full course."""
    from sklearn.metrics import roc_auc_score

    from features.build import build_features
    from features.synth.simulate import simulate

    sim = simulate(600, seed=5)
    rng = np.random.default_rng(0)
    summary = build_features(_summary_form(sim), "severe_crs", 48)
    permuted = build_features(_summary_form(sim, rng.permutation), "severe_crs", 48)
    assert summary.ids.tolist() == permuted.ids.tolist()
    assert summary.summary["excluded_at_landmark"] == permuted.summary["excluded_at_landmark"]
    y = summary.y.to_numpy()
    assert 0 < y.sum() < len(y)
    assert roc_auc_score(y, summary.X["crs_present"].to_numpy()) >= 0.5
    unknown = (
        "CRS grade at the landmark unknown (only the onset of a whole-course maximum grade "
        "is recorded)"
    )
    assert summary.summary["excluded_at_landmark"][unknown] > 0
    full = build_features(
        _full(sim), "severe_crs", 48
    )  # the same patients labelled from their whole timed course
    truth = dict(zip(full.ids, full.y, strict=True))
    assert all(truth.get(p, v) == v for p, v in zip(summary.ids, summary.y, strict=True))


def _full(sim):
    from features.validation import validate_tables

    tables = {"patients": sim.patients, "measurements": sim.measurements, "events": sim.events}
    return validate_tables(tables, "full").cohort


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
            ("refr", 90, "siltuximab"),  # second-line within 72 h of the first dose
            ("refr", 85, "crs_grade", 1),
            ("refr", 130, "crs_resolved"),
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
        "siltuximab at or before the landmark (first-line siltuximab)",
    )
    assert got["silt_only"] == (False, None, "siltuximab first-line (no tocilizumab)")
    assert got["none"] == (False, None, "no tocilizumab")
    assert got["untimed"] == (False, None, "tocilizumab time unknown")
    lm = dict(zip(c.patients["patient_id"], a.landmark, strict=True))
    assert lm["resp"] == 50 and np.isnan(lm["none"])
    summary = exclusion_summary(a)
    # refr: siltuximab at 90 h, and still grade 2 at 74 h (recorded on: grade 1 only at 85 h)
    assert summary["positive_clauses"] == {"second_line": 1, "no_improvement": 1}
    assert summary["positives"] == 1


def test_toci_no_improvement_needs_an_observed_grade():
    c = make_cohort(
        [patient(p) for p in ("same", "better", "worse", "two_doses_better", "no_later")],
        [],
        [
            ("same", 40, "crs_onset", 2),
            ("same", 50, "tocilizumab"),
            ("same", 80, "crs_grade", 2),  # grade 2 still 24 h later (recorded on) → refractory
            ("better", 40, "crs_onset", 2),
            ("better", 50, "tocilizumab"),
            ("better", 70, "crs_grade", 1),
            ("better", 100, "crs_resolved"),
            ("worse", 40, "crs_onset", 2),
            ("worse", 50, "tocilizumab"),
            ("worse", 60, "crs_grade", 3),
            ("two_doses_better", 40, "crs_onset", 2),
            ("two_doses_better", 50, "tocilizumab"),
            ("two_doses_better", 60, "tocilizumab"),  # evaluated 24 h after the 2nd dose
            ("two_doses_better", 83, "crs_grade", 1),
            ("two_doses_better", 120, "crs_resolved"),
            ("no_later", 40, "crs_onset", 2),
            ("no_later", 50, "tocilizumab"),  # nothing recorded after: unknown, not "no change"
        ],
    )
    a = assign(c, "toci_refractory", "first_toci")
    got = _by_id(c, a)
    assert {p: v[1] for p, v in got.items()} == {
        "same": 1,
        "better": 0,
        "worse": 1,
        "two_doses_better": 0,
        "no_later": None,
    }
    assert got["no_later"][2].startswith("no observed CRS grade 24 h after the dose")
    summary = exclusion_summary(a)
    assert summary["excluded_outcome_unknown"] == {got["no_later"][2]: 1}
    # worse: grade 3 at 60 h is worsening; its grade at 74 h is not observed (nothing later)
    assert summary["positive_clause_combinations"] == {"no_improvement": 1, "worsening": 1}
    only_second_line = get_task("toci_refractory", refractory_criteria=("second_line",))
    got2 = _by_id(c, assign(c, only_second_line, "first_toci"))
    assert all(v[1] == 0 for v in got2.values())
    one_dose = get_task("toci_refractory", no_improvement_doses=1)
    got3 = _by_id(c, assign(c, one_dose, "first_toci"))
    assert got3["two_doses_better"][1] == 1  # 24 h after the first dose it was still grade 2


def _toci_cohort(*rows, pid="p", measurements=()):
    return make_cohort([patient(pid)], list(measurements), [(pid, *r) for r in rows])


def _one(c, landmark="first_toci", task="toci_refractory"):
    return _by_id(c, assign(c, task, landmark))[c.patients["patient_id"].iloc[0]]


def test_steroids_for_icans_never_count_and_unrecorded_steroids_need_crs_in_force():
    base = [(20, "crs_onset", 2), (30, "tocilizumab"), (40, "crs_grade", 1), (120, "crs_resolved")]
    icans = _toci_cohort(*base, (60, "corticosteroids", None, None, "icans"))
    assert _one(icans) == (True, 0, "")
    crs = _toci_cohort(*base, (60, "corticosteroids", None, None, "crs"))
    assert _one(crs) == (True, 1, "")
    # no recorded indication: counts while CRS grade ≥1 is in force and no ICANS recorded
    bare = _toci_cohort(*base, (60, "corticosteroids"))
    assert _one(bare) == (True, 1, "")
    with_icans = _toci_cohort(*base, (55, "icans", 2), (60, "corticosteroids"))
    assert _one(with_icans) == (True, 0, "")
    after_resolution = _toci_cohort(
        (20, "crs_onset", 2), (30, "tocilizumab"), (50, "crs_resolved"), (60, "corticosteroids")
    )
    assert _one(after_resolution) == (True, 0, "")
    never = get_task("toci_refractory", steroids_without_indication="never")
    assert _one(bare, task=never) == (True, 0, "")
    # the window: a second-line agent 80 h after the first dose does not count (default 72 h)
    late = _toci_cohort(*base, (110, "anakinra", None, None, "crs"))
    assert _one(late) == (True, 0, "")
    wide = get_task("toci_refractory", window_hours=96.0)
    assert _one(late, task=wide) == (True, 1, "")


def test_pre_emptive_tocilizumab_at_grade_0_is_its_own_exclusion():
    c = _toci_cohort((10, "tocilizumab"), (30, "crs_onset", 3), (90, "crs_resolved"))
    eligible, _, reason = _one(c)
    assert not eligible and reason == "pre-emptive tocilizumab (CRS grade 0 at the first dose)"
    served = assign(c, "toci_refractory", "first_toci", require_label=False)
    assert served.reason[0] == reason and not served.label_unknown[0]


def test_siltuximab_first_line_is_excluded_at_both_landmarks():
    c = _toci_cohort((20, "crs_onset", 2), (25, "siltuximab"), (30, "tocilizumab"))
    for lm in ("decision", "first_toci"):
        eligible, _, reason = _one(c, lm)
        assert not eligible and "siltuximab" in reason


def test_decision_landmark_first_grade_2_or_first_dose_scored_without_a_dose():
    c = make_cohort(
        [patient(p) for p in ("g2", "dose_first", "never_treated", "silt_later", "mild")],
        [("g2", 20, "il6", 100.0), ("g2", 40, "il6", 900.0)],
        [
            ("g2", 10, "crs_onset", 1),
            ("g2", 24, "crs_grade", 2),  # decision at 24 h, before the dose at 36 h
            ("g2", 36, "tocilizumab"),
            ("g2", 50, "crs_grade", 3),  # worsening within the window → refractory
            ("g2", 100, "crs_resolved"),
            ("dose_first", 10, "crs_onset", 1),
            ("dose_first", 14, "tocilizumab"),  # dose at grade 1, before any grade 2
            ("dose_first", 30, "crs_resolved"),
            ("never_treated", 10, "crs_onset", 2),
            ("never_treated", 30, "crs_resolved"),
            ("silt_later", 10, "crs_onset", 2),
            ("silt_later", 20, "siltuximab"),
            ("silt_later", 30, "tocilizumab"),
            ("mild", 10, "crs_onset", 1),
            ("mild", 30, "crs_resolved"),
        ],
    )
    a = assign(c, "toci_refractory", "decision")
    got = _by_id(c, a)
    lm = dict(zip(c.patients["patient_id"], a.landmark, strict=True))
    assert lm["g2"] == 24 and lm["dose_first"] == 14 and lm["silt_later"] == 10
    assert np.isnan(lm["mild"])
    assert got["g2"] == (True, 1, "") and got["dose_first"] == (True, 0, "")
    assert got["never_treated"] == (False, None, "no tocilizumab (no tocilizumab outcome)")
    assert got["silt_later"][0] is False and "siltuximab" in got["silt_later"][2]
    assert "no anti-IL-6 decision" in got["mild"][2]
    # scored without a dose: the cut at the decision holds neither the dose nor the later IL-6
    g2 = c.patients["patient_id"].tolist().index("g2")
    at = a.records
    assert not ((at.e_p == g2) & (at.e_t > 24)).any() and not ((at.m_p == g2) & (at.m_t > 24)).any()
    # at serving time the same patients are eligible at the decision (no label needed), and the
    # never-treated patient is scored too: the treatment choice is not known yet
    served = _by_id(c, assign(c, "toci_refractory", "decision", require_label=False))
    assert served["g2"] == (True, None, "") and served["never_treated"] == (True, None, "")
    summary = exclusion_summary(a)
    assert summary["excluded_outcome_unknown"] == {
        "no tocilizumab (no tocilizumab outcome)": 1,
        "siltuximab before the first tocilizumab dose (first-line siltuximab)": 1,
    }
    assert summary["excluded_at_landmark"] == {got["mild"][2]: 1}


# --- lost to follow-up, expiry, vasopressin ---------------------------------------------------
def test_lost_to_follow_up_is_an_unknown_outcome_never_no_crs():
    c = make_cohort(
        [patient(p) for p in ("before", "after", "after_severe", "no_info", "followed")],
        [],
        [
            ("before", 40, "lost_to_follow_up"),
            ("after", 20, "crs_onset", 1),
            ("after", 60, "lost_to_follow_up"),  # below grade 3 until lost: outcome unknown
            ("after_severe", 20, "crs_onset", 1),
            ("after_severe", 55, "crs_grade", 3),
            ("after_severe", 60, "lost_to_follow_up"),  # severe before lost: label stands
            ("no_info", None, "lost_to_follow_up"),  # no CRS information at all
        ],
    )
    a = assign(c, "severe_crs", 48)
    got = _by_id(c, a)
    assert got["before"] == (False, None, "lost to follow-up at or before the landmark")
    assert got["after"] == (
        False,
        None,
        "lost to follow-up after the landmark before grade ≥3 (outcome unknown)",
    )
    assert got["after_severe"] == (True, 1, "")
    assert got["no_info"] == (False, None, "no CRS information (lost to follow-up, time unknown)")
    assert got["followed"] == (True, 0, "")
    summary = exclusion_summary(a)
    assert summary["excluded_at_landmark"] == {got["before"][2]: 1}
    assert set(summary["excluded_outcome_unknown"]) == {got["after"][2], got["no_info"][2]}
    # at serving time only what is known at 48 h excludes
    served = _by_id(c, assign(c, "severe_crs", 48, require_label=False))
    assert [p for p, v in served.items() if not v[0]] == ["before"]
    # refractory: lost within the window before any positive clause → unknown
    t = _toci_cohort((20, "crs_onset", 2), (30, "tocilizumab"), (50, "lost_to_follow_up"))
    assert _one(t) == (
        False,
        None,
        "lost to follow-up within the window after the first dose (outcome unknown)",
    )


def test_expired_derived_grade_is_not_in_force():
    """A grade 2 derived from low-flow oxygen at 20 h is not "still grade 2" at 72 h: without a
    new support row for 24 h the grade in force is unknown — a missing feature, and "no
    improvement" cannot be read from it."""
    rows = [
        ("p", 18, "temperature", 39.0),
        ("p", 20, "oxygen_device", float(OxygenDevice.NASAL_CANNULA)),
        ("p", 20, "oxygen_flow", 2.0),
    ]
    c = make_cohort([patient("p")], rows, [("p", 22, "tocilizumab")])
    from features.build import build_features

    x = build_features(c, "severe_crs", 72, require_label=False).X.iloc[0]
    assert x["crs_max_grade_so_far"] == 2 and np.isnan(x["crs_grade_current"])
    assert x["toci_given"] == 1 and x["toci_hours_since_first"] == 50
    x30 = build_features(c, "severe_crs", 30, require_label=False).X.iloc[0]
    assert x30["crs_grade_current"] == 2  # still in force 10 h after the row
    eligible, y, reason = _one(c)
    assert not eligible and y is None and reason.startswith("no observed CRS grade")


def test_vasopressin_alone_reaches_grade_3_for_eligibility():
    c = make_cohort(
        [patient("v"), patient("h")],
        [
            ("v", 30, "temperature", 39.0),
            ("v", 31, "vasopressin", 1.0),
            ("h", 30, "temperature", 39.0),
            ("h", 31, "hypotension", 1.0),
        ],
    )
    got = _by_id(c, assign(c, "severe_crs", 48))
    assert got["v"][0] is False and "already reached" in got["v"][2]
    assert got["h"] == (True, 0, "")


# --- one eligibility function for training and serving ----------------------------------------
def test_eligibility_is_the_same_in_training_and_serving_and_blind_to_the_future():
    """Training (build_features) and serving (build_patient_features, and the records the
    service validates) exclude the same patients for the same landmark reasons; training only
    adds outcome-unknown exclusions, and changing anything after the landmark changes no
    eligibility."""
    from features.build import build_features, build_patient_features
    from features.synth.simulate import simulate
    from features.validation import Outputs, validate_tables

    sim = simulate(80, seed=3)
    tables = {"patients": sim.patients, "measurements": sim.measurements, "events": sim.events}
    cohort = validate_tables(tables, "sim").cohort
    future = {k: v.copy() for k, v in tables.items()}
    ev = future["events"]
    late = ev["hours_from_infusion"] > 60
    ev.loc[late, "event"] = "crs_grade"  # rewrite everything after 60 h as grade 4
    ev.loc[late, "grade"] = 4
    ev.loc[late, "indication"] = pd.NA
    changed = validate_tables(future, "sim-future").cohort
    records = validate_tables(tables, "r", outputs=Outputs(records=True)).records
    for task, landmarks in (("severe_crs", ("48h",)), ("toci_refractory", ("decision",))):
        for lm in landmarks:
            train = build_features(cohort, task, lm)
            serve = build_patient_features(cohort, task, lm)
            assert train.summary["excluded_at_landmark"] == serve.summary["exclusions"]
            assert set(train.ids) <= set(serve.ids)
            dropped = len(serve.ids) - len(train.ids)
            assert dropped == sum(train.summary["excluded_outcome_unknown"].values())
            if task == "severe_crs":
                other = build_patient_features(changed, task, lm)
                assert other.ids.tolist() == serve.ids.tolist()
                pd.testing.assert_frame_equal(other.X, serve.X)
            served = assign(records, task, lm, require_label=False)
            assert served.eligible.sum() == len(serve.ids)


def test_scorable_landmarks_lists_what_the_data_support():
    c = make_cohort(
        [patient("a"), patient("b")],
        [("a", 30, "il6", 10.0), ("b", 100, "il6", 10.0)],
        [("a", 40, "crs_grade", 3), ("b", 90, "crs_onset", 2), ("b", 95, "tocilizumab")],
    )
    from features.records import prepared

    rec = prepared(c).records
    lms = ("0h", "24h", "48h", "72h", "96h")
    assert scorable_landmarks(rec, "severe_crs", lms) == [["0h", "24h"], list(lms)]
    assert scorable_landmarks(rec, "severe_crs", lms, as_of_hours=50.0) == [
        ["0h", "24h"],
        ["0h", "24h", "48h"],
    ]
    # a: grade 3 at 40 h is the anti-IL-6 decision (grade ≥2 first reached), no dose yet
    assert scorable_landmarks(rec, "toci_refractory", ("decision", "first_toci")) == [
        ["decision"],
        ["decision", "first_toci"],
    ]


def test_decision_is_known_then_even_when_a_recorded_grade_comes_later():
    """Support rows give grade 2 at 12 h (fever + hypotension); the first recorded grade comes
    at 30 h and says 1. The decision was at 12 h — as known then, before any recorded grade —
    and a later recorded grade must not move it (found by the importer-level leakage test)."""
    c = make_cohort(
        [patient("p")],
        [
            ("p", 10, "temperature", 39.0),
            ("p", 12, "hypotension", 1.0),
        ],
        [("p", 30, "crs_grade", 1), ("p", 60, "crs_resolved")],
    )
    a = assign(c, "toci_refractory", "decision", require_label=False)
    assert a.landmark[0] == 12.0
    # the same decision whatever the recorded course after it says
    later = make_cohort(
        [patient("p")],
        [("p", 10, "temperature", 39.0), ("p", 12, "hypotension", 1.0)],
        [("p", 30, "crs_grade", 2), ("p", 60, "crs_resolved")],
    )
    assert assign(later, "toci_refractory", "decision", require_label=False).landmark[0] == 12.0
