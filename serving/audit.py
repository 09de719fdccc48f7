"""Append-only audit log of every score, in a local SQLite file.

One row per scored patient: UTC time, request id, a keyed hash of the caller's patient
reference (HMAC-SHA256 with a random key created with the file, so equal references link
within one deployment but cannot be recovered by hashing guesses without the key), the model
versions used, a SHA-256 digest of the validated inputs (``serving.digest``) and the outputs
(probability, band, landmark, eligibility per task). No raw identifier or input value is
stored. SQLite triggers reject UPDATE and DELETE, so the table can only grow.

The service refuses to start when the file cannot be created or written (``open_audit`` makes
a test write at start-up), rather than score without a record.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from features.errors import CrsRiskError

OUTPUT_KEYS = ("task", "landmark", "eligible", "reason", "probability", "band", "model", "version")
"""What the log keeps of each task result (no inputs, no explanations)."""
_KEEP = {"__all__": set(OUTPUT_KEYS)}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scores (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    request_id TEXT NOT NULL,
    patient_hash TEXT,
    model_versions TEXT NOT NULL,
    input_digest TEXT NOT NULL,
    outputs TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS service_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS scores_no_update BEFORE UPDATE ON scores
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS scores_no_delete BEFORE DELETE ON scores
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON service_events
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON service_events
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
"""


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


@dataclass(frozen=True)
class AuditRecord:
    """One score. ``outputs``: the task results (dicts with at least :data:`OUTPUT_KEYS`;
    only those keys are stored)."""

    request_id: str
    patient_ref: str | None
    model_versions: dict[str, str]
    input_digest: str
    outputs: list[dict[str, Any]]


CHECKPOINT_ROWS = 5000
"""Records between two background checkpoints (≈2 MB of WAL): single requests rarely wake the
checkpoint thread, a large batch always does."""


class _Checkpointer:
    """Copies the write-ahead log into the database file on its own thread and connection.

    SQLite checkpoints automatically inside the commit that crosses the WAL size threshold, so
    a 10⁴-patient batch (≈4 MB of records) would pay a checkpoint — about as long as its own
    insert — before its response. Committed records are durable in the WAL either way; the
    SQLite documentation's remedy for checkpoint latency is to turn automatic checkpoints off
    and run them from a separate thread, done here (``PRAGMA wal_checkpoint(PASSIVE)`` every
    :data:`CHECKPOINT_ROWS` records: it never blocks the writer; SQLite releases the GIL while
    it copies).
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="audit-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(str(self._path), isolation_level=None)
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stop:
                    break
                with contextlib.suppress(sqlite3.Error):  # busy: the next append retries
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=30)


class AuditLog:
    """The audit file; thread-safe appends (one connection, one lock, WAL journal)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA wal_autocheckpoint=0")  # _Checkpointer does it, off-thread
        self._conn.executescript(SCHEMA)
        self._checkpointer = _Checkpointer(path)
        self._unchecked = 0  # records appended since the last checkpoint request
        row = self._conn.execute("SELECT value FROM meta WHERE key='hash_key'").fetchone()
        if row is None:
            self._conn.execute(
                "INSERT INTO meta(key, value) VALUES ('hash_key', ?)", (secrets.token_hex(32),)
            )
            row = self._conn.execute("SELECT value FROM meta WHERE key='hash_key'").fetchone()
        self._key = bytes.fromhex(row[0])

    def patient_hash(self, ref: str | None) -> str | None:
        """Keyed hash of a patient reference (None stays None)."""
        if ref is None:
            return None
        return hmac.new(self._key, ref.encode("utf-8"), hashlib.sha256).hexdigest()

    def event(self, event: str, detail: dict[str, Any]) -> None:
        """A service event (start, reload) — proves at start-up that the file is writable."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO service_events(time, event, detail) VALUES (?, ?, ?)",
                (_now(), event, json.dumps(detail, sort_keys=True)),
            )

    def append(self, records: Iterable[AuditRecord]) -> int:
        """Append score records in one transaction; returns how many."""
        now = _now()
        # a batch's patients share a handful of model-version sets: each is encoded once (the
        # text is a function of the items alone, so every row's value is unchanged)
        versions: dict[tuple[tuple[str, str], ...], str] = {}

        def encode_versions(v: dict[str, str]) -> str:
            key = tuple(sorted(v.items()))
            text = versions.get(key)
            if text is None:
                text = versions.setdefault(key, json.dumps(v, sort_keys=True))
            return text

        rows = [
            (
                now,
                r.request_id,
                self.patient_hash(r.patient_ref),
                encode_versions(r.model_versions),
                r.input_digest,
                to_json(r.outputs, include=_KEEP).decode(),
            )
            for r in records
        ]
        return self._insert(rows)

    def append_encoded(
        self,
        request_id: str,
        refs: Sequence[str | None],
        versions: Sequence[str],
        digests: Sequence[str],
        outputs: Sequence[str],
    ) -> int:
        """Append a batch's records whose model versions and outputs are already JSON texts
        (``serving.batch.BatchScores``), in one transaction; returns how many."""
        now = _now()
        hashed = map(self.patient_hash, refs)
        rows = [
            (now, request_id, h, v, d, o)
            for h, v, d, o in zip(hashed, versions, digests, outputs, strict=True)
        ]
        return self._insert(rows)

    def _insert(self, rows: list[tuple[Any, ...]]) -> int:
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(
                    "INSERT INTO scores(time, request_id, patient_hash, model_versions, "
                    "input_digest, outputs) VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            self._unchecked += len(rows)
            if self._unchecked >= CHECKPOINT_ROWS:  # ≈ SQLite's own 1,000-page default
                self._unchecked = 0
                self._checkpointer.poke()
        return len(rows)

    def close(self) -> None:
        self._checkpointer.stop()
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()


def open_audit(path: Path | str) -> AuditLog:
    """Open (creating if needed) and test-write the audit file, or raise CrsRiskError."""
    path = Path(path).expanduser().resolve()
    if not path.parent.is_dir():
        raise CrsRiskError(f"audit log folder does not exist: {path.parent}")
    log: AuditLog | None = None
    try:
        log = AuditLog(path)
        log.event("open", {"pid_start": _now()})
    except (sqlite3.Error, OSError) as exc:
        if log is not None:
            with contextlib.suppress(sqlite3.Error):
                log.close()
        raise CrsRiskError(
            f"audit log {path} cannot be written ({type(exc).__name__}: {exc}); the service "
            "does not start without an audit log"
        ) from None
    return log
