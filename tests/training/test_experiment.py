"""Experiment files: the shipped ones validate; bad ones fail with one line naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.errors import CrsRiskError
from training.experiment import load_experiment, normalise_landmark
from training.presets import experiment_path, preset_names, preset_path

from .helpers import write_experiment

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["quickstart", "full", "car22"])
def test_shipped_experiments_validate(name):
    path = preset_path(name) or REPO / "experiments" / f"{name}.yaml"
    exp = load_experiment(path)
    assert exp.name == name
    assert exp.tasks and exp.models


def test_presets_are_package_data_and_train_takes_their_names():
    assert preset_names() == ["full", "quickstart"]
    quickstart = preset_path("quickstart")
    assert quickstart is not None and quickstart.parent.name == "presets"
    assert experiment_path(Path("quickstart")) == quickstart
    assert experiment_path(Path("quickstart.yaml")) == quickstart
    assert experiment_path(Path("no-such-preset")) == Path("no-such-preset")
    assert preset_path("../experiments/car22") is None


def test_car22_is_severe_crs_only_from_the_shared_folder():
    exp = load_experiment(REPO / "experiments" / "car22.yaml")
    assert list(exp.tasks) == ["severe_crs"]
    assert exp.cohort.import_ is not None
    assert (
        exp.resolve(exp.cohort.import_.sources[0]) == (REPO.parent / "shared/data/car22").resolve()
    )


def test_landmark_spellings():
    assert normalise_landmark(48) == "48h"
    assert normalise_landmark("0") == "0h"
    assert normalise_landmark("72H") == "72h"
    assert normalise_landmark("first_toci") == "first_toci"
    assert normalise_landmark("decision") == "decision"
    assert normalise_landmark("168h") == "168h" and normalise_landmark(336) == "336h"
    for bad in ("soon", "36.5h", "337", "-24"):
        with pytest.raises(ValueError):
            normalise_landmark(bad)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"validation": {"folds": 1}}, "validation.folds"),
        ({"models": {"forest": {}}}, "unknown model 'forest'"),
        ({"tasks": {"severe_crs": {"landmarks": ["36.5h"]}}}, "whole number of hours from 0"),
        ({"tasks": {"severe_crs": {"landmarks": ["400"]}}}, "whole number of hours from 0 to 336"),
        ({"tasks": {"severe_crs": {"landmarks": ["decision"]}}}, "landmark 'decision' not"),
        ({"tasks": {"toci_refractory": {"landmarks": ["48h"]}}}, "use decision, first_toci"),
        ({"tasks": {"sepsis": {"landmarks": ["0h"]}}}, "unknown task 'sepsis'"),
        ({"thresholds": [0.2, 1.5]}, "thresholds"),
        ({"champion": {"slope_band": [1.2, 0.8]}}, "champion.slope_band"),
        ({"validation": {"method": "holdout"}}, "validation.method"),
        ({"cohort": {}}, "cohort: give exactly one of path, synth or import"),
        ({"seeds": 3}, "seeds: Extra inputs are not permitted"),
        ({"models": {"logreg": {"params": {"Cc": 1}}}}, "models.logreg.params.Cc: unknown"),
        ({"models": {"logreg": {"grid": {"penality": [1]}}}}, "models.logreg.grid.penality"),
        ({"models": {"xgboost": {"grid": {"depth": [2]}}}}, "models.xgboost.grid.depth"),
        ({"models": {"m_easix": {"grid": {"C": [1]}}}}, "models.m_easix.grid.C: is not tunable"),
        ({"validation": {"method": "bootstrap_optimism"}}, "bootstrap_optimism is no longer"),
        ({"primary": "forest"}, "primary: 'forest' is not declared"),
    ],
)
def test_bad_experiment_names_file_and_key(tmp_path, override, message):
    path = write_experiment(tmp_path / "bad.yaml", **override)
    with pytest.raises(CrsRiskError) as err:
        load_experiment(path)
    text = str(err.value)
    assert text.startswith(str(path))
    assert message in text
    assert "\n" not in text


def test_not_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: x\ntasks: [unclosed\n", encoding="utf-8")
    with pytest.raises(CrsRiskError, match="not valid YAML at line"):
        load_experiment(bad)
    with pytest.raises(CrsRiskError, match="experiment file not found"):
        load_experiment(tmp_path / "nope.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n", encoding="utf-8")
    with pytest.raises(CrsRiskError, match="expected a mapping"):
        load_experiment(scalar)


def test_grouped_cv_with_more_folds_than_centres_is_exit_2_naming_the_key(
    tmp_path, cli, tracking_uri
):
    from features.synth import synth_to_folder

    synth_to_folder(tmp_path / "cohort", n=60, seed=3, centers=2)
    path = write_experiment(
        tmp_path / "grouped.yaml",
        tmp_path / "cohort",
        validation={"folds": 3, "repeats": 1, "group_by_center": True},
    )
    res = cli("train", path, "--tracking-uri", tracking_uri)
    assert res.exit_code == 2
    line = res.stderr.strip()
    assert "\n" not in line and "validation.folds" in line and "2 centre(s)" in line
