"""The one place a training assessment is written to MLflow (computation never logs itself).

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
``log_procedure`` (``extra_artifacts`` writes files into the run's artifact folder).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.build import exclusion_counts
from training.assessment import (
    INTERVAL_COVERS,
    CandidateAssessment,
    LandmarkAssessment,
    ProcedureAssessment,
    Skip,
)
from training.experiment import Experiment
from training.serving_artifacts import serving_artifacts

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
    from importlib.metadata import version

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
    import mlflow
    import skops.io
    from mlflow.models import infer_signature

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
    import mlflow
    from mlflow.data.code_dataset_source import CodeDatasetSource

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
    ds = mlflow.data.from_pandas(schema, source=source, name=name, digest=digest[:36])
    mlflow.log_input(ds, context=context)
    return ds


def _log_schema(table: Any, ctx: RunContext) -> None:
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


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_json_default), encoding="utf-8")


def keyed_folds(folds: pd.DataFrame, keys: np.ndarray) -> pd.DataFrame:
    """Out-of-fold predictions with the row position replaced by the call's random key."""
    out = folds.assign(key=keys[folds["row"].to_numpy()]).drop(columns="row")
    return out[["repeat", "fold", "key", "y", "p"]].sort_values(["repeat", "key"])


def _plots(out: Path, title: str, y: np.ndarray, preds: np.ndarray, report: Any, sub: Any) -> None:
    from training import plots

    plots.roc_plot(y, preds, title, out / PLOT_FILES["roc"])
    plots.pr_plot(y, preds, title, out / PLOT_FILES["pr"])
    plots.calibration_plot(y, preds, title, out / PLOT_FILES["calibration"])
    plots.decision_curve_plot(report.decision, title, out / PLOT_FILES["decision"])
    if not sub.empty and sub["auroc"].notna().any():
        plots.subgroup_forest_plot(sub, title, out / PLOT_FILES["subgroups"])


def _param(value: Any) -> str:
    text = json.dumps(value, default=_json_default) if not isinstance(value, str) else value
    return text[:500]


def _base_tags(ctx: RunContext, task: str, landmark: str) -> dict[str, str]:
    from training.tracking import provenance_tags

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


def _explain(model: Any, X: pd.DataFrame, catalog: list[Any], title: str, ctx: RunContext) -> None:
    from training.explain import log_global_explanations

    log_global_explanations(model, X, catalog, title=title, per_patient=ctx.synthetic)


# --- candidate run ---------------------------------------------------------------------------
def candidate_params(c: CandidateAssessment, ctx: RunContext) -> dict[str, str]:
    exp = ctx.exp
    built = c.spec.built
    best = getattr(c.final, "best_params_", {})
    params: dict[str, Any] = {
        "task": c.task,
        "landmark": c.landmark,
        "model": c.model,
        "feature_set": c.feature_set,
        "cohort_digest": ctx.cohort_digest,
        "seed": exp.seed,
        "validation_method": c.plan.method,
        "folds": c.plan.folds,
        "repeats": c.plan.repeats if c.plan.method == "repeated_cv" else None,
        "inner_folds": exp.validation.inner_folds,
        "group_by_center": c.plan.group_by_center,
        "calibration": getattr(c.final, "calibration_method_", "none"),
        "tuning_grid": {k.split("__")[-1]: v for k, v in c.spec.grid.items()} or "none",
        "n_features": len(c.spec.choice.columns or built.columns),
        "compact_set": c.spec.choice.compact,
        "n_dropped_columns": len(c.spec.choice.dropped),
        "thresholds": exp.thresholds,
        **{f"fixed.{k}": v for k, v in built.fixed_params.items()},
        **{f"best.{k.split('__')[-1]}": v for k, v in best.items()},
    }
    return {k: _param(v) for k, v in params.items() if v is not None}


def log_candidate(
    c: CandidateAssessment, ctx: RunContext, catalog: list[Any], table: Any
) -> tuple[str, str]:
    """One candidate run → (run_id, model_id)."""
    import mlflow

    from training.models import example_input

    built = c.spec.built
    tags = {
        **_base_tags(ctx, c.task, c.landmark),
        "run_type": "training",
        "role": "candidate",
        "model": c.model,
        "feature_set": c.feature_set,
        "calibrated": str(c.calibrated).lower(),
        "mlflow.note.content": (
            f"Candidate: {built.description}. Estimates are this candidate's own out-of-sample "
            f"estimates ({c.plan.method}); the champion reports the procedure that chooses "
            f"among candidates (run {procedure_run_name(c.landmark)}). "
            + (c.spec.choice.note + ". " if c.spec.choice.note else "")
            + " ".join(c.validation.notes)
        ),
    }
    metrics = c.metrics()
    summary = {
        "role": "candidate",
        "task": c.task,
        "landmark": c.landmark,
        "model": c.model,
        "description": built.description,
        "feature_set": c.feature_set,
        "validation": {
            "method": c.plan.method,
            "folds": c.plan.folds,
            "repeats": c.plan.repeats,
            "notes": c.validation.notes,
        },
        "interval": INTERVAL_COVERS,
        "metrics": c.report.to_dict(),
        "oracle_auroc": c.oracle,
        "oracle_note": ORACLE_NOTE if c.oracle is not None else None,
        "sample_size": c.sample_size.to_dict(),
        "participants": {
            **exclusion_counts(table.summary),  # features.build (issue 11: counts by reason)
            "eligible": c.report.n_patients,
            "events": c.report.n_events,
        },
        "columns": {
            "used": list(c.spec.choice.columns or built.columns),
            "dropped": c.spec.choice.dropped,
            "compact": c.spec.choice.compact,
            "note": c.spec.choice.note,
        },
        "selection_statistics_whole_cohort": c.selection,
        "fold_params": c.validation.fold_params,
        "final_params": getattr(c.final, "best_params_", {}),
        "cohort": {"digest": ctx.cohort_digest},
    }
    title = f"candidate {c.label} · {c.task} @ {c.landmark}"
    y = table.y.to_numpy(dtype=int)
    with mlflow.start_run(
        run_name=candidate_run_name(c.model, c.feature_set, c.landmark),
        experiment_id=ctx.experiment_id,
        nested=True,
        tags=tags,
    ) as run:
        mlflow.log_params(candidate_params(c, ctx))
        info = log_model(c.final.model_, example_input(catalog, list(table.X.columns)))
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, model_id=info.model_id)
        with tempfile.TemporaryDirectory(prefix="crs-risk-run-") as tmp:
            out = Path(tmp)
            _plots(out, title, y, c.validation.predictions, c.report, c.subgroups)
            (out / "predictions").mkdir(parents=True, exist_ok=True)
            keyed_folds(c.validation.folds, ctx.keys[c.landmark]).to_csv(
                out / "predictions" / "folds.csv", index=False
            )
            c.subgroups.to_csv(out / "subgroups.csv", index=False)
            _write_json(out / "metrics.json", summary)
            for hook in ctx.extra_artifacts:
                hook(out, c)
            mlflow.log_artifacts(tmp)
        _explain(c.final.model_, table.X.astype("float64"), catalog, title, ctx)
        _log_schema(table, ctx)
        return run.info.run_id, info.model_id


# --- champion procedure run -------------------------------------------------------------------
def procedure_summary(
    p: ProcedureAssessment, ctx: RunContext, exclusions: dict[str, Any] | None = None
) -> dict[str, Any]:
    exp = ctx.exp
    w = p.winner
    return {
        "role": "champion_procedure",
        "task": p.task,
        "landmark": p.landmark,
        "model": w.model if w else None,
        "feature_set": w.feature_set if w else None,
        "description": w.spec.built.description if w else "",
        "selection": {
            "primary": p.primary,
            "rule": exp.champion.describe(),
            "how": (
                f"declared primary model {p.primary}: no selection"
                if p.primary
                else "the champion rule applied to every candidate's inner cross-validated "
                "predictions on the data given, inside every outer fold and on the whole cohort; "
                "the winner refitted"
            ),
            "candidates": p.candidates,
            "chosen_on_whole_cohort": w.label if w else None,
            "reason": p.reason,
            "fold_choices": p.predictions.choice_counts(),
        },
        "validation": {
            "method": exp.validation.method,
            "folds": w.plan.folds if w else exp.validation.folds,
            "repeats": w.plan.repeats if w else None,
            "notes": w.validation.notes if w else [],
        },
        "interval": INTERVAL_COVERS,
        "metrics": p.report.to_dict(),
        "oracle_auroc": p.oracle,
        "oracle_note": ORACLE_NOTE if p.oracle is not None else None,
        "sample_size": w.sample_size.to_dict() if w else {},
        "participants": {
            **(exclusions or {}),  # features.build.exclusion_counts (issue 11)
            "eligible": p.report.n_patients,
            "events": p.report.n_events,
        },
        "columns": {
            "used": list(w.spec.choice.columns or w.spec.built.columns) if w else [],
            "dropped": w.spec.choice.dropped if w else {},
            "compact": w.spec.choice.compact if w else False,
            "note": w.spec.choice.note if w else "",
        },
        "null_check": (
            {"k": int(p.null.size), "auroc": p.null.tolist()} if p.null is not None else None
        ),
        "compact_baseline": p.baseline or None,
        "usable": p.usable,
        "verdict": p.verdict,
        "final_params": getattr(w.final, "best_params_", {}) if w else {},
        "cohort": {"digest": ctx.cohort_digest},
    }


def log_procedure(
    p: ProcedureAssessment, ctx: RunContext, catalog: list[Any], table: Any
) -> tuple[str, str | None]:
    """The champion-procedure run → (run_id, model_id of the refitted winner or None)."""
    import mlflow

    from training.models import example_input

    w = p.winner
    tags = {
        **_base_tags(ctx, p.task, p.landmark),
        "run_type": "training",
        "role": "champion_procedure",
        "model": w.model if w else "none",
        "feature_set": w.feature_set if w else "none",
        "calibrated": str(w.calibrated).lower() if w else "false",
        "selection": "primary" if p.primary else "rule",
        "usable_signal": str(p.usable).lower(),
        **{f"candidate.{label}": "true" for label in p.candidates},
        "mlflow.note.content": (
            "Champion procedure: the outer-loop estimate of choosing the champion among "
            f"{len(p.candidates)} candidate(s) and refitting it. {p.verdict}. "
            + (p.baseline.get("text", "") if p.baseline else "")
        ),
    }
    params = {
        "task": p.task,
        "landmark": p.landmark,
        "validation_method": ctx.exp.validation.method,
        "folds": ctx.exp.validation.folds,
        "repeats": w.plan.repeats if w else ctx.exp.validation.repeats,
        "inner_folds": ctx.exp.validation.inner_folds,
        "group_by_center": ctx.exp.validation.group_by_center,
        "champion_rule": ctx.exp.champion.describe(),
        "primary": p.primary or "none (selection by the rule)",
        "n_candidates": len(p.candidates),
        "chosen": w.label if w else "none",
        "null_check_k": int(p.null.size) if p.null is not None else 0,
        "thresholds": ctx.exp.thresholds,
        "cohort_digest": ctx.cohort_digest,
    }
    if w is not None:
        params["calibration"] = getattr(w.final, "calibration_method_", "none")
        params["tuning_grid"] = {k.split("__")[-1]: v for k, v in w.spec.grid.items()} or "none"
        params.update(
            {
                f"best.{k.split('__')[-1]}": v
                for k, v in getattr(w.final, "best_params_", {}).items()
            }
        )
    title = f"champion procedure · {p.task} @ {p.landmark}"
    y = table.y.to_numpy(dtype=int)
    with mlflow.start_run(
        run_name=procedure_run_name(p.landmark),
        experiment_id=ctx.experiment_id,
        nested=True,
        tags=tags,
    ) as run:
        mlflow.log_params({k: _param(v) for k, v in params.items() if v is not None})
        model_id = None
        metrics = {k: float(v) for k, v in p.metrics().items()}
        if w is not None:
            info = log_model(w.final.model_, example_input(catalog, list(table.X.columns)))
            model_id = info.model_id
            mlflow.log_metrics(metrics, model_id=model_id)
        else:
            mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory(prefix="crs-risk-run-") as tmp:
            out = Path(tmp)
            _plots(out, title, y, p.predictions.predictions, p.report, p.subgroups)
            folds = _procedure_folds(p)
            (out / "predictions").mkdir(parents=True, exist_ok=True)
            keyed_folds(folds, ctx.keys[p.landmark]).to_csv(
                out / "predictions" / "folds.csv", index=False
            )
            pd.DataFrame(p.predictions.choices).to_csv(out / "selection_choices.csv", index=False)
            p.subgroups.to_csv(out / "subgroups.csv", index=False)
            _write_json(
                out / "metrics.json",
                procedure_summary(p, ctx, exclusion_counts(table.summary)),
            )
            for hook in ctx.extra_artifacts:
                hook(out, p)
            mlflow.log_artifacts(tmp)
        if w is not None:
            # issue 14: what serving reads beside the model (training distribution, interval)
            centers = table.groups["center"].to_numpy() if "center" in table.groups else None
            docs = serving_artifacts(
                table.X, centers, folds, ctx.exp.seed, model=w.final.model_, y=table.y.to_numpy()
            )
            for path, doc in docs.items():
                mlflow.log_dict(doc, path)
            _explain(w.final.model_, table.X.astype("float64"), catalog, title, ctx)
        _log_schema(table, ctx)
        return run.info.run_id, model_id


def _procedure_folds(p: ProcedureAssessment) -> pd.DataFrame:
    """repeat, fold, row, y, p of the procedure's out-of-fold predictions."""
    t = p.template
    preds = p.predictions.predictions
    return t.assign(p=preds[t["repeat"].to_numpy(), t["row"].to_numpy()])


def log_experiment_run_summary(la: list[LandmarkAssessment], skipped: list[Skip]) -> None:
    """On the parent run: filterable tags per landmark and model, and every skip's reason."""
    import mlflow

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
