"""The service returns the stored interval: a champion carrying a ``training.interval`` table
(recalibration ∪ refit spread, as the sink logs it) answers a risk request with that table's
interval at the patient's probability, in the result, in the sentence, and says what it covers.
Real models fitted here (no MLflow store)."""

from __future__ import annotations

import dataclasses

import pytest
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from features.build import build_features
from features.io import load_cohort, write_cohort
from features.synth import simulate
from serving.examples import to_request
from serving.loading import Snapshot
from serving.registry_names import model_name
from serving.results import INTERVAL_COVERS
from serving.schemas import Interval, RiskRequest
from serving.scoring import score_request
from tests.serving.fast_models import fit_model, loaded_model
from training.interval import METHOD_UNION, fit_procedure_interval

TASK, LANDMARK = "severe_crs", "48h"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> tuple[Snapshot, list[RiskRequest]]:
    sc = simulate(200, seed=31)
    folder = tmp_path_factory.mktemp("interval-served") / "cohort"
    write_cohort(folder, sc.patients, sc.measurements, sc.events)
    table = build_features(load_cohort(folder), TASK, LANDMARK)
    X, y = table.X.astype("float64"), table.y.to_numpy(dtype=int)
    model = fit_model("logreg", table, TASK, LANDMARK, None, compact=False)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    est = fit_model("logreg", table, TASK, LANDMARK, None, compact=False)
    p_oof = cross_val_predict(est, X, y, cv=cv, method="predict_proba")[:, 1]
    interval = fit_procedure_interval(model, X, y, p_oof, y.astype(float), n_refit=15)
    assert interval is not None and interval.method == METHOD_UNION
    loaded = dataclasses.replace(loaded_model(TASK, LANDMARK, model, X, y), interval=interval)
    snap = Snapshot(models={(TASK, LANDMARK): loaded}, missing=(), loaded_at="", tracking_uri="")
    other = simulate(30, seed=5)
    reqs = []
    for i, pid in enumerate(other.patients["patient_id"]):
        body = to_request(
            other.patients.iloc[i],
            other.measurements[other.measurements["patient_id"] == pid],
            other.events[other.events["patient_id"] == pid],
            48.0,
        )
        body["landmark"] = LANDMARK
        reqs.append(RiskRequest.model_validate(body))
    return snap, reqs


def test_the_risk_response_carries_the_stored_interval(served):
    snap, reqs = served
    model = snap.models[(TASK, LANDMARK)]
    scored = [
        r
        for req in reqs
        for r in score_request(snap, req, "t").results
        if r.task == TASK and r.status == "scored"
    ]
    assert len(scored) >= 5, "simulated patients are scored at 48 h"
    r = scored[0]
    lo, hi = model.interval.at(r.probability)
    assert r.interval is not None
    assert (r.interval.low, r.interval.high) == (float(lo), float(hi))
    assert r.interval.low <= r.probability <= r.interval.high
    assert r.interval.level == model.interval.level
    assert f"{round(100 * lo)}–{round(100 * hi)} in 100" in r.summary
    for r in scored[1:]:
        lo, hi = model.interval.at(r.probability)
        assert (r.interval.low, r.interval.high) == (float(lo), float(hi))


def test_what_the_interval_covers_is_stated_with_its_measured_coverage():
    text = INTERVAL_COVERS
    assert "given this" in text and "not" in text  # the estimand, and what it is not
    assert "measured" in text and "%" in text
    assert "measured" in (Interval.model_fields["level"].description or "")
    assert model_name(TASK, LANDMARK)  # the served name this test's champion stands for
