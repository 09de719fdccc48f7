"""``crs-risk audit verify``: check both hash chains of an audit log, read-only.

Deleting, inserting or editing a record breaks its chain (``serving.audit_key.chain``); each
service event records the head of the score chain, so records cut off the end are caught up to
the last event. Standard library only: the command line imports it at start.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from features.errors import CrsRiskError
from serving.audit_key import GENESIS, chain, default_key_file, load_key, subkey

SCORE_FIELDS = (
    "id",
    "time",
    "request_id",
    "patient_hash",
    "model_versions",
    "input_digest",
    "outputs",
    "token_name",
)
EVENT_FIELDS = ("id", "time", "event", "detail")


@dataclass(frozen=True)
class Verification:
    """What ``crs-risk audit verify`` found."""

    scores: int
    events: int
    unchained: int  # rows written before the chain existed
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _verify_table(
    conn: sqlite3.Connection, chain_key: bytes, table: str, fields: tuple[str, ...]
) -> tuple[int, int, list[str], int]:
    cols = ", ".join(fields)
    rows = conn.execute(f"SELECT {cols}, prev_hash, row_hash FROM {table} ORDER BY id").fetchall()
    problems: list[str] = []
    prev = GENESIS
    last_id = None
    unchained = 0
    chained = 0
    for row in rows:
        rid, values, prev_hash, row_hash = row[0], list(row[: len(fields)]), row[-2], row[-1]
        if row_hash is None:
            unchained += 1
            continue
        chained += 1
        if last_id is not None and rid != last_id + 1:
            problems.append(f"{table}: records {last_id + 1}–{rid - 1} are missing (deleted)")
        if prev_hash != prev:
            problems.append(f"{table}: record {rid} does not follow the record before it")
        if chain(chain_key, prev_hash or GENESIS, values) != row_hash:
            problems.append(f"{table}: record {rid} was changed after it was written")
        prev, last_id = row_hash, rid
        if len(problems) >= 20:
            break
    return chained, unchained, problems, (last_id or 0)


def verify(path: Path, key_file: Path | None = None) -> Verification:
    """Check both hash chains of an audit file (read-only). CrsRiskError when the file or key
    cannot be read or the key is not the log's."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise CrsRiskError(f"audit log {path} does not exist")
    key = load_key(key_file or default_key_file(path), create=False)
    chain_key = subkey(key, b"chain")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            check = conn.execute("SELECT value FROM meta WHERE key='key_check'").fetchone()
            expected = hmac.new(chain_key, b"key check", hashlib.sha256).hexdigest()
            if check is None or check[0] != expected:
                raise CrsRiskError(f"audit log {path}: the key given is not this log's key")
            n_s, u_s, p_s, last_score = _verify_table(conn, chain_key, "scores", SCORE_FIELDS)
            n_e, u_e, p_e, _ = _verify_table(conn, chain_key, "service_events", EVENT_FIELDS)
            seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='scores'").fetchone()
            heads = [
                json.loads(d).get("scores_head")
                for (d,) in conn.execute("SELECT detail FROM service_events ORDER BY id")
            ]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise CrsRiskError(f"audit log {path} cannot be read ({type(exc).__name__})") from None
    problems = [*p_s, *p_e]
    if seq is not None and int(seq[0]) > last_score:
        problems.append(f"scores: records {last_score + 1}–{seq[0]} are missing (deleted)")
    recorded = max((h[0] for h in heads if h), default=0)
    if recorded > last_score:
        problems.append(
            f"scores: a service event recorded {recorded} records but the log ends at "
            f"{last_score} (records cut off the end)"
        )
    return Verification(n_s, n_e, u_s + u_e, tuple(problems))
