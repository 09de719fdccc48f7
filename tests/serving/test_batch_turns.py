"""A process parses, scores and audits one batch at a time (``serving.batch_body._COMPUTING``).

Batches posted together to one process take turns (two batches on two threads share one GIL
and cost more CPU than one after the other): no batch is scored while another is scored or its
records are written; each still gets its audit records and its full response. Driven through
``parse_and_score``, the route's own entry point, with a real snapshot, a real audit log and
its writer thread; only ``score_batch`` and the log's ``append_encoded`` are wrapped, to count
who is inside.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import serving.batch_body as batch_body
from serving.audit import open_audit
from serving.audit_verify import verify
from serving.examples import example_patients
from serving.loading import Snapshot
from serving.state import Settings, State


def test_concurrent_batches_take_turns(
    fast_snapshot: Snapshot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = open_audit(tmp_path / "audit.sqlite")
    writer = ThreadPoolExecutor(1)
    state = State(
        Settings(tracking_uri="unused", audit_db=tmp_path / "audit.sqlite"),
        store=types.SimpleNamespace(snapshot=fast_snapshot),
        audit=audit,
        writer=writer,
    )
    inside, most, lock = 0, 0, threading.Lock()

    def counted(real, pause: float):  # type: ignore[no-untyped-def]
        """``real``, counting who is inside it or any other counted call."""

        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal inside, most
            with lock:
                inside += 1
                most = max(most, inside)
            try:
                time.sleep(pause)  # hold the turn long enough for another batch to arrive
                return real(*args, **kwargs)
            finally:
                with lock:
                    inside -= 1

        return call

    monkeypatch.setattr(batch_body, "score_batch", counted(batch_body.score_batch, 0.05))
    monkeypatch.setattr(audit, "append_encoded", counted(audit.append_encoded, 0.02))
    patients = [copy.deepcopy(e["request"]) for e in example_patients()] * 3
    raw = json.dumps({"patients": patients}).encode()
    try:
        with ThreadPoolExecutor(4) as pool:
            runs = [
                pool.submit(
                    batch_body.parse_and_score, state, raw, "application/json", f"r{k}", None
                )
                for k in range(4)
            ]
            answers = [r.result() for r in runs]
    finally:
        writer.shutdown()
        audit.close()
    assert most == 1, f"{most} batches were scored or written at once"
    for a in answers:
        assert a.status_code == 200
        assert json.loads(a.body)["n"] == len(patients)
    report = verify(tmp_path / "audit.sqlite")
    assert report.ok and report.scores == 4 * len(patients), report
