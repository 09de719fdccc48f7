"""End to end through ``crs-risk train | compare | evaluate`` on a real MLflow SQLite store.

One small experiment is trained once per module (a cohort whose patient identifiers are
distinctive, so the privacy scan can look for them everywhere MLflow keeps anything).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .helpers import write_experiment

SECRET = "PATIENT-SECRET-"
REQUIRED_METRICS = [
    f"{m}{s}"
    for m in ("auroc", "auprc", "brier", "calibration_slope", "calibration_intercept")
    for s in ("", "_ci_low", "_ci_high")
] + ["n_patients", "n_events", "oracle_auroc"]


def secret_cohort(folder: Path, n: int = 200, seed: int = 5, **kw) -> list[str]:
    """A synthetic cohort whose patient ids are PATIENT-SECRET-0001…; returns the ids.

    n = 200: with the causal simulator, 120 patients give 9 events at 48 h, too few for the
    selection-aware procedure to show signal (it then registers nothing, rightly)."""
    from features.io import write_cohort
    from features.synth.simulate import simulate

    sc = simulate(n, seed, **kw)
    old = sc.patients["patient_id"].astype(str)
    mapping = {o: f"{SECRET}{i + 1:04d}" for i, o in enumerate(old)}

    def remap(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(patient_id=frame["patient_id"].astype(str).map(mapping))

    write_cohort(
        folder,
        remap(sc.patients),
        remap(sc.measurements),
        remap(sc.events),
        extra={"truth": remap(sc.truth)},
    )
    return list(mapping.values())


def fast_models() -> dict:
    return {
        "logreg": {"grid": {"C": [0.1]}},
        "xgboost": {"params": {"n_estimators": 30}, "grid": {"max_depth": [2]}},
        "m_easix": {},
        "high_burden": {},
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory, _store_template):
    import mlflow

    from tests.conftest import run_cli

    root = tmp_path_factory.mktemp("e2e")
    ids = secret_cohort(root / "cohort")
    (root / "store").mkdir()
    shutil.copy(_store_template, root / "store" / "mlflow.db")
    uri = f"sqlite:///{root / 'store' / 'mlflow.db'}"
    exp_file = write_experiment(root / "tiny.yaml", root / "cohort", models=fast_models())
    res = run_cli("train", exp_file, "--tracking-uri", uri)
    assert res.exit_code == 0, res.stderr
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    return {"root": root, "uri": uri, "ids": ids, "client": client, "result": res}


def _child_runs(client, name="crs-severe", role="candidate"):
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id])
    return [r for r in runs if r.data.tags.get("role") == role]


def test_runs_carry_provenance_and_metrics(trained):
    client = trained["client"]
    exp = client.get_experiment_by_name("crs-severe")
    assert (
        exp.artifact_location == (trained["root"] / "store" / "mlartifacts" / "crs-severe").as_uri()
    )
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"
    runs = _child_runs(client)
    # the compact published-style baseline is assessed at every landmark without being declared
    assert {r.data.tags["model"] for r in runs} == {
        "logreg",
        "xgboost",
        "m_easix",
        "high_burden",
        "cytokine_max",
    }
    procedures = _child_runs(client, role="champion_procedure")
    assert len(procedures) == 1
    parents = {r.data.tags.get("mlflow.parentRunId") for r in runs + procedures}
    assert len(parents) == 1 and None not in parents  # nested one level under the task run
    for r in runs + procedures:
        tags, params, metrics = r.data.tags, r.data.params, r.data.metrics
        for key in ("task", "landmark", "cohort_digest"):
            assert tags[key] and params[key] == tags[key]
        assert tags["code_version"] and tags["git_commit"]
        assert tags["task"] == "severe_crs" and tags["landmark"] == "48h"
        assert set(REQUIRED_METRICS) <= set(metrics)
        assert metrics["auroc_ci_low"] <= metrics["auroc"] <= metrics["auroc_ci_high"]
        assert 0.5 < metrics["oracle_auroc"] <= 1
        # the dataset is the feature table's schema with zero rows, counts in its source
        inputs = r.inputs.dataset_inputs
        ds = inputs[0].dataset
        source = json.loads(ds.source)
        assert json.loads(ds.profile)["num_rows"] == 0
        assert int(source["tags"]["patients"]) == int(metrics["n_patients"])
        assert int(source["tags"]["events"]) == int(metrics["n_events"])
        assert source["tags"]["cohort_digest"] == tags["cohort_digest"]
        assert "il6_max" in ds.schema and len(json.loads(ds.schema)["mlflow_colspec"]) > 100
    for r in runs:
        assert r.info.run_name.startswith("candidate:") and r.info.run_name.endswith("@48h")
        params = r.data.params
        assert "tuning_grid" in params  # always logged ("none" for untuned baselines)
        tuned = json.loads(params["tuning_grid"]) if params["tuning_grid"] != "none" else {}
        assert not any(f"fixed.{k}" in params for k in tuned)  # no fixed.C while C is tuned
        # honest flag: only models with a fitted calibration step say calibrated
        calibrated = params.get("calibration", "none") != "none"
        assert r.data.tags["calibrated"] == str(calibrated).lower()
    assert procedures[0].info.run_name == "champion:procedure@48h"


def test_artifacts_and_logged_model(trained):
    import mlflow

    client = trained["client"]
    run = next(r for r in _child_runs(client) if r.data.tags["model"] == "xgboost")
    local = Path(
        mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, dst_path=str(trained["root"] / "dl")
        )
    )
    for name in (
        "plots/roc.png",
        "plots/calibration.png",
        "plots/decision_curve.png",
        "plots/precision_recall.png",
        "plots/subgroups.png",
        "metrics.json",
        "predictions/folds.csv",
        "subgroups.csv",
    ):
        assert (local / name).is_file(), name
    folds = pd.read_csv(local / "predictions" / "folds.csv")
    assert list(folds.columns) == ["repeat", "fold", "key", "y", "p"]
    assert sorted(folds["key"]) == list(range(len(folds)))  # a permutation of the patients
    summary = json.loads((local / "metrics.json").read_text())
    assert summary["participants"]["eligible"] == int(run.data.metrics["n_patients"])
    assert summary["sample_size"]["min_n"] > 0
    models = client.search_logged_models([run.info.experiment_id])
    logged = next(m for m in models if m.source_run_id == run.info.run_id)
    info = mlflow.models.get_model_info(f"models:/{logged.model_id}")
    assert info.signature is not None
    inputs = info.signature.inputs.to_dict()
    assert inputs and all(c["type"] == "double" for c in inputs)
    assert logged.metrics and {m.key for m in logged.metrics} >= {"auroc"}


def test_champion_registered_with_alias_history(trained):
    from training.evaluate import allow_model_loading
    from training.registry import alias_history

    client = trained["client"]
    names = {m.name for m in client.search_registered_models()}
    assert names == {"crs-severe-48h"}
    mv = client.get_model_version_by_alias("crs-severe-48h", "champion")
    assert mv.tags["task"] == "severe_crs" and mv.tags["landmark"] == "48h"
    # the version points at the champion-procedure run: it reports the outer-loop estimate
    run = client.get_run(mv.run_id)
    assert run.data.tags["role"] == "champion_procedure"
    assert run.data.metrics["auroc_ci_low"] > 0.5
    assert mv.tags["model"] == run.data.tags["model"]
    hist = alias_history(client, "crs-severe-48h")
    assert len(hist) == 1 and hist[0]["reason"] and hist[0]["version"] == str(mv.version)
    import mlflow

    with allow_model_loading():
        model = mlflow.sklearn.load_model("models:/crs-severe-48h@champion")
    from features.catalog import catalog_for
    from training.models import example_input

    cat = catalog_for("severe_crs", "48h")
    p = model.predict_proba(example_input(cat, [s.name for s in cat]))[:, 1]
    assert 0 <= p[0] <= 1
    assert "registered crs-severe-48h v1 @champion" in trained["result"].stdout


def test_no_patient_identifier_anywhere_in_mlflow(trained):
    """Params, tags, metric names, every artifact file (run and logged models), datasets,
    registered-model and version tags/descriptions: no identifier, no raw row."""
    client = trained["client"]
    ids = trained["ids"]
    texts: list[str] = []
    for exp_name in ("crs-severe",):
        exp = client.get_experiment_by_name(exp_name)
        for run in client.search_runs([exp.experiment_id]):
            d = run.data
            texts += [*d.params.keys(), *d.params.values(), *d.tags.keys(), *d.tags.values()]
            texts += list(d.metrics.keys())
            for di in run.inputs.dataset_inputs:
                ds = di.dataset
                texts += [ds.name, ds.digest, ds.source, ds.schema or "", ds.profile or ""]
    for rm in client.search_registered_models():
        texts += [rm.name, rm.description or "", *rm.tags.keys(), *rm.tags.values()]
        for mv in client.search_model_versions(f"name='{rm.name}'"):
            texts += [mv.description or "", *mv.tags.values()]
    blob = "\n".join(texts)
    artifacts = trained["root"] / "store" / "mlartifacts"
    files = [p for p in artifacts.rglob("*") if p.is_file()]
    assert any(p.name == "model.skops" for p in files) and any(p.suffix == ".png" for p in files)
    assert any(p.name == "input_example.json" for p in files)
    for path in files:
        data = path.read_bytes()
        assert SECRET.encode() not in data, path
    assert SECRET not in blob
    assert not any(i in blob for i in ids[:5])
    # no subgroup cell of fewer than 5 patients is shown; predictions are not in cohort order
    for path in files:
        if path.name == "subgroups.csv":
            sub = pd.read_csv(path)
            shown = sub[~sub["suppressed"].astype(bool)]
            assert (shown["n_patients"] >= 5).all(), path
        if path.name == "folds.csv":
            assert "row" not in pd.read_csv(path, nrows=1).columns, path


def test_compare_prints_leaderboard_with_oracle_gap_and_writes_files(trained, cli, tmp_path):
    res = cli(
        "compare", "--experiment", "crs-severe", "--tracking-uri", trained["uri"], "--out", tmp_path
    )
    assert res.exit_code == 0, res.stderr
    assert "oracle gap" in res.stdout and "auroc [95% CI]" in res.stdout and "★" in res.stdout
    assert "champion procedure" in res.stdout and "repeated_cv" in res.stdout
    board = pd.read_csv(tmp_path / "leaderboard-crs-severe.csv")
    candidates = board[board["role"] == "candidate"]
    assert set(candidates["model"]) == {
        "logreg",
        "xgboost",
        "m_easix",
        "high_burden",
        "cytokine_max",
    }
    assert (board["role"] == "champion procedure").sum() == 1
    assert set(board["validation"]) == {"repeated_cv"}
    assert board["oracle_auroc"].notna().all()
    assert (tmp_path / "leaderboard-crs-severe.html").read_text().startswith("<!doctype html>")
    # only differing params are shown: every model has its own fixed params, seeds are equal
    assert "seed" not in board.columns


def test_evaluate_on_a_new_centre(trained, cli):
    from features.synth import synth_to_folder

    new = trained["root"] / "new-centre"
    synth_to_folder(new, n=150, seed=99, new_center=True)
    res = cli(
        "evaluate",
        "--model",
        "models:/crs-severe-48h@champion",
        "--cohort",
        new,
        "--tracking-uri",
        trained["uri"],
        "--bootstrap",
        "50",
    )
    assert res.exit_code == 0, res.stderr
    assert "calibration_in_the_large" in res.stdout
    client = trained["client"]
    exp = client.get_experiment_by_name("crs-severe")
    evals = [
        r
        for r in client.search_runs([exp.experiment_id])
        if r.data.tags.get("run_type") == "evaluation"
    ]
    assert len(evals) == 1
    m = evals[0].data.metrics
    assert {"auroc", "auroc_ci_low", "calibration_in_the_large", "oe_ratio", "oracle_auroc"} <= set(
        m
    )
    assert evals[0].data.tags["evaluated_model"] == "models:/crs-severe-48h@champion"
    # issue 12 §5: the evaluation metrics are linked to the champion's LoggedModel and dataset
    from training.registry import model_id_of

    model_id = model_id_of(client.get_model_version_by_alias("crs-severe-48h", "champion"))
    assert model_id
    linked = [
        x for x in client.get_logged_model(model_id).metrics if x.run_id == evals[0].info.run_id
    ]
    assert {"auroc", "calibration_in_the_large", "oe_ratio"} <= {x.key for x in linked}
    assert {x.dataset_name for x in linked} == {"severe_crs@48h"}
    assert all(x.dataset_digest for x in linked)


def test_same_config_and_seed_give_identical_metrics(tmp_path, _store_template, cli):
    import mlflow

    cohort = tmp_path / "cohort"
    secret_cohort(cohort, n=90, seed=8)
    exp_file = write_experiment(
        tmp_path / "det.yaml",
        cohort,
        models={"logreg": {"grid": {"C": [0.05, 0.5]}}, "high_burden": {}},
        validation={
            "folds": 3,
            "repeats": 1,
            "inner_folds": 2,
            "bootstrap_ci": 30,
            "subgroup_bootstrap_ci": 10,
        },
        register_models=False,
    )
    from features.build import build_features
    from features.io import load_cohort

    cohort_y = build_features(load_cohort(cohort), "severe_crs", "48h").y.to_numpy()
    metrics = []
    keys = []
    for k in range(2):
        (tmp_path / f"s{k}").mkdir()
        shutil.copy(_store_template, tmp_path / f"s{k}" / "mlflow.db")
        uri = f"sqlite:///{tmp_path / f's{k}' / 'mlflow.db'}"
        assert cli("train", exp_file, "--tracking-uri", uri).exit_code == 0
        client = mlflow.MlflowClient(uri)
        runs = _child_runs(client)
        metrics.append({r.data.tags["model"]: r.data.metrics for r in runs})
        assert not client.search_registered_models()  # register_models: false
        logreg = next(r for r in runs if r.data.tags["model"] == "logreg")
        local = client.download_artifacts(
            logreg.info.run_id, "predictions/folds.csv", str(tmp_path)
        )
        keyed = pd.read_csv(local)
        keys.append(keyed["p"].to_numpy())  # predictions in key order
        assert sorted(keyed["key"]) == list(range(len(cohort_y)))  # a permutation of the rows
        # ... that is not cohort order: the outcomes in key order are not the table's
        assert not np.array_equal(keyed["y"].to_numpy(), cohort_y)
    assert metrics[0] == metrics[1]
    # out-of-fold predictions are keyed by a per-run random index, not by cohort order: the
    # same predictions come out in another order from an identical second run
    assert not np.array_equal(keys[0], keys[1])
    assert np.array_equal(np.sort(keys[0]), np.sort(keys[1]))
    assert np.isfinite(metrics[0]["logreg"]["auroc"])
