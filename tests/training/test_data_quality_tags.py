"""Issue 12 §5: data-quality tags filter — one tag per flagged subject, never a comma list."""

from __future__ import annotations

from training.data_quality import tags_of

PAYLOAD = {
    "n_flags": 4,
    "counts": {"few_events": 2, "assay_limit": 2},
    "subjects": {
        "few_events": ["severe_crs@0h", "severe_crs@24h"],
        "assay_limit": ["crp", "fibrinogen"],
        "all_missing": [],
    },
}


def test_one_tag_per_flagged_subject():
    tags = tags_of(PAYLOAD)
    assert tags == {
        "data_quality.few_events.severe_crs.0h": "true",
        "data_quality.few_events.severe_crs.24h": "true",
        "data_quality.assay_limit.crp": "true",
        "data_quality.assay_limit.fibrinogen": "true",
    }
    assert not any("," in k or "," in v for k, v in tags.items())


def test_tags_are_valid_mlflow_keys_and_filter_runs(tmp_path):
    """The keys are accepted by a real store, and ``search_runs`` finds the run by one of them
    (a comma list could only be matched with LIKE)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("dq-tags", artifact_location=str(tmp_path / "art"))
    flagged = client.create_run(exp).info.run_id
    client.create_run(exp)
    for key, value in tags_of(PAYLOAD).items():
        client.set_tag(flagged, key, value)
    hits = client.search_runs([exp], 'tags."data_quality.few_events.severe_crs.24h" = "true"')
    assert [r.info.run_id for r in hits] == [flagged]
    assert not client.search_runs([exp], 'tags."data_quality.assay_limit.il6" = "true"')
