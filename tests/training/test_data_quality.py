"""Issue 17 §3: the profile's flags computed at ``train`` time, logged to MLflow as aggregates
only, and listed in the model card's data-quality section."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.card import CARD_MD, SECTIONS, card_sections

pytestmark = pytest.mark.slow  # trains a (small) experiment into a real SQLite store

EXPERIMENT = """
name: dq-test
seed: 7
cohort:
  synth: {n: 118, seed: 7}
tasks:
  severe_crs:
    landmarks: [48h]
models:
  m_easix: {}
validation:
  method: repeated_cv
  folds: 3
  repeats: 1
  inner_folds: 2
  bootstrap_ci: 20
  subgroup_bootstrap_ci: 10
thresholds: [0.2]
decision_curve: {start: 0.1, stop: 0.3, step: 0.1}
subgroups: [center]
champion:
  metric: auroc
  slope_band: [0.01, 100.0]
  require_calibrated: false
  fallback: closest_slope
data_quality: {limit_count: 4}  # the names of a `cohort profile --rules` file
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A cohort folder whose IL-6 carries an unqualified ceiling, trained into SQLite."""
    from features.synth import synth_to_folder
    from training.train import train

    root = tmp_path_factory.mktemp("dq")
    cohort = root / "cohort"
    synth_to_folder(cohort, n=118, seed=7)
    m = pd.read_csv(cohort / "measurements.csv", dtype={"patient_id": str})
    il6 = (m["analyte"] == "il6") & m["qualifier"].isna()
    ceiling = float(np.round(np.quantile(m.loc[il6, "value"], 0.95)))
    m.loc[il6, "value"] = m.loc[il6, "value"].clip(upper=ceiling)
    m.to_csv(cohort / "measurements.csv", index=False)
    exp = root / "dq-test.yaml"
    exp.write_text(EXPERIMENT, encoding="utf-8")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(exp, cohort=cohort, tracking_uri=uri)
    assert result.registrations, result.render()
    ids = set(pd.read_csv(cohort / "patients.csv", dtype=str)["patient_id"])
    return {"root": root, "uri": uri, "result": result, "ceiling": ceiling, "ids": ids}


def _parent(trained):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(trained["uri"])
    run = client.get_run(trained["result"].runs[0].run_id)
    return client, client.get_run(run.data.tags["mlflow.parentRunId"])


def test_train_logs_flag_aggregates_on_the_task_run(trained):
    client, parent = _parent(trained)
    m, tags = parent.data.metrics, parent.data.tags
    assert m["data_quality_assay_limit"] >= 1 and m["data_quality_flags"] >= 2
    assert tags["data_quality.assay_limit.il6"] == "true"  # one tag per flagged item, not a list
    assert tags["data_quality.few_events.severe_crs.48h"] == "true"  # n=118 < Riley's minimum
    assert not any(k.startswith("data_quality.") and "," in v for k, v in tags.items())
    path = client.download_artifacts(parent.info.run_id, "data_quality.json", str(trained["root"]))
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    assert payload["thresholds"]["limit_count"] == 4  # the experiment's data_quality block
    il6 = [f for f in payload["flags"] if f["subject"] == "il6"]
    assert il6 and f"{trained['ceiling']:g}" in il6[0]["evidence"]
    text = json.dumps(payload)
    assert not any(f'"{i}"' in text or f" {i} " in text for i in trained["ids"])


def test_model_card_lists_the_flags_under_data_quality(trained, tmp_path):
    from tests.conftest import run_cli

    res = run_cli(
        "card",
        "models:/crs-severe-48h@champion",
        "--tracking-uri",
        trained["uri"],
        "--out",
        tmp_path,
    )
    assert res.exit_code == 0, res.stderr
    md = (tmp_path / CARD_MD).read_text(encoding="utf-8")
    assert ("Data quality", "data-quality") in SECTIONS
    assert "Data quality" in card_sections(md)
    section = md.split("## Data quality", 1)[1].split("\n## ", 1)[0]
    assert "assay_limit" in section and "few_events" in section
    assert "analyte_values: {il6: {ceiling:" in section
