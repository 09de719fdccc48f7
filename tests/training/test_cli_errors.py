"""Bad experiment files, missing cohorts and an unreachable tracking server: one line, exit 2,
nothing registered."""

from __future__ import annotations

import socket
import time

import mlflow
import pytest

from .helpers import write_experiment


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_error_line(res) -> str:
    assert res.exit_code == 2, (res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in res.stderr
    return lines[0]


def _nothing_registered(uri: str) -> None:
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert client.search_registered_models() == []


def test_bad_experiment_file(cli, tmp_path, tracking_uri):
    bad = write_experiment(tmp_path / "bad.yaml", validation={"folds": 0})
    line = _one_error_line(cli("train", bad, "--tracking-uri", tracking_uri))
    assert "bad.yaml" in line and "validation.folds" in line
    _nothing_registered(tracking_uri)
    line = _one_error_line(cli("train", tmp_path / "absent.yaml", "--tracking-uri", tracking_uri))
    assert "experiment file not found" in line


def test_missing_cohort(cli, tmp_path, tracking_uri):
    exp = write_experiment(tmp_path / "x.yaml", tmp_path / "no-such-cohort")
    line = _one_error_line(cli("train", exp, "--tracking-uri", tracking_uri))
    assert "cohort.path: folder not found" in line
    line = _one_error_line(
        cli("train", exp, "--cohort", tmp_path / "elsewhere", "--tracking-uri", tracking_uri)
    )
    assert "cohort folder not found" in line
    (tmp_path / "empty").mkdir()
    line = _one_error_line(
        cli("train", exp, "--cohort", tmp_path / "empty", "--tracking-uri", tracking_uri)
    )
    assert "is not valid" in line and "cohort validate" in line
    _nothing_registered(tracking_uri)


def test_unreachable_tracking_server(cli, tmp_path):
    exp = write_experiment(tmp_path / "x.yaml")
    uri = f"http://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    line = _one_error_line(cli("train", exp, "--tracking-uri", uri))
    assert time.monotonic() - start < 20
    assert "tracking server unreachable" in line and uri in line
    line = _one_error_line(cli("compare", "--tracking-uri", uri))
    assert "unreachable" in line


def test_bad_model_uri_and_unknown_experiment(cli, tmp_path, tracking_uri):
    (tmp_path / "c").mkdir()
    line = _one_error_line(
        cli(
            "evaluate",
            "--model",
            "crs-severe-48h",
            "--cohort",
            tmp_path / "c",
            "--tracking-uri",
            tracking_uri,
        )
    )
    assert "models:/NAME@ALIAS" in line
    line = _one_error_line(
        cli(
            "evaluate",
            "--model",
            "models:/crs-severe-48h@champion",
            "--cohort",
            tmp_path / "c",
            "--tracking-uri",
            tracking_uri,
        )
    )
    assert "not found in the registry" in line
    line = _one_error_line(cli("compare", "--experiment", "nope", "--tracking-uri", tracking_uri))
    assert "no experiment 'nope'" in line


@pytest.mark.parametrize("uri", ["file:///tmp/mlruns", "sqlite:////no/such/dir/mlflow.db"])
def test_unusable_local_store(cli, tmp_path, uri):
    exp = write_experiment(tmp_path / "x.yaml")
    _one_error_line(cli("train", exp, "--tracking-uri", uri))


def test_unknown_feature_group_fails_before_training(cli, tmp_path, tracking_uri):
    exp = write_experiment(tmp_path / "x.yaml", feature_sets={"lean": {"exclude_groups": ["dna"]}})
    line = _one_error_line(cli("train", exp, "--tracking-uri", tracking_uri))
    assert "feature_sets.lean: unknown group 'dna'" in line
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    assert client.get_experiment_by_name("crs-severe") is None  # nothing was logged
