"""Issue 12 §6: a real cohort's stored training range is not a single patient's value, and the
service still warns against it (in words that say what the bound is); version-1 files, which
registered models in users' stores still carry, are read as before.

Unit checks on ``training.distribution`` and one in-process pass through
``serving.scoring.score_request`` with a fitted model (no MLflow store)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serving.checks import model_checks, row_warnings
from training.distribution import K_BEYOND, bounds, outside, training_distribution


def _numbers(entry: dict) -> list[float]:
    return [*entry.get("quantiles", {}).values(), *entry.get("range", [])]


@pytest.mark.parametrize("n", [12, 59, 118, 2000])
def test_real_cohort_stores_no_single_patients_extreme(n):
    rng = np.random.default_rng(n)
    X = pd.DataFrame({"crp_pre_ld": rng.lognormal(2, 1, n), "ldh_pre_ld": rng.normal(300, 80, n)})
    dist = training_distribution(X)
    assert dist["range_rule"] == {"rule": "k_beyond", "k": K_BEYOND}
    for c in X.columns:
        x = np.sort(X[c].to_numpy())
        entry = dist["columns"][c]
        extremes = set(x[:K_BEYOND].tolist()) | set(x[-K_BEYOND:].tolist())
        assert not extremes & set(_numbers(entry)), (c, n)
        lo, hi = entry["range"]
        assert (x <= lo).sum() >= K_BEYOND and (x >= hi).sum() >= K_BEYOND
        for q in _numbers(entry):  # every stored number has ≥ k training rows either side
            assert (x < q).sum() >= K_BEYOND and (x > q).sum() >= K_BEYOND, (c, n, q)


def test_few_values_give_no_range_and_synthetic_keeps_min_max():
    X = pd.DataFrame({"crp_pre_ld": np.arange(11.0)})
    real = training_distribution(X)["columns"]["crp_pre_ld"]
    assert "range" not in real and set(real["quantiles"]) == {"0.5"} and bounds(real) is None
    assert outside(training_distribution(X), "crp_pre_ld", 1e6) is None
    synth = training_distribution(X, synthetic=True)
    assert synth["range_rule"] == {"rule": "min_max"}
    assert synth["columns"]["crp_pre_ld"]["range"] == [0.0, 10.0]
    assert outside(synth, "crp_pre_ld", 11.0) == (0.0, 10.0)


def test_a_version_1_file_is_still_read_with_its_min_max_wording():
    """What models registered before issue 12 carry: quantiles 0 and 1 are the range."""
    v1 = {
        "version": 1,
        "n_rows": 4,
        "columns": {"crp_pre_ld": {"n": 4, "n_missing": 0, "quantiles": {"0": 2.0, "1": 40.0}}},
        "products": None,
        "n_centers": None,
    }
    assert outside(v1, "crp_pre_ld", 41.0) == (2.0, 40.0)
    cols = ("crp_pre_ld",)
    [[w]] = row_warnings(model_checks(cols, v1, None), cols, np.array([[90.0]]), "0h")
    assert w["code"] == "outside_training_data"
    assert "above the highest value in the training data (40 mg/L)" in w["message"]


def test_the_service_warns_against_the_real_cohorts_bound():
    from features.build import build_features
    from features.catalog import catalog_for
    from features.io import load_cohort, write_cohort
    from features.synth import simulate
    from serving.bands import DEFAULT_THRESHOLDS, band_evidence
    from serving.examples import to_request
    from serving.explaining import input_columns, make_explainer, prepare
    from serving.loading import LoadedModel, Snapshot
    from serving.registry_names import model_name
    from serving.schemas import RiskRequest
    from serving.scoring import score_request
    from tests.training.test_explain import fit

    sc = simulate(160, seed=21)
    with tempfile.TemporaryDirectory() as tmp:
        write_cohort(Path(tmp), sc.patients, sc.measurements, sc.events)
        cohort = load_cohort(Path(tmp))
    task, lm = "severe_crs", "0h"
    table = build_features(cohort, task, lm)
    model = fit("logreg", table.X, table.y.to_numpy(dtype=int), catalog_for(task, lm), None)
    explainer = make_explainer(model)
    columns = input_columns(model, explainer)
    prepare(model, explainer, columns)
    X = table.X[list(columns)].astype(float)
    dist = training_distribution(X)  # the real-cohort rule (the default)
    loaded = LoadedModel(
        name=model_name(task, lm),
        task=task,
        landmark=lm,
        version="privacy-test",
        run_id=None,
        model=model,
        columns=columns,
        thresholds=DEFAULT_THRESHOLDS,
        metrics={},
        n_patients=None,
        n_events=None,
        cohort_digest=None,
        model_type=None,
        bands=band_evidence(
            pd.DataFrame({"y": table.y.to_numpy(), "p": model.predict_proba(X)[:, 1]}),
            DEFAULT_THRESHOLDS,
        ),
        explainer=explainer,
        distribution=dist,
        interval=None,
    )
    snap = Snapshot(models={(task, lm): loaded}, missing=(), loaded_at="", tracking_uri="")

    p = sc.patients.iloc[0]
    m = sc.measurements[sc.measurements["patient_id"] == p["patient_id"]].copy()
    e = sc.events[sc.events["patient_id"] == p["patient_id"]]
    ldh = (m["analyte"] == "ldh") & (m["hours_from_infusion"] < 0)
    ldh_cols = [c for c in X.columns if c.startswith("ldh_") and not c.endswith(("_n", "_missing"))]
    m.loc[ldh, "value"] = float(X[ldh_cols].max().max()) * 1.5  # beyond every training patient
    body = to_request(p, m, e, 0.0)
    body["landmark"] = lm
    resp = score_request(snap, RiskRequest.model_validate(body), "t")
    [result] = [r for r in resp.results if r.task == task]
    warned = [w for w in result.warnings if w.code == "outside_training_data"]
    assert warned, [w.message for w in result.warnings]
    [w] = [w for w in warned if w.field in ldh_cols]  # one warning per clinical variable
    assert "above the training range" in w.message
    assert f"at least {K_BEYOND} training patients" in w.message
    hi, top = dist["columns"][w.field]["range"][1], float(X[w.field].max())
    shown = lambda v: f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"  # noqa: E731 (as serving)
    assert hi < top and f"({shown(hi)} U/L," in w.message and shown(top) not in w.message
