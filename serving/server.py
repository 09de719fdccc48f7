"""``crs-risk serve``: check the configuration, then run the app under uvicorn.

Tracking URI: ``--tracking-uri`` > ``MLFLOW_TRACKING_URI`` > ``sqlite:///mlflow.db`` (as for
training, ``training.tracking.resolve_tracking_uri``). Tokens come from a token file of named,
hashed tokens (``--token-file``, ``serving.auth``) and/or the environment (``CRS_RISK_TOKEN``),
never from the command line (it would show in ``ps``). Serving beyond loopback without a token
logs a warning at start-up; ``--tls-cert``/``--tls-key`` serve HTTPS. The audit log must be
writable (its key outside it: ``--audit-key-file`` or ``CRS_RISK_AUDIT_KEY``) and at least one
champion must load, or the command exits 2 with one line saying why, before the port is
opened.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

import uvicorn
import uvloop
from uvicorn.server import STARTUP_FAILURE

from features.errors import CrsRiskError
from serving.accept import Acceptor, Board
from serving.app import create_app
from serving.audit import open_audit
from serving.auth import is_loopback, load_tokens
from serving.replicas import bind, serve_replicas
from serving.state import TOKEN_ENV, Settings
from training.tracking import check_reachable, resolve_tracking_uri


def settings_from(
    tracking_uri: str | None,
    audit_db: Path,
    max_body_mb: float = 16.0,
    token_file: Path | None = None,
    audit_key_file: Path | None = None,
) -> Settings:
    """Settings from CLI options and the environment."""
    token = os.environ.get(TOKEN_ENV) or None
    load_tokens(token_file, token)  # fail now, with the file's line and rule
    return Settings(
        tracking_uri=resolve_tracking_uri(tracking_uri),
        audit_db=Path(audit_db),
        token=token,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        token_file=token_file,
        audit_key_file=audit_key_file,
    )


def exposure_warning(host: str, settings: Settings) -> str | None:
    """The start-up warning for a service reachable beyond this machine without a token."""
    if is_loopback(host) or settings.token or settings.token_file:
        return None
    return (
        f"warning: serving on {host} without a token: anyone who can reach this port can score "
        f"patients and read the models; give --token-file or set {TOKEN_ENV}"
    )


def serve(
    host: str,
    port: int,
    tracking_uri: str | None,
    audit_db: Path,
    max_body_mb: float = 16.0,
    log_level: str = "info",
    token_file: Path | None = None,
    audit_key_file: Path | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    workers: int = 1,
) -> None:
    """Start the service; returns when it stops. Start-up problems raise CrsRiskError.

    ``workers`` > 1 runs that many replicas behind the port (``serving.replicas``)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = settings_from(tracking_uri, audit_db, max_body_mb, token_file, audit_key_file)
    if (tls_cert is None) != (tls_key is None):
        raise CrsRiskError("TLS needs both --tls-cert and --tls-key")
    for tls in (tls_cert, tls_key):
        if tls is not None and not tls.is_file():
            raise CrsRiskError(f"TLS file {tls} does not exist")
    warning = exposure_warning(host, settings)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    # Fail before loading anything: the audit file must be writable and the store usable.
    # The lifespan opens the audit log and loads the champions (once) when the app starts.
    open_audit(settings.audit_db, settings.audit_key_file).close()
    check_reachable(settings.tracking_uri)
    if workers > 1:
        sock = bind(host, port)
        board = Board(workers)  # before the fork: shared by the replicas (serving.accept)
        serve_replicas(
            workers,
            sock,
            lambda s, i: _run(settings, host, port, log_level, tls_cert, tls_key, (s, board, i)),
        )
        return
    _run(settings, host, port, log_level, tls_cert, tls_key)


def _run(
    settings: Settings,
    host: str,
    port: int,
    log_level: str,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    replica: tuple[socket.socket, Board, int] | None = None,
) -> None:
    """One service process under uvicorn; a ``replica`` (shared socket, load board, its slot)
    takes its connections on that socket through ``serving.accept``."""
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
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
    )
    if replica is None:
        server, sockets = uvicorn.Server(config), None
    else:
        sock, board, i = replica
        app.state.crs.load.attach(board, i)
        server, sockets = _Replica(config, board, i), [sock]
    # libuv event loop: less per-request overhead than asyncio's
    uvloop.run(server.serve(sockets=sockets))
    error = app.state.crs.startup_error
    if error is not None:
        raise CrsRiskError(error)
    if not server.started:
        raise CrsRiskError("the service did not start (see the messages above)")


class _Replica(uvicorn.Server):
    """uvicorn's server, taking its connections on the shared socket through a load-aware
    :class:`serving.accept.Acceptor` instead of ``loop.create_server`` (the rest of
    ``uvicorn.Server.startup`` as it is: lifespan, protocol, started)."""

    def __init__(self, config: uvicorn.Config, board: Board, i: int) -> None:
        super().__init__(config)
        self.board, self.i = board, i

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(STARTUP_FAILURE)
        config = self.config

        def protocol() -> Any:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )

        acceptors = [Acceptor(s, protocol, self.board, self.i, config.ssl) for s in sockets or []]
        self.servers = acceptors  # type: ignore[assignment]
        self.started = True
