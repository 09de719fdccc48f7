"""The one place an assessment is written to MLflow (computation never logs itself): shared parts.

Runs of one ``train`` call, in one experiment per task, named by one scheme:

- ``experiment:<name>`` — the parent run of the call (tags ``landmark.<L>`` / ``model.<M>`` =
  ``true`` so the UI filters on them; ``skipped.json`` lists every skip with its reason);
- ``candidate:<model>/<feature set>@<landmark>`` (tags ``run_type`` = ``training``, ``role`` =
  ``candidate``) — one candidate's out-of-sample estimates, labelled as a candidate's;
- ``champion:procedure@<landmark>`` (``role`` = ``champion_procedure``) — the outer-loop
  estimate of the whole procedure that chose the champion, its null check, the choice made in
  every fold, the comparison with the compact published-style baseline, and the winner refitted
  on the whole cohort as its LoggedModel. A registered champion points at this run.

Out-of-fold predictions are keyed by a per-call random index (``random_keys``), never by cohort
order; subgroup cells under 5 patients are suppressed (``training.subgroups``); SHAP figures
with one point per patient are drawn only for synthetic cohorts. The logged dataset is the
feature table's schema (zero rows) with patient and event counts and the landmark's digest.

Hooks for other steps: ``log_model`` (the registered model's artifacts), ``log_candidate`` /
``log_procedure`` (``training.sink_runs``; ``extra_artifacts`` writes files into the run's
artifact folder). ``log_evaluation`` writes an external validation (``training.evaluate``),
``log_data_quality`` the cohort's data-quality flags on a task's parent run.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import skops.io
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.pandas_dataset import from_pandas
from mlflow.models import infer_signature

from training import plots
from training.assessment import LandmarkAssessment, Skip
from training.data_quality import ARTIFACT as DATA_QUALITY_ARTIFACT
from training.data_quality import metrics_of as data_quality_metrics
from training.data_quality import tags_of as data_quality_tags
from training.experiment import Experiment
from training.explain_global import write_global_explanations
from training.metrics import MetricReport
from training.registry import model_id_of
from training.tracking import provenance_tags

PLOT_FILES = {
    "roc": "plots/roc.png",
    "pr": "plots/precision_recall.png",
    "calibration": "plots/calibration.png",
    "decision": "plots/decision_curve.png",
    "subgroups": "plots/subgroups.png",
}
ORACLE_NOTE = (
    "oracle_auroc = AUROC of the simulator's true probability (truth.csv) for the same eligible "
    "patients; p_severe_crs is the whole-course probability, so at a later landmark it is only "
    "approximately the best achievable among patients still eligible there"
)
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
ArtifactHook = Callable[[Path, Any], None]


@dataclass
class RunContext:
    """What every run of one ``train`` call shares."""

    exp: Experiment
    experiment_id: str
    cohort_digest: str
    cohort_label: str
    synthetic: bool
    keys: dict[str, np.ndarray] = field(default_factory=dict)  # landmark → random key per row
    extra_artifacts: list[ArtifactHook] = field(default_factory=list)


def random_keys(n: int) -> np.ndarray:
    """A fresh random index per call (not seeded: it must not recreate cohort order)."""
    return np.random.default_rng().permutation(n)


def candidate_run_name(model: str, feature_set: str, landmark: str) -> str:
    return f"candidate:{model}/{feature_set}@{landmark}"


def procedure_run_name(landmark: str) -> str:
    return f"champion:procedure@{landmark}"


def mark_experiment_kind(client: Any, experiment_id: str) -> None:
    """Tag the experiment so the MLflow UI opens on training runs (not the GenAI overview)."""
    client.set_experiment_tag(experiment_id, *EXPERIMENT_KIND)


# --- models and datasets ---------------------------------------------------------------------
def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("mlflow", "scikit-learn", "xgboost-cpu", "skops", "numpy", "pandas", "scipy"):
        try:
            out[pkg] = version(pkg)
        except Exception:
            continue
    return out


def pip_requirements() -> list[str]:
    """Pinned requirements for logged models (inference costs 6–11 s per model otherwise)."""
    return [f"{k}=={v}" for k, v in _versions().items()]


def log_model(model: Any, example: pd.DataFrame) -> Any:
    """Log the fitted scikit-learn object (skops, float64 signature, synthetic example)."""
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    signature = infer_signature(example, model.predict_proba(example))
    return mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        input_example=example,
        pip_requirements=pip_requirements(),
        serialization_format="skops",
        skops_trusted_types=trusted,
        pyfunc_predict_fn="predict_proba",
    )


def landmark_digest(X: pd.DataFrame, y: pd.Series) -> str:
    """SHA-256 of the landmark table's values and outcomes (identifies it; reveals nothing)."""
    h = hashlib.sha256()
    h.update(",".join(map(str, X.columns)).encode())
    h.update(np.ascontiguousarray(X.to_numpy(dtype=np.float64)).tobytes())
    h.update(np.asarray(y, dtype=np.int8).tobytes())
    return h.hexdigest()


def log_feature_schema(
    X: pd.DataFrame,
    y: pd.Series,
    *,
    name: str,
    cohort_label: str,
    cohort_digest: str,
    context: str = "training",
) -> Any:
    """``mlflow.log_input`` of the feature table's real schema (zero rows) with its counts;
    returns the dataset (metrics can be linked to it)."""
    schema = X.iloc[:0].astype("float64").assign(outcome=pd.Series(dtype="float64"))
    digest = landmark_digest(X, y)
    source = CodeDatasetSource(
        {
            "cohort": cohort_label,
            "cohort_digest": cohort_digest,
            "landmark_digest": digest,
            "patients": str(len(y)),
            "events": str(int(np.asarray(y).sum())),
            "rows_logged": "0 (schema only: no patient rows leave the cohort folder)",
        }
    )
    ds = from_pandas(schema, source=source, name=name, digest=digest[:36])
    mlflow.log_input(ds, context=context)
    return ds


def log_schema(table: Any, ctx: RunContext) -> None:
    log_feature_schema(
        table.X,
        table.y,
        name=f"{table.task}@{table.landmark}",
        cohort_label=ctx.cohort_label,
        cohort_digest=ctx.cohort_digest,
    )


# --- artifacts ---------------------------------------------------------------------------------
def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer | np.floating):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_json_default), encoding="utf-8")


def write_plots(
    out: Path,
    title: str,
    y: np.ndarray,
    preds: np.ndarray,
    report: Any,
    sub: Any,
    *,
    any_subgroup_auroc: bool = True,
) -> None:
    """ROC, precision-recall, calibration, decision-curve and subgroup plots into ``out``
    (the subgroup plot when there are subgroups — with ``any_subgroup_auroc``, when at least
    one has an AUROC)."""
    plots.roc_plot(y, preds, title, out / PLOT_FILES["roc"])
    plots.pr_plot(y, preds, title, out / PLOT_FILES["pr"])
    plots.calibration_plot(y, preds, title, out / PLOT_FILES["calibration"])
    plots.decision_curve_plot(report.decision, title, out / PLOT_FILES["decision"])
    if not sub.empty and (not any_subgroup_auroc or sub["auroc"].notna().any()):
        plots.subgroup_forest_plot(sub, title, out / PLOT_FILES["subgroups"])


def param(value: Any) -> str:
    text = json.dumps(value, default=_json_default) if not isinstance(value, str) else value
    return text[:500]


def base_tags(ctx: RunContext, task: str, landmark: str) -> dict[str, str]:
    exp = ctx.exp
    return {
        **provenance_tags(),
        "task": task,
        "landmark": landmark,
        "cohort_digest": ctx.cohort_digest,
        "crs_risk_experiment": exp.name,
        "experiment_file": exp.source_file.name if exp.source_file else "",
        "validation_method": exp.validation.method,
        "synthetic_cohort": str(ctx.synthetic).lower(),
    }


def explain(model: Any, X: pd.DataFrame, catalog: list[Any], title: str, ctx: RunContext) -> None:
    log_global_explanations(model, X, catalog, title=title, per_patient=ctx.synthetic)


def log_global_explanations(
    model: Any, X: pd.DataFrame, catalog: Any = None, **options: Any
) -> pd.DataFrame:
    """Log a model's global SHAP files (``training.explain_global.write_global_explanations``,
    same ``options``) to the active MLflow run; return the importance table."""
    if mlflow.active_run() is None:
        raise RuntimeError("log_global_explanations needs an active MLflow run")
    with tempfile.TemporaryDirectory(prefix="crs-risk-shap-") as tmp:
        table = write_global_explanations(model, X, Path(tmp), catalog, **options)
        mlflow.log_artifacts(tmp)
    return table


@contextmanager
def experiment_run(ctx: RunContext, task: str, exclusions: dict[str, Any]) -> Iterator[None]:
    """The parent run of one task in a ``train`` call (``experiment:<name>``): provenance tags,
    the experiment's settings as params and ``exclusions.json`` (aggregate counts, issue 11)."""
    exp = ctx.exp
    with mlflow.start_run(
        run_name=f"experiment:{exp.name}",
        experiment_id=ctx.experiment_id,
        tags={
            **provenance_tags(),
            "task": task,
            "run_type": "experiment",
            "crs_risk_experiment": exp.name,
            "experiment_file": exp.source_file.name if exp.source_file else "",
            "cohort_digest": ctx.cohort_digest,
            "validation_method": exp.validation.method,
        },
    ):
        mlflow.log_params(
            {
                "experiment": exp.name,
                "experiment_file": exp.source_file.name if exp.source_file else "",
                "cohort": ctx.cohort_label,
                "cohort_digest": ctx.cohort_digest,
                "validation_method": exp.validation.method,
                "champion_rule": exp.champion.describe(),
                "primary": exp.primary or "none (selection by the rule)",
                "seed": exp.seed,
            }
        )
        mlflow.log_dict(exclusions, "exclusions.json")
        yield


def log_experiment_run_summary(la: list[LandmarkAssessment], skipped: list[Skip]) -> None:
    """On the parent run: filterable tags per landmark and model, and every skip's reason."""
    tags: dict[str, str] = {}
    for a in la:
        tags[f"landmark.{a.landmark}"] = "true"
        for c in a.candidates:
            tags[f"model.{c.model}"] = "true"
    for s in skipped:
        tags[f"skipped.{s.model}.{s.landmark}"] = s.reason[:500]
    mlflow.set_tags(tags)
    mlflow.log_dict(
        {"skipped": [s.__dict__ for s in skipped]},
        "skipped.json",
    )


def log_data_quality(payload: dict[str, Any]) -> None:
    """The cohort's data-quality flags (``training.data_quality.data_quality``, aggregates only)
    on the active run: metrics, tags and ``data_quality.json`` (issue 17)."""
    mlflow.log_metrics(data_quality_metrics(payload))
    mlflow.set_tags(data_quality_tags(payload))
    mlflow.log_dict(payload, DATA_QUALITY_ARTIFACT)


def log_evaluation(
    *,
    experiment_id: str,
    run_name: str,
    tags: dict[str, str],
    params: dict[str, Any],
    X: pd.DataFrame,
    y: pd.Series,
    predictions: np.ndarray,
    report: MetricReport,
    metrics: dict[str, float],
    subgroups: pd.DataFrame,
    summary: dict[str, Any],
    dataset: dict[str, str],
    model_id: str | None,
    title: str,
) -> str:
    """An external-validation run (``training.evaluate``) → its run id: params, the schema-only
    dataset, metrics linked to the registered LoggedModel and the dataset, plots, keyed
    predictions, the subgroup table and ``metrics.json``."""
    ya = y.to_numpy(dtype=int)
    with mlflow.start_run(run_name=run_name, experiment_id=experiment_id, tags=tags) as run:
        mlflow.log_params(params)
        ds = log_feature_schema(X, y, context="evaluation", **dataset)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, model_id=model_id, dataset=ds)
        with tempfile.TemporaryDirectory(prefix="crs-risk-eval-") as tmp:
            out = Path(tmp)
            write_plots(out, title, ya, predictions, report, subgroups, any_subgroup_auroc=False)
            (out / "predictions").mkdir()
            keyed = pd.DataFrame({"key": random_keys(len(ya)), "y": ya, "p": predictions})
            keyed.sort_values("key").to_csv(out / "predictions" / "evaluation.csv", index=False)
            subgroups.to_csv(out / "subgroups.csv", index=False)
            (out / "metrics.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
            mlflow.log_artifacts(tmp)
        return str(run.info.run_id)


def log_card_files(
    client: Any,
    name: str,
    version: str,
    write: Callable[[Path], object],
    card_dir: str,
    tag: str,
    tag_value: str,
) -> None:
    """Log a model card beside a registered version: ``write(folder)`` puts the files in
    ``card_dir``, which goes to the LoggedModel's artifacts and the training run; the version's
    ``tag`` points at it (the card is built from what was logged, ``training.card``)."""
    mv = client.get_model_version(name, str(version))
    with tempfile.TemporaryDirectory(prefix="crs-risk-card-") as tmp:
        folder = Path(tmp) / card_dir
        write(folder)
        model_id = model_id_of(mv)
        if model_id:
            client.log_model_artifacts(model_id, tmp)
        if mv.run_id:
            client.log_artifacts(mv.run_id, str(folder), card_dir)
    client.set_model_version_tag(name, str(version), tag, tag_value)
