"""The single-patient fast path changes no output.

``serving.scoring.score_request`` scores trend points with a NumPy walk of the XGBoost trees
(``serving.trees``), words only the top contributions and skips feature rows nobody reads. Every
number it returns must be exactly what the models' own code gives: probabilities, log-odds,
base values, contributions and ``other`` are compared with ``==`` against a fresh
``training.explain.ModelExplainer`` on the feature rows of the training builder
(``features.build.build_patient_features``), trend points against the pipeline's own transform
and ``XGBClassifier.predict(output_margin=True)``, and all of them against ``predict_proba`` to
1e-6 (the explained probability is calibrated from the SHAP log-odds, which differ from the
booster's float32 arithmetic in the last bits). Models are fitted here (no MLflow store).
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import xgboost
from xgboost import XGBClassifier

from features.build import build_features, build_patient_features
from features.catalog import CATALOG, catalog_for
from features.io import load_cohort, write_cohort
from features.synth import simulate
from serving.audit import OUTPUT_KEYS
from serving.examples import to_request
from serving.explaining import input_columns, make_explainer, prepare, probability, tree_ensemble
from serving.schemas import RiskRequest
from serving.scoring import score_request, validate_requests
from serving.store import DEFAULT_THRESHOLDS, LoadedModel, Snapshot, band_evidence
from serving.trees import check_rows, compile_trees
from tests.training.test_explain import fit
from training.explain import ModelExplainer
from training.registry import registered_name

# landmark → model; 72h has no champion (the "not registered" path)
PLAN = {
    ("severe_crs", "0h"): ("xgboost", "auto"),
    ("severe_crs", "24h"): ("xgboost", "none"),
    ("severe_crs", "48h"): ("logreg", None),
    ("toci_refractory", "first_toci"): ("logreg", None),
}


def _fit(name: str, table, task: str, landmark: str, calibration: str | None):
    return fit(
        name,
        table.X,
        table.y.to_numpy(dtype=int),
        catalog_for(task, landmark),
        calibration,
        landmark=landmark,
        n_estimators=40,
        max_depth=3,
    )


def _loaded(task: str, landmark: str, model) -> LoadedModel:
    """A champion as ``serving.store.load_one`` describes it (explainer built and prepared)."""
    explainer = make_explainer(model)
    prepare(explainer)
    return LoadedModel(
        name=registered_name(task, landmark),
        task=task,
        landmark=landmark,
        version="1",
        run_id=None,
        model=model,
        columns=input_columns(model, explainer),
        thresholds=DEFAULT_THRESHOLDS,
        metrics={},
        n_patients=None,
        n_events=None,
        cohort_digest=None,
        model_type=None,
        bands=band_evidence(None, DEFAULT_THRESHOLDS),
        explainer=explainer,
    )


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> Snapshot:
    sc = simulate(240, seed=21)
    folder = tmp_path_factory.mktemp("single-fast") / "cohort"
    write_cohort(folder, sc.patients, sc.measurements, sc.events)
    cohort = load_cohort(folder)
    models = {}
    for (task, lm), (name, calibration) in PLAN.items():
        table = build_features(cohort, task, lm)
        models[(task, lm)] = _loaded(task, lm, _fit(name, table, task, lm, calibration))
    return Snapshot(
        models=models,
        missing=(registered_name("severe_crs", "72h"),),
        loaded_at="",
        tracking_uri="",
    )


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


def _reference_warnings(model: LoadedModel, x: np.ndarray, effects: dict[str, float]) -> list:
    """Missing-and-imputed and out-of-range warnings, one catalog column at a time."""
    out = []
    groups: dict[str, list[int]] = {}
    for j, c in enumerate(model.columns):
        s = CATALOG.get(c)
        if s is not None and not c.endswith("_missing") and s.kind != "count":
            groups.setdefault(s.variable, []).append(j)
    for var, js in groups.items():
        if abs(effects.get(var, 0.0)) >= 1e-12 and all(math.isnan(x[j]) for j in js):
            out.append(("missing_imputed", var))
    for j, c in enumerate(model.columns):
        s = CATALOG.get(c)
        if s is not None and (x[j] < s.low or x[j] > s.high):
            out.append(("outside_training_range", c))
    return out


def test_single_responses_equal_the_models_own_outputs(snapshot, requests_):
    # fresh explainers: nothing shared with the service's (or its caches)
    refs = {key: ModelExplainer(m.model) for key, m in snapshot.models.items()}
    # rows and returned probabilities per model, for the models' own code in one call each
    served: dict[tuple[str, str], list[tuple[pd.DataFrame, float, bool]]] = {k: [] for k in refs}
    counts = dict.fromkeys(("scored", "explained", "ineligible", "warnings"), 0)
    for req in requests_:
        resp = score_request(snapshot, req, "t")
        cohort = validate_requests([req]).cohort
        for r in resp.results:
            model = snapshot.get(r.task, r.landmark)
            table = build_patient_features(cohort, r.task, r.landmark)
            if not r.eligible:
                assert r.probability is None
                if model is not None:
                    assert len(table.X) == 0 and r.reason in table.summary["exclusions"]
                    counts["ineligible"] += 1
                continue
            X = table.X[list(model.columns)]
            ref = refs[(r.task, r.landmark)]
            e = ref.explain_row(X, top=len(ref.variables))
            assert r.probability == e.probability
            assert r.log_odds == e.log_odds and r.base_value == e.base_value
            assert r.band == model.band(e.probability)[0]
            served[(r.task, r.landmark)].append((X, r.probability, False))
            k = req.top_k
            if req.explain:
                assert [
                    (c.variable, c.label, c.value_text, c.contribution, c.text)
                    for c in r.contributions
                ] == [
                    (c.variable, c.feature_label or c.label, c.value_text, c.log_odds, c.text)
                    for c in e.contributions[:k]
                ]
                tail = sum(float(c.log_odds) for c in e.contributions[k:])
                assert r.other_contribution == (e.other_log_odds or 0.0) + tail
                counts["explained"] += 1
            else:
                assert r.contributions == [] and r.other_contribution is None
            effects = {c.variable: c.log_odds for c in e.contributions}
            x = X.to_numpy(dtype=float)[0]
            assert [(w.code, w.field) for w in r.warnings] == _reference_warnings(model, x, effects)
            counts["warnings"] += len(r.warnings)
            counts["scored"] += 1
        for point in resp.trend:
            model = snapshot.get("severe_crs", point.landmark)
            if point.probability is None:
                continue
            X = build_patient_features(cohort, "severe_crs", point.landmark).X[list(model.columns)]
            if point.landmark == resp.landmark:  # the scored result's (explained) probability
                assert point.probability == resp.results[0].probability
            served[("severe_crs", point.landmark)].append(
                (X, point.probability, point.landmark != resp.landmark)
            )
            assert point.band == model.band(point.probability)[0]
    n_trend = 0
    for key, items in served.items():
        if not items:
            continue
        ref, model = refs[key], snapshot.get(*key)
        X = pd.concat([x for x, _, _ in items], ignore_index=True)
        got = np.array([p for _, p, _ in items])
        trend = np.array([t for _, _, t in items])
        # every probability agrees with the logged model's predict_proba
        assert np.max(np.abs(got - model.model.predict_proba(X)[:, 1])) <= 1e-6
        # trend points exactly: the pipeline's pandas transform and XGBoost's own predict, or
        # the explained probability (linear models)
        arr = X.to_numpy(dtype=float)[trend]
        if ref.family == "xgboost":
            want = ref.calibrate(ref.model_log_odds(arr), arr)
        else:
            want = np.array([ref.explain_row(a, top=0).probability for a in arr])
        assert got[trend].tolist() == want.tolist()
        n_trend += int(trend.sum())
    assert counts["scored"] >= 40 and n_trend >= 40, (counts, n_trend)
    assert counts["explained"] >= 20 and counts["ineligible"] >= 5 and counts["warnings"] >= 20


def test_trend_probability_uses_the_compiled_trees(snapshot):
    """Every fitted booster compiles, and the trend path's margin is the booster's own."""
    for key in (("severe_crs", "0h"), ("severe_crs", "24h")):
        model = snapshot.get(*key)
        trees = tree_ensemble(model.explainer)
        assert trees is not None
        booster = model.explainer.estimator.steps[-1][1].get_booster()
        rows = check_rows(trees, n=300, seed=1)
        want = np.asarray(booster.inplace_predict(rows, predict_type="margin"), dtype=np.float64)
        assert np.array_equal(trees.margins(rows), want)
        got = [trees.margins(rows[i : i + 1])[0] for i in range(50)]
        assert got == want[:50].tolist()
        x = np.full(len(model.columns), np.nan)
        xt = model.explainer.transform(x.reshape(1, -1))
        margin = np.asarray(booster.inplace_predict(xt, predict_type="margin"), dtype=np.float64)
        expected = float(model.explainer.calibrate(margin, x.reshape(1, -1))[0])
        assert probability(model.model, model.explainer, x) == expected


@pytest.fixture(scope="module")
def deep_booster() -> xgboost.Booster:
    """Deeper trees than the quick models, NaNs, many features."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 25))
    X[rng.random(X.shape) < 0.2] = np.nan
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) * X[:, 2] > 0).astype(int)
    y[np.isnan(X[:, 3])] = 1
    clf = XGBClassifier(n_estimators=60, max_depth=6, learning_rate=0.3, n_jobs=1, base_score=0.3)
    return clf.fit(X, y).get_booster()


def test_compiled_trees_are_bit_identical_to_xgboost(deep_booster):
    trees = compile_trees(deep_booster)
    assert trees is not None and trees.depth >= 5
    rows = check_rows(trees, n=2000, seed=9)
    want = np.asarray(deep_booster.inplace_predict(rows, predict_type="margin"), dtype=np.float64)
    assert np.array_equal(trees.margins(rows), want)
    with np.errstate(over="ignore"):  # 1e300 → inf, as XGBoost casts
        rows32 = rows[:200].astype(np.float32)
    one = [trees.margin_one(r) for r in rows32]
    assert one == want[:200].tolist()


def test_the_load_time_check_catches_a_one_ulp_difference(deep_booster):
    """Each way the walk could be wrong changes some margin on the check rows."""
    trees = compile_trees(deep_booster)
    assert trees is not None
    rows = check_rows(trees)
    want = np.asarray(deep_booster.inplace_predict(rows, predict_type="margin"), dtype=np.float64)
    root = int(trees.roots[0])
    other_child = trees.right[root] if trees.missing[root] == trees.left[root] else trees.left[root]
    wrong = [
        dataclasses.replace(trees, base=np.nextafter(trees.base, np.float32(1))),
        dataclasses.replace(trees, missing=_set(trees.missing, root, other_child)),
        dataclasses.replace(
            trees,
            threshold=_set(trees.threshold, root, np.nextafter(trees.threshold[root], np.inf)),
        ),
    ]
    for bad in wrong:
        assert not np.array_equal(bad.margins(rows), want)


def _set(a: np.ndarray, i: int, value) -> np.ndarray:
    out = a.copy()
    out[i] = value
    return out


def test_unsupported_boosters_fall_back_to_xgboost():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 4))
    dart = XGBClassifier(booster="dart", n_estimators=5, n_jobs=1).fit(X, (X[:, 0] > 0).astype(int))
    multi = XGBClassifier(n_estimators=5, n_jobs=1).fit(X, np.digitize(X[:, 0], [-0.5, 0.5]))
    assert compile_trees(dart.get_booster()) is None
    assert compile_trees(multi.get_booster()) is None


def test_batch_scores_equal_the_model_and_the_single_route(snapshot, requests_):
    """``serving.batch.score_batch`` (no registered store needed): each patient's severe and toci
    results as the single route gives them (landmark, eligibility, reason, band), probabilities
    from the model's own ``predict_proba`` (explained patients: the explainer, as single), the
    response valid against ``BatchResponse`` and one input digest per patient as single."""
    from serving.batch import score_batch
    from serving.digest import input_digests
    from serving.schemas import BatchPatient, BatchResponse

    reqs = [BatchPatient.model_validate(r.model_dump()) for r in requests_]
    scores = score_batch(snapshot, reqs)
    body = BatchResponse.model_validate_json(scores.body("b1"))
    assert body.n == len(reqs) and [it.index for it in body.items] == list(range(len(reqs)))
    checked = 0
    for req, single_req, item, digest in zip(
        reqs, requests_, body.items, scores.digests, strict=True
    ):
        single = score_request(snapshot, single_req, "t")
        assert item.landmark == single.landmark
        for b, s in zip(item.results, single.results, strict=True):
            assert (b.task, b.landmark, b.eligible, b.reason) == (
                s.task,
                s.landmark,
                s.eligible,
                s.reason,
            )
            if not b.eligible:
                continue
            model = snapshot.get(b.task, b.landmark)
            if req.explain:
                assert b.probability == s.probability  # the same explainer path
                assert len(b.contributions) == len(s.contributions)
            else:
                X = build_patient_features(
                    validate_requests([single_req]).cohort, b.task, b.landmark
                ).X[list(model.columns)]
                # the model's own predict_proba; a logistic model's matrix product sums in
                # another order for 10⁴ rows than for one (BLAS blocking): equal to ~1 ulp
                assert b.probability == pytest.approx(
                    float(model.model.predict_proba(X)[0, 1]), rel=1e-12, abs=1e-15
                )
                assert abs(b.probability - s.probability) < 1e-6 and not b.contributions
            assert b.band == model.band(b.probability)[0]
            checked += 1
        valid = validate_requests([single_req])
        as_of = np.array([np.nan if req.as_of_hours is None else req.as_of_hours])
        assert digest == input_digests(valid.records, valid.patients, as_of, [req.landmark])[0]
    assert checked > len(reqs) // 2
    outputs = [json.loads(o) for o in scores.outputs]
    assert all(len(o) == 2 and set(o[0]) == set(OUTPUT_KEYS) for o in outputs)
