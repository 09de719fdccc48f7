"""``crs-risk serve``, ``crs-risk audit verify``, ``crs-risk token add``: thin wiring over serving.

Registered on the root app by the one table of ``serving.cli``. Each command imports what it
runs (the service with FastAPI and uvicorn; the audit log's SQLite and hashing) only when it
runs, so ``crs-risk --help`` stays fast.
"""

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
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="Named tokens with roles, hashed (`crs-risk token add` writes it).",
        ),
    ] = None,
    audit_key_file: Annotated[
        Path | None,
        typer.Option(
            "--audit-key-file",
            help="Pseudonymisation key of the audit log, mode 0600 (default: <audit-db>.key; "
            "or set CRS_RISK_AUDIT_KEY).",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="TLS certificate (PEM): serve HTTPS.")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="TLS private key (PEM).")
    ] = None,
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

    With a token file (or CRS_RISK_TOKEN) the API routes need `Authorization: Bearer <token>`;
    the page and the documentation load without one, and the page asks for a token. Only
    admin tokens reload models.
    """
    from serving.server import serve  # noqa: PLC0415 - keeps crs-risk --help fast

    serve(
        host,
        port,
        tracking_uri,
        audit_db,
        max_body_mb,
        log_level,
        token_file,
        audit_key_file,
        tls_cert,
        tls_key,
        workers,
    )


audit_app = typer.Typer(help="The service's audit log.", no_args_is_help=True)
token_app = typer.Typer(help="Named access tokens of the service.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(
    audit_db: Annotated[Path, typer.Argument(help="The audit log (SQLite) to check.")],
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            help="Its key file (default: <audit-db>.key; or set CRS_RISK_AUDIT_KEY).",
        ),
    ] = None,
) -> None:
    """Check the audit log's hash chains: exit 0 when intact, 1 naming what was deleted or
    changed."""
    from serving.audit_verify import verify  # noqa: PLC0415 - keeps crs-risk --help fast

    result = verify(audit_db, key_file)
    if result.ok:
        typer.echo(
            f"ok: {result.scores} score record(s) and {result.events} service event(s); "
            f"hash chains intact"
            + (
                f" ({result.unchained} older record(s) predate the chain)"
                if result.unchained
                else ""
            )
        )
        return
    for p in result.problems:
        typer.echo(f"broken: {p}", err=True)
    raise typer.Exit(1)


@token_app.command("add")
def token_add(
    name: Annotated[str, typer.Argument(help="Who uses the token (recorded in the audit log).")],
    token_file: Annotated[Path, typer.Option("--token-file", help="The token file.")],
    role: Annotated[str, typer.Option(help="score or admin.")] = "score",
) -> None:
    """Create a named token; prints it once (only its SHA-256 digest is stored)."""
    from serving.auth import add_token  # noqa: PLC0415 - keeps crs-risk --help fast

    typer.echo(add_token(token_file, name, role))
