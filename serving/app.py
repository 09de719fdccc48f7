"""The FastAPI application: lifespan, error handlers, the routers, the OpenAPI document.

``create_app(settings)`` builds an app whose lifespan opens the audit log (refusing to start if
it cannot be written), resolves and loads every champion once (``serving.store``) and prepares
the synthetic examples. Nothing happens at import. Routes live in ``serving.routes`` (page,
health, models, risk), the request gate in ``serving.gate``, the running state in
``serving.state``.

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

import gc
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from swagger_ui_bundle import swagger_ui_path

from features.errors import CrsRiskError
from serving.audit import open_audit
from serving.auth import is_open, load_tokens
from serving.examples import example_patients
from serving.gate import Gate
from serving.responses import clean_errors, json_response, log
from serving.routes import health, models, page, risk, risk_fast
from serving.schemas import NOTICE, BatchRequest
from serving.state import TOKEN_ENV, Settings, State, swapped
from serving.store import ModelStore
from training.tracking import code_version

HERE = Path(__file__).resolve().parent
ROUTERS = (page.router, health.router, models.router, risk.router)
"""Included in this order (the OpenAPI document lists the paths in it)."""


def create_app(settings: Settings) -> FastAPI:
    """The service; models and audit log are opened by the lifespan, not here."""
    state = State(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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
            state.examples = example_patients()
        log.info("loaded %d champion(s) from %s", len(snap.models), settings.tracking_uri)
        # Everything loaded so far (libraries, models) lives as long as the process: move it out
        # of the cyclic collector's generations so full collections stop re-scanning it
        # (a large heap otherwise makes big batches super-linear and single requests spiky).
        gc.collect()
        gc.freeze()
        # replicas in step: poll the registry, swap in completed promotions (serving.store)
        state.store.start_polling(on_swap=lambda snap, before: swapped(state, snap, before))
        yield
        state.store.stop_polling()
        state.writer.shutdown(wait=True)
        state.audit.close()

    app = FastAPI(
        title="crs-risk service",
        version=code_version(),
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
        docs_url=None,  # served by serving.routes.page from packaged Swagger UI assets (no CDN)
        redoc_url=None,
    )
    app.state.crs = state
    state.tokens = load_tokens(settings.token_file, settings.token)
    state.page = (HERE / "templates" / "index.html").read_text(encoding="utf-8")
    app.add_middleware(Gate, limit=settings.max_body_bytes, tokens=state.tokens, load=state.load)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return json_response(422, {"detail": clean_errors(list(exc.errors()))})

    @app.exception_handler(CrsRiskError)
    async def on_user_error(request: Request, exc: CrsRiskError) -> JSONResponse:
        return json_response(422, {"detail": [{"loc": ["body"], "msg": str(exc), "type": "value"}]})

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return json_response(
            exc.status_code, {"detail": exc.detail}, getattr(request.state, "request_id", None)
        )

    @app.exception_handler(Exception)
    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        rid = getattr(request.state, "request_id", None)
        log.error("request %s failed: %s", rid, type(exc).__name__)
        return json_response(500, {"detail": f"internal error (request id {rid})"}, rid)

    for router in ROUTERS:
        app.include_router(router)
    risk_fast.install(app)  # POST /v1/risk: valid JSON bodies skip FastAPI's request handling
    _openapi_with_batch_schema(app)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")
    return app


def _openapi_with_batch_schema(app: FastAPI) -> None:
    """Add ``BatchRequest`` (read by hand for CSV support) to the OpenAPI components."""

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

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
