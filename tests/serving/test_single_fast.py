"""One probability path, and the single route and the batch give the same results.

Every probability the service returns comes from ``serving.explaining.probabilities``: the
model's own arithmetic on the explainer's NumPy transform, row by row, so a patient gets the
same bits alone, in a trend and in a batch — the bits of the logged model's own
``predict_proba`` for that patient alone (which itself sums in another order for 10⁴ rows than
for one). Models take the shapes training gives them (compact-set selection step, Platt on the
XGBoost margin). SHAP
supplies the reasons only: the explained log-odds and base value are a fresh
``training.explain.ModelExplainer``'s. Batch results equal the single route's field for field
(statuses, reasons, warnings, intervals, sentences). Models are fitted here (no MLflow store).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.build import build_patient_features
from features.synth import simulate
from serving.audit import OUTPUT_KEYS
from serving.conversion import validate_requests
from serving.examples import to_request
from serving.explaining import _FAST, probabilities
from serving.loading import Snapshot
from serving.schemas import RiskRequest
from serving.scoring import score_request
from training.explain import ModelExplainer


@pytest.fixture(scope="module")
def snapshot(fast_snapshot: Snapshot) -> Snapshot:
    """The in-process champions (``tests.serving.fast_models``), built once per worker."""
    return fast_snapshot


@pytest.fixture(scope="module")
def requests_() -> list[RiskRequest]:
    """Synthetic patients (another seed) cut at several times, with varied options."""
    sc = simulate(14, seed=8)
    pats = sc.patients.reset_index(drop=True)
    by_m = dict(tuple(sc.measurements.groupby("patient_id", sort=False)))
    by_e = dict(tuple(sc.events.groupby("patient_id", sort=False)))
    empty = sc.events.iloc[0:0]
    rng = np.random.default_rng(4)
    out = []
    for i, pid in enumerate(pats["patient_id"]):
        if pid not in by_m:
            continue
        for k, as_of in enumerate((0.0, 30.0, 60.0, 100.0)):
            body = to_request(pats.iloc[i], by_m[pid], by_e.get(pid, empty), as_of)
            body["top_k"] = int(rng.integers(1, 12))
            body["explain"] = bool(k != 2)
            if k == 3:
                body["landmark"] = str(rng.choice(["0h", "24h", "48h", "72h"]))
            out.append(RiskRequest.model_validate(body))
    return out


def test_every_model_takes_the_array_path(snapshot):
    assert all(_FAST.get(m.explainer) for m in snapshot.models.values())


def test_single_responses_come_from_the_one_probability_path(snapshot, requests_):
    refs = {key: ModelExplainer(m.model) for key, m in snapshot.models.items()}
    rows: dict[tuple[str, str], list[tuple[pd.DataFrame, float]]] = {k: [] for k in refs}
    counts = dict.fromkeys(("scored", "explained", "not_eligible", "insufficient_data"), 0)
    for req in requests_:
        resp = score_request(snapshot, req, "t")
        cohort = validate_requests([req]).cohort
        for r in resp.results:
            model = snapshot.get(r.task, r.landmark)
            if r.status in ("not_eligible", "insufficient_data"):
                counts[r.status] += 1
            if r.status != "scored":
                assert r.probability is None and r.band is None and r.interval is None
                continue
            X = build_patient_features(cohort, r.task, r.landmark).X[list(model.columns)]
            x = X.to_numpy(dtype=float)
            # alone, as a row of a larger matrix, and as the logged model computes it
            assert r.probability == probabilities(model.model, model.explainer, x, model.columns)[0]
            big = np.vstack([np.full_like(x, np.nan), x, x * 2])
            assert (
                r.probability == probabilities(model.model, model.explainer, big, model.columns)[1]
            )
            assert r.probability == model.model.predict_proba(X)[0, 1]  # the model's own
            assert r.band == model.band(r.probability)[0]
            assert r.interval is not None and 0 <= r.interval.low <= r.interval.high <= 1
            assert "in 100" in r.summary
            rows[(r.task, r.landmark)].append((X, r.probability))
            if req.explain:
                e = refs[(r.task, r.landmark)].explain_row(X, top=req.top_k)
                assert r.log_odds == e.log_odds and r.base_value == e.base_value
                shown = {c.variable for c in [*r.contributions, *r.missing_effects]}
                assert shown == {c.variable for c in e.contributions}
                assert all("log-odds" not in c.text for c in r.contributions)
                assert all(
                    ("raises" in c.text) == (c.points > 0)
                    for c in r.contributions
                    if abs(c.points) >= 0.05
                )
                counts["explained"] += 1
            counts["scored"] += 1
        for point in resp.trend:
            if point.probability is not None and point.landmark == resp.landmark:
                assert point.probability == resp.results[0].probability
    assert counts["scored"] >= 30 and counts["explained"] >= 15, counts
    assert counts["not_eligible"] >= 5, counts


def test_batch_results_equal_the_single_route(snapshot, requests_):
    """``serving.batch.score_batch``: every patient's results equal the single route's field
    for field (status, reason, probability, interval, sentence, warnings); one input digest per
    patient as single; the response valid against ``BatchResponse``."""
    from serving.batch import score_batch
    from serving.digest import input_digests
    from serving.schemas import BatchPatient, BatchResponse

    reqs = [BatchPatient.model_validate({**r.model_dump(), "explain": False}) for r in requests_]
    scores = score_batch(snapshot, reqs)
    body = BatchResponse.model_validate_json(scores.body("b1"))
    assert body.n == len(reqs) and [it.index for it in body.items] == list(range(len(reqs)))
    warned = 0
    for req, item, digest in zip(reqs, body.items, scores.digests, strict=True):
        single = score_request(snapshot, RiskRequest.model_validate(req.model_dump()), "t")
        assert item.landmark == single.landmark
        assert [r.model_dump() for r in item.results] == [r.model_dump() for r in single.results]
        warned += sum(len(r.warnings) for r in item.results)
        valid = validate_requests([req])
        as_of = np.array([np.nan if req.as_of_hours is None else req.as_of_hours])
        assert digest == input_digests(valid.records, valid.patients, as_of, [req.landmark])[0]
    assert warned > len(reqs)
    outputs = [json.loads(o) for o in scores.outputs]
    assert all(len(o) == 2 and set(o[0]) == set(OUTPUT_KEYS) for o in outputs)
