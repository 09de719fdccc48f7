"""``/v1/risk`` (one patient), ``/v1/risk/batch`` (many, JSON or CSV), the synthetic examples
and the vocabulary the requests use.

Every score is recorded in the audit log (``serving.audit``) on the writer thread before its
response leaves; when that fails the caller gets 503 and no score.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from features.schema import EVENTS, GRADED_EVENTS
from features.vocabulary import ANALYTES
from serving.audit import OUTPUT_KEYS, AuditRecord
from serving.batch_body import parse_and_score
from serving.conversion import RequestProblems, validate_requests
from serving.gate import media_type
from serving.responses import ERRORS, audit_failed, json_response, model_json, problems
from serving.schemas import BatchResponse, ExamplesResponse, RiskRequest, RiskResponse
from serving.scoring import request_digest, score_valid
from serving.state import AppState, State

router = APIRouter(tags=["risk"])


def _as_dict(r: Any) -> dict[str, Any]:
    return r if isinstance(r, dict) else {k: getattr(r, k) for k in OUTPUT_KEYS}


def _outputs(results: list[Any]) -> list[dict[str, Any]]:
    """What the audit log keeps of each task result (no inputs, no explanations)."""
    return [_as_dict(r) for r in results]


def _versions(results: list[Any]) -> dict[str, str]:
    rows = [_as_dict(r) for r in results]
    return {r["model"]: r["version"] for r in rows if r["model"] and r["version"]}


@router.get(
    "/v1/examples",
    response_model=ExamplesResponse,
    summary="Synthetic example patients (never real data)",
    responses={401: ERRORS[401]},
)
def examples(state: AppState) -> ExamplesResponse:
    return ExamplesResponse(examples=state.examples)


@router.get(
    "/v1/vocabulary",
    summary="Analytes (units, ranges) and event types accepted in requests",
    responses={401: ERRORS[401]},
)
def vocabulary() -> dict[str, Any]:
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


@router.post(
    "/v1/risk",
    response_model=RiskResponse,
    summary="Risk for one patient, with reasons",
    responses={
        401: ERRORS[401],
        413: ERRORS[413],
        422: ERRORS[422],
        503: ERRORS[503],
    },
)
async def risk(body: RiskRequest, request: Request, state: AppState) -> Any:
    # The documented route, and the exact path of ``serving.routes.risk_fast``: a JSON body
    # that its parse does not accept comes here, for FastAPI's own messages.
    return await score_one(state, body, request.state.request_id, request.state.token_name)


async def score_one(state: State, body: RiskRequest, rid: str, token: str | None) -> Response:
    """One patient validated, scored and audited: the response, 422 naming the problems, or
    503 when the audit record cannot be written.

    Scored on the event loop, not in the thread pool: a request is a few milliseconds of CPU
    under the GIL either way, and the hop to a worker thread and back costs a sizeable share
    of that. (The batch route, which runs for seconds, uses the pool.)"""
    snap = state.store.snapshot
    try:
        valid = validate_requests([body])
        resp = score_valid(snap, body, valid, rid)
    except RequestProblems as exc:
        return problems(exc.errors)
    digest = request_digest(body, valid)
    record = AuditRecord(
        rid,
        body.patient_ref,
        _versions(resp.results),
        digest,
        _outputs(resp.results),
        token,
    )
    # on the audit writer thread: a locked file never blocks the event loop; the response is
    # serialised meanwhile (SQLite releases the GIL) and leaves only once the record is written
    write = asyncio.wrap_future(state.writer.submit(state.audit.append, [record]))
    response = model_json(resp)
    try:
        await write
    except Exception as exc:
        return audit_failed(rid, exc)
    return response


@router.post(
    "/v1/risk/batch",
    response_model=BatchResponse,
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
async def risk_batch(request: Request, state: AppState) -> Any:
    raw = await request.body()
    ctype = media_type(request.headers.get("content-type"))
    rid = request.state.request_id
    if ctype not in ("text/csv", "application/csv", "application/json", ""):
        return json_response(
            415, {"detail": f"unsupported content type {ctype!r}: use JSON or text/csv"}
        )
    # parsing a large body takes a while: off the event loop, with the scoring
    token = request.state.token_name
    return await run_in_threadpool(parse_and_score, state, raw, ctype, rid, token)
