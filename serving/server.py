"""``crs-risk serve``: check the configuration, then run the app under uvicorn.

Tracking URI: ``--tracking-uri`` > ``MLFLOW_TRACKING_URI`` > ``sqlite:///mlflow.db`` (as for
training, ``training.tracking.resolve_tracking_uri``). The bearer token comes from the
environment (``CRS_RISK_TOKEN``), never from the command line (it would show in ``ps``). The
audit log must be writable and at least one champion must load, or the command exits 2 with
one line saying why, before the port is opened.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from features.errors import CrsRiskError
from serving.app import TOKEN_ENV, Settings, create_app


def settings_from(tracking_uri: str | None, audit_db: Path, max_body_mb: float = 16.0) -> Settings:
    """Settings from CLI options and the environment."""
    from training.tracking import resolve_tracking_uri

    token = os.environ.get(TOKEN_ENV) or None
    if token is not None and len(token) < 16:
        raise CrsRiskError(f"{TOKEN_ENV} must be at least 16 characters")
    return Settings(
        tracking_uri=resolve_tracking_uri(tracking_uri),
        audit_db=Path(audit_db),
        token=token,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
    )


def serve(
    host: str,
    port: int,
    tracking_uri: str | None,
    audit_db: Path,
    max_body_mb: float = 16.0,
    log_level: str = "info",
    workers: int = 1,
) -> None:
    """Start the service; returns when it stops. Start-up problems raise CrsRiskError.

    ``workers`` > 1 runs that many replicas behind the port (``serving.replicas``)."""
    from serving.audit import open_audit
    from training.tracking import check_reachable

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = settings_from(tracking_uri, audit_db, max_body_mb)
    # Fail before loading anything: the audit file must be writable and the store usable.
    # The lifespan opens the audit log and loads the champions (once) when the app starts.
    open_audit(settings.audit_db).close()
    check_reachable(settings.tracking_uri)
    if workers > 1:
        from serving.replicas import bind, serve_replicas

        sock = bind(host, port)
        serve_replicas(workers, sock, lambda s: _run(settings, host, port, log_level, s))
        return
    _run(settings, host, port, log_level)


def _run(
    settings: Settings, host: str, port: int, log_level: str, sock: socket.socket | None = None
) -> None:
    """One service process under uvicorn (on ``sock`` when given: a replica)."""
    import uvicorn
    import uvloop

    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        http="httptools",  # C HTTP parser (h11 is pure Python: ≈0.3 ms per request more)
    )
    server = uvicorn.Server(config)
    # libuv event loop: less per-request overhead than asyncio's
    uvloop.run(server.serve(sockets=None if sock is None else [sock]))
    error = app.state.crs.startup_error
    if error is not None:
        raise CrsRiskError(error)
    if not server.started:
        raise CrsRiskError("the service did not start (see the messages above)")
