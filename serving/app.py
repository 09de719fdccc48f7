"""The FastAPI application: routes, validation errors, auth, body limit, audit, the page.

``create_app(settings)`` builds an app whose lifespan opens the audit log (refusing to start if
it cannot be written), resolves and loads every champion once (``serving.store``) and prepares
the synthetic examples. Nothing happens at import.

Error contract: bad input → 422 with one entry per offending field and rule (``loc``, ``msg``,
``type``; the input value itself is never echoed); oversized body → 413; unknown route → 404;
missing/wrong token → 401; a token without the role → 403; audit log not writable → 503 (no
score without a record); every other failure is a JSON message with the request id, never a
traceback.

Authentication (``serving.auth``): named tokens with roles; the page shell, static assets and
the API documentation load without a token. Audit writes run on one writer thread
(``serving.audit``), never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from features.errors import CrsRiskError
from serving.audit import OUTPUT_KEYS, AuditRecord
from serving.auth import ADMIN_PATHS, is_open, load_tokens
from serving.schemas import (
    NOTICE,
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    ExamplesResponse,
    Metric,
    ModelInfo,
    ModelsResponse,
    RiskRequest,
    RiskResponse,
)

log = logging.getLogger("crs_risk.serving")
HERE = Path(__file__).resolve().parent
TOKEN_ENV = "CRS_RISK_TOKEN"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
    403: {"model": ErrorResponse, "description": "The token's role does not allow this."},
    503: {"model": ErrorResponse, "description": "Audit log not writable: nothing scored."},
    413: {"model": ErrorResponse, "description": "Request body too large."},
    422: {"model": ErrorResponse, "description": "Invalid input: every field and rule."},
}


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
    settings: Settings
    store: Any = None
    audit: Any = None
    examples: list[dict[str, Any]] = field(default_factory=list)
    startup_error: str | None = None
    writer: Any = None  # the audit writer thread (concurrent.futures executor)


def _clean_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors without the offending input (it may hold patient data)."""
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type"))}
        for e in errors
    ]


def _json(status: int, content: Any, request_id: str | None = None) -> JSONResponse:
    headers = {"X-Request-ID": request_id} if request_id else None
    return JSONResponse(status_code=status, content=content, headers=headers)


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

    def __init__(self, app: Any, limit: int, tokens: Any) -> None:
        self.app = app
        self.limit = limit
        self.tokens = tokens

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
        too_big = False
        declared = headers.get(b"content-length")
        if declared is not None:
            with contextlib.suppress(ValueError):
                too_big = int(declared) > self.limit
        if too_big:
            await self._reject(send, rid)
            return
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
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        await self.app(scope, replay, send_with_id)

    async def _reject(self, send: Callable, rid: str) -> None:
        payload = b'{"detail":"request body too large: the limit is %d bytes"}' % self.limit
        await _send_json(send, 413, payload, rid, [(b"connection", b"close")])


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


def _model_info(m: Any) -> ModelInfo:
    from serving.results import INTERVAL_COVERS, horizon_of

    return ModelInfo(
        name=m.name,
        task=m.task,
        landmark=m.landmark,
        alias=m.alias,
        version=m.version,
        run_id=m.run_id,
        model_type=m.model_type,
        cohort_digest=m.cohort_digest,
        thresholds=list(m.thresholds),
        metrics={k: Metric(value=v[0], ci_low=v[1], ci_high=v[2]) for k, v in m.metrics.items()},
        n_patients=m.n_patients,
        n_events=m.n_events,
        products=list(m.products) if m.products is not None else None,
        synthetic=m.synthetic,
        horizon=horizon_of(m.task, m.landmark),
        interval_method=m.interval.method if m.interval is not None else None,
        interval_covers=INTERVAL_COVERS if m.interval is not None else None,
        training_distribution=m.distribution is not None,
    )


def models_response(snapshot: Any) -> ModelsResponse:
    return ModelsResponse(
        models=[_model_info(m) for m in snapshot.models.values()],
        missing=list(snapshot.missing),
        loaded_at=snapshot.loaded_at,
    )


def _as_dict(r: Any) -> dict[str, Any]:
    return r if isinstance(r, dict) else {k: getattr(r, k) for k in OUTPUT_KEYS}


def _outputs(results: list[Any]) -> list[dict[str, Any]]:
    """What the audit log keeps of each task result (no inputs, no explanations)."""
    return [_as_dict(r) for r in results]


def _versions(results: list[Any]) -> dict[str, str]:
    rows = [_as_dict(r) for r in results]
    return {r["model"]: r["version"] for r in rows if r["model"] and r["version"]}


def create_app(settings: Settings) -> FastAPI:
    """The service; models and audit log are opened by the lifespan, not here."""
    state = State(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from concurrent.futures import ThreadPoolExecutor

        from serving.audit import open_audit
        from serving.store import ModelStore

        try:
            state.audit = open_audit(settings.audit_db, settings.audit_key_file)
            state.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-writer")
            state.store = ModelStore(settings.tracking_uri)
            snap = state.store.load()
        except CrsRiskError as exc:
            state.startup_error = str(exc)
            log.error("start-up failed: %s", exc)
            raise
        state.audit.event(
            "start",
            {"models": {m.name: m.version for m in snap.models.values()}},
        )
        if settings.examples:
            from serving.examples import example_patients

            state.examples = example_patients()
        log.info("loaded %d champion(s) from %s", len(snap.models), settings.tracking_uri)
        # Everything loaded so far (libraries, models) lives as long as the process: move it out
        # of the cyclic collector's generations so full collections stop re-scanning it
        # (a large heap otherwise makes big batches super-linear and single requests spiky).
        gc.collect()
        gc.freeze()
        # replicas in step: poll the registry, swap in completed promotions (serving.store)
        state.store.start_polling(on_swap=lambda snap, before: _swapped(state, snap, before))
        yield
        state.store.stop_polling()
        state.writer.shutdown(wait=True)
        state.audit.close()

    app = FastAPI(
        title="crs-risk service",
        version=_version(),
        summary="Risk of severe and tocilizumab-refractory CRS after CD19 CAR T-cell therapy.",
        description=(
            f"**{NOTICE}** Scores one patient or many with the registered champion models "
            "(`models:/<name>@champion`), with reasons in clinical language. Times are hours "
            "from CAR T infusion; measurements use the analyte vocabulary and are converted to "
            "canonical units by the same code as training. With tokens configured (a token "
            f"file or `{TOKEN_ENV}`), the API routes need `Authorization: Bearer <token>`; "
            "reloading models needs the admin role."
        ),
        lifespan=lifespan,
        docs_url=None,  # served below from packaged Swagger UI assets (no CDN)
        redoc_url=None,
    )
    app.state.crs = state
    tokens = load_tokens(settings.token_file, settings.token)
    state.tokens = tokens  # type: ignore[attr-defined]
    app.add_middleware(Gate, limit=settings.max_body_bytes, tokens=tokens)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _json(422, {"detail": _clean_errors(list(exc.errors()))})

    @app.exception_handler(CrsRiskError)
    async def on_user_error(request: Request, exc: CrsRiskError) -> JSONResponse:
        return _json(422, {"detail": [{"loc": ["body"], "msg": str(exc), "type": "value"}]})

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _json(
            exc.status_code, {"detail": exc.detail}, getattr(request.state, "request_id", None)
        )

    @app.exception_handler(Exception)
    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        rid = getattr(request.state, "request_id", None)
        log.error("request %s failed: %s", rid, type(exc).__name__)
        return _json(500, {"detail": f"internal error (request id {rid})"}, rid)

    _routes(app, state)
    _openapi_with_batch_schema(app)
    static = HERE / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")
    _offline_docs(app)
    return app


def _offline_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the ``swagger-ui-bundle-v2`` package, so it works offline."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="crs-risk service — API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )


def _openapi_with_batch_schema(app: FastAPI) -> None:
    """Add ``BatchRequest`` (read by hand for CSV support) to the OpenAPI components."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        extra = BatchRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in extra.pop("$defs", {}).items():
            schemas.setdefault(name, schema)
        schemas["BatchRequest"] = extra
        doc["components"]["securitySchemes"] = {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "A named token (token file) or CRS_RISK_TOKEN; reload needs the "
                "admin role.",
            }
        }
        for path, ops in doc.get("paths", {}).items():
            if is_open(path):
                continue
            for op in ops.values():
                if isinstance(op, dict):
                    op["security"] = [{"bearerAuth": []}]
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def _version() -> str:
    from training.tracking import code_version

    return code_version()


def _model_json(model: Any) -> Response:
    """A response model serialised once by pydantic (FastAPI would validate it again)."""
    return Response(model.model_dump_json(), media_type="application/json")


def _problems(errors: list[dict[str, Any]]) -> JSONResponse:
    return _json(422, {"detail": errors})


def _routes(app: FastAPI, state: State) -> None:
    from serving.scoring import RequestProblems, request_digest, score_valid, validate_requests

    page = (HERE / "templates" / "index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/healthz", tags=["health"], summary="Alive")
    def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Models loaded",
        responses={
            503: {
                "model": ErrorResponse,
                "description": "Models not loaded, or audit log not writable.",
            }
        },
    )
    async def readyz() -> Any:
        from serving.store import registry_status

        store = state.store
        if store is None or not store.ready:
            return _json(503, {"detail": "models not loaded"})
        if not await audit_ready(state):
            return _json(503, {"detail": "audit log not writable: scoring is refused"})
        return {"status": "ready", "models": len(store.snapshot.models), **registry_status(store)}

    @app.get(
        "/v1/models",
        response_model=ModelsResponse,
        tags=["models"],
        summary="Loaded champions with version, cohort digest and validation metrics",
        responses={401: ERRORS[401]},
    )
    def models() -> ModelsResponse:
        return models_response(state.store.snapshot)

    @app.post(
        "/v1/models/reload",
        response_model=ModelsResponse,
        tags=["models"],
        summary="Re-resolve the champion aliases and swap the models (needs the token)",
        responses={
            401: ERRORS[401],
            403: {"model": ErrorResponse, "description": "No token configured."},
            409: {"model": ErrorResponse, "description": "Reload failed; old models kept."},
        },
    )
    def reload(request: Request) -> Any:
        if not state.tokens:  # type: ignore[attr-defined]
            return _json(
                403,
                {
                    "detail": "reload is disabled: start the service with a token file or "
                    f"{TOKEN_ENV} (admin role)"
                },
            )
        try:
            snap, old = state.store.reload()
        except CrsRiskError as exc:
            return _json(409, {"detail": str(exc)})
        except Exception as exc:  # store unreachable mid-reload: keep serving the old models
            return _json(409, {"detail": f"reload failed ({type(exc).__name__}); old models kept"})
        before = {m.name: m.version for m in old.models.values()} if old else {}
        del old
        _swapped(state, snap, before, request.state.token_name)
        return models_response(snap)

    @app.get(
        "/v1/examples",
        response_model=ExamplesResponse,
        tags=["risk"],
        summary="Synthetic example patients (never real data)",
        responses={401: ERRORS[401]},
    )
    def examples() -> ExamplesResponse:
        return ExamplesResponse(examples=state.examples)

    @app.get(
        "/v1/vocabulary",
        tags=["risk"],
        summary="Analytes (units, ranges) and event types accepted in requests",
        responses={401: ERRORS[401]},
    )
    def vocabulary() -> dict[str, Any]:
        from features.schema import EVENTS, GRADED_EVENTS
        from features.vocabulary import ANALYTES

        return {
            "analytes": [
                {
                    "key": a.key,
                    "label": a.label,
                    "group": a.group,
                    "canonical_unit": a.canonical_unit,
                    "units": list(a.units),
                    "allowed": list(a.hard),
                    "plausible": list(a.soft),
                }
                for a in ANALYTES.values()
            ],
            "events": [
                {"event": e, "graded": e in GRADED_EVENTS, "grades": GRADED_EVENTS.get(e)}
                for e in EVENTS
            ],
        }

    @app.post(
        "/v1/risk",
        response_model=RiskResponse,
        tags=["risk"],
        summary="Risk for one patient, with reasons",
        responses={
            401: ERRORS[401],
            413: ERRORS[413],
            422: ERRORS[422],
            503: ERRORS[503],
        },
    )
    async def risk(body: RiskRequest, request: Request) -> Any:
        # Scored on the event loop, not in the thread pool: a request is a few milliseconds of
        # CPU under the GIL either way, and the hop to a worker thread and back costs a sizeable
        # share of that. (The batch route, which runs for seconds, uses the pool.)

        rid = request.state.request_id
        snap = state.store.snapshot
        try:
            valid = validate_requests([body])
            resp = score_valid(snap, body, valid, rid)
        except RequestProblems as exc:
            return _problems(exc.errors)
        digest = request_digest(body, valid)
        record = AuditRecord(
            rid,
            body.patient_ref,
            _versions(resp.results),
            digest,
            _outputs(resp.results),
            request.state.token_name,
        )
        try:  # on the audit writer thread: a locked file never blocks the event loop
            await asyncio.wrap_future(state.writer.submit(state.audit.append, [record]))
        except Exception as exc:
            return _audit_failed(rid, exc)
        return _model_json(resp)

    @app.post(
        "/v1/risk/batch",
        response_model=BatchResponse,
        tags=["risk"],
        summary="Risk for many patients (JSON or CSV), explanations off by default",
        responses={
            401: ERRORS[401],
            413: ERRORS[413],
            415: ERRORS[422],
            422: ERRORS[422],
            503: ERRORS[503],
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/BatchRequest"}},
                    "text/csv": {
                        "schema": {"type": "string"},
                        "example": "patient_ref,record,hours_from_infusion,analyte,value,unit,"
                        "event,grade,age_years,product\n"
                        "A,patient,,,,,,,9.5,tisagenlecleucel\n"
                        "A,measurement,-120,crp,12,mg/L,,,,\n",
                    },
                },
            }
        },
    )
    async def risk_batch(request: Request) -> Any:
        from starlette.concurrency import run_in_threadpool

        raw = await request.body()
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        rid = request.state.request_id
        if ctype not in ("text/csv", "application/csv", "application/json", ""):
            return _json(
                415, {"detail": f"unsupported content type {ctype!r}: use JSON or text/csv"}
            )
        # parsing a large body takes a while: off the event loop, with the scoring
        token = request.state.token_name
        return await run_in_threadpool(_parse_and_score, state, raw, ctype, rid, token)


_PAUSES = 0
_PAUSE_LOCK = threading.Lock()


def _swapped(state: State, snap: Any, before: dict[str, str], token: str | None = None) -> None:
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


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch runs (reference counting still frees
    everything at once). A 10⁴-patient batch allocates 10⁵ containers in under a second, which
    otherwise triggers repeated collections of the whole young heap (≈10 % of the batch time);
    the collector resumes when the last concurrent batch ends."""
    global _PAUSES
    with _PAUSE_LOCK:
        _PAUSES += 1
        gc.disable()
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            _PAUSES -= 1
            if _PAUSES == 0:
                gc.enable()


def _parse_and_score(state: State, raw: bytes, ctype: str, rid: str, token: str | None) -> Any:
    """Validate a batch body (JSON or CSV) and score it, the collector paused."""
    with _collector_paused():
        return _parse_and_score_now(state, raw, ctype, rid, token)


def _parse_and_score_now(state: State, raw: bytes, ctype: str, rid: str, token: str | None) -> Any:
    """Validate a batch body (JSON or CSV) and score it.

    CSV is read column-wise by Arrow (``serving.batch_csv``); a body that path does not decide
    goes to ``serving.batch_csv_exact``, whose line/column messages or records decide.
    JSON is decoded by the msgspec structs generated from ``BatchRequest``
    (``serving.batch_json``); a body they reject is validated by pydantic
    (``serving.schemas.batch_records``), whose errors (or records) decide.
    """
    from serving.batch_csv_exact import unknown_csv_columns
    from serving.batch_json import decode_batch
    from serving.schemas import batch_records

    if ctype in ("text/csv", "application/csv"):
        from serving.batch import BatchInput
        from serving.batch_csv import csv_frames
        from serving.batch_csv_exact import parse_csv_records

        unknown = unknown_csv_columns(raw)
        if unknown:
            return _problems(
                [
                    {
                        "loc": ["body", "header", c],
                        "msg": "unknown CSV column (GET /openapi.json lists the columns)",
                        "type": "csv",
                    }
                    for c in unknown
                ]
            )
        fast = csv_frames(raw)
        if fast is not None:
            return _score_batch(state, BatchInput(*fast), rid, token)

        try:
            batch = parse_csv_records(raw)
        except CrsRiskError as exc:
            return _problems([{"loc": ["body"], "msg": str(exc), "type": "csv"}])
        except ValidationError as exc:
            return _problems(_clean_errors(list(exc.errors())))
        return _score_batch(state, batch["patients"], rid, token)
    structs = decode_batch(raw)
    if structs is not None:
        return _score_batch(state, structs.patients, rid, token)
    try:
        batch = batch_records().validate_json(raw)
    except ValidationError as exc:
        errors = _clean_errors(list(exc.errors()))
        for e in errors:
            e["loc"] = ["body", *e["loc"]]
        return _problems(errors)
    return _score_batch(state, batch["patients"], rid, token)


def _score_batch(state: State, reqs: Any, rid: str, token: str | None) -> Any:
    from serving.batch import score_batch
    from serving.scoring import RequestProblems

    try:
        scores = score_batch(state.store.snapshot, reqs)
    except RequestProblems as exc:
        return _problems(exc.errors)
    write = state.writer.submit(
        state.audit.append_encoded,
        rid,
        scores.refs,
        scores.versions,
        scores.digests,
        scores.outputs,
        token,
    )
    try:  # the writer thread keeps records in order; this worker thread waits for it
        write.result()
    except Exception as exc:
        return _audit_failed(rid, exc)
    return Response(scores.body(rid), media_type="application/json")


def _audit_failed(rid: str, exc: Exception) -> JSONResponse:
    """503 when a score could not be recorded: no score leaves without its audit record."""
    log.error("request %s: audit write failed (%s); nothing returned", rid, type(exc).__name__)
    return _json(
        503,
        {"detail": f"the audit log cannot be written; nothing was scored (request id {rid})"},
        rid,
    )


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
