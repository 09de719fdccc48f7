"""Registry look-ups: registered names, versions behind a ``models:/`` URI, the current champion.

Names (agreed across the project): ``crs-severe-<L>h`` (``crs-severe-48h``) for severe CRS at
landmark L, ``crs-toci-refractory-decision`` and ``crs-toci-refractory-first-toci`` for the
tocilizumab-refractory task at its two landmarks. Reads only: ``training.promotion`` registers
versions and moves aliases; ``training.champion`` holds the rule that decides.

Every alias change is recorded on the registered model as its own tag
``alias_history.<time_ns>-<random>`` (:func:`alias_history` reads them back); each promoted
version carries a ``promotion`` tag naming the set moved together (``serving.store`` reads it).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from mlflow.exceptions import MlflowException
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import Timeout

from features.errors import CrsRiskError
from features.tasks import get_task
from training.champion import Candidate

CHAMPION = "champion"
HISTORY_PREFIX = "alias_history."
PROMOTION_TAG = "promotion"
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def registered_name(task: str, landmark: str) -> str:
    """``crs-severe-48h``; ``crs-toci-refractory-decision`` / ``-first-toci``."""
    if task == "severe_crs":
        return f"crs-severe-{landmark}"
    if task == "toci_refractory":
        return "crs-toci-refractory-" + landmark.replace("_", "-")
    raise ValueError(f"unknown task {task!r}")


def task_definition_digest(task: str, landmark: str) -> str:
    """Digest of what the label means at this landmark (outcome, eligibility, parameters).

    The list of other landmarks is left out: adding a landmark to an experiment does not change
    the task a registered model at this landmark answers.
    """
    card = dict(get_task(task).card())
    card.pop("landmarks", None)
    raw = card.pop("parameters", {})
    params = dict(raw) if isinstance(raw, dict) else {}
    params.pop("landmark_hours", None)
    text = json.dumps({**card, "parameters": params, "landmark": landmark}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def resolve_version(client: Any, model_uri: str) -> Any:
    """The registry ModelVersion behind ``models:/NAME@alias`` or ``models:/NAME/VERSION``."""
    match = _URI.match(model_uri)
    if not match:
        raise CrsRiskError(
            f"--model {model_uri!r}: use models:/NAME@ALIAS or models:/NAME/VERSION "
            "(e.g. models:/crs-severe-48h@champion)"
        )
    name = match["name"]
    try:
        if match["alias"]:
            return client.get_model_version_by_alias(name, match["alias"])
        return client.get_model_version(name, match["version"])
    except MlflowException as exc:
        raise CrsRiskError(
            f"--model {model_uri!r}: not found in the registry ({exc.error_code})"
        ) from None


def model_id_of(mv: Any) -> str | None:
    """LoggedModel id of a registered version (``model_id`` or its ``models:/m-…`` source)."""
    mid = getattr(mv, "model_id", None)
    if mid:
        return str(mid)
    match = re.match(r"^models:/(m-[0-9a-f]+)$", str(getattr(mv, "source", "") or ""))
    return match.group(1) if match else None


def current_champion(client: Any, name: str) -> tuple[str, Candidate] | None:
    """The version ``@champion`` points at, described as a candidate (its run's metrics)."""
    try:
        mv = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if unreachable(exc):
            raise
        return None
    tags = dict(mv.tags or {})
    metrics: dict[str, float] = {}
    run_tags: dict[str, str] = {}
    if mv.run_id:
        run = client.get_run(mv.run_id)
        metrics, run_tags = dict(run.data.metrics), dict(run.data.tags)
    cand = Candidate(
        task=tags.get("task", ""),
        landmark=tags.get("landmark", ""),
        model=tags.get("model", "?"),
        feature_set=tags.get("feature_set", "?"),
        run_id=mv.run_id or "",
        model_id=getattr(mv, "model_id", "") or "",
        calibrated=run_tags.get("calibrated", "true") == "true",
        metrics=metrics,
        cohort_digest=tags.get("cohort_digest") or run_tags.get("cohort_digest", ""),
        cohort_kind=tags.get("cohort_kind", ""),
        task_definition=tags.get("task_definition", ""),
    )
    return str(mv.version), cand


# --- alias history ----------------------------------------------------------------------------
def alias_history(client: Any, name: str) -> list[dict[str, Any]]:
    """Every recorded alias change of a registered model, oldest first."""
    rm = client.get_registered_model(name)
    entries = sorted((k, v) for k, v in rm.tags.items() if k.startswith(HISTORY_PREFIX))
    return [json.loads(v) for _, v in entries]


def current_alias_version(client: Any, name: str, alias: str) -> str | None:
    """The version ``alias`` points at (None when unset)."""
    rm = client.get_registered_model(name)
    version = rm.aliases.get(alias) if rm.aliases else None
    return None if version is None else str(version)


def unreachable(exc: BaseException) -> bool:
    """The store cannot be reached (connection refused / timed out), not a normal refusal."""
    if isinstance(exc, RequestsConnectionError | Timeout):
        return True
    text = str(exc)
    return any(
        s in text
        for s in ("Max retries exceeded", "Connection refused", "timed out", "ConnectionError")
    )
