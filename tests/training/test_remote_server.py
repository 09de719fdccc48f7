"""A shared MLflow server works by setting the URI: train against a real ``mlflow server``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mlflow
import pytest

from .helpers import write_experiment

pytestmark = pytest.mark.slow  # the server needs 12–20 s to start


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [
            str(mlflow_bin),
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PATH": f"{mlflow_bin.parent}:{os.environ.get('PATH', '')}"},
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{uri}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("mlflow server did not start")
            time.sleep(0.5)
        yield uri, tmp_path / "server-artifacts"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_train_and_register_on_a_shared_server(server, cli, tmp_path, monkeypatch):
    uri, artifacts = server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the documented way: set the URI, nothing else
    exp = write_experiment(
        tmp_path / "remote.yaml",
        models={"logreg": {"grid": {"C": [0.1]}}, "high_burden": {}},
    )
    res = cli("train", exp)
    assert res.exit_code == 0, res.stderr
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    mv = client.get_model_version_by_alias("crs-severe-48h", "champion")
    assert mv.tags["landmark"] == "48h"
    exp_obj = client.get_experiment_by_name("crs-severe")
    runs = client.search_runs([exp_obj.experiment_id], "tags.role = 'candidate'")
    assert {r.data.tags["model"] for r in runs} == {"logreg", "high_burden", "cytokine_max"}
    assert any(p.name == "roc.png" for p in artifacts.rglob("*"))  # proxied artifact store
    board = cli("compare", "--experiment", "crs-severe", "--out", tmp_path)
    assert board.exit_code == 0 and "logreg" in board.stdout
