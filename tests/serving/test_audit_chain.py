"""The batch append's record hash (``serving.audit._chain_fast``) is ``audit_key.chain``."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3

import pytest

from serving.audit import AuditRecord, _chain_fast, _Mac, open_audit
from serving.audit_key import KEY_ENV, chain, subkey
from serving.audit_verify import verify

ODD = 'é "quoted" \\ back\nline \u2028 \U0001f600 \x00'


@pytest.mark.parametrize(
    "values",
    [
        [1, "2026-12-07T00:00:00.000Z", "rid", None, '{"m": "1"}', "d" * 64, f"[{ODD!r}]", None],
        [10**20, ODD, "r", "h", "v", "d", "o", "tok"],
        [3, 1.5, True, None, ODD],  # other types: chain() itself
    ],
)
def test_fast_record_hash_is_the_chain_hash(values):
    key = bytes(range(32))
    assert _chain_fast(_Mac(key), "prev", values) == chain(key, "prev", values)


def test_a_batch_append_verifies(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    db = tmp_path / "audit.sqlite"
    log = open_audit(db)
    refs = ["P1", None, ODD]
    versions = ['{"m": "1"}', '{"m": "2"}', '{"m": "1"}']
    log.append_encoded("r1", refs, versions, ["d" * 64] * 3, [f'["{ODD}"]'] * 3, ODD)
    log.append_encoded("r2", refs[:1], versions[:1], ["e" * 64], ["[]"])
    hashed = [log.patient_hash(r) for r in [*refs, refs[0]]]
    log.close()
    result = verify(db)
    assert result.ok, result.problems
    con = sqlite3.connect(db)
    rows = con.execute("SELECT patient_hash, model_versions, token_name FROM scores ORDER BY id")
    assert [tuple(r) for r in rows] == [
        *((h, v, ODD) for h, v in zip(hashed, versions, strict=False)),
        (hashed[3], versions[0], None),
    ]
    con.close()


def test_patient_hash_is_the_documented_hmac(tmp_path, monkeypatch):
    """HMAC-SHA256 of the reference under the key's pseudonym subkey, on both append paths:
    a patient keeps the same pseudonym across logs and versions of this code."""
    key = bytes(range(32))
    monkeypatch.setenv(KEY_ENV, key.hex())
    db = tmp_path / "audit.sqlite"
    log = open_audit(db)
    log.append_encoded("r1", ["P1", ODD], ['{"m": "1"}'] * 2, ["d" * 64] * 2, ["[]"] * 2)
    log.append([AuditRecord("r2", "P1", {"m": "1"}, "e" * 64, [])])
    log.close()
    pseudonym = subkey(key, b"pseudonym")
    want = [hmac.new(pseudonym, r.encode(), hashlib.sha256).hexdigest() for r in ("P1", ODD, "P1")]
    con = sqlite3.connect(db)
    assert [r[0] for r in con.execute("SELECT patient_hash FROM scores ORDER BY id")] == want
    con.close()
    assert verify(db).ok
