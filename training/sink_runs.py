"""The tracking sink, per landmark: the ``candidate:`` runs and the ``champion:procedure`` run.

Part of the one writer of a training assessment to MLflow (``training.sink`` holds what every
run shares: names, tags, the logged model, the schema-only dataset, plots). A candidate run
holds one candidate's out-of-sample estimates; the procedure run the outer-loop estimate of the
whole procedure that chose the champion, its null check, the choice in every fold, the paired
comparison with every candidate (``paired_auroc.json``) and the winner refitted on the whole
cohort as its LoggedModel (a registered champion points at this run).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from features.build import exclusion_counts
from training.assessment import INTERVAL_COVERS, CandidateAssessment, ProcedureAssessment
from training.experiment import NULL_CHECK_AUTO_BELOW, Experiment
from training.models import example_input
from training.paired import PAIRED_FILE, keyed_folds, procedure_folds
from training.serving_artifacts import serving_artifacts
from training.sink import (
    ORACLE_NOTE,
    RunContext,
    base_tags,
    candidate_run_name,
    explain,
    log_model,
    log_schema,
    param,
    procedure_run_name,
    write_json,
    write_plots,
)


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
    return {k: param(v) for k, v in params.items() if v is not None}


def log_candidate(
    c: CandidateAssessment, ctx: RunContext, catalog: list[Any], table: Any
) -> tuple[str, str]:
    """One candidate run → (run_id, model_id)."""
    built = c.spec.built
    tags = {
        **base_tags(ctx, c.task, c.landmark),
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
            write_plots(out, title, y, c.validation.predictions, c.report, c.subgroups)
            (out / "predictions").mkdir(parents=True, exist_ok=True)
            keyed_folds(c.validation.folds, ctx.keys[c.landmark]).to_csv(
                out / "predictions" / "folds.csv", index=False
            )
            c.subgroups.to_csv(out / "subgroups.csv", index=False)
            write_json(out / "metrics.json", summary)
            for hook in ctx.extra_artifacts:
                hook(out, c)
            mlflow.log_artifacts(tmp)
        explain(c.final.model_, table.X.astype("float64"), catalog, title, ctx)
        log_schema(table, ctx)
        return run.info.run_id, info.model_id


# --- champion procedure run -------------------------------------------------------------------
def null_check_off(exp: Experiment, n_patients: int) -> str:
    """Why no null check ran: ``switched_off`` when K = 0 was set (the experiment file, or
    ``--null-check 0`` on a cohort the automatic rule would have checked), else
    ``above_automatic_size`` (``validation.null_check_for``)."""
    if exp.validation.null_check == 0 or n_patients < NULL_CHECK_AUTO_BELOW:
        return "switched_off"
    return "above_automatic_size"


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
            {"k": int(p.null.size), "auroc": p.null.tolist()}
            if p.null is not None
            else {"k": 0, "why": null_check_off(exp, p.report.n_patients)}
        ),
        "compact_baseline": p.baseline or None,
        "usable": p.usable,
        "verdict": p.verdict,
        "final_params": getattr(w.final, "best_params_", {}) if w else {},
        "cohort": {"digest": ctx.cohort_digest},
    }


def log_procedure(
    p: ProcedureAssessment,
    ctx: RunContext,
    catalog: list[Any],
    table: Any,
    paired: dict[str, Any] | None = None,
) -> tuple[str, str | None]:
    """The champion-procedure run → (run_id, model_id of the refitted winner or None);
    ``paired`` (``training.paired.paired_auroc``) is logged as ``paired_auroc.json``."""
    w = p.winner
    tags = {
        **base_tags(ctx, p.task, p.landmark),
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
        # always logged, so procedure runs line up in the UI (issue 12 §5): "none" without a winner
        "tuning_grid": "none",
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
        mlflow.log_params({k: param(v) for k, v in params.items() if v is not None})
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
            write_plots(out, title, y, p.predictions.predictions, p.report, p.subgroups)
            folds = procedure_folds(p)
            (out / "predictions").mkdir(parents=True, exist_ok=True)
            keyed_folds(folds, ctx.keys[p.landmark]).to_csv(
                out / "predictions" / "folds.csv", index=False
            )
            pd.DataFrame(p.predictions.choices).to_csv(out / "selection_choices.csv", index=False)
            p.subgroups.to_csv(out / "subgroups.csv", index=False)
            if paired is not None:
                write_json(out / PAIRED_FILE, paired)
            write_json(
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
                table.X,
                centers,
                folds,
                ctx.exp.seed,
                model=w.final.model_,
                y=table.y.to_numpy(),
                synthetic=ctx.synthetic,
            )
            for path, doc in docs.items():
                mlflow.log_dict(doc, path)
            explain(w.final.model_, table.X.astype("float64"), catalog, title, ctx)
        log_schema(table, ctx)
        return run.info.run_id, model_id
