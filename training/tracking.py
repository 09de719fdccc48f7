"""MLflow tracking: where runs go, how experiments are created, what every run carries.

Tracking URI precedence: ``--tracking-uri`` > ``MLFLOW_TRACKING_URI`` > ``sqlite:///mlflow.db``
in the working directory (the embedded default needs no server). For a SQLite store the
artifact location is set explicitly to ``mlartifacts/`` beside the database, so runs started
from different directories agree (MLflow would otherwise resolve ``./mlruns`` against the
working directory at experiment creation). A shared server (``http://…``) chooses its own
artifact store. An unreachable server, or one refusing the credentials, is detected before any
training through MLflow's REST helper and credentials (so MLflow's auth and TLS settings
apply) and reported as one :class:`CrsRiskError` line; MLflow's HTTP retries are shortened
(:data:`FAIL_FAST_ENV`) so a server that dies mid-run fails the command within seconds, not
minutes.

Nothing here ever logs patient-level data: datasets are logged with ``mlflow.log_input`` as the
feature table's schema only (zero rows) with patient and event counts, the cohort digest and a
per-landmark digest (``training.sink.log_feature_schema``).
"""

from __future__ import annotations

import _thread
import functools
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow
from mlflow.exceptions import MlflowException, RestException
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import http_request, verify_rest_response

from features.errors import CrsRiskError

DEFAULT_DB = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
EXPERIMENT_NAMES: dict[str, str] = {
    "severe_crs": "crs-severe",
    "toci_refractory": "crs-toci-refractory",
}
REPO_ROOT = Path(__file__).resolve().parents[1]


def resolve_tracking_uri(cli_uri: str | None = None) -> str:
    """``--tracking-uri`` if given, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///./mlflow.db``."""
    if cli_uri:
        return cli_uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(Path.cwd() / DEFAULT_DB).resolve()}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative paths against the working dir)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :]).resolve()


def artifact_root(uri: str) -> str | None:
    """Explicit artifact root for a SQLite store (``mlartifacts`` beside the file), else None."""
    db = sqlite_path(uri)
    if db is None:
        return None
    return (db.parent / ARTIFACTS_DIR).as_uri()


def experiment_name(task: str) -> str:
    """MLflow experiment of a task: ``crs-severe`` or ``crs-toci-refractory``."""
    try:
        return EXPERIMENT_NAMES[task]
    except KeyError:
        raise CrsRiskError(f"unknown task {task!r}") from None


#: MLflow's HTTP retry settings while crs-risk talks to a store: a dead server must fail in
#: seconds, not after MLflow's default of 7 retries with exponential back-off (minutes per call).
#: Values the user already set in the environment win.
FAIL_FAST_ENV: dict[str, str] = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    # MLflow records which environment variables a model reads while it is logged, by
    # patching ``os.environ`` for the whole process; the store watch thread's reads then race
    # with ``log_model``'s iteration ("Set changed size during iteration"). The record only
    # feeds MLflow's deployment hints, which crs-risk does not use.
    "MLFLOW_RECORD_ENV_VARS_IN_MODEL_LOGGING": "false",
}
#: What the reachability probe asks (MLflow's search-experiments endpoint: any user may).
PROBE_ENDPOINT = "/api/2.0/mlflow/experiments/search"


def _is_http(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https")


def check_reachable(uri: str, timeout: float = 10.0) -> None:
    """Fail fast with one line when the tracking store cannot be used.

    A server is probed with MLflow's own REST helper and credentials, so whatever MLflow honours —
    ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``, ``MLFLOW_TRACKING_TOKEN``, TLS settings
    (``MLFLOW_TRACKING_INSECURE_TLS``, ``MLFLOW_TRACKING_SERVER_CERT_PATH``) — applies here too.
    """
    if _is_http(uri):
        probe_server(uri, timeout)
        return
    parsed = urlparse(uri)
    db = sqlite_path(uri)
    if db is not None:
        if not db.parent.is_dir():
            raise CrsRiskError(f"tracking store folder does not exist: {db.parent}")
        if not os.access(db.parent, os.W_OK):
            raise CrsRiskError(f"tracking store folder is not writable: {db.parent}")
        return
    if parsed.scheme in ("", "file"):
        raise CrsRiskError(
            f"tracking URI {uri!r} is a file store; use sqlite:///path/mlflow.db or an http server"
        )


def probe_server(uri: str, timeout: float = 10.0) -> None:
    """One authenticated MLflow call (search one experiment); CrsRiskError saying what failed.

    MLflow's own REST helper with MLflow's credentials and TLS settings, no retry and a short
    timeout passed as arguments: the environment is only read, never changed, because
    :func:`watch_store` probes from a thread while the main thread logs models (MLflow
    iterates the set of environment variables read during ``log_model``).
    """
    try:
        response = http_request(
            get_default_host_creds(uri),
            PROBE_ENDPOINT,
            "POST",
            max_retries=0,
            timeout=max(1, round(timeout)),
            json={"max_results": 1},
        )
        verify_rest_response(response, PROBE_ENDPOINT)
    except MlflowException as exc:
        raise CrsRiskError(describe_server_error(uri, exc)) from None
    except Exception as exc:  # requests / urllib3 errors that MLflow did not wrap
        raise CrsRiskError(f"tracking server unreachable at {uri}: {type(exc).__name__}") from None


def describe_server_error(uri: str, exc: BaseException) -> str:
    """One line for a failed call to a tracking server (no credentials, no response bodies)."""
    text = str(getattr(exc, "message", "") or exc)
    status = _status_of(exc, text)
    if status == 401:
        how = (
            "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD are wrong"
            if os.environ.get("MLFLOW_TRACKING_USERNAME") or os.environ.get("MLFLOW_TRACKING_TOKEN")
            else "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
            "(or MLFLOW_TRACKING_TOKEN)"
        )
        return f"tracking server at {uri} requires authentication (HTTP 401): {how}"
    if status == 403:
        return f"tracking server at {uri} refused this user (HTTP 403): ask its admin for access"
    if status is not None and status >= 500:
        return (
            f"tracking server at {uri} failed (HTTP {status}); its backend store (database) "
            "may be down"
        )
    if status is not None:
        return f"tracking server at {uri} answered HTTP {status}; is it an MLflow server?"
    if "SSL" in text or "CERTIFICATE" in text.upper():
        return (
            f"TLS to tracking server {uri} failed: set MLFLOW_TRACKING_SERVER_CERT_PATH "
            "(or MLFLOW_TRACKING_INSECURE_TLS=true for a test server)"
        )
    return f"tracking server unreachable at {uri}: {_reason(text)}"


def _status_of(exc: BaseException, text: str) -> int | None:

    m = re.search(r"error code (\d{3})|status code (\d{3})|HTTP (\d{3})", text)
    if m:
        return int(next(g for g in m.groups() if g))

    if isinstance(exc, RestException):  # the server answered with an MLflow error body
        value = exc.get_http_status_code()
        if isinstance(value, int) and value >= 400:
            return value
    return None


def _reason(text: str) -> str:
    for needle, words in (
        ("Connection refused", "connection refused"),
        ("timed out", "timed out"),
        ("Name or service not known", "unknown host"),
        ("Max retries exceeded", "no answer"),
    ):
        if needle in text:
            return words
    first = text.strip().splitlines()[0] if text.strip() else "no answer"
    return first[:160]


@contextmanager
def _env(values: dict[str, str], override: bool = False) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if override:
            os.environ[k] = v
        else:
            os.environ.setdefault(k, v)
    try:
        yield
    finally:
        for k, before in old.items():
            if before is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = before


@contextmanager
def fail_fast_http() -> Iterator[None]:
    """MLflow HTTP calls fail within seconds while inside (user-set values win; restored)."""
    with _env(FAIL_FAST_ENV):
        yield


@dataclass
class StoreWatch:
    """What :func:`watch_store` saw: the first failure, if any."""

    error: str | None = None


WATCH_SIGNAL = signal.SIGUSR1
"""The signal :func:`watch_store` interrupts the main thread with (handled only inside it)."""


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def watch_store(
    uri: str, every: float = 5.0, misses: int = 2, timeout: float = 8.0
) -> Iterator[StoreWatch]:
    """Probe a tracking server every ``every`` s while the block runs (training computes for
    minutes between MLflow calls); after ``misses`` failed probes in a row (each waits at most
    ``timeout`` s), interrupt the main thread so the command stops with one line within
    ``misses × (every + timeout)`` ≤ 30 s instead of at its next MLflow call.

    Only for servers, only in the main thread. Inside, the interrupt surfaces as
    ``KeyboardInterrupt`` (so registration rolls back as for Ctrl-C) and leaves as
    :class:`CrsRiskError`. It is sent as :data:`WATCH_SIGNAL` with its own handler, not as
    SIGINT: a command started in the background of a script (or by a service manager)
    inherits an ignored SIGINT, which ``_thread.interrupt_main`` would silently skip.
    """
    watch = StoreWatch()
    if not _is_http(uri) or threading.current_thread() is not threading.main_thread():
        yield watch
        return
    stop = threading.Event()
    lock = threading.Lock()
    previous = signal.signal(WATCH_SIGNAL, _raise_keyboard_interrupt)

    def loop() -> None:
        failed = 0
        while not stop.wait(every):
            try:
                probe_server(uri, timeout=timeout)
                failed = 0
            except CrsRiskError as exc:
                failed += 1
                if failed >= misses:
                    with lock:
                        if not stop.is_set():
                            watch.error = str(exc)
                            _thread.interrupt_main(WATCH_SIGNAL)
                    return

    thread = threading.Thread(target=loop, name="tracking-watch", daemon=True)
    thread.start()
    try:
        yield watch
    except KeyboardInterrupt:
        if watch.error:
            raise CrsRiskError(f"{watch.error} (stopped mid-run; nothing promoted)") from None
        raise
    finally:
        with lock:
            stop.set()
        signal.signal(WATCH_SIGNAL, previous)


def use_fail_fast_http() -> None:
    """Fail-fast HTTP settings for the rest of this process (CLI commands; user values win)."""
    for k, v in FAIL_FAST_ENV.items():
        os.environ.setdefault(k, v)


def connect(uri: str) -> Any:
    """Point MLflow (tracking and registry) at ``uri`` after checking it is usable.

    For a server, MLflow's HTTP retries are shortened for the rest of the command
    (:data:`FAIL_FAST_ENV`), so a server that dies mid-run fails the command within 30 s.
    """
    if _is_http(uri):
        use_fail_fast_http()
    check_reachable(uri)

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(client: Any, name: str, uri: str) -> str:
    """Id of experiment ``name``, created with an explicit artifact location if new."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    root = artifact_root(uri)
    location = f"{root}/{name}" if root else None
    return client.create_experiment(
        name,
        artifact_location=location,
        tags={"project": "crs-risk", "task": name},
    )


@functools.cache
def code_version() -> str:
    """Installed version of the crs-risk package."""
    try:
        return version("crs-risk")
    except PackageNotFoundError:
        return "0+unknown"


@functools.cache
def git_commit() -> str:
    """Commit of the working tree (``+dirty`` when it has uncommitted changes), or ``unknown``."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


def provenance_tags() -> dict[str, str]:
    """Tags every run carries besides task/landmark/model/cohort."""
    return {"code_version": code_version(), "git_commit": git_commit(), "project": "crs-risk"}
