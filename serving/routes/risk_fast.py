"""``POST /v1/risk`` ahead of FastAPI's route: a JSON body that parses and validates goes
straight to :func:`serving.routes.risk.score_one`; every other body goes to the FastAPI route.

Why: FastAPI's request handling of the route — the content-type check, ``json.loads``, the
dependency solver, validating the parsed body in Python mode — cost ≈0.3–0.5 ms of a 5 ms
budget: in-process ASGI calls of the real app, alternated, read 4.93 → 4.48 ms p50 with this
path on a fast stretch of the machine and 7.50 → 7.09 ms on a slow one; over HTTP, two live
services alternating 20 blocks of 200 requests, 0.93× (block minimum 5.59 → 5.01 ms). Here
the body is validated from its bytes in one pydantic call (``RiskRequest.model_validate_json``),
and the scoring, the audit and the response are the route's own (one function,
:func:`score_one`).

Exactness: only a body whose media type is ``application/json`` and that
``model_validate_json`` accepts is taken here — FastAPI parses such a body with ``json.loads``
and validates the same model, which accepts it too, with the same values (the tests compare
both on the examples and on bodies built to find the differences: duplicate keys, non-finite
and huge numbers, a byte-order mark, lone surrogates, numbers as text). Anything else — an
empty body, another content type, invalid JSON, a field problem — is replayed to FastAPI's
route, so errors read exactly as the OpenAPI document and FastAPI say. The route itself stays
in the OpenAPI document; this path is not listed twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError
from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import Scope

from serving.gate import media_type, replaying
from serving.routes.risk import score_one
from serving.schemas import RiskRequest
from serving.state import get_state

PATH = "/v1/risk"
EXACT = "crs_risk.exact"
"""Scope key of a request replayed to FastAPI's route (the fast route then does not match)."""


def parse(content_type: str | None, body: bytes) -> RiskRequest | None:
    """The request when this path takes it (a JSON body the model accepts), else None."""
    if not body or media_type(content_type) != "application/json":
        return None
    try:
        return RiskRequest.model_validate_json(body)
    except ValidationError:
        return None


class RiskFastPath:
    """The ASGI app of the fast route; ``router``: the app's router, which a body this path
    does not take is replayed to (marked :data:`EXACT`, so FastAPI's route answers)."""

    def __init__(self, router: Callable[..., Any]) -> None:
        self.router = router

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        request = Request(scope, receive)
        body = await request.body()
        req = parse(request.headers.get("content-type"), body)
        if req is None:
            scope[EXACT] = True
            await self.router(scope, replaying(body, receive), send)
            return
        state = await get_state(request)
        response = await score_one(state, req, request.state.request_id, request.state.token_name)
        await response(scope, receive, send)


class _FastRoute(Route):
    """``POST /v1/risk``, except for a request replayed to FastAPI's route."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get(EXACT):
            return Match.NONE, {}
        return super().matches(scope)


def install(app: FastAPI) -> None:
    """Put the fast route in front of every other (FastAPI's ``POST /v1/risk`` among them)."""
    fast = _FastRoute(PATH, RiskFastPath(app.router), methods=["POST"], include_in_schema=False)
    app.router.routes.insert(0, fast)
