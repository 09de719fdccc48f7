"""Issue 12: points that worked but were untested — ``--null-check K`` from the command line,
``calibration: auto`` resolved once from the whole cohort, and Riley's fallback to the compact
set for XGBoost."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from features.catalog import catalog_for
from training.assessment import candidate_models
from training.calibration import choose_method
from training.experiment import Experiment
from training.parsimony import compact_columns, resolve_columns

from .helpers import write_experiment
from .noise import noise_table

TASK, LANDMARK = "severe_crs", "48h"


def _experiment(models: dict) -> Experiment:
    return Experiment.model_validate(
        {
            "name": "points",
            "seed": 1,
            "cohort": {"synth": {"n": 60}},
            "tasks": {TASK: {"landmarks": [LANDMARK]}},
            "models": models,
            "validation": {"folds": 5, "repeats": 1, "calibration": "auto", "null_check": 0},
            "subgroups": [],
        }
    )


def test_auto_calibration_is_resolved_once_from_the_whole_cohort():
    """1,100 patients with 220 events resolve ``auto`` to isotonic; a training fold (880
    patients) would resolve it to sigmoid on its own. Every fold, and the refit, use isotonic."""
    table = noise_table(0, n=1100, events=220)
    cat = catalog_for(TASK, LANDMARK)
    exp = _experiment({"xgboost": {"params": {"n_estimators": 10}, "grid": {"max_depth": [1]}}})
    specs, _, resolved = candidate_models(
        exp, table, cat, ["xgboost"], {"all": [s.name for s in cat]}
    )
    assert resolved == "isotonic"
    assert choose_method("auto", 880, 176) == "sigmoid"  # what a fold would pick by itself
    [xgb] = [s for s in specs if s.built.name == "xgboost"]
    assert xgb.built.estimator.calibration == "isotonic"
    X, y = table.X, table.y.to_numpy(dtype=int)
    folds = StratifiedKFold(5, shuffle=True, random_state=exp.seed).split(X, y)
    methods = {
        clone(xgb.built.estimator).fit(X.iloc[tr], y[tr]).calibration_method_ for tr, _ in folds
    }
    assert methods == {"isotonic"}


def test_riley_fallback_gives_xgboost_the_compact_set():
    """Below Riley's minimum (60 patients, 12 events, 23 usable columns) XGBoost is restricted to
    the task's compact clinical set, says why, and is built and labelled so; a cohort large
    enough keeps every usable column."""
    cat = catalog_for(TASK, LANDMARK)
    cols = [s.name for s in cat]
    compact = compact_columns(TASK, LANDMARK, cat)
    small = noise_table(0)
    choice = resolve_columns(
        "xgboost", cols, task=TASK, landmark=LANDMARK, catalog=cat, X=small.X, y=small.y
    )
    assert choice.compact and choice.columns and set(choice.columns) <= set(compact)
    assert "Riley minimum sample size not met" in choice.note
    exp = _experiment({"xgboost": {"params": {"n_estimators": 10}, "grid": {"max_depth": [1]}}})
    specs, _, _ = candidate_models(exp, small, cat, ["xgboost"], {"all": cols})
    [xgb] = [s for s in specs if s.built.name == "xgboost"]
    assert xgb.choice.compact and xgb.built.feature_set == "clinical"
    assert list(xgb.built.columns) == choice.columns
    large = noise_table(0, n=4000, events=1000)
    wide = resolve_columns(
        "xgboost", cols, task=TASK, landmark=LANDMARK, catalog=cat, X=large.X, y=large.y
    )
    assert not wide.compact and len(wide.columns) > len(compact)


def _procedure_run(uri: str):  # type: ignore[no-untyped-def]
    """The one champion-procedure run of the severe-CRS experiment in the store at ``uri``."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("crs-severe")
    [run] = [
        r
        for r in client.search_runs([exp.experiment_id])
        if r.data.tags.get("role") == "champion_procedure"
    ]
    return run


@pytest.mark.slow
def test_null_check_k_from_the_command_line_is_logged(tmp_path, _store_template, cli):
    """``crs-risk train … --null-check 3`` refits the procedure on 3 permutations: neither the
    automatic 10 (below 100 patients) nor 0, so the flag is what is logged."""
    (tmp_path / "store").mkdir()
    shutil.copy(_store_template, tmp_path / "store" / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    exp_file = write_experiment(
        tmp_path / "null.yaml",
        models={"m_easix": {}},
        validation={"folds": 3, "repeats": 1, "inner_folds": 2, "bootstrap_ci": 20},
        subgroups=[],
    )
    res = cli("train", exp_file, "--tracking-uri", uri, "--no-register", "--null-check", "3")
    assert res.exit_code == 0, res.stderr
    run = _procedure_run(uri)
    assert run.data.params["null_check_k"] == "3" and run.data.params["tuning_grid"]
    assert run.data.metrics["null_check_k"] == 3.0
    assert np.isfinite(run.data.metrics["null_auroc_mean"])


@pytest.mark.slow
def test_procedure_without_a_winner_logs_tuning_grid_and_why_no_null_check(
    tmp_path, _store_template, cli
):
    """No candidate meets the champion rule (slope band [50, 100], no fallback): the procedure
    run still logs ``tuning_grid`` (runs line up in the UI), and ``null_check: 0`` in the file is
    recorded as switched off, not as "cohort above the automatic size"."""
    import json

    import mlflow

    (tmp_path / "store").mkdir()
    shutil.copy(_store_template, tmp_path / "store" / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    exp_file = write_experiment(
        tmp_path / "nowinner.yaml",
        models={"m_easix": {}},
        validation={
            "folds": 3,
            "repeats": 1,
            "inner_folds": 2,
            "bootstrap_ci": 20,
            "null_check": 0,
        },
        subgroups=[],
        champion={"slope_band": [50.0, 100.0], "fallback": "none"},
    )
    res = cli("train", exp_file, "--tracking-uri", uri, "--no-register")
    assert res.exit_code == 0, res.stderr
    run = _procedure_run(uri)
    assert run.data.tags["model"] == "none"  # no winner
    assert run.data.params["tuning_grid"] == "none"
    path = mlflow.MlflowClient(uri).download_artifacts(
        run.info.run_id, "metrics.json", str(tmp_path)
    )
    summary = json.loads(Path(path).read_text(encoding="utf-8"))
    assert summary["null_check"] == {"k": 0, "why": "switched_off"}


def test_card_says_a_null_check_set_to_zero_was_switched_off():
    from training.card_context import honesty_statements
    from training.sink_runs import null_check_off

    def null_line(null) -> str:
        [line] = [s for s in honesty_statements({"null_check": null}, {}) if "Null check" in s]
        return line

    assert "switched off" in null_line({"k": 0, "why": "switched_off"})
    for old in (None, {"k": 0, "why": "above_automatic_size"}):  # None: summaries before
        assert "cohort above the automatic size" in null_line(old)
    declared = _experiment({"m_easix": {}})  # null_check: 0 in the file
    assert null_check_off(declared, 500) == "switched_off"
    auto = Experiment.model_validate(
        {**declared.model_dump(), "validation": {"folds": 5, "repeats": 1}}
    )
    assert null_check_off(auto, 500) == "above_automatic_size"
    # below the automatic size a missing null check can only be K = 0 given explicitly
    assert null_check_off(auto, 59) == "switched_off"


def test_shap_figure_captions_say_apparent_like_their_titles():
    """Every SHAP figure of the card is in-sample (final model on its training patients): its
    caption says "apparent", as the figure title does (``training.explain_global``)."""
    from training.card_gather import FIGURES

    shap = {k: caption for k, (path, caption) in FIGURES.items() if path.startswith("shap/")}
    assert set(shap) == {"importance", "beeswarm", "dependence"}
    assert all("apparent" in caption for caption in shap.values()), shap
