"""Append-only, hash-chained audit log of every score, in a local SQLite file.

One row per scored patient: UTC time, request id, the name of the token that asked, a keyed
hash of the caller's patient reference (HMAC-SHA256), the model versions used, a SHA-256
digest of the validated inputs (``serving.digest``) and the outputs (status, probability,
band, landmark, eligibility per task). No raw identifier or input value is stored.

Trust (issue 14 §8):

- the pseudonymisation key lives *outside* the audit file: a key file of mode 0600 (created
  beside the log on first use, or given) or the environment variable ``CRS_RISK_AUDIT_KEY``
  (64 hex digits); a key file readable by others is refused;
- the audit file is created with mode 0600 (SQLite gives its WAL files the same mode);
- every record carries ``prev_hash`` and ``row_hash`` = HMAC-SHA256(chain key, previous hash ‖
  the record's fields, id included): deleting, inserting or editing a record breaks the chain
  and ``crs-risk audit verify`` names the first broken record (without the key nobody can
  re-chain edited rows; each service event records the head of the score chain, so cutting
  records off the end is caught up to the last event). SQLite triggers also reject UPDATE and
  DELETE, so an honest client cannot change it by mistake;
- writes run on one writer thread, never on the event loop, with a short busy timeout; while
  the file cannot be written ``writable()`` is False (``/readyz`` answers 503) and scoring
  returns 503 instead of a score without a record;
- the replicas of ``crs-risk serve --workers N`` share the file: they take turns on it
  (:class:`_Turns`) and each write reads the chain's head inside its own write transaction, so
  the records of all replicas form one chain.

The service refuses to start when the file cannot be created or written.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from features.errors import CrsRiskError
from serving.audit_key import GENESIS, KEY_ENV, chain, default_key_file, load_key, subkey

OUTPUT_KEYS = (
    "task",
    "landmark",
    "status",
    "eligible",
    "reason",
    "probability",
    "band",
    "model",
    "version",
)
"""What the log keeps of each task result (no inputs, no explanations)."""
BUSY_MS = 250
"""How long a write waits for a lock held by another process before the log counts as not
writable (the request then gets 503; /healthz is never blocked)."""
TURN_WAIT_MS = 3000
"""How long a write waits for its turn among the replicas of ``crs-risk serve --workers N``
(:class:`_Turns`): a 5,000-patient batch holds the file 0.1–0.8 s while its replica also scores
the next batch (measured with 4 concurrent clients on 2 cores)."""
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
    outputs TEXT NOT NULL,
    token_name TEXT,
    prev_hash TEXT,
    row_hash TEXT
);
CREATE TABLE IF NOT EXISTS service_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT,
    row_hash TEXT
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


_text = json.encoder.encode_basestring_ascii  # C: a str as a JSON string, ensure_ascii


class _Mac:
    """HMAC-SHA256 under one key, the key schedule computed once: each message copies the keyed
    state (``hmac.HMAC.copy``) instead of keying a new one (``hmac.digest``). The same digest;
    on this machine 1.8 instead of 3.4 µs for a 700-byte record, two per patient in a batch."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    def hex(self, message: bytes) -> str:
        h = self._keyed.copy()
        h.update(message)
        return h.hexdigest()


def _chain_fast(mac: _Mac, prev: str, values: Sequence[Any]) -> str:
    """``serving.audit_key.chain`` for records of str, int and None (a score record), without
    a ``json.dumps`` encoder per record: the same canonical text (the C escaping ``json`` uses
    with ``ensure_ascii``, ``int.__repr__``, ``null``, no spaces) and the same HMAC-SHA256
    (``mac``: keyed with the chain key). Any other value type goes through ``chain`` itself."""
    parts = [_text(prev)]
    for v in values:
        t = type(v)
        if t is str:
            parts.append(_text(v))
        elif v is None:
            parts.append("null")
        elif t is int:
            parts.append(int.__repr__(v))
        else:
            return chain(mac.key, prev, values)
    text = "[" + ",".join(parts) + "]"
    return mac.hex(text.encode("ascii"))


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
    token_name: str | None = None


CHECKPOINT_ROWS = 5000
"""Records between two background checkpoints (≈2 MB of WAL): single requests rarely wake the
checkpoint thread, a large batch always does."""


class _Checkpointer:
    """Copies the write-ahead log into the database file on its own thread and connection.

    SQLite checkpoints automatically inside the commit that crosses the WAL size threshold, so
    a 10⁴-patient batch (≈4 MB of records) would pay a checkpoint — about as long as its own
    insert — before its response. The SQLite documentation's remedy for checkpoint latency is
    to turn automatic checkpoints off and run them from a separate thread, done here
    (``PRAGMA wal_checkpoint(PASSIVE)`` every :data:`CHECKPOINT_ROWS` records).
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="audit-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(str(self._path), isolation_level=None, timeout=BUSY_MS / 1000)
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


class _Turns:
    """Turns on the audit file between the processes that write it (the replicas of
    ``serve --workers N``): an exclusive ``flock`` on ``<audit>.lock``, tried every millisecond
    up to :data:`TURN_WAIT_MS`, taken before SQLite's write lock.

    Why not SQLite's busy wait alone: it retries at growing intervals of up to 100 ms, so a
    replica can miss every short gap between its sibling's back-to-back transactions; measured
    with two replicas and four clients posting 5,000-patient batches, about 1 batch in 100 got
    503 after a 1 s wait. Here the waiting replica takes its turn within a millisecond of the
    release. A process that does not take turns (another program holding the file) still meets
    SQLite's lock and :data:`BUSY_MS`. The lock file holds nothing; it is created 0600.
    """

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        deadline = time.monotonic() + TURN_WAIT_MS / 1000
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"no turn on the audit log within {TURN_WAIT_MS} ms"
                    ) from None
                time.sleep(0.001)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


def _create_private(path: Path) -> None:
    """Create the audit file with mode 0600 if it does not exist (SQLite would use 0644)."""
    if path.exists():
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)


class AuditLog:
    """The audit file; thread-safe appends (one connection, one lock, WAL journal), a hash
    chain over the score records and over the service events."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._lock = threading.Lock()
        _create_private(path)
        self._conn = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=BUSY_MS / 1000
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA wal_autocheckpoint=0")  # _Checkpointer does it, off-thread
        self._conn.executescript(SCHEMA)
        _add_missing_columns(self._conn)
        self._checkpointer = _Checkpointer(path)
        self._turns = _Turns(path.with_name(path.name + ".lock"))
        self._unchecked = 0
        self._pseudonym = _Mac(subkey(key, b"pseudonym"))
        self._chain = _Mac(subkey(key, b"chain"))
        self._check = self._chain.hex(b"key check")
        row = self._conn.execute("SELECT value FROM meta WHERE key='key_check'").fetchone()
        if row is None:
            self._conn.execute(
                "INSERT INTO meta(key, value) VALUES ('key_check', ?)", (self._check,)
            )
        elif row[0] != self._check:
            raise CrsRiskError(
                f"audit log {path} was written with another key: give its key file (or "
                f"{KEY_ENV}), or start a new log"
            )
        self.failure: str | None = None

    def _last_hash(self, table: str) -> tuple[int, str]:
        row = self._conn.execute(
            f"SELECT id, row_hash FROM {table} WHERE row_hash IS NOT NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def patient_hash(self, ref: str | None) -> str | None:
        """Keyed hash of a patient reference (None stays None)."""
        if ref is None:
            return None
        return self._pseudonym.hex(ref.encode("utf-8"))

    def event(self, event: str, detail: dict[str, Any]) -> None:
        """A service event (start, reload, close), carrying the head of the score chain."""
        with self._lock, self._turns.held():
            now = _now()
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                # the heads as written, by any process: replicas share the file
                prev = self._last_hash("service_events")[1]
                detail = {**detail, "scores_head": list(self._last_hash("scores"))}
                text = json.dumps(detail, sort_keys=True)
                rid = self._next_id("service_events")
                h = chain(self._chain.key, prev, [rid, now, event, text])
                self._conn.execute(
                    "INSERT INTO service_events(id, time, event, detail, prev_hash, row_hash) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (rid, now, event, text, prev, h),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise

    def _next_id(self, table: str) -> int:
        """The id AUTOINCREMENT would give next (never reused, even after a deletion)."""
        row = self._conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name=?", (table,)
        ).fetchone()
        return (int(row[0]) if row else 0) + 1

    def append(self, records: Iterable[AuditRecord]) -> int:
        """Append score records in one transaction; returns how many."""
        now = _now()
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
                r.token_name,
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
        token_name: str | None = None,
    ) -> int:
        """Append a batch's records whose model versions and outputs are already JSON texts
        (``serving.batch.BatchScores``), in one transaction; returns how many."""
        now = _now()
        pseudonym = self._pseudonym.hex
        hashed = [None if r is None else pseudonym(r.encode()) for r in refs]
        rows = [
            (now, request_id, h, v, d, o, token_name)
            for h, v, d, o in zip(hashed, versions, digests, outputs, strict=True)
        ]
        # The record's canonical text after its id (``_chain_fast``), escaped here, outside the
        # lock: the fields are str or None; the few distinct version texts are escaped once.
        fixed = f"{_text(now)},{_text(request_id)}"
        token = "null" if token_name is None else _text(token_name)
        said: dict[str, str] = {}
        tails = []
        for h, v, d, o in zip(hashed, versions, digests, outputs, strict=True):
            vt = said.get(v)
            if vt is None:
                vt = said[v] = _text(v)
            ht = "null" if h is None else f'"{h}"'  # hex digits
            tails.append(f"{fixed},{ht},{vt},{_text(d)},{_text(o)},{token}]")
        return self._insert(rows, tails)

    def _insert(self, rows: list[tuple[Any, ...]], tails: list[str] | None = None) -> int:
        """Chain and write ``rows``; ``tails``: each row's canonical text after its id, when
        the caller has it (``append_encoded``)."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(self._lock)
            try:
                if not os.access(self.path, os.W_OK):  # e.g. made read-only or immutable
                    raise OSError(f"audit log {self.path} is not writable")
                stack.enter_context(self._turns.held())
                self._conn.execute("BEGIN IMMEDIATE")
            except (sqlite3.Error, OSError) as exc:
                self.failure = f"{type(exc).__name__}: {exc}"
                raise
            try:
                first = self._next_id("scores")
                # the head as written, by any process (the replicas of ``serve --workers N``
                # share the file): a head cached in this process would fork the chain
                prev = self._last_hash("scores")[1]
                chained = []
                if tails is None:
                    for k, row in enumerate(rows):
                        h = _chain_fast(self._chain, prev, [first + k, *row])
                        chained.append((first + k, *row, prev, h))
                        prev = h
                else:
                    mac = self._chain.hex
                    # the head as read is escaped; each next prev is a hex digest made here
                    quoted = _text(prev)
                    for k, (row, tail) in enumerate(zip(rows, tails, strict=True)):
                        h = mac(f"[{quoted},{first + k},{tail}".encode("ascii"))
                        chained.append((first + k, *row, prev, h))
                        prev, quoted = h, f'"{h}"'
                self._conn.executemany(
                    "INSERT INTO scores(id, time, request_id, patient_hash, model_versions, "
                    "input_digest, outputs, token_name, prev_hash, row_hash) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    chained,
                )
                self._conn.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                self.failure = f"{type(exc).__name__}: {exc}"
                raise
            self.failure = None
            self._unchecked += len(rows)
            if self._unchecked >= CHECKPOINT_ROWS:
                self._unchecked = 0
                self._checkpointer.poke()
        return len(rows)

    def writable(self) -> bool:
        """Whether a record could be written now: the file is writable and its write lock can
        be taken within the busy timeout (a probe transaction, rolled back)."""
        if not os.access(self.path, os.W_OK):
            return False
        if not self._lock.acquire(timeout=BUSY_MS / 1000):
            return False
        try:
            with self._turns.held():
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute("ROLLBACK")
            return True
        except (sqlite3.Error, OSError):
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            return False
        finally:
            self._lock.release()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error, CrsRiskError):
            self.event("close", {})
        self._checkpointer.stop()
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._turns.close()


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Columns added after the first version of the log (older rows stay unchained)."""
    for table, columns in (
        ("scores", ("token_name", "prev_hash", "row_hash")),
        ("service_events", ("prev_hash", "row_hash")),
    ):
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        for c in columns:
            if c not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {c} TEXT")


def open_audit(path: Path | str, key_file: Path | None = None) -> AuditLog:
    """Open (creating if needed, mode 0600) and test-write the audit file, or raise
    CrsRiskError. ``key_file``: default beside the log (``<log>.key``), unless
    ``CRS_RISK_AUDIT_KEY`` is set."""
    path = Path(path).expanduser().resolve()
    if not path.parent.is_dir():
        raise CrsRiskError(f"audit log folder does not exist: {path.parent}")
    key = load_key(key_file or default_key_file(path))
    log: AuditLog | None = None
    try:
        log = AuditLog(path, key)
        log.event("open", {"pid_start": _now()})
    except (sqlite3.Error, OSError) as exc:
        if log is not None:
            with contextlib.suppress(sqlite3.Error):
                log._conn.close()
        raise CrsRiskError(
            f"audit log {path} cannot be written ({type(exc).__name__}); the service "
            "does not start without an audit log"
        ) from None
    return log
