"""Serving fixtures: ONE quickstart store per test session, a real ``crs-risk serve`` process.

The quickstart store takes minutes, so it is built once per session even with pytest-xdist:
workers share a folder beside their base temp dir and a file lock; the first one builds it,
the others wait and reuse it. Each worker starts its own service process on a free port.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from serving.loading import Snapshot
from tests.serving.fast_models import build_snapshot
from tests.serving.stores import CRS_RISK, quickstart_store


def _shared_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder holding ``mlflow.db`` with the quickstart champions registered.

    ``CRS_RISK_TEST_STORE=DIR`` reuses an existing store (a developer's shortcut).
    """
    given = os.environ.get("CRS_RISK_TEST_STORE")
    if given:
        return Path(given)
    base = _shared_base(tmp_path_factory)
    folder = base / "serving-quickstart"
    with open(base / "serving-quickstart.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (folder / "READY").exists():
                quickstart_store(folder)
                (folder / "READY").write_text("ok")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return folder


@pytest.fixture(scope="session")
def fast_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """In-process champions (``tests.serving.fast_models``): fitted once per worker, no store."""
    return build_snapshot(tmp_path_factory.mktemp("single-fast"))


@pytest.fixture(scope="session")
def store_uri(store_dir: Path) -> str:
    return f"sqlite:///{store_dir / 'mlflow.db'}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    url: str
    token: str
    audit_db: Path
    process: subprocess.Popen
    log: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.auth, timeout=timeout)


def start_service(
    store_uri: str,
    folder: Path,
    token: str | None = None,
    timeout: float = 180.0,
    args: tuple[str, ...] = (),
    env_extra: dict[str, str] | None = None,
    scheme: str = "http",
) -> Service:
    """``crs-risk serve`` as a real process on a free port; waits for /readyz. ``args``: more
    options (token file, TLS); ``scheme``: https with TLS (certificates not verified)."""
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store_uri, **(env_extra or {})}
    env.pop("CRS_RISK_TOKEN", None)
    if token and "--token-file" not in args:
        env["CRS_RISK_TOKEN"] = token
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"serve-{port}.log"
    audit = folder / f"audit-{port}.sqlite"
    proc = subprocess.Popen(
        [
            str(CRS_RISK),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--audit-db",
            str(audit),
            "--log-level",
            "warning",
            *args,
        ],
        stdout=open(log, "w"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        env=env,
        cwd=folder,
    )
    url = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"crs-risk serve exited {proc.returncode}: {log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/readyz", timeout=2, verify=False).status_code == 200:
                return Service(url, token or "", audit, proc, log)
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"crs-risk serve not ready after {timeout} s: {log.read_text()}")


def stop_service(service: Service) -> None:
    service.process.terminate()
    try:
        service.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        service.process.kill()


@pytest.fixture(scope="session")
def service(store_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The real service with a bearer token, for this worker's session."""
    svc = start_service(store_uri, tmp_path_factory.mktemp("service"), secrets.token_hex(16))
    yield svc
    stop_service(svc)


@pytest.fixture(scope="session")
def examples(service: Service) -> list[dict]:
    with service.client() as c:
        return c.get("/v1/examples").json()["examples"]
