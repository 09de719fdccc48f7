"""Risk service (FastAPI) and the ``crs-risk`` command-line entry point.

The public names below are loaded on first use (PEP 562 ``__getattr__``), so importing
``serving`` — as ``crs-risk --help`` does — loads neither FastAPI nor MLflow and has no side
effects.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving.app import create_app
    from serving.audit import AuditRecord, open_audit
    from serving.audit_verify import verify
    from serving.auth import add_token, load_tokens
    from serving.batch import score_batch
    from serving.conversion import RequestProblems, validate_requests
    from serving.loading import LoadedModel, Snapshot, load_snapshot
    from serving.schemas import BatchRequest, BatchResponse, RiskRequest, RiskResponse
    from serving.scoring import score_request
    from serving.server import serve
    from serving.state import Settings
    from serving.store import ModelStore

_HOME = {
    "create_app": "serving.app",
    "Settings": "serving.state",
    "serve": "serving.server",
    "ModelStore": "serving.store",
    "Snapshot": "serving.loading",
    "LoadedModel": "serving.loading",
    "load_snapshot": "serving.loading",
    "RiskRequest": "serving.schemas",
    "RiskResponse": "serving.schemas",
    "BatchRequest": "serving.schemas",
    "BatchResponse": "serving.schemas",
    "validate_requests": "serving.conversion",
    "RequestProblems": "serving.conversion",
    "score_request": "serving.scoring",
    "score_batch": "serving.batch",
    "AuditRecord": "serving.audit",
    "open_audit": "serving.audit",
    "verify": "serving.audit_verify",
    "add_token": "serving.auth",
    "load_tokens": "serving.auth",
}
__all__ = [
    "AuditRecord",
    "BatchRequest",
    "BatchResponse",
    "LoadedModel",
    "ModelStore",
    "RequestProblems",
    "RiskRequest",
    "RiskResponse",
    "Settings",
    "Snapshot",
    "add_token",
    "create_app",
    "load_snapshot",
    "load_tokens",
    "open_audit",
    "score_batch",
    "score_request",
    "serve",
    "validate_requests",
    "verify",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first used."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'serving' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
