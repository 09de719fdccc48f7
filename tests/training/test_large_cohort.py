"""On 2,000 synthetic patients the 72 h champion for severe CRS beats every published baseline
and the 0 h model (paired bootstrap on the same patients), and ``compare`` shows each model's
gap to the oracle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.metrics import auroc, paired_difference

from .helpers import write_experiment

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def large(tmp_path_factory, _store_template):
    import shutil

    from features.synth import synth_to_folder
    from training.train import train

    root = tmp_path_factory.mktemp("large")
    synth_to_folder(root / "cohort", n=2000, seed=2024)
    shutil.copy(_store_template, root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    exp = write_experiment(
        root / "large.yaml",
        root / "cohort",
        seed=2024,
        tasks={"severe_crs": {"landmarks": ["0h", "72h"]}},
        models={
            "logreg": {"grid": {"C": [0.1, 0.3, 1.0]}},
            "xgboost": {"params": {"n_estimators": 400}, "grid": {"max_depth": [2, 3]}},
            "m_easix": {},
            "cytokine3": {},
            "fever_mcp1": {},
            "high_burden": {},
        },
        validation={
            "folds": 5,
            "repeats": 1,
            "inner_folds": 3,
            "bootstrap_ci": 300,
            "subgroup_bootstrap_ci": 50,
        },
        champion={
            "metric": "auroc",
            "slope_band": [0.8, 1.25],
            "models": ["logreg", "xgboost"],
            "fallback": "closest_slope",
        },
    )
    return train(exp, tracking_uri=uri), uri, root


def test_72h_champion_beats_baselines_and_the_0h_model(large):
    result, _, _ = large
    champ = next(r for r in result.registrations if r.name == "crs-severe-72h")
    runs72 = {r.model: r for r in result.candidates if r.landmark == "72h"}
    # the champion's own numbers: the outer-loop predictions of the whole procedure
    best = next(r for r in result.procedures if r.run_id == champ.candidate.run_id)
    baselines = [m for m in ("m_easix", "cytokine3", "fever_mcp1", "high_burden") if m in runs72]
    assert len(baselines) == 4
    for m in baselines:
        diff = paired_difference(
            auroc, best.y, best.predictions, runs72[m].predictions, n_boot=500, seed=1
        )
        assert diff.value > 0, (m, diff)
        # Teachey's cytokine signature is nearly as good as anything at 72 h in the causal
        # simulator (issue 13: real-scale cytokines): the champion must not be worse; it must
        # clearly beat the pre-infusion and rule baselines
        assert diff.low > (-0.01 if m == "cytokine3" else 0.0), (m, diff)
    # the 0 h champion, scored on the same patients (those still eligible at 72 h)
    champ0 = next(r for r in result.registrations if r.name == "crs-severe-0h")
    run0 = next(
        r for r in result.runs if r.landmark == "0h" and r.run_id == champ0.candidate.run_id
    )
    p0 = pd.Series(run0.predictions[0], index=run0.ids).reindex(best.ids).to_numpy()
    assert np.isfinite(p0).all()
    diff = paired_difference(auroc, best.y, best.predictions, p0[None, :], n_boot=500, seed=2)
    assert diff.low > 0, diff


def test_compare_shows_the_gap_to_the_oracle(large, cli, tmp_path):
    _, uri, _ = large
    res = cli("compare", "--experiment", "crs-severe", "--tracking-uri", uri, "--out", tmp_path)
    assert res.exit_code == 0, res.stderr
    board = pd.read_csv(tmp_path / "leaderboard-crs-severe.csv")
    candidates = board[board["role"] == "candidate"]
    # 6 models (+ the compact cytokine baseline) at 72 h, ≥ 4 at 0 h (two baselines need
    # post-infusion data); one champion procedure per landmark
    assert len(candidates[candidates["landmark"] == "72h"]) == 7
    assert len(candidates[candidates["landmark"] == "0h"]) >= 4
    assert (board["role"] == "champion procedure").sum() == 2
    assert board["oracle_auroc"].notna().all()
    assert (board["oracle_auroc"] >= board["auroc"] - 0.05).all()
    assert "oracle gap" in res.stdout
    for model in board["model"]:
        assert model in res.stdout
