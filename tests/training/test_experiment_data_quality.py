"""Issue 17: an experiment's ``data_quality:`` block sets the flag thresholds training uses —
the names of a ``crs-risk cohort profile --rules`` file, so both flag the same things."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.errors import CrsRiskError
from features.profile import FlagRules, load_rules
from tests.conftest import run_cli
from training.experiment import load_experiment

EXPERIMENT = """
name: dq-rules
cohort:
  synth: {n: 60, seed: 1}
tasks:
  severe_crs: {landmarks: [48h]}
models:
  m_easix: {}
"""


def _write(tmp_path: Path, block: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(EXPERIMENT + block, encoding="utf-8")
    return path


def test_the_data_quality_block_gives_the_profiles_thresholds(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("imputation_share: 0.2\nunit_factors: [10, 1000]\n", encoding="utf-8")
    exp = load_experiment(
        _write(tmp_path, "data_quality:\n  imputation_share: 0.2\n  unit_factors: [10, 1000]\n")
    )
    assert exp.flag_rules() == load_rules(rules)
    assert exp.flag_rules().imputation_share == 0.2
    assert load_experiment(_write(tmp_path, "")).flag_rules() == FlagRules()


def test_an_unknown_or_bad_threshold_exits_2_naming_the_key(tmp_path):
    with pytest.raises(
        CrsRiskError, match=r"data_quality: unknown flag rule\(s\) \['imputation_shares'\]"
    ):
        load_experiment(_write(tmp_path, "data_quality: {imputation_shares: 0.2}\n"))
    with pytest.raises(CrsRiskError, match="flag rule spike_ratio must be > 0"):
        load_experiment(_write(tmp_path, "data_quality: {spike_ratio: 0}\n"))
    res = run_cli("train", _write(tmp_path, "data_quality: {gap_dayz: 3}\n"))
    assert res.exit_code == 2 and "gap_dayz" in res.stderr, res.stderr
