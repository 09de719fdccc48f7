"""JSON error and success responses shared by the routes: one shape for every problem.

Bad input → 422 with one entry per offending field and rule (``loc``, ``msg``, ``type``; the
input value itself is never echoed, it may hold patient data); an audit write that fails →
503 and no score.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi.responses import JSONResponse, Response

from serving.schemas import ErrorResponse

log = logging.getLogger("crs_risk.serving")

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
    403: {"model": ErrorResponse, "description": "The token's role does not allow this."},
    503: {"model": ErrorResponse, "description": "Audit log not writable: nothing scored."},
    413: {"model": ErrorResponse, "description": "Request body too large."},
    422: {"model": ErrorResponse, "description": "Invalid input: every field and rule."},
}
"""The documented error responses of the API routes (OpenAPI ``responses``)."""


def clean_errors(errors: list[Any]) -> list[dict[str, Any]]:
    """Validation errors without the offending input (it may hold patient data)."""
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type"))}
        for e in errors
    ]


def json_response(status: int, content: Any, request_id: str | None = None) -> JSONResponse:
    """A JSON response, with the request id header when given."""
    headers = {"X-Request-ID": request_id} if request_id else None
    return JSONResponse(status_code=status, content=content, headers=headers)


def problems(errors: list[dict[str, Any]]) -> JSONResponse:
    """422 listing every problem."""
    return json_response(422, {"detail": errors})


def model_json(model: Any) -> Response:
    """A response model serialised once by pydantic (FastAPI would validate it again)."""
    return Response(model.model_dump_json(), media_type="application/json")


def audit_failed(rid: str, exc: Exception) -> JSONResponse:
    """503 when a score could not be recorded: no score leaves without its audit record."""
    log.error("request %s: audit write failed (%s); nothing returned", rid, type(exc).__name__)
    return json_response(
        503,
        {"detail": f"the audit log cannot be written; nothing was scored (request id {rid})"},
        rid,
    )
