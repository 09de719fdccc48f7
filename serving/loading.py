"""Champions loaded and described: a :class:`LoadedModel` per registered name, a :class:`Snapshot`.

Every task/landmark name discovered in the registry (``serving.registry_names``) is resolved
through its ``champion`` alias (or to a version resolved before) to one model version, loaded
with ``mlflow.sklearn.load_model`` and described by its training run: headline validation
metrics with CIs, the training cohort digest, the declared risk thresholds and the
cross-validated predictions behind each band's evidence (``serving.bands``); plus what serving
reads beside the model (``training.serving_artifacts``: the training distribution and the
interval table; older models fall back, see :func:`load_one`).

A :class:`Snapshot` is immutable: a reload builds a new one off to the side
(``serving.store``).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow.exceptions import MlflowException

from features.errors import CrsRiskError
from features.manifest import run_is_synthetic
from serving.bands import Band, band_evidence, band_index, band_names, finite, thresholds_of
from serving.explaining import input_columns, make_explainer, prepare
from serving.registry_names import ALIAS, landmark_hours, landmarks, model_name, model_names
from training.interval import IntervalTable, fit_interval
from training.registry import unreachable as _unreachable
from training.serving_artifacts import DISTRIBUTION_PATH, INTERVAL_PATH
from training.tracking import check_reachable

HEADLINE_METRICS: tuple[str, ...] = (
    "auroc",
    "auprc",
    "brier",
    "scaled_brier",
    "calibration_slope",
    "calibration_intercept",
)


@dataclass(frozen=True)
class LoadedModel:
    """One champion, loaded and described."""

    name: str
    task: str
    landmark: str
    version: str
    run_id: str | None
    model: Any
    columns: tuple[str, ...]
    thresholds: tuple[float, ...]
    metrics: dict[str, tuple[float | None, float | None, float | None]]
    n_patients: int | None
    n_events: int | None
    cohort_digest: str | None
    model_type: str | None
    bands: tuple[Band, ...]
    explainer: Any = None
    alias: str = ALIAS
    distribution: dict[str, Any] | None = None  # training.distribution (None: an older model)
    interval: Any = None  # training.interval.IntervalTable (None: an older model)
    synthetic: bool | None = None  # trained on a synthetic cohort (None: not recorded)
    products: tuple[str, ...] | None = None  # products seen in training

    @property
    def hours(self) -> float | None:
        return landmark_hours(self.landmark)

    def band(self, p: float) -> tuple[str, Band | None]:
        i = int(band_index(p, self.thresholds))
        names = band_names(len(self.thresholds))
        return names[i], (self.bands[i] if i < len(self.bands) else None)


@dataclass(frozen=True)
class Snapshot:
    """Every champion loaded at one moment (immutable; swapped whole on reload)."""

    models: dict[tuple[str, str], LoadedModel]
    missing: tuple[str, ...]
    loaded_at: str
    tracking_uri: str
    generation: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def get(self, task: str, landmark: str) -> LoadedModel | None:
        return self.models.get((task, landmark))


def _read_folds(client: Any, run_id: str) -> pd.DataFrame | None:
    """The run's out-of-fold predictions (``predictions/folds.csv``: y and p, no identifiers)."""
    try:
        with tempfile.TemporaryDirectory(prefix="crs-risk-serve-") as tmp:
            path = client.download_artifacts(run_id, "predictions/folds.csv", tmp)
            return pd.read_csv(path)
    except Exception:  # an older run without the artifact: bands without evidence
        return None


def _read_json(client: Any, run_id: str, path: str) -> dict[str, Any] | None:
    """A JSON artifact of the run (None when the run predates it)."""
    try:
        with tempfile.TemporaryDirectory(prefix="crs-risk-serve-") as tmp:
            local = client.download_artifacts(run_id, path, tmp)
            return json.loads(Path(local).read_text(encoding="utf-8"))
    except Exception:
        return None


def _interval(client: Any, run_id: str | None, folds: pd.DataFrame | None) -> Any:
    """The stored interval table, else (an older model) the same method on its out-of-fold
    predictions, computed now; None when neither exists."""
    doc = _read_json(client, run_id, INTERVAL_PATH) if run_id else None
    if doc is not None:
        return IntervalTable.from_dict(doc)
    if folds is None or not {"y", "p"} <= set(folds.columns):
        return None
    key = next((c for c in ("key", "row") if c in folds.columns), None)  # a patient across repeats
    groups = folds[key].to_numpy() if key else None
    return fit_interval(folds["p"].to_numpy(), folds["y"].to_numpy(), groups)


def cohort_synthetic(client: Any, run_id: str, metrics: dict[str, float]) -> bool | None:
    """Whether the model's training cohort was synthetic, from what its run records: the
    decision the model card makes too (``features.manifest.run_is_synthetic``: the run's
    ``synthetic_cohort`` tag first, older evidence for runs logged before it). None when the
    run records nothing (a real cohort cannot be told from an unknown one)."""
    try:
        run = client.get_run(run_id)
    except Exception:
        return run_is_synthetic({}, metrics)
    sources = [d.dataset.source for d in (run.inputs.dataset_inputs or [])]
    return run_is_synthetic(run.data.tags, metrics, sources=sources)


def _explainer(model: Any) -> Any:
    """The model's ``training.explain.ModelExplainer`` (None for an unsupported model type)."""
    try:
        return make_explainer(model)
    except CrsRiskError:
        return None


def load_one(
    client: Any, task: str, landmark: str, version: str | None = None, only: str | None = None
) -> LoadedModel | None:
    """Load ``version`` of the landmark's model, else its ``@champion`` (None if it has none);
    ``only`` restricts the look-up to that registered name."""
    found = find_version(client, [only] if only else model_names(task, landmark), version)
    if found is None:
        return None
    name, mv = found
    version = str(mv.version)
    model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
    params: dict[str, str] = {}
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    if mv.run_id:
        run = client.get_run(mv.run_id)
        params, metrics, tags = dict(run.data.params), dict(run.data.metrics), dict(run.data.tags)
    thresholds = thresholds_of(params, metrics)
    headline = {
        k: (
            finite(metrics.get(k)),
            finite(metrics.get(f"{k}_ci_low")),
            finite(metrics.get(f"{k}_ci_high")),
        )
        for k in HEADLINE_METRICS
        if k in metrics
    }
    folds = _read_folds(client, mv.run_id) if mv.run_id else None
    explainer = _explainer(model)
    distribution = _read_json(client, mv.run_id, DISTRIBUTION_PATH) if mv.run_id else None
    interval = _interval(client, mv.run_id, folds)
    columns = input_columns(model, explainer)
    prepare(model, explainer, columns)  # the probability path is decided now, not on a request
    n_pat, n_ev = finite(metrics.get("n_patients")), finite(metrics.get("n_events"))
    return LoadedModel(
        name=name,
        task=task,
        landmark=landmark,
        version=version,
        run_id=mv.run_id,
        model=model,
        columns=columns,
        thresholds=thresholds,
        metrics=headline,
        n_patients=None if n_pat is None else int(n_pat),
        n_events=None if n_ev is None else int(n_ev),
        cohort_digest=tags.get("cohort_digest") or params.get("cohort_digest"),
        model_type=tags.get("model") or (mv.tags or {}).get("model"),
        bands=band_evidence(folds, thresholds),
        explainer=explainer,
        distribution=distribution,
        interval=interval,
        synthetic=cohort_synthetic(client, mv.run_id, metrics) if mv.run_id else None,
        products=tuple(distribution["products"])
        if distribution and distribution.get("products") is not None
        else None,
    )


def registry_client(tracking_uri: str) -> Any:
    """An MLflow client on ``tracking_uri`` (checked first; CrsRiskError when unusable)."""
    check_reachable(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def load_snapshot(
    tracking_uri: str, generation: int = 0, versions: dict[str, str] | None = None
) -> Snapshot:
    """Load every champion — or exactly ``versions`` (name → version), a set resolved before."""

    client = registry_client(tracking_uri)
    models: dict[tuple[str, str], LoadedModel] = {}
    missing: list[str] = []
    for task, lm in landmarks(client):
        if versions is None:
            loaded = load_one(client, task, lm)
        else:  # exactly the set resolved before (a promotion seen whole)
            name = next((n for n in model_names(task, lm) if n in versions), None)
            if name is None:
                missing.append(model_name(task, lm))
                continue
            loaded = load_one(client, task, lm, versions[name], only=name)
        if loaded is None:
            missing.append(model_name(task, lm))
        else:
            models[(task, lm)] = loaded
    return Snapshot(
        models=models,
        missing=tuple(missing),
        loaded_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        tracking_uri=tracking_uri,
        generation=generation,
    )


def find_version(
    client: Any, names: list[str], version: str | None = None
) -> tuple[str, Any] | None:
    """The first of ``names`` that has ``version`` (else an ``@champion``): (name, model
    version); None when none has. An unreachable registry raises (it is not "no model")."""
    for name in names:
        try:
            if version is None:
                return name, client.get_model_version_by_alias(name, ALIAS)
            return name, client.get_model_version(name, version)
        except MlflowException as exc:
            if _unreachable(exc):
                raise
    return None
