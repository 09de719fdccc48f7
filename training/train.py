"""``train``: wiring of a declared experiment over the pure steps and the tracking sink.

Order of work (nothing is written before every check passed): validate the experiment file →
find and load the cohort → check the tracking store → for each task and landmark, the pure
assessment (``training.assessment``: every candidate, the champion procedure, its null check) →
the tracking sink writes it (``training.sink``: one parent run per task, a ``candidate:`` run
per candidate and a ``champion:procedure@<landmark>`` run) → only then register the champions
(``training.promotion.register_and_promote``: versions first, aliases last, rolled back on
failure; ``@champion`` moves only by the promotion rule or ``--promote``). A champion is
registered only when the procedure that chose it shows usable signal out of sample; its version
points at the
champion-procedure run, so the registry, the card and the service report the outer-loop
estimate of the whole procedure.

Hooks: ``TrainHooks.artifacts`` (files written into every candidate / procedure run),
``TrainHooks.on_landmark`` (called with each ``LandmarkAssessment`` before it is logged, e.g.
exclusion counts or data-quality flags), ``register_champions`` (promotion).

Patient identifiers stay in memory: they align the truth file for ``oracle_auroc`` and are
returned to in-process callers (tests, paired comparisons), never logged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from requests.exceptions import RequestException
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from threadpoolctl import threadpool_limits

from features.build import build_landmarks, exclusion_report
from features.catalog import catalog_for
from features.errors import CrsRiskError
from features.tasks import get_task
from training.assessment import LandmarkAssessment, Skip, assess_landmark
from training.card import log_model_card
from training.champion import Candidate
from training.cohort_source import (
    cohort_label,
    experiment_cohort,
    is_synthetic,
    oracle_auroc,
    read_truth,
)
from training.compare import format_leaderboard
from training.data_quality import data_quality
from training.experiment import Experiment, load_experiment
from training.feature_sets import check_centres, check_feature_sets, feature_set_columns
from training.metrics import MetricReport
from training.paired import paired_auroc
from training.promotion import Entry, Registration, register_and_promote
from training.registry import registered_name, task_definition_digest
from training.sink import (
    ArtifactHook,
    RunContext,
    experiment_run,
    log_data_quality,
    log_experiment_run_summary,
    mark_experiment_kind,
    random_keys,
)
from training.sink_runs import log_candidate, log_procedure
from training.tracking import (
    connect,
    ensure_experiment,
    experiment_name,
    resolve_tracking_uri,
    watch_store,
)


@dataclass
class RunOutcome:
    """One logged run (kept in memory; ``ids`` are never logged).

    ``role`` is ``candidate`` or ``champion_procedure``; for the latter ``model`` is the model
    chosen on the whole cohort and ``usable``/``verdict`` say whether it may be registered.
    """

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
    role: str = "candidate"
    usable: bool = False
    verdict: str = ""


@dataclass
class TrainHooks:
    """Where other steps plug into ``train`` without editing it."""

    artifacts: list[ArtifactHook] = field(default_factory=list)
    on_landmark: list[Callable[[LandmarkAssessment], None]] = field(default_factory=list)


@dataclass
class TrainResult:
    experiment: str
    tracking_uri: str
    runs: list[RunOutcome] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    registrations: list[Registration] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    assessments: list[LandmarkAssessment] = field(default_factory=list)

    @property
    def candidates(self) -> list[RunOutcome]:
        return [r for r in self.runs if r.role == "candidate"]

    @property
    def procedures(self) -> list[RunOutcome]:
        return [r for r in self.runs if r.role == "champion_procedure"]

    def leaderboard(self) -> pd.DataFrame:
        """One row per run: metric estimates with CIs and the gap to the oracle."""
        champions = {r.candidate.run_id for r in self.registrations}
        rows = []
        for r in self.runs:
            m = r.metrics
            rows.append(
                {
                    "task": r.task,
                    "landmark": r.landmark,
                    "role": "champion procedure" if r.role != "candidate" else "candidate",
                    "model": r.model if r.role == "candidate" else f"→ {r.model}",
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

        lines = [f"experiment {self.experiment} → {self.tracking_uri}"]
        board = self.leaderboard()
        if not board.empty:
            lines.append(format_leaderboard(board))
        for s in self.skipped:
            lines.append(f"skipped {s.model} at {s.landmark} ({s.task}): {s.reason}")
        for p in self.procedures:
            lines.append(f"champion procedure at {p.landmark} ({p.task}): {p.verdict}")
        for reg in self.registrations:
            lines.append(f"registered {reg.name} v{reg.version} @champion: {reg.reason}")
        lines.extend(self.notes)
        return "\n".join(lines)


# --- the experiment --------------------------------------------------------------------------
def _progress(console: Any) -> Any:

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def train(
    experiment_file: Path | str,
    *,
    cohort: Path | None = None,
    tracking_uri: str | None = None,
    n_jobs: int = 1,
    register: bool | None = None,
    console: Any = None,
    null_check: int | None = None,
    hooks: TrainHooks | None = None,
    promote: bool = False,
) -> TrainResult:
    """Assess every (task, landmark) of the experiment, log it, register usable champions.

    ``null_check`` = K outcome permutations of the whole procedure per landmark (None:
    the experiment's ``validation.null_check``, else automatic below 100 eligible patients).
    """

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
            # One BLAS thread: the matrices are tiny (≈100 × 300) and threads only add overhead
            # on a shared 2-core machine; parallelism, when asked for, is across folds (n_jobs).
            with threadpool_limits(limits=1), experiment_cohort(exp, cohort) as (co, folder):
                truth = read_truth(folder)
                check_centres(exp, co)
                synthetic = is_synthetic(folder, exp, cohort, truth)
                _train_tasks(
                    exp,
                    co,
                    truth,
                    cohort_label(folder, exp, cohort),
                    synthetic,
                    client,
                    uri,
                    n_jobs,
                    console,
                    result,
                    null_check,
                    hooks or TrainHooks(),
                )
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

    if isinstance(exc, CrsRiskError):
        return exc
    if isinstance(exc, MlflowException | RequestException):
        first = (str(getattr(exc, "message", exc)) or type(exc).__name__).strip().splitlines()[0]
        return CrsRiskError(f"tracking store {uri} failed during training: {first[:300]}")
    return exc


def _train_tasks(
    exp: Experiment,
    co: Any,
    truth: pd.DataFrame | None,
    label: str,
    synthetic: bool,
    client: Any,
    uri: str,
    n_jobs: int,
    console: Any,
    result: TrainResult,
    null_check: int | None,
    hooks: TrainHooks,
) -> None:
    """One parent run per task; per landmark: assess (pure), then log (sink)."""

    digest = co.digest
    for task, tspec in exp.tasks.items():
        tables = build_landmarks(co, task, tuple(tspec.landmarks))
        exclusions = exclusion_report(tables)  # issue 11: logged below as exclusions.json
        exp_id = ensure_experiment(client, experiment_name(task), uri)
        mark_experiment_kind(client, exp_id)
        models = exp.models_for(task)
        ctx = RunContext(exp, exp_id, digest, label, synthetic, extra_artifacts=hooks.artifacts)
        task_assessments: list[LandmarkAssessment] = []
        task_skips: list[Skip] = []
        with experiment_run(ctx, task, exclusions), _progress(console) as bar:
            dq = data_quality(co, {task: tuple(tspec.landmarks)}, exp.flag_rules())  # issue 17
            log_data_quality(dq)
            overall = bar.add_task(f"{task}", total=len(tspec.landmarks))
            for lm in tspec.landmarks:
                table = tables[lm]
                catalog = catalog_for(task, lm)
                sets = {fs: feature_set_columns(exp, fs, catalog) for fs in exp.feature_sets}
                step = bar.add_task(f"  {task}@{lm}", total=None)
                la = assess_landmark(
                    exp,
                    table,
                    catalog,
                    models,
                    sets,
                    oracle=oracle_auroc(truth, table),
                    null_k=null_check,
                    n_jobs=n_jobs,
                    progress=partial(bar.advance, step),
                )
                bar.update(step, visible=False)
                for hook in hooks.on_landmark:
                    hook(la)
                ctx.keys[lm] = random_keys(len(table.y))
                _log_landmark(la, ctx, catalog, result)
                task_assessments.append(la)
                task_skips.extend(la.skipped)
                bar.advance(overall)
            log_experiment_run_summary(task_assessments, task_skips)
        result.skipped.extend(task_skips)
        result.assessments.extend(task_assessments)


def _log_landmark(
    la: LandmarkAssessment, ctx: RunContext, catalog: list[Any], result: TrainResult
) -> None:
    """Write one landmark's assessment through the sink; keep the outcomes in memory."""
    table = la.table
    y = table.y.to_numpy(dtype=int)
    ids = table.ids.to_numpy()
    for c in la.candidates:
        run_id, model_id = log_candidate(c, ctx, catalog, table)
        result.runs.append(
            RunOutcome(
                c.task,
                c.landmark,
                c.model,
                c.feature_set,
                run_id,
                model_id,
                c.calibrated,
                c.metrics(),
                c.report,
                c.validation.predictions,
                y,
                ids,
                c.spec.built.description,
            )
        )
    p = la.procedure
    if p is None:
        return
    paired = paired_auroc(la, ctx.keys[la.landmark])  # read by the model card
    run_id, procedure_model_id = log_procedure(p, ctx, catalog, table, paired)
    w = p.winner
    result.runs.append(
        RunOutcome(
            p.task,
            p.landmark,
            w.model if w else "none",
            w.feature_set if w else "none",
            run_id,
            procedure_model_id or "",
            bool(w and w.calibrated),
            p.metrics(),
            p.report,
            p.predictions.predictions,
            y,
            ids,
            w.spec.built.description if w else "",
            role="champion_procedure",
            usable=p.usable,
            verdict=p.verdict,
        )
    )


def register_champions(
    exp: Experiment,
    client: Any,
    result: TrainResult,
    *,
    promote: bool = False,
    cohort_kind: str = "",
    cohort_digest: str = "",
) -> None:
    """Register every (task, landmark) winner; ``training.promotion`` decides the promotions."""

    entries = []
    for p in result.procedures:
        name = registered_name(p.task, p.landmark)
        if not p.model_id or (not p.usable and exp.champion.require_signal):
            result.notes.append(f"{name}: no champion registered — {p.verdict}")
            continue
        best = Candidate(
            p.task,
            p.landmark,
            p.model,
            p.feature_set,
            p.run_id,
            p.model_id,
            p.calibrated,
            p.metrics,
            cohort_digest=cohort_digest,
            cohort_kind=cohort_kind,
            task_definition=task_definition_digest(p.task, p.landmark),
        )
        reason = (
            f"{p.model}/{p.feature_set} chosen by the champion procedure "
            f"({'declared primary' if exp.primary else exp.champion.describe()}); "
            f"{p.verdict}"
        )
        t = get_task(p.task)
        description = (
            f"{p.task} at landmark {p.landmark}. Outcome: {t.outcome} Eligible: "
            f"{t.eligibility} Input: the landmark feature table (features.build); output: "
            "probability (predict_proba[:, 1]). Reported performance: outer-loop estimate "
            "of the whole champion procedure (tuning and selection included)."
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
