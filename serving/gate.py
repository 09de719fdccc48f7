"""The ASGI middleware in front of every route: request id, bearer token, body-size limit.

Authentication (``serving.auth``): named tokens with roles; the page shell, static assets and
the API documentation load without a token. Missing/wrong token → 401; a token without the
role → 403; oversized body → 413, before any parsing.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable
from typing import Any

from serving.accept import HEAVY_BYTES, Load
from serving.auth import ADMIN_PATHS, is_open

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class Gate:
    """ASGI middleware in front of every route: request id, bearer token, body-size limit.

    Pure ASGI (no per-request task or stream like ``BaseHTTPMiddleware``): the request id (a
    valid ``X-Request-ID`` header or a new UUID) goes to ``request.state.request_id`` and the
    response header; with tokens configured every path but the open ones
    (``serving.auth.is_open``) needs ``Authorization: Bearer <token>`` (401 otherwise), admin
    paths need the ``admin`` role (403), and the token's name goes to
    ``request.state.token_name`` for the audit; bodies above ``limit`` bytes, declared or
    streamed, get 413 before any parsing.
    """

    def __init__(self, app: Any, limit: int, tokens: Any, load: Load | None = None) -> None:
        self.app = app
        self.limit = limit
        self.tokens = tokens
        self.load = load if load is not None else Load()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        state["token_name"] = None
        path = scope.get("path") or ""
        if self.tokens and not is_open(path):
            scheme, _, value = headers.get(b"authorization", b"").partition(b" ")
            token = self.tokens.check(value.strip()) if scheme.lower() == b"bearer" else None
            if token is None:
                await _send_json(
                    send,
                    401,
                    b'{"detail":"missing or wrong bearer token"}',
                    rid,
                    [(b"www-authenticate", b"Bearer")],
                )
                return
            if path in ADMIN_PATHS and token.role != "admin":
                await _send_json(
                    send, 403, b'{"detail":"this needs a token with the admin role"}', rid, []
                )
                return
            state["token_name"] = token.name
        declared = -1
        with contextlib.suppress(ValueError):
            declared = int(headers.get(b"content-length", b"-1"))
        if declared > self.limit:
            await self._reject(send, rid)
            return
        heavy = declared >= HEAVY_BYTES  # busy until answered (serving.accept)
        self.load.heavy += heavy
        try:
            await self._pass(scope, receive, send, rid)
        finally:
            self.load.heavy -= heavy

    async def _pass(self, scope: dict, receive: Callable, send: Callable, rid: str) -> None:
        """Read the body (413 above the limit), then run the app with it and the id header."""
        chunks: list[bytes] = []
        size = 0
        more = scope.get("method") not in ("GET", "HEAD")
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._reject(send, rid)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        await self.app(scope, replaying(body, receive), send_with_id)

    async def _reject(self, send: Callable, rid: str) -> None:
        payload = b'{"detail":"request body too large: the limit is %d bytes"}' % self.limit
        await _send_json(send, 413, payload, rid, [(b"connection", b"close")])


def media_type(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` header, lower case, without parameters ("" if none)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def replaying(body: bytes, receive: Callable) -> Callable:
    """An ASGI receive that gives ``body`` (already read) once, then whatever the connection
    says next (a disconnect)."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(
    send: Callable, status: int, payload: bytes, rid: str, extra: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"x-request-id", rid.encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
