"""``/healthz`` (the process answers) and ``/readyz`` (models loaded, audit log writable)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from serving.responses import json_response
from serving.schemas import ErrorResponse
from serving.state import AppState, audit_ready
from serving.store import registry_status

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Alive")
def healthz() -> dict[str, str]:
    return {"status": "alive"}


@router.get(
    "/readyz",
    summary="Models loaded",
    responses={
        503: {
            "model": ErrorResponse,
            "description": "Models not loaded, or audit log not writable.",
        }
    },
)
async def readyz(state: AppState) -> Any:
    store = state.store
    if store is None or not store.ready:
        return json_response(503, {"detail": "models not loaded"})
    if not await audit_ready(state):
        return json_response(503, {"detail": "audit log not writable: scoring is refused"})
    return {"status": "ready", "models": len(store.snapshot.models), **registry_status(store)}
