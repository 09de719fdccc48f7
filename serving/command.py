"""``crs-risk serve``: the Typer command (thin; heavy imports happen when it runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri",
            help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db).",
        ),
    ] = None,
    audit_db: Annotated[
        Path, typer.Option("--audit-db", help="Append-only SQLite audit log of every score.")
    ] = Path("audit.sqlite"),
    max_body_mb: Annotated[
        float, typer.Option("--max-body-mb", help="Largest request body accepted (MB).", min=0.01)
    ] = 16.0,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    workers: Annotated[
        int,
        typer.Option(
            help="Replicas behind the port; each polls the registry every "
            "$CRS_RISK_REGISTRY_POLL_S seconds (default 30, 0 = off) and swaps in promotions.",
            min=1,
            max=64,
        ),
    ] = 1,
) -> None:
    """Serve the registered champions: JSON API (/docs) and the clinician page (/).

    Set CRS_RISK_TOKEN to require `Authorization: Bearer <token>` on every route except
    /healthz and /readyz (and to enable POST /v1/models/reload).
    """
    from serving.server import serve

    serve(host, port, tracking_uri, audit_db, max_body_mb, log_level, workers)
