"""The audit log's key: pseudonymisation and hash-chain keys, kept outside the log.

The key is ``CRS_RISK_AUDIT_KEY`` (64 hex digits) or a key file of mode 0600 (created beside
the log on first use, or given); a key file readable by others is refused. Two keys are derived
from it (HMAC-SHA256 with a purpose label, RFC 2104): one hashes patient references, one chains
the records (:func:`chain`: HMAC of the previous hash and a record's fields).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from features.errors import CrsRiskError

KEY_ENV = "CRS_RISK_AUDIT_KEY"
GENESIS = "0" * 64
"""The previous hash of a chain's first record."""


def default_key_file(audit_db: Path) -> Path:
    """Where the key lives when none is given: beside the log, never inside it."""
    return audit_db.with_name(audit_db.name + ".key")


def load_key(key_file: Path | None, create: bool = True) -> bytes:
    """The pseudonymisation key: ``CRS_RISK_AUDIT_KEY`` (hex) if set, else the key file
    (mode 0600; created with a random key when ``create`` and absent). CrsRiskError when the
    key is malformed or the file readable by group or others."""
    env = os.environ.get(KEY_ENV)
    if env:
        try:
            key = bytes.fromhex(env.strip())
        except ValueError:
            raise CrsRiskError(f"{KEY_ENV} must be hexadecimal (64 digits)") from None
        if len(key) < 32:
            raise CrsRiskError(f"{KEY_ENV} must hold at least 32 bytes (64 hex digits)")
        return key
    if key_file is None:
        raise CrsRiskError(f"no audit key: give a key file or set {KEY_ENV}")
    if not key_file.exists():
        if not create:
            raise CrsRiskError(f"audit key file {key_file} does not exist")
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise CrsRiskError(
                f"audit key file {key_file} cannot be created ({type(exc).__name__})"
            ) from None
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    mode = stat.S_IMODE(key_file.stat().st_mode)
    if mode & 0o077:
        raise CrsRiskError(
            f"audit key file {key_file} has mode {mode:04o}: it must be readable by its owner "
            "only (chmod 600)"
        )
    try:
        key = bytes.fromhex(key_file.read_text(encoding="ascii").strip())
    except (ValueError, UnicodeDecodeError):
        raise CrsRiskError(f"audit key file {key_file} does not hold a hexadecimal key") from None
    if len(key) < 32:
        raise CrsRiskError(f"audit key file {key_file} must hold at least 32 bytes")
    return key


def subkey(key: bytes, purpose: bytes) -> bytes:
    """A key for one purpose derived from the audit key."""
    return hmac.new(key, b"crs-risk audit " + purpose, hashlib.sha256).digest()


def chain(chain_key: bytes, prev: str, values: Sequence[Any]) -> str:
    """HMAC of the previous hash and one record's fields (canonical JSON)."""
    text = json.dumps([prev, *values], ensure_ascii=True, separators=(",", ":"))
    return hmac.new(chain_key, text.encode("ascii"), hashlib.sha256).hexdigest()
