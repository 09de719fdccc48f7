"""Faults on a private team stack (started by team/up.sh in a temporary folder, own ports):
the ``mlflow server`` killed during registration and PostgreSQL stopped mid-training each give
one clear error within 30 s and leave no half-promoted set; after a restart a re-run completes.
While the registry is down, the service keeps serving and ``/readyz`` says so.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from team.env import read_env_file
from tests.training.helpers import write_experiment

from .conftest import (
    BIN,
    REPO,
    Team,
    base_env,
    free_port,
    start_service,
    stop_service,
)

pytestmark = pytest.mark.team
NAMES = ("crs-severe-24h", "crs-severe-48h")


def _up(env: dict[str, str]) -> None:
    res = subprocess.run(
        ["bash", str(REPO / "team" / "up.sh")], env=env, capture_output=True, text=True, timeout=400
    )
    assert res.returncode == 0, res.stdout[-1500:] + res.stderr[-1500:]


@pytest.fixture(scope="module")
def private(team: Team) -> Iterator[tuple[Team, dict[str, str]]]:
    """A second, private stack (the shared one is never stopped by a test)."""
    folder = Path(tempfile.mkdtemp(prefix="crs-team-faults-"))
    folder.chmod(0o755)  # the postgres user must reach the cluster folder
    stack_env = {
        **base_env(),
        "TEAM_DIR": str(folder / "stack"),
        "TEAM_PG_PORT": str(free_port()),
        "TEAM_MLFLOW_PORT": str(free_port()),
        "TEAM_MLFLOW_WORKERS": "1",
    }
    _up(stack_env)
    values = read_env_file(folder / "stack" / "team.env")
    work = folder / "work"
    work.mkdir()
    yield Team(values["MLFLOW_TRACKING_URI"], {**base_env(), **values}, work), stack_env
    subprocess.run(["bash", str(REPO / "team" / "down.sh")], env=stack_env, timeout=120)
    shutil.rmtree(folder, ignore_errors=True)


def _exp(team: Team, name: str, c: float) -> Path:
    return write_experiment(
        team.folder / f"{name}.yaml",
        name=name,
        tasks={"severe_crs": {"landmarks": ["24h", "48h"]}},
        models={"logreg": {"grid": {"C": [c]}}},
    )


def _champions(team: Team) -> dict[str, str]:
    client = team.client()
    return {n: str(client.get_registered_model(n).aliases.get("champion")) for n in NAMES}


def _n_versions(team: Team) -> int:
    client = team.client()
    return sum(len(client.search_model_versions(f"name='{n}'")) for n in NAMES)


def _train(team: Team, exp: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "crs-risk"), "train", str(exp), "--promote"],
        env=team.env,
        cwd=team.folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen, since: float) -> tuple[int, str, float]:
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err, time.monotonic() - since


def _error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


def test_server_killed_during_registration(private, tmp_path):
    team, stack_env = private
    seed = team.run("train", _exp(team, "seed", 0.1), timeout=600)
    assert seed.returncode == 0, seed.stderr[-1500:]
    before, n0 = _champions(team), _n_versions(team)
    svc = start_service(team, tmp_path / "audit.sqlite", workers=1, poll_s=1.0)
    try:
        body = httpx.get(svc.url + "/v1/examples", timeout=30).json()["examples"][0]["request"]
        proc = _train(team, _exp(team, "killed", 1.0))
        while _n_versions(team) == n0:  # registration has begun: a new version exists
            assert proc.poll() is None, proc.communicate()[1][-1500:]
            time.sleep(0.05)
        pid = int((Path(stack_env["TEAM_DIR"]) / "mlflow.pid").read_text())
        os.killpg(pid, signal.SIGKILL)
        killed = time.monotonic()
        code, err, took = _finish(proc, killed)
        assert code != 0 and took < 30, (code, took)
        line = _error_line(err)
        assert "tracking" in line or "left behind" in line, line
        # the service keeps serving what it holds and says the registry is unreachable
        deadline = time.monotonic() + 30
        while (ready := httpx.get(svc.url + "/readyz", timeout=10).json())[
            "registry"
        ] != "unreachable":
            assert time.monotonic() < deadline, ready
            time.sleep(0.5)
        assert httpx.post(svc.url + "/v1/risk", json=body, timeout=30).status_code == 200
        _up(stack_env)  # restart the server
        assert _champions(team) == before  # no half-promoted set
        again = team.run("train", _exp(team, "again", 1.0), "--promote", timeout=600)
        assert again.returncode == 0, again.stderr[-1500:]
        after = _champions(team)
        assert all(after[n] != before[n] for n in NAMES)
        deadline = time.monotonic() + 60  # the service picks the new set up by itself
        while httpx.get(svc.url + "/readyz", timeout=10).json()["versions"] != after:
            assert time.monotonic() < deadline
            time.sleep(0.5)
    finally:
        stop_service(svc)


def test_postgres_stopped_mid_training(private):
    team, stack_env = private
    before = _champions(team)
    client = team.client()
    exp_id = client.get_experiment_by_name("crs-severe").experiment_id
    n_runs = len(client.search_runs([exp_id], max_results=1000))
    proc = _train(team, _exp(team, "pg-stop", 0.5))
    while len(client.search_runs([exp_id], max_results=1000)) == n_runs:  # training has begun
        assert proc.poll() is None, proc.communicate()[1][-1500:]
        time.sleep(0.2)
    pg_ctl = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1]
    pgdata = Path(stack_env["TEAM_DIR"]) / "pg"
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*as_pg, str(pg_ctl), "-D", str(pgdata), "-m", "immediate", "stop"], check=True)
    stopped = time.monotonic()
    code, err, took = _finish(proc, stopped)
    assert code != 0 and took < 30, (code, took)
    assert "tracking" in _error_line(err)
    _up(stack_env)  # PostgreSQL back; the server reconnects (pool pre-ping)
    assert _champions(team) == before
    again = team.run("train", _exp(team, "pg-again", 0.5), timeout=600)
    assert again.returncode == 0, again.stderr[-1500:]
