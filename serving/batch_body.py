"""``POST /v1/risk/batch`` off the event loop: decode the body (JSON or CSV), score, audit.

CSV is read column-wise by Arrow (``serving.batch_csv``); a body that path does not decide
goes to ``serving.batch_csv_exact``, whose line/column messages or records decide. JSON is
decoded by the msgspec structs generated from ``BatchRequest`` (``serving.batch_json``); a body
they reject is validated by pydantic (``serving.schemas.batch_records``), whose errors (or
records) decide. Scoring is ``serving.batch.score_batch``; its audit records are written on
the audit writer thread before the response leaves; one batch at a time per process
(:data:`_COMPUTING`).
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator
from typing import Any

from fastapi.responses import Response
from pydantic import ValidationError

from features.errors import CrsRiskError
from serving.batch import BatchInput, BatchScores, score_batch
from serving.batch_csv import csv_frames
from serving.batch_csv_exact import parse_csv_records, unknown_csv_columns
from serving.batch_json import decode_batch
from serving.conversion import RequestProblems
from serving.responses import audit_failed, clean_errors, problems
from serving.schemas import batch_records
from serving.state import State

_PAUSES = 0
_PAUSE_LOCK = threading.Lock()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
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


_COMPUTING = threading.Lock()
"""One batch at a time per process is parsed, scored and audited; the next waits, its body
already read. Two batches on two threads share one GIL: measured in one process, six
5,000-patient batches took 10–18 % more CPU time on two threads than one after the other
(2.68–3.25 s → 3.16–3.36 s), and a replica of ``serve --workers N`` has no idle core to spend
on the contention. Holding the turn through the audit write too (rather than scoring the next
batch meanwhile), under ``serve --workers 2`` with 4 clients: 604 instead of 649 CPU-ms per
batch in one A/B (6 alternated runs), no difference beyond the machine's drift in a second (8
runs, 23 → 15 k patients/s over 6 minutes for both). The same discipline as a gunicorn sync
worker's."""


def parse_and_score(state: State, raw: bytes, ctype: str, rid: str, token: str | None) -> Any:
    """Validate a batch body (JSON or CSV), score it and write its audit records, the collector
    paused, in this process's turn (:data:`_COMPUTING`); then answer."""
    with collector_paused():
        with _COMPUTING:
            outcome = _parse_and_score_now(state, raw, ctype)
            if isinstance(outcome, BatchScores):
                return _audited(state, outcome, rid, token)
        return outcome


def _parse_and_score_now(state: State, raw: bytes, ctype: str) -> Response | BatchScores:
    """Validate a batch body (JSON or CSV) and score it (the paths: module docstring): the
    scores, or the 422 response naming the problems."""
    if ctype in ("text/csv", "application/csv"):
        unknown = unknown_csv_columns(raw)
        if unknown:
            return problems(
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
            return _score_batch(state, BatchInput(*fast))

        try:
            batch = parse_csv_records(raw)
        except CrsRiskError as exc:
            return problems([{"loc": ["body"], "msg": str(exc), "type": "csv"}])
        except ValidationError as exc:
            return problems(clean_errors(list(exc.errors())))
        return _score_batch(state, batch["patients"])
    structs = decode_batch(raw)
    if structs is not None:
        return _score_batch(state, structs.patients)
    try:
        batch = batch_records().validate_json(raw)
    except ValidationError as exc:
        errors = clean_errors(list(exc.errors()))
        for e in errors:
            e["loc"] = ["body", *e["loc"]]
        return problems(errors)
    return _score_batch(state, batch["patients"])


def _score_batch(state: State, reqs: Any) -> Response | BatchScores:
    try:
        return score_batch(state.store.snapshot, reqs)
    except RequestProblems as exc:
        return problems(exc.errors)


def _audited(state: State, scores: BatchScores, rid: str, token: str | None) -> Response:
    """The scores' records written (503 when they cannot be), then the response."""
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
        return audit_failed(rid, exc)
    return Response(scores.body(rid), media_type="application/json")
