"""External validation: wiring that scores a new cohort with a registered model and logs it.

E.g. a synthetic "new centre".

``evaluate("models:/crs-severe-48h@champion", cohort_dir)`` loads the registered model, builds
the same landmark feature table on the new cohort with the same code as training, scores it, and
logs an *evaluation* run (``run_type=evaluation``, through ``training.sink``) in the task's
experiment with the same measurement step as training (``training.measure``: metrics and CIs,
decision curve on the experiments' default grid, subgroups) plus calibration-in-the-large
(observed − expected risk) and the O/E ratio — the first things to look at when a model moves
to a new centre (Riley RD et al. 2024, BMJ 384:e074819 on external validation). No refitting
happens here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow

from features.build import build_features
from features.errors import CrsRiskError
from features.io import load_cohort
from training.cohort_source import oracle_auroc, read_truth
from training.experiment import DEFAULT_THRESHOLDS, DecisionCurveSpec, ValidationSpec
from training.measure import MeasureSpec, measure_predictions
from training.metrics import MetricReport
from training.registry import model_id_of, resolve_version
from training.sink import log_evaluation
from training.tracking import (
    connect,
    ensure_experiment,
    experiment_name,
    provenance_tags,
    resolve_tracking_uri,
)

# Centre first: how a model moves to a new centre is the first thing an external validation
# looks at; the other subgroups are the experiments' defaults.
SUBGROUPS: tuple[str, ...] = ("center", "age_band", "product", "marrow_burden")


@dataclass
class EvaluationResult:
    model_uri: str
    registered_name: str
    version: str
    task: str
    landmark: str
    run_id: str
    metrics: dict[str, float]
    report: MetricReport

    def render(self) -> str:
        m = self.metrics
        est = self.report.estimates

        def line(k: str) -> str:
            return f"  {k:<24} {est[k].fmt()}"

        parts = [
            f"external validation of {self.registered_name} v{self.version} "
            f"({self.task} @ {self.landmark}) — run {self.run_id}",
            f"  patients {int(m['n_patients'])}, events {int(m['n_events'])}",
            *(line(k) for k in ("auroc", "auprc", "brier", "calibration_slope")),
            *(line(k) for k in ("calibration_intercept", "calibration_in_the_large")),
            line("oe_ratio"),
        ]
        if "oracle_auroc" in m:
            parts.append(f"  {'oracle_auroc':<24} {m['oracle_auroc']:.3f}")
        return "\n".join(parts)


@contextmanager
def allow_model_loading() -> Iterator[None]:
    """MLflow refuses to deserialise models unless allowed; we only load from our own store."""
    key = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
    old = os.environ.get(key)
    os.environ[key] = "true"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def _training_thresholds(client: Any, run_id: str | None) -> tuple[float, ...]:
    """The thresholds declared for the model's training run (the experiment default if none)."""
    default = DEFAULT_THRESHOLDS
    if not run_id:
        return default
    try:
        text = client.get_run(run_id).data.params.get("thresholds")
        values = tuple(float(t) for t in json.loads(text)) if text else default
    except Exception:  # a run without readable thresholds: the defaults
        return default
    return values or default


def evaluate(
    model_uri: str,
    cohort_dir: Path,
    *,
    tracking_uri: str | None = None,
    n_boot: int = 500,
    seed: int = 7,
    thresholds: tuple[float, ...] | None = None,
) -> EvaluationResult:
    """Score a new cohort with a registered model and log the evaluation run.

    Thresholds default to those declared for the model's training (its run's ``thresholds``);
    metrics are linked to the registered LoggedModel (``model_id``) and to the evaluation
    dataset (the feature table's schema, zero rows, with counts and digest).
    """
    folder = Path(cohort_dir)
    if not folder.is_dir():
        raise CrsRiskError(f"cohort folder not found: {folder}")
    uri = resolve_tracking_uri(tracking_uri)
    client = connect(uri)
    mv = resolve_version(client, model_uri)
    if thresholds is None:
        thresholds = _training_thresholds(client, mv.run_id)
    task, landmark = mv.tags.get("task"), mv.tags.get("landmark")
    if not task or not landmark:
        raise CrsRiskError(f"{model_uri}: the model version has no task/landmark tags")
    cohort = load_cohort(folder)
    table = build_features(cohort, task, landmark)
    y = table.y.to_numpy(dtype=int)
    if y.sum() == 0 or y.sum() == len(y):
        raise CrsRiskError(
            f"cohort {folder}: {int(y.sum())} events among {len(y)} eligible patients at "
            f"{landmark}; external validation needs events and non-events"
        )
    with allow_model_loading():
        model = mlflow.sklearn.load_model(f"models:/{mv.name}/{mv.version}")
    expected = list(getattr(model, "feature_names_in_", table.X.columns))
    X = table.X.reindex(columns=expected).astype("float64")
    p = model.predict_proba(X)[:, 1]
    spec = MeasureSpec(
        thresholds=list(thresholds),
        decision_thresholds=DecisionCurveSpec.model_validate({}).grid(),
        subgroups=list(SUBGROUPS),
        n_boot=n_boot,
        subgroup_n_boot=ValidationSpec.model_validate({}).subgroup_bootstrap_ci,
        seed=seed,
    )
    report, groups = measure_predictions(spec, y, p, table.groups)
    metrics = report.flat()
    oracle = oracle_auroc(read_truth(folder), table)
    if oracle is not None:
        metrics["oracle_auroc"] = oracle
        metrics["oracle_gap"] = oracle - metrics["auroc"]
    exp_id = ensure_experiment(client, experiment_name(task), uri)
    tags = {
        **provenance_tags(),
        "run_type": "evaluation",
        "task": task,
        "landmark": landmark,
        "model": mv.tags.get("model", ""),
        "feature_set": mv.tags.get("feature_set", ""),
        "evaluated_model": model_uri,
        "registered_model": mv.name,
        "registered_version": str(mv.version),
        "source_run_id": mv.run_id or "",
        "cohort_digest": cohort.digest,
    }
    run_id = log_evaluation(
        experiment_id=exp_id,
        run_name=f"evaluate {mv.name} v{mv.version}",
        tags=tags,
        params={
            "task": task,
            "landmark": landmark,
            "model": mv.tags.get("model", ""),
            "evaluated_model": model_uri,
            "registered_version": str(mv.version),
            "cohort_digest": cohort.digest,
            "code_version": tags["code_version"],
            "git_commit": tags["git_commit"],
            "bootstrap_ci": n_boot,
        },
        X=X,
        y=table.y,
        predictions=p,
        report=report,
        metrics=metrics,
        subgroups=groups,
        summary={
            "model": model_uri,
            "version": str(mv.version),
            "metrics": report.to_dict(),
            "oracle_auroc": oracle,
            "participants": {
                "eligible": len(y),
                "events": int(y.sum()),
                "exclusions": table.summary.get("exclusions", {}),
            },
        },
        dataset={
            "name": f"{task}@{landmark}",
            "cohort_label": folder.name,
            "cohort_digest": cohort.digest,
        },
        model_id=model_id_of(mv),
        title=f"{mv.name} v{mv.version} · external",
    )
    return EvaluationResult(
        model_uri, mv.name, str(mv.version), task, landmark, run_id, metrics, report
    )
