"""Pure training steps: from a landmark feature table to an assessment value object.

Nothing here writes to MLflow (``training.sink`` does); the steps are

1. ``candidate_models`` — the candidates of a landmark: every declared model × feature set,
   each with its columns (``training.parsimony``: compact set, uninformative columns dropped)
   and ``calibration: auto`` resolved once from the whole eligible cohort, so every fold and the
   registered model use the same method; a published baseline without inputs is a ``Skip``;
2. ``assess_candidate`` — nested cross-validation of one candidate (out-of-fold predictions,
   metrics with CIs, subgroup table, sample size), its refit on the whole cohort and the
   selection statistics of that refit; a refit the calibration clamp made constant is a
   ``Skip`` with its reason;
3. ``assess_procedure`` — the champion procedure (``training.selection``): the rule applied in
   every outer fold, its out-of-fold predictions and their metrics — what the champion reports —
   the winner on the whole cohort, the null check, the comparison with the compact
   published-style baseline, and the "usable signal" gate for registration;
4. ``assess_landmark`` — all of it for one (task, landmark): a ``LandmarkAssessment``.

Every metric comes from out-of-sample predictions; the CIs are percentile intervals of a
stratified bootstrap of patients over those predictions (``INTERVAL_COVERS`` says so wherever
they are shown).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from features.sample_size import SampleSize, riley_sample_size
from features.table import FeatureTable
from training.calibration import choose_method
from training.experiment import LEARNED_MODELS, Experiment
from training.measure import MeasureSpec, measure_predictions
from training.metrics import MetricReport, auroc, paired_difference
from training.models import BuiltModel, build_model, n_parameters
from training.parsimony import ColumnChoice, resolve_columns, uninformative
from training.resampling import ValidationPlan, ValidationResult, selection_metrics, validate
from training.selection import (
    CandidateFolds,
    ProcedurePredictions,
    champion_predictions,
    null_distribution,
    null_summary,
    pick,
)

COMPACT_BASELINE = "cytokine_max"
INTERVAL_COVERS = (
    "95% CI: percentile interval of a stratified bootstrap of patients over the out-of-sample "
    "predictions; it covers patient sampling for this procedure, not the variability of "
    "refitting it on another cohort"
)
Progress = Callable[[int], None] | None


@dataclass
class Skip:
    """A candidate that was not assessed, and why (logged on the experiment run)."""

    task: str
    landmark: str
    model: str
    feature_set: str
    reason: str


@dataclass
class CandidateSpec:
    """A candidate ready to validate: the procedure and the columns it was given."""

    built: BuiltModel
    choice: ColumnChoice
    grid: dict[str, list[Any]]


@dataclass
class CandidateAssessment:
    """Everything measured about one candidate (no patient identifiers)."""

    task: str
    landmark: str
    spec: CandidateSpec
    validation: ValidationResult
    report: MetricReport
    subgroups: pd.DataFrame
    sample_size: SampleSize
    final: Any  # TunedCalibratedClassifier fitted on the whole eligible cohort
    selection: dict[str, float]  # the rule's metrics of the refit's inner predictions
    oracle: float | None
    plan: ValidationPlan

    @property
    def model(self) -> str:
        return self.spec.built.name

    @property
    def feature_set(self) -> str:
        return self.spec.built.feature_set

    @property
    def label(self) -> str:
        return f"{self.model}/{self.feature_set}"

    @property
    def calibrated(self) -> bool:
        return bool(getattr(self.final, "calibrated_", False))

    def metrics(self) -> dict[str, float]:
        out = self.report.flat()
        if self.oracle is not None:
            out["oracle_auroc"] = self.oracle
            out["oracle_gap"] = self.oracle - out["auroc"]
        out["events_per_parameter"] = self.sample_size.events_per_parameter
        out["sample_size_min_n"] = float(self.sample_size.min_n)
        return out


@dataclass
class ProcedureAssessment:
    """The champion procedure at one landmark: what a registered champion reports."""

    task: str
    landmark: str
    primary: str | None
    predictions: ProcedurePredictions
    report: MetricReport
    subgroups: pd.DataFrame
    winner: CandidateAssessment | None
    reason: str
    candidates: list[str]
    null: np.ndarray | None = None
    baseline: dict[str, Any] = field(default_factory=dict)
    oracle: float | None = None
    usable: bool = False
    verdict: str = ""
    template: pd.DataFrame = field(default_factory=pd.DataFrame)  # repeat, fold, row, y

    def metrics(self) -> dict[str, float]:
        out = self.report.flat()
        if self.oracle is not None:
            out["oracle_auroc"] = self.oracle
            out["oracle_gap"] = self.oracle - out["auroc"]
        if self.null is not None:
            out.update(null_summary(out["auroc"], self.null))
        if self.winner is not None:
            chosen = self.predictions.choice_counts().get(self.winner.label, 0)
            out["selection_stability"] = chosen / max(1, len(self.predictions.choices))
        out["n_candidates"] = float(len(self.candidates))
        if "delta_auroc" in self.baseline:
            d = self.baseline["delta_auroc"]
            out["delta_auroc_vs_compact_baseline"] = d["value"]
            out["delta_auroc_vs_compact_baseline_ci_low"] = d["low"]
            out["delta_auroc_vs_compact_baseline_ci_high"] = d["high"]
        return out


@dataclass
class LandmarkAssessment:
    task: str
    landmark: str
    table: FeatureTable
    candidates: list[CandidateAssessment] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    procedure: ProcedureAssessment | None = None
    calibration: str = "none"
    notes: list[str] = field(default_factory=list)


# --- step 1: candidates ----------------------------------------------------------------------
def validation_plan(exp: Experiment, n_patients: int, n_jobs: int = 1) -> ValidationPlan:
    v = exp.validation
    return ValidationPlan(
        method=v.method,
        folds=v.folds,
        repeats=v.repeats_for(n_patients),
        group_by_center=v.group_by_center,
        seed=exp.seed,
        n_jobs=n_jobs,
    )


def candidate_models(
    exp: Experiment,
    table: FeatureTable,
    catalog: list[Any],
    models: list[str],
    feature_sets: dict[str, list[str]],
) -> tuple[list[CandidateSpec], list[Skip], str]:
    """Candidates of one landmark (and skips); ``auto`` calibration resolved from the cohort."""
    y = table.y
    v = exp.validation
    resolved = choose_method(v.calibration, len(y), int(y.sum()))
    specs: list[CandidateSpec] = []
    skips: list[Skip] = []
    wanted = list(models) + ([COMPACT_BASELINE] if COMPACT_BASELINE not in models else [])
    for m in wanted:
        mspec = exp.models.get(m)
        params = dict(mspec.params) if mspec else {}
        grid = dict(mspec.grid) if mspec else {}
        own = mspec.calibration if mspec else None
        calibration = choose_method(own, len(y), int(y.sum())) if own is not None else None
        sets = list(feature_sets) if m in LEARNED_MODELS else ["published"]
        for fs in sets:
            if m in LEARNED_MODELS:
                choice = resolve_columns(
                    m,
                    feature_sets[fs],
                    task=table.task,
                    landmark=table.landmark,
                    catalog=catalog,
                    X=table.X,
                    y=y,
                )
                label = ("clinical" if fs == "all" else f"clinical.{fs}") if choice.compact else fs
            else:
                choice, label = ColumnChoice([]), fs
            if m in LEARNED_MODELS and not choice.columns:
                skips.append(Skip(table.task, table.landmark, m, label, "no informative column"))
                continue
            built = build_model(
                m,
                X=table.X,
                catalog=catalog,
                landmark=table.landmark,
                columns=choice.columns,
                feature_set=label,
                params=params,
                grid=grid,
                calibration=calibration,
                default_calibration=resolved,
                monotone=mspec.monotone if mspec else True,
                inner_folds=v.inner_folds,
                scoring=v.tuning_scoring,
                seed=exp.seed,
            )
            if isinstance(built, str):
                skips.append(Skip(table.task, table.landmark, m, label, built))
                continue
            if m not in LEARNED_MODELS:
                choice = ColumnChoice(built.columns, uninformative(table.X, built.columns))
            specs.append(CandidateSpec(built, choice, built.estimator.param_grid or {}))
    return specs, skips, resolved


# --- step 2: one candidate -------------------------------------------------------------------
def measure(
    exp: Experiment, table: FeatureTable, predictions: np.ndarray
) -> tuple[MetricReport, pd.DataFrame]:
    """Metrics with CIs and the subgroup table of out-of-fold predictions (R, n)."""
    y = table.y.to_numpy(dtype=int)
    return measure_predictions(MeasureSpec.of(exp), y, predictions, table.groups)


def _centers(table: FeatureTable) -> np.ndarray | None:
    return table.groups["center"].to_numpy() if "center" in table.groups else None


def assess_candidate(
    exp: Experiment,
    table: FeatureTable,
    spec: CandidateSpec,
    plan: ValidationPlan,
    *,
    oracle: float | None = None,
    progress: Progress = None,
) -> CandidateAssessment | Skip:
    """Nested CV + metrics + refit of one candidate; a constant refit is a Skip."""
    X = table.X.astype("float64")
    y = table.y.to_numpy(dtype=int)
    built = spec.built
    final = clone(built.estimator).fit(X, y)
    if getattr(final, "constant_", False):
        return Skip(
            table.task,
            table.landmark,
            built.name,
            built.feature_set,
            "the calibration clamp made the model constant: its inner cross-validated scores "
            "ranked the outcome backwards, so it carries no usable ranking",
        )
    result = validate(built.estimator, X, y, plan, centers=_centers(table), progress=progress)
    report, subgroups = measure(exp, table, result.predictions)
    size = riley_sample_size(len(y), int(y.sum()), n_parameters(built))
    return CandidateAssessment(
        task=table.task,
        landmark=table.landmark,
        spec=spec,
        validation=result,
        report=report,
        subgroups=subgroups,
        sample_size=size,
        final=final,
        selection=selection_metrics(y, getattr(final, "inner_predictions_", None)),
        oracle=oracle,
        plan=plan,
    )


# --- step 3: the champion procedure ----------------------------------------------------------
def _options(cands: list[CandidateAssessment]) -> list[tuple[str, str, bool, dict[str, float]]]:
    return [(c.model, c.feature_set, c.calibrated, c.selection) for c in cands]


def competing(exp: Experiment, cands: list[CandidateAssessment]) -> list[CandidateAssessment]:
    """Candidates the rule chooses among (the automatic compact baseline only if declared)."""
    return [c for c in cands if c.model != COMPACT_BASELINE or COMPACT_BASELINE in exp.models]


def procedure_auroc(
    exp: Experiment,
    table: FeatureTable,
    specs: list[CandidateSpec],
    plan: ValidationPlan,
    y: np.ndarray,
) -> float:
    """Mean out-of-fold AUROC of the whole champion procedure for outcomes ``y``."""
    X = table.X.astype("float64")
    folds = [
        CandidateFolds(
            s.built.name,
            s.built.feature_set,
            validate(s.built.estimator, X, y, plan, centers=_centers(table)),
        )
        for s in specs
    ]
    pred = champion_predictions(folds, y, exp.champion, exp.primary)
    values = [auroc(y, row) for row in pred.predictions]
    return float(np.nanmean(values)) if values else float("nan")


def assess_procedure(
    exp: Experiment,
    table: FeatureTable,
    cands: list[CandidateAssessment],
    plan: ValidationPlan,
    *,
    null_k: int = 0,
    oracle: float | None = None,
    baseline: CandidateAssessment | None = None,
) -> ProcedureAssessment | None:
    """The champion procedure's outer-loop estimate, its winner and whether it is usable."""
    v = exp.validation
    pool = competing(exp, cands)
    if not pool:
        return None
    y = table.y.to_numpy(dtype=int)
    folds = [CandidateFolds(c.model, c.feature_set, c.validation) for c in pool]
    preds = champion_predictions(folds, y, exp.champion, exp.primary)
    report, subgroups = measure(exp, table, preds.predictions)
    label, reason = pick(_options(pool), exp.champion, exp.primary)
    winner = next((c for c in pool if c.label == label), None)
    null = None
    if null_k > 0:
        # one repeat of the outer loop per permutation: the mean over repeats varies less, so
        # this null distribution is the wider one — the comparison with it is conservative
        specs = [c.spec for c in pool]
        one = dataclasses.replace(plan, repeats=1)
        null = null_distribution(
            lambda yy: procedure_auroc(exp, table, specs, one, yy), y, null_k, exp.seed
        )
    out = ProcedureAssessment(
        task=table.task,
        landmark=table.landmark,
        primary=exp.primary,
        predictions=preds,
        report=report,
        subgroups=subgroups,
        winner=winner,
        reason=reason,
        candidates=[c.label for c in pool],
        null=null,
        oracle=oracle,
        template=pool[0].validation.folds[["repeat", "fold", "row", "y"]],
    )
    if baseline is not None and baseline is not winner:
        d = paired_difference(
            auroc,
            y,
            preds.predictions,
            baseline.validation.predictions,
            n_boot=max(200, v.bootstrap_ci),
            seed=exp.seed,
            level=v.ci_level,
        )
        beats = math.isfinite(d.low) and d.low > 0
        out.baseline = {
            "model": baseline.label,
            "description": baseline.spec.built.description,
            "delta_auroc": {"value": d.value, "low": d.low, "high": d.high},
            "beats": beats,
            "text": (
                f"the champion procedure beats the compact published-style baseline "
                f"({baseline.label}): ΔAUROC {d.fmt()}"
                if beats
                else f"the champion procedure does NOT beat the compact published-style baseline "
                f"({baseline.label}): ΔAUROC {d.fmt()} (interval includes 0)"
            ),
        }
    out.usable, out.verdict = usable_signal(out)
    return out


def usable_signal(p: ProcedureAssessment) -> tuple[bool, str]:
    """Register only when the outer-loop AUROC is clearly above chance (and above the null)."""
    e = p.report.estimates["auroc"]
    if p.winner is None:
        return False, f"no candidate passed the rule on the whole cohort ({p.reason})"
    if not (math.isfinite(e.low) and e.low > 0.5):
        return False, (
            f"no usable signal: the champion procedure's outer-loop AUROC {e.fmt()} includes 0.5"
        )
    if p.null is not None and np.isfinite(p.null).any():
        p95 = float(np.quantile(p.null[np.isfinite(p.null)], 0.95))
        if not e.value > p95:
            return False, (
                f"no usable signal: outer-loop AUROC {e.value:.3f} is not above the 95th "
                f"percentile of its null distribution ({p95:.3f}, {p.null.size} permutations)"
            )
    return True, f"outer-loop AUROC {e.fmt()} of the champion procedure"


# --- step 4: one landmark --------------------------------------------------------------------
def assess_landmark(
    exp: Experiment,
    table: FeatureTable,
    catalog: list[Any],
    models: list[str],
    feature_sets: dict[str, list[str]],
    *,
    oracle: float | None = None,
    null_k: int | None = None,
    n_jobs: int = 1,
    progress: Progress = None,
) -> LandmarkAssessment:
    """Every candidate and the champion procedure of one (task, landmark)."""
    out = LandmarkAssessment(table.task, table.landmark, table)
    y = table.y
    minority = int(min(y.sum(), len(y) - y.sum())) if len(y) else 0
    if minority < 2:
        for m in models:
            out.skipped.append(
                Skip(table.task, table.landmark, m, "", f"{int(y.sum())} events among {len(y)}")
            )
        return out
    specs, skips, out.calibration = candidate_models(exp, table, catalog, models, feature_sets)
    out.skipped.extend(skips)
    plan = validation_plan(exp, len(y), n_jobs)
    for spec in specs:
        res = assess_candidate(exp, table, spec, plan, oracle=oracle, progress=progress)
        if isinstance(res, Skip):
            out.skipped.append(res)
        else:
            out.candidates.append(res)
    k = exp.validation.null_check_for(len(y), null_k)
    baseline = next((c for c in out.candidates if c.model == COMPACT_BASELINE), None)
    out.procedure = assess_procedure(
        exp, table, out.candidates, plan, null_k=k, oracle=oracle, baseline=baseline
    )
    return out
