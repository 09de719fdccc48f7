"""The team suite: runs against the stack of ``make team-up`` (PostgreSQL + ``mlflow server``
with basic-auth), whose ``team.env`` is named by ``$CRS_RISK_TEAM_ENV`` (``make test-team``
sets it). Without it every test here is skipped. Commands run as real subprocesses with the
team user's credentials in the environment, exactly as a team member would run them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from team.env import read_env_file
from tests.training.helpers import write_experiment

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TEAM_ENV = "CRS_RISK_TEAM_ENV"


@dataclass
class Team:
    """Where the stack is and how a team member reaches it."""

    uri: str
    env: dict[str, str]
    folder: Path
    extra: dict[str, str] = field(default_factory=dict)

    def run(self, *args: object, timeout: float = 900, **env: str) -> subprocess.CompletedProcess:
        """``crs-risk ARGS`` as a subprocess with the team credentials."""
        return subprocess.run(
            [str(BIN / "crs-risk"), *(str(a) for a in args)],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.folder,
        )

    def client(self):  # an MLflow client authenticated as the team user
        import mlflow

        for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            os.environ[k] = self.env[k]
        return mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CRS_RISK_"))}
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    return env


@pytest.fixture(scope="session")
def team(tmp_path_factory: pytest.TempPathFactory) -> Team:
    path = os.environ.get(TEAM_ENV)
    if not path or not Path(path).is_file():
        pytest.skip(f"no team stack: run `make team-up` and set {TEAM_ENV} (make test-team)")
    values = read_env_file(Path(path))
    env = {**base_env(), **values}
    return Team(values["MLFLOW_TRACKING_URI"], env, tmp_path_factory.mktemp("team"))


@pytest.fixture(scope="session")
def quickstart(team: Team) -> Path:
    """The quickstart trained against the team stack once (its cohort folder is reused).

    ``$CRS_RISK_TEAM_QUICKSTART`` names the output of a quickstart already trained against this
    stack, to iterate on the suite without retraining (CI never sets it).
    """
    given = os.environ.get("CRS_RISK_TEAM_QUICKSTART")
    if given and (Path(given) / "cohort").is_dir():
        return Path(given)
    out = team.folder / "qs"
    t0 = time.monotonic()
    res = team.run("demo", "--out", out, "--jobs", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    (team.folder / "quickstart-seconds").write_text(f"{time.monotonic() - t0:.1f}")
    return out


def tiny_experiment(path: Path, cohort: Path, name: str, landmarks: list[str], c: float) -> Path:
    """A fast experiment on ``cohort``: logreg with one C at ``landmarks``, 3-fold CV."""
    return write_experiment(
        path,
        cohort,
        name=name,
        tasks={"severe_crs": {"landmarks": landmarks}},
        models={"logreg": {"grid": {"C": [c]}}},
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    url: str
    process: subprocess.Popen


def start_service(team: Team, audit: Path, workers: int = 1, poll_s: float = 2.0) -> Service:
    """``crs-risk serve --workers N`` on the team stack; waits until every replica is ready."""
    port = free_port()
    env = {**team.env, "CRS_RISK_REGISTRY_POLL_S": str(poll_s)}
    proc = subprocess.Popen(
        [
            str(BIN / "crs-risk"),
            "serve",
            *("--port", str(port), "--audit-db", str(audit), "--workers", str(workers)),
            *("--log-level", "warning"),
        ],
        env=env,
        cwd=team.folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    seen: set[int] = set()
    while len(seen) < workers:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.terminate()
            raise AssertionError("service not ready in 300 s")
        try:
            with httpx.Client(timeout=5) as c:  # fresh connections reach different replicas
                r = c.get(url + "/readyz", headers={"Connection": "close"})
                if r.status_code == 200:
                    seen.add(r.json()["replica"])
        except httpx.HTTPError:
            time.sleep(0.5)
    return Service(url, proc)


def stop_service(service: Service) -> None:
    service.process.terminate()
    try:
        service.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        service.process.kill()


@pytest.fixture
def serving(team: Team, quickstart: Path, tmp_path: Path) -> Iterator[Service]:
    svc = start_service(team, tmp_path / "audit.sqlite", workers=2)
    yield svc
    stop_service(svc)
