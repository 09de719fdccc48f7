"""What the service holds while it runs: its settings and state, and the route dependency.

:class:`State` lives on ``app.state.crs`` (``serving.app.create_app``); routes receive it
through the :data:`AppState` dependency (FastAPI ``Depends``), never through a global, so two
apps in one process (tests) never share models or an audit log.
"""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request

from serving.accept import Load

TOKEN_ENV = "CRS_RISK_TOKEN"


@dataclass
class Settings:
    """Service configuration (CLI options and environment)."""

    tracking_uri: str
    audit_db: Path
    token: str | None = None  # legacy single token (admin, named "env")
    max_body_bytes: int = 16 * 1024 * 1024
    examples: bool = True
    token_file: Path | None = None
    audit_key_file: Path | None = None


@dataclass
class State:
    """The running service: models (``serving.store.ModelStore``), audit log and its writer
    thread, tokens, the synthetic examples and the page."""

    settings: Settings
    store: Any = None  # serving.store.ModelStore, opened by the lifespan
    audit: Any = None  # serving.audit.AuditLog, opened by the lifespan
    examples: list[dict[str, Any]] = field(default_factory=list)
    startup_error: str | None = None
    writer: Any = None  # the audit writer thread (concurrent.futures executor)
    tokens: Any = None  # serving.auth token set (falsy: no tokens configured)
    page: str = ""  # the clinician page (templates/index.html)
    load: Load = field(default_factory=Load)  # heavy requests in flight (serving.accept)


async def get_state(request: Request) -> State:
    """The app's :class:`State` (async: resolved on the event loop, no thread hop)."""
    state: State = request.app.state.crs
    return state


AppState = Annotated[State, Depends(get_state)]
"""A route parameter of this type receives the app's :class:`State`."""


def swapped(state: State, snap: Any, before: dict[str, str], token: str | None = None) -> None:
    """After a reload (admin with its token's name, or the registry poll; the old snapshot
    already dropped): audit the change and release the old models."""
    state.audit.event(
        "reload",
        {
            "before": before,
            "after": {m.name: m.version for m in snap.models.values()},
            "token": token or "registry poll",
        },
    )
    # The old models were frozen with everything else at start-up: thaw, collect what no
    # request holds any more (their reference cycles included), freeze the survivors —
    # the new models among them — again. One full collection per reload.
    gc.unfreeze()
    gc.collect()
    gc.freeze()


async def audit_ready(state: State) -> bool:
    """Whether the audit log can be written now (probe on the writer thread, bounded by the
    log's busy timeout: a locked file makes /readyz 503, never slow /healthz)."""
    audit, writer = state.audit, state.writer
    if audit is None or writer is None:
        return False
    try:
        return bool(await asyncio.wrap_future(writer.submit(audit.writable)))
    except Exception:
        return False
