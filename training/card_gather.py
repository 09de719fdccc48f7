"""Model card, step 1: read what was logged about a registered version (no computation).

From the registry (the version, its aliases), its training run (tags, params, metrics,
``metrics.json``, ``subgroups.csv``, ``shap/importance.csv``, figures and ``paired_auroc.json``,
the paired comparison computed at training by ``training.paired``), the other candidate runs of
the same call (their logged metrics) and the parent run's data-quality flags (issue 17).
``training.card_context`` turns it into the card's context; nothing here computes a statistic.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from features.errors import CrsRiskError
from training.data_quality import ARTIFACT as DATA_QUALITY_ARTIFACT
from training.paired import PAIRED_FILE

# Run artifact → figure file name in the card (embedded in the HTML, beside the Markdown).
FIGURES: dict[str, tuple[str, str]] = {
    "roc": ("plots/roc.png", "ROC curve (out-of-fold predictions)"),
    "calibration": ("plots/calibration.png", "Calibration (out-of-fold predictions)"),
    "decision_curve": ("plots/decision_curve.png", "Decision curve (net benefit)"),
    "subgroups": ("plots/subgroups.png", "AUROC by subgroup"),
    "importance": (
        "shap/importance.png",
        "Mean |SHAP| by clinical variable (apparent: final model on its training data)",
    ),
    "beeswarm": (
        "shap/beeswarm.png",
        "SHAP values by clinical variable (apparent: final model on its training data)",
    ),
    "dependence": (
        "shap/dependence.png",
        "Contribution against value, top variables (apparent: final model on its training data)",
    ),
}


@dataclass
class Sibling:
    """Another candidate run of the same call at the same landmark, as logged."""

    tags: dict[str, str]
    metrics: dict[str, float]


@dataclass
class CardSources:
    """Everything logged about one registered version that its card states."""

    name: str
    version: str
    mv: Any  # the registry's ModelVersion
    run: Any  # its training run
    aliases: list[str]
    parent_params: dict[str, str]
    summary: dict[str, Any]
    subgroups: pd.DataFrame
    importance: pd.DataFrame
    paired: dict[str, Any]
    siblings: list[Sibling]
    data_quality: dict[str, Any]
    figures: dict[str, bytes] = field(default_factory=dict)


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def siblings(client: Any, run: Any, task: str, landmark: str) -> list[Sibling]:
    """Candidate runs of the same experiment call (same parent) at the same landmark."""
    parent = run.data.tags.get("mlflow.parentRunId")
    flt = f"tags.role = 'candidate' and tags.landmark = '{landmark}' and tags.task = '{task}'"
    if parent:
        flt += f" and tags.`mlflow.parentRunId` = '{parent}'"
    else:
        digest = run.data.tags.get("cohort_digest", "")
        flt += f" and tags.cohort_digest = '{digest}'"
    runs = client.search_runs([run.info.experiment_id], filter_string=flt, max_results=500)
    return [
        Sibling(dict(r.data.tags), dict(r.data.metrics))
        for r in runs
        if r.info.run_id != run.info.run_id
    ]


def data_quality_section(client: Any, parent_run_id: str | None) -> dict[str, Any]:
    """The card's data-quality section: the flags logged on the training run's parent run
    (``recorded`` is False for runs trained before the flags were logged)."""
    empty = {"recorded": False, "n_flags": 0, "flags": [], "thresholds": {}}
    if not parent_run_id:
        return empty
    names = {a.path for a in client.list_artifacts(parent_run_id)}
    if DATA_QUALITY_ARTIFACT not in names:
        return empty
    with tempfile.TemporaryDirectory(prefix="crs-risk-dq-") as tmp:
        path = client.download_artifacts(parent_run_id, DATA_QUALITY_ARTIFACT, tmp)
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    return {
        "recorded": True,
        "n_flags": int(payload.get("n_flags", 0)),
        "flags": payload.get("flags", []),
        "thresholds": payload.get("thresholds", {}),
    }


def gather(client: Any, name: str, version: str) -> CardSources:
    """Read everything the card states from the registry, the run and its artifacts."""
    mv = client.get_model_version(name, str(version))
    run = client.get_run(mv.run_id) if mv.run_id else None
    if run is None:
        raise CrsRiskError(f"{name} v{version} has no training run to describe")
    tags = run.data.tags
    task = mv.tags.get("task") or tags.get("task", "")
    landmark = mv.tags.get("landmark") or tags.get("landmark", "")
    parent = tags.get("mlflow.parentRunId")
    parent_params = client.get_run(parent).data.params if parent else {}

    figures: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="crs-risk-card-") as tmp:
        local = Path(client.download_artifacts(run.info.run_id, "", tmp))
        summary = _read_json(local / "metrics.json")
        subgroups = _read_csv(local / "subgroups.csv")
        importance = _read_csv(local / "shap" / "importance.csv")
        paired = _read_json(local / PAIRED_FILE)
        for key, (path, _) in FIGURES.items():
            if (local / path).is_file():
                figures[key] = (local / path).read_bytes()
    aliases = [
        a
        for a, v in (client.get_registered_model(name).aliases or {}).items()
        if str(v) == str(version)
    ]
    return CardSources(
        name=name,
        version=str(version),
        mv=mv,
        run=run,
        aliases=aliases,
        parent_params=dict(parent_params),
        summary=summary,
        subgroups=subgroups,
        importance=importance,
        paired=paired,
        siblings=siblings(client, run, task, landmark),
        data_quality=data_quality_section(client, parent),
        figures=figures,
    )
