"""Data-quality flags at ``train`` time (issue 17 §3) and the model card's data-quality section.

The flags are ``features.profile.quality_flags`` of the training cohort at the experiment's
landmarks — the same ones ``crs-risk cohort profile`` shows. What leaves the cohort is
``features.profile.flag_aggregates``: counts per kind, the flagged analytes / task landmarks,
each flag's evidence and fix (aggregate text) and the thresholds — never a row or a patient id.

Hooks (kept to one call each): ``training.train`` calls :func:`log_data_quality` inside each
task's parent run; ``training.card`` calls :func:`data_quality_section` for the card.
"""

from __future__ import annotations

from typing import Any

from features.cohort import Cohort
from features.profile import KINDS, FlagRules, flag_aggregates, quality_flags

ARTIFACT = "data_quality.json"


def data_quality(
    cohort: Cohort, landmarks: dict[str, tuple[str, ...]], rules: FlagRules | None = None
) -> dict[str, Any]:
    """Aggregated flags of ``cohort`` at ``landmarks`` (task → landmark names). Pure."""
    rules = rules or FlagRules()
    return flag_aggregates(quality_flags(cohort, rules, landmarks), rules)


def metrics_of(payload: dict[str, Any]) -> dict[str, float]:
    """MLflow metrics: the number of flags, in all and per kind."""
    out = {"data_quality_flags": float(payload["n_flags"])}
    out.update({f"data_quality_{k}": float(payload["counts"].get(k, 0)) for k in KINDS})
    return out


def tags_of(payload: dict[str, Any]) -> dict[str, str]:
    """MLflow tags: the flagged subjects (analyte names, task@landmark) per kind."""
    return {
        f"data_quality.{k}": ",".join(subjects)[:500]
        for k, subjects in payload["subjects"].items()
        if subjects
    }


def log_data_quality(cohort: Cohort, task: str, landmarks: tuple[str, ...] | list[str]) -> None:
    """Compute the flags for ``task`` at ``landmarks`` and log their aggregates to the active
    MLflow run (metrics, tags, ``data_quality.json``)."""
    import mlflow

    payload = data_quality(cohort, {task: tuple(landmarks)})
    mlflow.log_metrics(metrics_of(payload))
    mlflow.set_tags(tags_of(payload))
    mlflow.log_dict(payload, ARTIFACT)


def data_quality_section(client: Any, parent_run_id: str | None) -> dict[str, Any]:
    """The card's data-quality section: the flags logged on the training run's parent run
    (``recorded`` is False for runs trained before the flags were logged)."""
    import json
    import tempfile
    from pathlib import Path

    empty = {"recorded": False, "n_flags": 0, "flags": [], "thresholds": {}}
    if not parent_run_id:
        return empty
    names = {a.path for a in client.list_artifacts(parent_run_id)}
    if ARTIFACT not in names:
        return empty
    with tempfile.TemporaryDirectory(prefix="crs-risk-dq-") as tmp:
        path = client.download_artifacts(parent_run_id, ARTIFACT, tmp)
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    return {
        "recorded": True,
        "n_flags": int(payload.get("n_flags", 0)),
        "flags": payload.get("flags", []),
        "thresholds": payload.get("thresholds", {}),
    }
