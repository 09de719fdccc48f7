"""The landmark cut: what is kept, what is dropped, scalar and per-patient landmarks."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from features.landmark import cut, with_codes
from tests.features.feature_cohorts import make_cohort, patient


@pytest.fixture
def cohort():
    return make_cohort(
        [patient("a"), patient("b"), patient("c")],
        [
            ("a", -100, "ldh", 300),
            ("a", 48, "il6", 10),  # exactly at the landmark: known, kept
            ("a", 48.01, "il6", 20),  # after: dropped
            ("b", 10, "crp", 5),
            ("b", 70, "crp", 50),
            ("c", 1, "crp", 1),
        ],
        [
            ("a", 48, "crs_onset", 1),
            ("a", 49, "crs_grade", 3),
            ("a", None, "tocilizumab"),  # unknown time: never in a cut
            ("b", 30, "tocilizumab"),
            ("b", 60, "siltuximab"),
            ("c", 5, "death"),
        ],
    )


def _rows(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(r) for r in frame[["patient_id", "hours_from_infusion"]].itertuples(index=False)]


def test_scalar_cut_keeps_at_or_before_and_drops_unknown_times(cohort):
    at = cut(cohort, 48)
    assert _rows(at.measurements) == [("a", -100.0), ("a", 48.0), ("b", 10.0), ("c", 1.0)]
    assert _rows(at.events) == [("a", 48.0), ("b", 30.0), ("c", 5.0)]
    assert at.patients.equals(cohort.patients)
    assert at.source == cohort.source and at.digest == cohort.digest


def test_per_patient_landmarks_and_patients_without_one(cohort):
    lm = pd.Series({"a": 0.0, "b": 30.0, "c": math.nan})  # c: NaN → nothing kept
    at = cut(cohort, lm)
    assert _rows(at.measurements) == [("a", -100.0), ("b", 10.0)]
    assert _rows(at.events) == [("b", 30.0)]
    only_b = cut(cohort, pd.Series({"b": 100.0}))  # patients missing from the Series → nothing
    assert set(only_b.measurements["patient_id"]) == {"b"}
    assert set(only_b.events["patient_id"]) == {"b"}


def test_cut_on_coded_cohort_matches_plain_cut(cohort):
    lm = pd.Series({"a": 48.0, "b": 65.0, "c": 2.0})
    plain = cut(cohort, lm)
    coded = cut(with_codes(cohort), lm)
    assert _rows(coded.measurements) == _rows(plain.measurements)
    assert _rows(coded.events) == _rows(plain.events)


def test_non_finite_scalar_landmark_is_refused(cohort):
    with pytest.raises(ValueError, match="finite"):
        cut(cohort, math.inf)
