"""``POST /v1/risk``'s fast route (``serving.routes.risk_fast``) answers exactly as FastAPI's.

The fast parse may only take a body FastAPI's route would take, read to the same request; the
app must serve valid JSON through the fast route and everything else through FastAPI's route,
with the same answers. The app here is the real one (routing, gate, fast route, FastAPI's
route, scoring, audit) with the in-process champions (``tests.serving.fast_models``) in place
of a registry.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import random
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import serving.routes.risk_fast as risk_fast
from serving.app import create_app
from serving.audit import open_audit
from serving.examples import example_patients
from serving.loading import Snapshot
from serving.routes.risk_fast import parse
from serving.schemas import EXAMPLE_REQUEST, RiskRequest
from serving.state import Settings

JSON = "application/json"
EXACT_TYPE = "application/vnd.crs-risk+json"  # JSON to FastAPI, not taken by the fast route


def _fastapi(body: bytes) -> RiskRequest | None:
    """What FastAPI's route makes of a JSON body: ``json.loads``, then the model in Python
    mode (None where it answers 4xx)."""
    try:
        return RiskRequest.model_validate(json.loads(body))
    except (ValueError, ValidationError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None


def _odd_values() -> list[Any]:
    return [
        None, True, False, 0, -1, 3, 3.0, 2.5, 1e308, -1e-308, 10**30, "", "3", "2.5", " x ",
        "NaN", "\u00e9", "\ud83d\ude00", [], {}, [1], {"a": 1}, math.inf, math.nan,
    ]  # fmt: skip


def _corpus() -> list[bytes]:
    """Valid bodies and bodies built to find where the two parsers differ."""
    bodies = [e["request"] for e in example_patients()] + [copy.deepcopy(EXAMPLE_REQUEST)]
    out = [json.dumps(b).encode() for b in bodies]
    base = json.dumps(bodies[0])
    out += [
        base.replace('{"', '{"patient_ref": "first", "', 1).encode(),  # duplicate key
        b'{"patient_ref": "a", "patient_ref": "b"}',
        b'{"as_of_hours": NaN}',
        b'{"as_of_hours": Infinity}',
        b'{"as_of_hours": 1e400}',
        b'{"top_k": 100000000000000000000000000000}',
        b'{"top_k": 3.0}',
        b'{"top_k": "3"}',
        b'{"explain": 1}',
        b'{"explain": "true"}',
        b'{"patient_ref": "\\ud800"}',  # a lone surrogate
        b'{"patient_ref": "\\u0000"}',
        b"\xef\xbb\xbf" + json.dumps(bodies[0]).encode(),  # a byte-order mark
        json.dumps(bodies[0]).encode("utf-16"),
        b'{"patient_ref": "\xff"}',  # not UTF-8
        b"  \n" + json.dumps(bodies[0]).encode() + b"\n  ",
        json.dumps(bodies[0]).encode() + b" x",
        b"[]",
        b"null",
        b"{}",
        b'{"unknown": 1}',
        b'{"measurements": [{"analyte": "crp", "hours_from_infusion": 1, "value": 1, '
        b'"unit": "mg/L", "unit": "mg/dL"}]}',
    ]
    rng = random.Random(14)
    odd = _odd_values()
    for _ in range(400):  # one field of a valid body replaced by an odd value
        body = copy.deepcopy(rng.choice(bodies))
        where: Any = body
        path = []
        while isinstance(where, dict | list) and where and rng.random() < 0.7:
            key = rng.choice(list(where)) if isinstance(where, dict) else rng.randrange(len(where))
            path.append(key)
            if not isinstance(where[key], dict | list) or rng.random() < 0.4:
                break
            where = where[key]
        if not path:
            continue
        parent = body
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = rng.choice(odd)
        out.append(json.dumps(body, allow_nan=True).encode())
    return out


def test_the_fast_parse_takes_only_what_fastapi_takes_and_reads_it_the_same() -> None:
    taken = 0
    for body in _corpus():
        fast = parse(JSON, body)
        if fast is None:
            continue
        taken += 1
        exact = _fastapi(body)
        assert exact is not None, body[:200]
        assert fast.model_dump_json() == exact.model_dump_json(), body[:200]
    assert taken >= 40  # the examples and the harmless mutations take the fast route
    # only JSON bodies, and only a JSON media type
    valid = json.dumps(example_patients()[0]["request"]).encode()
    assert parse(JSON, valid) is not None
    assert parse("Application/JSON; charset=utf-8", valid) is not None
    assert parse(None, valid) is None and parse(EXACT_TYPE, valid) is None
    assert parse("text/plain", valid) is None and parse(JSON, b"") is None


@pytest.fixture()
def app(fast_snapshot: Snapshot, tmp_path: Path) -> Any:
    """The real app with the in-process champions (its lifespan would load a registry)."""
    application = create_app(
        Settings(tracking_uri="unused", audit_db=tmp_path / "audit.sqlite", examples=False)
    )
    state = application.state.crs
    state.store = types.SimpleNamespace(snapshot=fast_snapshot)
    state.audit = open_audit(tmp_path / "audit.sqlite")
    state.writer = ThreadPoolExecutor(max_workers=1)
    yield application
    state.writer.shutdown()
    state.audit.close()


def _post(app: Any, body: bytes, ctype: str | None) -> tuple[int, Any]:
    """POST /v1/risk through the app's ASGI interface: status and JSON answer (request id
    dropped: each request gets its own)."""
    sent: list[dict] = []
    headers = [(b"content-length", str(len(body)).encode())]
    if ctype is not None:
        headers.append((b"content-type", ctype.encode()))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/risk", "raw_path": b"/v1/risk", "query_string": b"",
        "root_path": "", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5555),
        "headers": headers, "app": app,
    }  # fmt: skip

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    answer = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    if isinstance(answer, dict):
        answer.pop("request_id", None)
    return sent[0]["status"], answer


def test_the_app_serves_valid_json_on_the_fast_route_and_answers_as_fastapi(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_calls = []
    real = risk_fast.score_one

    async def counted(*args: Any, **kwargs: Any) -> Any:
        fast_calls.append(1)
        return await real(*args, **kwargs)

    monkeypatch.setattr(risk_fast, "score_one", counted)
    bodies = [json.dumps(e["request"]).encode() for e in example_patients()[:4]]
    for body in bodies:
        before = len(fast_calls)
        fast = _post(app, body, JSON)
        assert len(fast_calls) == before + 1  # the fast route answered
        exact = _post(app, body, EXACT_TYPE)
        assert len(fast_calls) == before + 1  # FastAPI's route answered
        assert fast[0] == 200 and fast == exact
    # bodies the fast route does not take: FastAPI's own answers, whatever the content type
    before = len(fast_calls)
    for body, ctype in [
        (b"{bad", JSON),
        (b"", JSON),
        (b'{"top_k": "x"}', JSON),
        (b'{"as_of_hours": NaN}', JSON),
        (bodies[0], "text/plain"),
        (bodies[0], None),
    ]:
        status, answer = _post(app, body, ctype)
        assert status == 422, answer
        assert all(e["loc"][0] == "body" for e in answer["detail"])
        if ctype == JSON:
            assert (status, answer) == _post(app, body, EXACT_TYPE)
    assert len(fast_calls) == before
    status, answer = _post(app, b"{bad", JSON)
    assert answer["detail"] == [
        {"loc": ["body", 1], "msg": "JSON decode error", "type": "json_invalid"}
    ]
