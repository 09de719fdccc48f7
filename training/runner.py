"""Run a declared experiment: build tables, validate every model, log to MLflow, register.

Order of work (nothing is written before every check passed): validate the experiment file →
find and load the cohort → check the tracking store → for each task: one parent run, and per
(landmark, feature set, model) one nested run with metrics, plots, per-fold predictions, the
dataset profile and the final model → only then register the champions (all-or-nothing,
``training.registry.register_and_promote``: versions first, aliases last, rolled back on failure).

Patient identifiers stay in memory: they align the truth file for ``oracle_auroc`` and are
returned to in-process callers (tests, paired comparisons), never logged.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from features.errors import CrsRiskError
from features.table import FeatureTable
from training.experiment import LEARNED_MODELS, Experiment, load_experiment
from training.metrics import MetricReport, auroc, evaluate_predictions
from training.registry import (
    Candidate,
    Registration,
    choose_champion,
    registered_name,
)

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


@dataclass
class RunOutcome:
    """One validated model (kept in memory; ``ids`` are never logged)."""

    task: str
    landmark: str
    model: str
    feature_set: str
    run_id: str
    model_id: str
    calibrated: bool
    metrics: dict[str, float]
    report: MetricReport
    predictions: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    description: str = ""


@dataclass
class Skip:
    task: str
    landmark: str
    model: str
    feature_set: str
    reason: str


@dataclass
class TrainResult:
    experiment: str
    tracking_uri: str
    runs: list[RunOutcome] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    registrations: list[Registration] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def leaderboard(self) -> pd.DataFrame:
        """One row per run: metric estimates with CIs and the gap to the oracle."""
        champions = {(r.candidate.run_id) for r in self.registrations}
        rows = []
        for r in self.runs:
            m = r.metrics
            rows.append(
                {
                    "task": r.task,
                    "landmark": r.landmark,
                    "model": r.model,
                    "feature_set": r.feature_set,
                    "n": int(m["n_patients"]),
                    "events": int(m["n_events"]),
                    "auroc": m["auroc"],
                    "auroc_ci_low": m["auroc_ci_low"],
                    "auroc_ci_high": m["auroc_ci_high"],
                    "calibration_slope": m["calibration_slope"],
                    "brier": m["brier"],
                    "oracle_auroc": m.get("oracle_auroc", float("nan")),
                    "champion": r.run_id in champions,
                }
            )
        return pd.DataFrame(rows)

    def render(self) -> str:
        from training.compare import format_leaderboard

        lines = [f"experiment {self.experiment} → {self.tracking_uri}"]
        board = self.leaderboard()
        if not board.empty:
            lines.append(format_leaderboard(board))
        for s in self.skipped:
            lines.append(f"skipped {s.model} at {s.landmark} ({s.task}): {s.reason}")
        for reg in self.registrations:
            lines.append(f"registered {reg.name} v{reg.version} @champion: {reg.reason}")
        lines.extend(self.notes)
        return "\n".join(lines)


# --- cohort ----------------------------------------------------------------------------------
@contextmanager
def experiment_cohort(exp: Experiment, override: Path | None) -> Iterator[tuple[Any, Path]]:
    """Load the experiment's cohort (or ``override``); synthesised/imported ones in a temp dir."""
    from features.io import load_cohort

    with tempfile.TemporaryDirectory(prefix="crs-risk-cohort-") as tmp:
        if override is not None:
            folder = Path(override)
        elif exp.cohort.path is not None:
            folder = exp.resolve(exp.cohort.path)
        elif exp.cohort.synth is not None:
            from features.synth import synth_to_folder

            s = exp.cohort.synth
            folder = Path(tmp) / "cohort"
            synth_to_folder(
                folder,
                n=s.n,
                seed=s.seed,
                centers=s.centers,
                new_center=s.new_center,
                center_shift=s.center_shift,
            )
        else:
            from features.importer import import_cohort

            spec = exp.cohort.import_
            assert spec is not None
            folder = Path(tmp) / "cohort"
            import_cohort(exp.resolve(spec.mapping), [exp.resolve(p) for p in spec.sources], folder)
        if not folder.is_dir():
            raise CrsRiskError(f"cohort folder not found: {folder}")
        try:
            cohort = load_cohort(folder)
        except CrsRiskError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid cohort"
            raise CrsRiskError(
                f"cohort {folder} is not valid: {first} (run `crs-risk cohort validate {folder}` "
                "for every problem)"
            ) from None
        yield cohort, folder


def read_truth(folder: Path) -> pd.DataFrame | None:
    """The simulator's ``truth.csv`` beside a synthetic cohort, indexed by patient, if any."""
    for name in ("truth.csv", "truth.parquet"):
        path = folder / name
        if path.is_file():
            frame = pd.read_csv(path) if name.endswith(".csv") else pd.read_parquet(path)
            if "patient_id" in frame.columns:
                return frame.assign(patient_id=frame["patient_id"].astype(str)).set_index(
                    "patient_id"
                )
    return None


def oracle_auroc(truth: pd.DataFrame | None, table: FeatureTable) -> float | None:
    """AUROC of the true probability for the task on the table's patients (see ORACLE_NOTE)."""
    if truth is None:
        return None
    column = {"severe_crs": "p_severe_crs", "toci_refractory": "p_toci_refractory"}[table.task]
    if column not in truth.columns:
        return None
    p = truth[column].reindex(table.ids.astype(str).to_numpy()).to_numpy(dtype=float)
    ok = np.isfinite(p)
    if ok.sum() < len(p) or ok.sum() == 0:
        return None
    value = auroc(table.y.to_numpy(dtype=float), p)
    return value if math.isfinite(value) else None


# --- feature sets ----------------------------------------------------------------------------
def feature_set_columns(exp: Experiment, name: str, catalog: list[Any]) -> list[str]:
    """Catalog columns of feature set ``name`` (``all`` = every column of the landmark)."""
    spec = exp.feature_sets[name]
    cols = []
    groups = {s.group for s in catalog}
    for g in [*(spec.include_groups or []), *spec.exclude_groups]:
        if g not in groups:
            raise CrsRiskError(
                f"{exp.source_file}: feature_sets.{name}: unknown group {g!r} "
                f"(groups: {', '.join(sorted(groups))})"
            )
    for s in catalog:
        if spec.include_groups is not None and s.group not in spec.include_groups:
            continue
        if s.group in spec.exclude_groups or s.name in spec.exclude:
            continue
        cols.append(s.name)
    if not cols:
        raise CrsRiskError(f"{exp.source_file}: feature_sets.{name} selects no column")
    return cols


# --- one run ---------------------------------------------------------------------------------
# Metrics bounded to [0, 1]: a shifted interval is clipped to the possible range.
UNIT_INTERVAL_METRICS = {"auroc", "auprc", "brier", "sensitivity", "specificity", "ppv", "npv"}


def _corrected(
    report: MetricReport,
    optimism: dict[str, float] | None,
    out_of_bag: dict[str, np.ndarray] | None,
    level: float,
) -> MetricReport:
    """Harrell: apparent − mean optimism; the CI's width from the out-of-bag spread.

    The apparent CI (resampling patients for a fixed model) ignores that the model itself is
    refitted on each sample, and is far too narrow for a dozen events; the spread of the
    refits' out-of-bag performance includes both sources (and is wider, being measured on
    ~37% of the patients), so it is the conservative choice.
    """
    if not optimism:
        return report
    from training.metrics import Estimate

    alpha = (1 - level) / 2
    est = {}
    for k, e in report.estimates.items():
        o = optimism.get(k, float("nan"))
        value = e.value - o if math.isfinite(o) else float("nan")
        oob = (out_of_bag or {}).get(k)
        finite = oob[np.isfinite(oob)] if oob is not None else np.array([])
        if math.isfinite(value) and finite.size >= 10:
            mid = float(np.median(finite))
            lo_q, hi_q = np.quantile(finite, [alpha, 1 - alpha])
            low, high = value - (mid - lo_q), value + (hi_q - mid)
            if k in UNIT_INTERVAL_METRICS or k.split("_at_")[0] in UNIT_INTERVAL_METRICS:
                value, low, high = (float(np.clip(x, 0.0, 1.0)) for x in (value, low, high))
            est[k] = Estimate(value, low, high)
        else:
            est[k] = Estimate(value, float("nan"), float("nan"))
    return MetricReport(report.n_patients, report.n_events, est, report.thresholds, report.decision)


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


def _write_artifacts(
    out: Path,
    *,
    title: str,
    y: np.ndarray,
    preds: np.ndarray,
    report: MetricReport,
    folds: pd.DataFrame,
    subgroups: pd.DataFrame,
    summary: dict[str, Any],
) -> None:
    from training import plots

    plots.roc_plot(y, preds, title, out / PLOT_FILES["roc"])
    plots.pr_plot(y, preds, title, out / PLOT_FILES["pr"])
    plots.calibration_plot(y, preds, title, out / PLOT_FILES["calibration"])
    plots.decision_curve_plot(report.decision, title, out / PLOT_FILES["decision"])
    if not subgroups.empty:
        plots.subgroup_forest_plot(subgroups, title, out / PLOT_FILES["subgroups"])
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    folds.to_csv(out / "predictions" / "folds.csv", index=False)
    subgroups.to_csv(out / "subgroups.csv", index=False)
    (out / "metrics.json").write_text(
        json.dumps(summary, indent=2, default=_json_default, allow_nan=True), encoding="utf-8"
    )


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer | np.floating):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def _safe_param(value: Any) -> str:
    text = json.dumps(value, default=_json_default) if not isinstance(value, str) else value
    return text[:500]


def run_one(
    exp: Experiment,
    *,
    table: FeatureTable,
    catalog: list[Any],
    model_name: str,
    feature_set: str,
    columns: list[str],
    cohort_digest: str,
    cohort_source: str,
    truth: pd.DataFrame | None,
    experiment_id: str,
    n_jobs: int,
    progress: Any = None,
) -> RunOutcome | Skip:
    """Validate one model at one landmark and log the run; a Skip when its inputs are absent."""
    import mlflow
    from sklearn.base import clone

    from training.models import build_model, example_input, n_parameters
    from training.sample_size import riley_sample_size
    from training.subgroups import subgroup_table
    from training.tracking import log_dataset, provenance_tags
    from training.validate import ValidationPlan, validate

    spec = exp.models[model_name]
    v = exp.validation
    built = build_model(
        model_name,
        X=table.X,
        catalog=catalog,
        landmark=table.landmark,
        columns=columns,
        feature_set=feature_set,
        params=spec.params,
        grid=spec.grid,
        calibration=spec.calibration,
        default_calibration=v.calibration,
        monotone=spec.monotone,
        inner_folds=v.inner_folds,
        scoring=v.tuning_scoring,
        seed=exp.seed,
    )
    if isinstance(built, str):
        return Skip(table.task, table.landmark, model_name, feature_set, built)

    X = table.X.astype("float64")
    y = table.y.to_numpy(dtype=int)
    plan = ValidationPlan(
        method=v.method,
        folds=v.folds,
        repeats=v.repeats,
        group_by_center=v.group_by_center,
        n_bootstrap=v.optimism_bootstraps,
        seed=exp.seed,
        n_jobs=n_jobs,
    )
    centers = table.groups["center"].to_numpy() if "center" in table.groups else None
    result = validate(built.estimator, X, y, plan, centers=centers, progress=progress)
    report = evaluate_predictions(
        y,
        result.predictions,
        thresholds=exp.thresholds,
        decision_thresholds=exp.decision_curve.grid(),
        n_boot=v.bootstrap_ci,
        seed=exp.seed,
        level=v.ci_level,
    )
    report = _corrected(report, result.optimism, result.out_of_bag, v.ci_level)
    final = result.final_model or clone(built.estimator).fit(X, y)
    subgroups = subgroup_table(
        y,
        result.predictions,
        table.groups,
        exp.subgroups,
        n_boot=v.subgroup_bootstrap_ci,
        seed=exp.seed,
        level=v.ci_level,
    )
    size = riley_sample_size(len(y), int(y.sum()), n_parameters(built))
    oracle = oracle_auroc(truth, table)
    metrics = report.flat()
    if oracle is not None:
        metrics["oracle_auroc"] = oracle
        metrics["oracle_gap"] = oracle - metrics["auroc"]
    metrics["events_per_parameter"] = size.events_per_parameter
    metrics["sample_size_min_n"] = float(size.min_n)
    if result.optimism:
        metrics.update({f"optimism_{k}": val for k, val in result.optimism.items()})

    landmark = table.landmark
    run_name = f"{model_name}@{landmark}" + (
        "" if feature_set in ("all", "published") else f"/{feature_set}"
    )
    tags = {
        **provenance_tags(),
        "task": table.task,
        "landmark": landmark,
        "model": model_name,
        "feature_set": feature_set,
        "cohort_digest": cohort_digest,
        "run_type": "training",
        "crs_risk_experiment": exp.name,
        "calibrated": str(built.calibrated).lower(),
        "mlflow.note.content": f"{built.description}. Validation: {v.method}. "
        + " ".join(result.notes),
    }
    params = {
        "task": table.task,
        "landmark": landmark,
        "model": model_name,
        "feature_set": feature_set,
        "cohort_digest": cohort_digest,
        "code_version": tags["code_version"],
        "git_commit": tags["git_commit"],
        "seed": exp.seed,
        "validation_method": v.method,
        "folds": v.folds if v.method != "bootstrap_optimism" else None,
        "repeats": v.repeats if v.method == "repeated_cv" else None,
        "inner_folds": v.inner_folds,
        "group_by_center": v.group_by_center,
        "calibration": getattr(final, "calibration_method_", "none"),
        "tuning_grid": spec.grid or None,
        "n_features": len(built.columns),
        **{f"fixed.{k}": val for k, val in built.fixed_params.items()},
        **{f"best.{k}": val for k, val in getattr(final, "best_params_", {}).items()},
    }
    params = {k: _safe_param(val) for k, val in params.items() if val is not None}
    summary = {
        "task": table.task,
        "landmark": landmark,
        "model": model_name,
        "description": built.description,
        "feature_set": feature_set,
        "validation": {"method": v.method, "notes": result.notes, "optimism": result.optimism},
        "metrics": report.to_dict(),
        "oracle_auroc": oracle,
        "oracle_note": ORACLE_NOTE if oracle is not None else None,
        "sample_size": size.to_dict(),
        "participants": {
            "eligible": len(y),
            "events": int(y.sum()),
            "exclusions": table.summary.get("exclusions", {}),
        },
        "fold_params": result.fold_params,
        "final_params": getattr(final, "best_params_", {}),
        "cohort": {"digest": cohort_digest},
    }
    title = f"{model_name} · {table.task} @ {landmark}"
    example = example_input(catalog, list(table.X.columns))
    with mlflow.start_run(
        run_name=run_name, experiment_id=experiment_id, nested=True, tags=tags
    ) as run:
        mlflow.log_params(params)
        # the model first, then its metrics linked to it in one batch (log_model would otherwise
        # read back every metric's history: one request per metric)
        info = log_model(final.model_, example)
        mlflow.log_metrics({k: float(val) for k, val in metrics.items()}, model_id=info.model_id)
        with tempfile.TemporaryDirectory(prefix="crs-risk-run-") as tmp:
            _write_artifacts(
                Path(tmp),
                title=title,
                y=y,
                preds=result.predictions,
                report=report,
                folds=result.folds,
                subgroups=subgroups,
                summary=summary,
            )
            mlflow.log_artifacts(tmp)
        from training.explain import log_global_explanations  # shap/ artifacts (aggregates)

        log_global_explanations(final.model_, X, catalog, title=title)
        log_dataset(
            X,
            table.y,
            name=f"{table.task}@{landmark}",
            digest=cohort_digest,
            source=cohort_source,
        )
        run_id = run.info.run_id
    return RunOutcome(
        task=table.task,
        landmark=landmark,
        model=model_name,
        feature_set=feature_set,
        run_id=run_id,
        model_id=info.model_id,
        calibrated=built.calibrated,
        metrics=metrics,
        report=report,
        predictions=result.predictions,
        y=y,
        ids=table.ids.to_numpy(),
        description=built.description,
    )


# --- the experiment --------------------------------------------------------------------------
def _progress(console: Any) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _cohort_label(folder: Path, exp: Experiment, override: Path | None) -> str:
    if override is None and exp.cohort.synth is not None:
        s = exp.cohort.synth
        return f"synthetic n={s.n} seed={s.seed}"
    return folder.name


def train(
    experiment_file: Path | str,
    *,
    cohort: Path | None = None,
    tracking_uri: str | None = None,
    n_jobs: int = 1,
    register: bool | None = None,
    console: Any = None,
    promote: bool = False,
) -> TrainResult:
    """Run every (task, landmark, feature set, model) of the experiment and register champions."""
    from rich.console import Console

    from training.tracking import connect, resolve_tracking_uri, watch_store

    exp = load_experiment(experiment_file)
    console = console or Console(stderr=True)
    # pip is not installed in a uv-built venv; MLflow warns about it on every logged model
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    uri = resolve_tracking_uri(tracking_uri)
    if cohort is not None and not Path(cohort).is_dir():
        raise CrsRiskError(f"cohort folder not found: {cohort}")
    if cohort is None and exp.cohort.path is not None and not exp.resolve(exp.cohort.path).is_dir():
        raise CrsRiskError(
            f"{exp.source_file}: cohort.path: folder not found: {exp.resolve(exp.cohort.path)}"
        )
    check_feature_sets(exp)
    client = connect(uri)  # fails fast (one line) when the store is unusable
    result = TrainResult(exp.name, uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        with watch_store(uri):  # a server that dies mid-run: one line within 30 s
            # One BLAS thread: the matrices are tiny (≈100 × 300) and threads only add overhead on
            # a shared 2-core machine; parallelism, when asked for, is across folds (``n_jobs``).
            with threadpool_limits(limits=1), experiment_cohort(exp, cohort) as (co, folder):
                truth = read_truth(folder)
                label = _cohort_label(folder, exp, cohort)
                _train_tasks(exp, co, truth, label, client, uri, n_jobs, console, result)
                synthetic = truth is not None or (cohort is None and exp.cohort.synth is not None)
                kind, digest = ("synthetic" if synthetic else "real"), co.digest
            if truth is None:
                result.notes.append("no truth.csv beside the cohort: oracle_auroc not computed")
            do_register = exp.register_models if register is None else register
            if do_register:
                register_champions(
                    exp, client, result, promote=promote, cohort_kind=kind, cohort_digest=digest
                )
    except Exception as exc:
        err = _as_user_error(exc, uri)
        if err is exc:
            raise
        raise err from exc
    return result


def _as_user_error(exc: Exception, uri: str) -> Exception:
    """A tracking-store failure in the middle of a run → one line (runs already logged stay,
    marked FAILED by MLflow; nothing is registered). Other errors pass through unchanged."""
    from mlflow.exceptions import MlflowException
    from requests.exceptions import RequestException

    if isinstance(exc, CrsRiskError):
        return exc
    if isinstance(exc, MlflowException | RequestException):
        first = (str(getattr(exc, "message", exc)) or type(exc).__name__).strip().splitlines()[0]
        return CrsRiskError(f"tracking store {uri} failed during training: {first[:300]}")
    return exc


def check_feature_sets(exp: Experiment) -> None:
    """Resolve every feature set at every landmark before training (errors name the key)."""
    from features.catalog import catalog_for

    for task, tspec in exp.tasks.items():
        for lm in tspec.landmarks:
            for fs in exp.feature_sets:
                feature_set_columns(exp, fs, catalog_for(task, lm))


def _train_tasks(
    exp: Experiment,
    co: Any,
    truth: pd.DataFrame | None,
    label: str,
    client: Any,
    uri: str,
    n_jobs: int,
    console: Any,
    result: TrainResult,
) -> None:
    """One parent run per task; one nested run per (landmark, feature set, model)."""
    import mlflow

    from features.build import build_landmarks
    from features.catalog import catalog_for
    from training.tracking import ensure_experiment, experiment_name, provenance_tags
    from training.validate import ValidationPlan, n_steps

    digest = co.digest
    for task, tspec in exp.tasks.items():
        tables = build_landmarks(co, task, tuple(tspec.landmarks))
        exp_id = ensure_experiment(client, experiment_name(task), uri)
        models = exp.models_for(task)
        plan_for_count = ValidationPlan(
            method=exp.validation.method,
            folds=exp.validation.folds,
            repeats=exp.validation.repeats,
            n_bootstrap=exp.validation.optimism_bootstraps,
        )
        with (
            mlflow.start_run(
                run_name=f"{exp.name}:{task}",
                experiment_id=exp_id,
                tags={
                    **provenance_tags(),
                    "task": task,
                    "run_type": "experiment",
                    "crs_risk_experiment": exp.name,
                    "cohort_digest": digest,
                    "landmark": ",".join(tspec.landmarks),
                    "model": ",".join(models),
                },
            ) as parent,
            _progress(console) as bar,
        ):
            mlflow.log_params(
                {
                    "experiment": exp.name,
                    "experiment_file": exp.source_file.name if exp.source_file else "",
                    "cohort": label,
                    "cohort_digest": digest,
                    "landmarks": ",".join(tspec.landmarks),
                    "models": ",".join(models),
                    "validation_method": exp.validation.method,
                    "seed": exp.seed,
                }
            )
            jobs = []
            for lm in tspec.landmarks:
                for m in models:
                    # learned models once per feature set; baselines select their own inputs
                    sets = list(exp.feature_sets) if m in LEARNED_MODELS else ["published"]
                    jobs.extend((lm, tables[lm], fs, m) for fs in sets)
            overall = bar.add_task(f"{task}", total=len(jobs))
            for lm, table, fs, m in jobs:
                y = table.y.to_numpy(dtype=int)
                minority = int(min(y.sum(), len(y) - y.sum())) if len(y) else 0
                if minority < 2:
                    result.skipped.append(
                        Skip(task, lm, m, fs, f"{int(y.sum())} events among {len(y)} eligible")
                    )
                    bar.advance(overall)
                    continue
                catalog = catalog_for(task, lm)
                cols = (
                    feature_set_columns(exp, fs, catalog)
                    if fs != "published"
                    else [s.name for s in catalog]
                )
                centers = table.groups["center"].to_numpy() if "center" in table.groups else None
                fold_task = bar.add_task(
                    f"  {m}@{lm}", total=max(1, n_steps(plan_for_count, y, centers))
                )
                outcome = run_one(
                    exp,
                    table=table,
                    catalog=catalog,
                    model_name=m,
                    feature_set=fs,
                    columns=cols,
                    cohort_digest=digest,
                    cohort_source=label,
                    truth=truth,
                    experiment_id=exp_id,
                    n_jobs=n_jobs,
                    progress=lambda k, t=fold_task: bar.advance(t, k),
                )
                bar.update(fold_task, visible=False)
                if isinstance(outcome, Skip):
                    result.skipped.append(outcome)
                    mlflow.set_tag(f"skipped.{m}.{lm}", outcome.reason[:500])
                else:
                    result.runs.append(outcome)
                bar.advance(overall)
            mlflow.set_tag("n_runs", str(sum(1 for r in result.runs if r.task == task)))
            del parent


def register_champions(
    exp: Experiment,
    client: Any,
    result: TrainResult,
    *,
    promote: bool = False,
    cohort_kind: str = "",
    cohort_digest: str = "",
) -> None:
    """Register every (task, landmark) winner; ``training.registry`` decides the promotions."""
    from features.tasks import get_task
    from training.card import log_model_card  # the card travels with the version
    from training.registry import Entry, register_and_promote, task_definition_digest

    entries = []
    for task, tspec in exp.tasks.items():
        for lm in tspec.landmarks:
            runs = [r for r in result.runs if r.task == task and r.landmark == lm]
            if not runs:
                continue
            cands = [
                Candidate(
                    r.task,
                    r.landmark,
                    r.model,
                    r.feature_set,
                    r.run_id,
                    r.model_id,
                    r.calibrated,
                    r.metrics,
                    cohort_digest=cohort_digest,
                    cohort_kind=cohort_kind,
                    task_definition=task_definition_digest(task, lm),
                )
                for r in runs
            ]
            best, reason = choose_champion(cands, exp.champion)
            name = registered_name(task, lm)
            if best is None:
                result.notes.append(f"{name}: no champion registered — {reason}")
                continue
            t = get_task(task)
            description = (
                f"{task} at landmark {lm}. Outcome: {t.outcome} Eligible: {t.eligibility} "
                "Input: the landmark feature table (features.build); output: calibrated "
                "probability (predict_proba[:, 1])."
            )
            entries.append(Entry(name, best, reason, description))
    done = register_and_promote(
        client,
        entries,
        exp.champion,
        force=promote,
        after_version=lambda reg: log_model_card(client, reg.name, reg.version),
    )
    result.registrations.extend(done.promoted)
    result.notes.extend(done.notes())
