"""Champion rule and alias history (real MLflow SQLite store under tmp_path)."""

from __future__ import annotations

from training.champion import Candidate, choose_champion
from training.experiment import ChampionSpec
from training.promotion import RegistrationBatch, set_alias_with_history
from training.registry import (
    alias_history,
    registered_name,
)


def _cand(model, auroc, slope, calibrated=True):
    return Candidate(
        "severe_crs",
        "48h",
        model,
        "all",
        f"run-{model}",
        f"m-{model}",
        calibrated,
        {
            "auroc": auroc,
            "auroc_ci_low": auroc - 0.1,
            "auroc_ci_high": auroc + 0.1,
            "calibration_slope": slope,
        },
    )


def test_registered_names():
    assert registered_name("severe_crs", "48h") == "crs-severe-48h"
    assert registered_name("toci_refractory", "first_toci") == "crs-toci-refractory-first-toci"
    assert registered_name("toci_refractory", "decision") == "crs-toci-refractory-decision"


def test_champion_is_best_auroc_among_calibrated_models_in_the_slope_band():
    cands = [
        _cand("xgboost", 0.90, 0.55),  # best AUROC but slope outside the band
        _cand("logreg", 0.84, 0.95),
        _cand("m_easix", 0.86, 1.10, calibrated=False),  # not calibrated
        _cand("high_burden", 0.70, 1.0),
    ]
    rule = ChampionSpec(slope_band=(0.8, 1.25), require_calibrated=True)
    best, reason = choose_champion(cands, rule)
    assert best.model == "logreg"
    assert "auroc 0.840" in reason and "[0.8, 1.25]" in reason
    best, _ = choose_champion(cands, ChampionSpec(slope_band=(0.5, 1.25), require_calibrated=True))
    assert best.model == "xgboost"
    best, _ = choose_champion(cands, ChampionSpec(slope_band=(0.8, 1.25), require_calibrated=False))
    assert best.model == "m_easix"
    best, _ = choose_champion(cands, ChampionSpec(slope_band=(0.8, 1.25), models=["xgboost"]))
    assert best is None
    best, reason = choose_champion(
        cands, ChampionSpec(slope_band=(0.8, 1.25), models=["xgboost"], fallback="closest_slope")
    )
    assert best.model == "xgboost" and "fallback" in reason


def test_alias_history_records_every_change_with_reason(client):
    client.create_registered_model("crs-severe-48h")
    for _ in range(2):
        client.create_model_version("crs-severe-48h", source="file:///nowhere")
    set_alias_with_history(client, "crs-severe-48h", "champion", "1", "first training")
    set_alias_with_history(client, "crs-severe-48h", "champion", "2", "better AUROC")
    hist = alias_history(client, "crs-severe-48h")
    assert [h["version"] for h in hist] == ["1", "2"]
    assert [h["previous_version"] for h in hist] == [None, "1"]
    assert hist[1]["reason"] == "better AUROC"
    assert str(client.get_model_version_by_alias("crs-severe-48h", "champion").version) == "2"


def test_rollback_leaves_no_half_registered_model(client):
    batch = RegistrationBatch(client)
    batch.created_models.append("crs-severe-0h")
    client.create_registered_model("crs-severe-0h")
    client.create_model_version("crs-severe-0h", source="file:///nowhere")
    batch.created_versions.append(("crs-severe-0h", "1"))
    # an existing model whose alias this batch moved
    client.create_registered_model("crs-severe-72h")
    for _ in range(2):
        client.create_model_version("crs-severe-72h", source="file:///nowhere")
    set_alias_with_history(client, "crs-severe-72h", "champion", "1", "old")
    batch.previous_aliases.append(("crs-severe-72h", "1"))
    key, _ = set_alias_with_history(client, "crs-severe-72h", "champion", "2", "new")
    batch.history_tags.append(("crs-severe-72h", key))
    batch.created_versions.append(("crs-severe-72h", "2"))
    batch.rollback()
    names = {m.name for m in client.search_registered_models()}
    assert names == {"crs-severe-72h"}
    assert str(client.get_model_version_by_alias("crs-severe-72h", "champion").version) == "1"
    assert [h["version"] for h in alias_history(client, "crs-severe-72h")] == ["1"]
    assert [str(v.version) for v in client.search_model_versions("name='crs-severe-72h'")] == ["1"]
