"""Named bearer tokens with roles, stored hashed at rest.

A token file holds one token per line — ``<name> <role> sha256:<hex digest of the token>`` —
with roles ``score`` (score, examples, models) and ``admin`` (also reloads models); ``#``
starts a comment. Tokens are random 256-bit strings made by ``crs-risk token add``, which
prints a token once and stores only its SHA-256 digest (a fast hash is enough for
high-entropy secrets: there is nothing to brute-force, unlike passwords; OWASP Password
Storage Cheat Sheet). The legacy ``CRS_RISK_TOKEN`` environment variable still works as one
``admin`` token named ``env``.

The page shell (``/``), its static assets, ``/docs``, ``/openapi.json``, ``/healthz`` and
``/readyz`` need no token: they hold no patient data, and the page asks for a token before
its first API call.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from features.errors import CrsRiskError

ROLES = ("score", "admin")
_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
OPEN_PATHS = frozenset({"/", "/healthz", "/readyz", "/docs", "/openapi.json", "/favicon.ico"})
OPEN_PREFIXES = ("/static/", "/docs-assets/")
ADMIN_PATHS = frozenset({"/v1/models/reload"})


@dataclass(frozen=True)
class Token:
    name: str
    role: str
    digest: bytes


def digest(token: str | bytes) -> bytes:
    raw = token.encode() if isinstance(token, str) else token
    return hashlib.sha256(raw).digest()


class Tokens:
    """The configured tokens; ``check`` returns the token a request presented, or None."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens

    def __bool__(self) -> bool:
        return bool(self.tokens)

    def check(self, presented: bytes) -> Token | None:
        d = digest(presented)
        found = None
        for t in self.tokens:  # compare with every token: no early exit by position
            if hmac.compare_digest(d, t.digest):
                found = t
        return found


def read_token_file(path: Path) -> list[Token]:
    """Parse a token file (CrsRiskError naming the line and rule; never the digest)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CrsRiskError(f"token file {path} cannot be read ({type(exc).__name__})") from None
    out: list[Token] = []
    names: set[str] = set()
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("sha256:"):
            raise CrsRiskError(
                f"token file {path}, line {n}: expected '<name> <role> sha256:<hex>'"
            )
        name, role, hexdigest = parts[0], parts[1], parts[2][len("sha256:") :]
        if not _NAME.match(name):
            raise CrsRiskError(
                f"token file {path}, line {n}: name must be 1–64 letters/digits/._@-"
            )
        if role not in ROLES:
            raise CrsRiskError(
                f"token file {path}, line {n}: role must be one of {', '.join(ROLES)}"
            )
        if name in names:
            raise CrsRiskError(f"token file {path}, line {n}: the name {name} is used twice")
        try:
            d = bytes.fromhex(hexdigest)
        except ValueError:
            d = b""
        if len(d) != 32:
            raise CrsRiskError(f"token file {path}, line {n}: the digest must be 64 hex digits")
        names.add(name)
        out.append(Token(name, role, d))
    if not out:
        raise CrsRiskError(f"token file {path} holds no token")
    return out


def load_tokens(token_file: Path | None, env_token: str | None) -> Tokens:
    """Tokens from the file and/or the legacy environment token (admin, named ``env``)."""
    tokens = read_token_file(token_file) if token_file is not None else []
    if env_token:
        if len(env_token) < 16:
            raise CrsRiskError("CRS_RISK_TOKEN must be at least 16 characters")
        tokens.append(Token("env", "admin", digest(env_token)))
    return Tokens(tokens)


def add_token(path: Path, name: str, role: str) -> str:
    """Append a new random token to the file (created 0600); returns the token (shown once)."""
    if not _NAME.match(name):
        raise CrsRiskError("token name must be 1–64 letters, digits or . _ @ -")
    if role not in ROLES:
        raise CrsRiskError(f"role must be one of {', '.join(ROLES)}")
    if path.exists() and any(t.name == name for t in read_token_file(path)):
        raise CrsRiskError(f"token file {path} already has a token named {name}")
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(f"{name} {role} sha256:{digest(token).hex()}\n")
    return token


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")
