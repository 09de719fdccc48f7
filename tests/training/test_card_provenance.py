"""Issue 13, R6: the SYNTHETIC banner follows the cohort folder's manifest, not ``truth.csv``.

A simulated folder shared without its truth file (and under a name that does not say
"synthetic") is trained on for real; its model card and the service's ``/v1/models`` (what the
page's banner reads) must both call it synthetic, through the one shared decision
(``features.manifest.run_is_synthetic``).
"""

from __future__ import annotations

import warnings

import pytest

from features.manifest import RUN_TAG, read_manifest, run_is_synthetic
from tests.training.helpers import write_experiment
from training.card import CARD_HTML, CARD_MD

MODEL = "models:/crs-severe-48h@champion"


@pytest.mark.parametrize(
    ("tags", "metrics", "label", "sources", "expected"),
    [
        ({RUN_TAG: "true"}, {}, "site-a", [], True),  # the tag decides …
        ({RUN_TAG: "false"}, {"oracle_auroc": 0.9}, "synthetic n=5 seed=1", [], False),
        ({}, {"oracle_auroc": 0.9}, "", [], True),  # … older runs: the old evidence
        ({}, {}, "synthetic n=118 seed=7", [], True),
        ({}, {}, "", ['{"cohort": "synthetic n=118 seed=7"}'], True),
        ({}, {}, "site-a", ['{"cohort": "site-a"}'], False),
        ({}, {}, "", [], None),  # nothing recorded: unknown
    ],
)
def test_run_is_synthetic_tag_first_then_the_old_rule(tags, metrics, label, sources, expected):
    assert run_is_synthetic(tags, metrics, label, sources) is expected


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    """A synthetic folder without truth.csv, named like a site, trained and registered."""
    from features.synth import synth_to_folder
    from training.train import train

    root = tmp_path_factory.mktemp("provenance")
    cohort = root / "site-a"
    synth_to_folder(cohort, n=120, seed=3)
    for name in ("truth.csv", "truth.parquet"):
        (cohort / name).unlink(missing_ok=True)
    manifest = read_manifest(cohort)
    assert manifest is not None and manifest.is_synthetic
    exp = write_experiment(root / "tiny.yaml", cohort_dir=cohort)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(exp, tracking_uri=uri)
    assert result.registrations, result.render()
    return {"root": root, "uri": uri, "result": result}


def test_card_banner_reads_the_manifest_without_truth(shared_store, cli):
    run = shared_store["result"].runs[0]
    assert "oracle_auroc" not in run.metrics  # no truth file: the old rule saw nothing
    out = shared_store["root"] / "card"
    res = cli("card", MODEL, "--out", out, "--tracking-uri", shared_store["uri"])
    assert res.exit_code == 0, res.stderr
    md = (out / CARD_MD).read_text(encoding="utf-8")
    assert "Trained on SYNTHETIC data" in md
    assert "site-a (synthetic)" in md
    assert 'id="synthetic-warning"' in (out / CARD_HTML).read_text(encoding="utf-8")


def test_models_listing_says_synthetic_without_truth(shared_store, tmp_path):
    """``/v1/models`` (whose ``synthetic`` field the page's banner shows) agrees with the card."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.state import Settings

    token = "provenance-token-0123456789"
    app = create_app(
        Settings(shared_store["uri"], tmp_path / "audit.sqlite", token=token, examples=False)
    )
    with TestClient(app) as c:
        r = c.get("/v1/models", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    models = r.json()["models"]
    assert models and all(m["synthetic"] is True for m in models)
