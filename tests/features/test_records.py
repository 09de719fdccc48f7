"""The array core (``features.records.Records``) gives what the frame functions give.

One patient is scored by the service through the same vectorised code as a training cohort;
these tests pin the fast paths to the reference ones: records built by the validator equal the
records read back from the canonical frames, every landmark computed in one pass equals each
landmark computed alone, and grades derived once equal grades derived from each cut.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from features.build import build_features, feature_matrix, patient_features, prepare
from features.cohort import Cohort
from features.grading import course_of_records, derived_of
from features.records import Records, records_of
from features.schema import EVENTS, GRADED_EVENTS
from features.synth import simulate
from features.tasks import assign, assign_landmarks
from features.validation import FOR_SCORING, Outputs, validate_tables
from tests.features.feature_cohorts import make_cohort, patient

LANDMARKS = ("0h", "24h", "48h", "72h")
SUPPORT = {
    "temperature": [36.5, 37.9, 38.0, 38.4, 39.6],
    "hypotension": [0.0, 1.0],
    "vasopressors": [0.0, 1.0, 2.0],
    "oxygen_device": [float(i) for i in range(7)],
    "oxygen_flow": [0.0, 2.0, 6.1, 15.0],
}
LABS = {"il6": (0.0, 1e4), "crp": (0.0, 300.0), "ldh": (50.0, 3000.0), "platelets": (1.0, 500.0)}


def random_cohort(seed: int, n: int = 60) -> Cohort:
    """Patients with labs, support rows and random (timed or untimed) events of every kind."""
    rng = np.random.default_rng(seed)
    times = [-120.0, 0.0, 24.0, 48.0, 72.0, 0.5, 47.9, 48.1]
    ids = [f"q{i:03d}" for i in range(n)]
    meas, seen = [], set()
    for pid in ids:
        for _ in range(int(rng.integers(0, 25))):
            a = str(rng.choice([*LABS, *SUPPORT, *SUPPORT]))
            t = float(rng.choice(times)) if rng.random() < 0.4 else round(rng.uniform(-150, 150))
            if (pid, t, a) not in seen:
                seen.add((pid, t, a))
                v = rng.uniform(*LABS[a]) if a in LABS else rng.choice(SUPPORT[a])
                meas.append((pid, t, a, float(v)))
    evs = []
    for pid in ids:
        for _ in range(int(rng.integers(0, 5))):
            name = str(rng.choice(EVENTS))
            t = None if rng.random() < 0.15 else float(rng.choice(times))
            grade = int(rng.integers(*GRADED_EVENTS[name])) if name in GRADED_EVENTS else None
            evs.append((pid, t, name, grade))
        if rng.random() < 0.6:
            evs.append((pid, float(rng.choice(times)), "tocilizumab", None, 8.0))
    return make_cohort([patient(pid) for pid in ids], meas, evs)


def same_records(a: Records, b: Records) -> None:
    for f in dataclasses.fields(Records):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "n":
            assert x == y
        else:
            assert np.array_equal(x, y, equal_nan=True), f.name


def test_validator_records_equal_the_records_of_its_frames():
    sim = simulate(40, seed=5)
    tables = {"patients": sim.patients, "measurements": sim.measurements, "events": sim.events}
    report = validate_tables(tables, "sim", outputs=Outputs(records=True))
    assert report.ok and report.records is not None
    plain = Cohort(*(getattr(report.cohort, f.name) for f in dataclasses.fields(Cohort)))
    same_records(report.records, records_of(plain))
    # shuffled rows: the same canonical records
    shuffled = {
        k: v.sample(frac=1, random_state=3).reset_index(drop=True) for k, v in tables.items()
    }
    same_records(
        validate_tables(shuffled, "sim", outputs=Outputs(records=True)).records, report.records
    )
    # without frames: no cohort, the same records and patient columns
    light = validate_tables(tables, "sim", outputs=FOR_SCORING)
    assert light.cohort is None and light.summary == {}
    same_records(light.records, report.records)
    assert np.array_equal(
        patient_features(light.patient_columns), patient_features(report.cohort.patients), True
    )


def test_column_mappings_validate_like_frames():
    frames = {
        "patients": pd.DataFrame(
            {"patient_id": ["a", "b"], "center": ["c", "c"], "age_years": [9.0, 300.0]}
        ),
        "measurements": pd.DataFrame(
            {
                "patient_id": ["a", "a", "z"],
                "hours_from_infusion": [1.0, 1.0, 2.0],
                "analyte": ["crp", "crp", "ferritin"],
                "value": [10.0, 12.0, 5.0],
                "unit": ["mg/L", "furlongs", "ng/mL"],
            }
        ),
        "events": pd.DataFrame(
            {"patient_id": ["b"], "hours_from_infusion": [5.0], "event": ["icu_discharge"]}
        ),
    }
    columns = {
        name: {
            c: np.asarray(frame[c].to_numpy(), dtype=object if frame[c].dtype == object else None)
            for c in frame.columns
        }
        for name, frame in frames.items()
    }
    a = validate_tables(frames, "x", outputs=Outputs(summary=False, digest=False))
    b = validate_tables(columns, "x", outputs=Outputs(summary=False, digest=False))
    assert not a.ok and [p.render() for p in a.problems] == [p.render() for p in b.problems]


@pytest.mark.parametrize("seed", [1, 2])
def test_all_landmarks_in_one_pass_equal_each_landmark(seed):
    prep = prepare(random_cohort(seed))
    n = len(prep.patients)
    base = patient_features(prep.patients)
    for require_label in (False, True):
        both = assign_landmarks(prep, "severe_crs", LANDMARKS, require_label=require_label)
        matrix = feature_matrix(both, np.tile(base, (len(LANDMARKS), 1)))
        for i, lm in enumerate(LANDMARKS):
            one = assign(prep, "severe_crs", lm, require_label=require_label)
            rows = slice(i * n, (i + 1) * n)
            assert np.array_equal(one.eligible, both.eligible[rows])
            assert list(one.reason) == list(both.reason[rows])
            assert np.array_equal(one.y, both.y[rows], equal_nan=True)
            assert np.array_equal(feature_matrix(one, base), matrix[rows], equal_nan=True)


@pytest.mark.parametrize("seed", [3, 4])
def test_grades_derived_once_equal_grades_derived_from_each_cut(seed):
    prep = prepare(random_cohort(seed))
    rec = prep.records
    first_dose = assign(prep, "toci_refractory", "first_toci").landmark  # one per patient
    for landmark in (0.0, 24.0, 48.0, 72.0, first_dose):
        at = rec.cut(landmark)
        once = course_of_records(at, derived_of(rec).cut(landmark))
        fresh = course_of_records(at, limit=landmark)
        assert once.n == fresh.n
        for f in dataclasses.fields(once)[1:]:
            x, y = getattr(once, f.name), getattr(fresh, f.name)
            assert np.array_equal(x, y, equal_nan=True), f.name


def test_patient_table_is_the_same_from_one_patient_or_many():
    """A patient's row does not depend on who else is in the cohort (n = 1 as the service)."""
    cohort = random_cohort(6, n=12)
    table = build_features(cohort, "severe_crs", "48h", require_label=False)
    for k, pid in enumerate(table.ids):
        one = Cohort(
            cohort.patients[cohort.patients["patient_id"] == pid].reset_index(drop=True),
            cohort.measurements[cohort.measurements["patient_id"] == pid],
            cohort.events[cohort.events["patient_id"] == pid],
            "one",
            "",
        )
        row = build_features(one, "severe_crs", "48h", require_label=False).X
        assert np.array_equal(row.to_numpy()[0], table.X.to_numpy()[k], equal_nan=True)
