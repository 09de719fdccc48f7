"""Model resampling (nested CV) for internal validation: nothing is tuned on the data it scores.

Not cohort validation (``features.validation`` checks input files); this is the outer loop.


- ``repeated_cv``: repeated stratified k-fold (or ``StratifiedGroupKFold`` by centre when
  ``group_by_center``). The estimator passed in is the whole modelling procedure
  (``training.tuned.TunedCalibratedClassifier``: inner tuning + calibration), so every outer
  fold repeats it on its training part only — nested cross-validation (Varma & Simon 2006).
  Each repeat yields one out-of-fold prediction per patient; metrics are computed per repeat
  and averaged (``training.metrics``).
- ``leave_one_centre_out``: each centre is predicted by a model trained on the others
  (internal–external validation, Steyerberg EW, Harrell FE 2016, J Clin Epidemiol 69:245).

Harrell's bootstrap optimism correction is no longer offered: with more candidate predictors
than events, the inner cross-validation inside a bootstrap replicate puts copies of one patient
on both sides of a split, and replicates with undefined metrics are dropped; on permuted
outcomes it read AUROC 0.75–0.81 on car22 (issue 12).

Besides its out-of-fold predictions, every outer fold returns, per candidate, the *selection
statistics* of the model fitted on its training part: metrics of that model's inner
cross-validated predictions on the training part only (``TunedCalibratedClassifier
.inner_predictions_``). ``training.selection`` applies the champion rule to them, so the
champion is chosen inside every outer fold exactly as it is chosen on the whole cohort.

Per-fold predictions carry the row position in the feature table (kept in memory; the tracking
sink replaces it by a per-run random key), the fold and the outcome — never an identifier.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold, StratifiedKFold

from features.errors import CrsRiskError
from training.metrics import SCALAR_METRICS

Method = Literal["repeated_cv", "leave_one_centre_out"]
METHODS: tuple[str, ...] = ("repeated_cv", "leave_one_centre_out")
# metrics the champion rule may read, computed on inner predictions inside every outer fold
SELECTION_METRICS: tuple[str, ...] = ("auroc", "auprc", "scaled_brier", "calibration_slope")


@dataclass(frozen=True)
class ValidationPlan:
    """How one model is validated (from the experiment file's ``validation`` section)."""

    method: Method = "repeated_cv"
    folds: int = 5
    repeats: int = 2
    group_by_center: bool = False
    seed: int = 0
    n_jobs: int = 1


@dataclass
class FoldSelection:
    """What the champion rule sees of one candidate in one outer fold (training part only)."""

    repeat: int
    fold: int
    metrics: dict[str, float]
    calibrated: bool
    constant: bool  # the calibration clamp flattened the model: never chosen


@dataclass
class ValidationResult:
    """Out-of-sample predictions of one modelling procedure."""

    method: str
    predictions: np.ndarray  # (repeats, n)
    folds: pd.DataFrame  # repeat, fold, row, y, p — no identifiers
    fold_params: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    selection: list[FoldSelection] = field(default_factory=list)
    test_rows: list[np.ndarray] = field(default_factory=list)  # per (repeat, fold), in order


def selection_metrics(y: np.ndarray, p: np.ndarray | None) -> dict[str, float]:
    """The rule's metrics of inner predictions (NaN when the model kept none)."""
    if p is None:
        return {k: float("nan") for k in SELECTION_METRICS}
    return {k: float(SCALAR_METRICS[k](y, p)) for k in SELECTION_METRICS}


def _fit_predict(
    estimator: BaseEstimator,
    X: pd.DataFrame,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
) -> tuple[np.ndarray, dict[str, Any], dict[str, float], bool, bool]:
    model = clone(estimator).fit(X.iloc[train], y[train])
    p = model.predict_proba(X.iloc[test])[:, 1]
    inner = getattr(model, "inner_predictions_", None)
    return (
        p,
        dict(getattr(model, "best_params_", {})),
        selection_metrics(y[train], inner),
        bool(getattr(model, "calibrated_", False)),
        bool(getattr(model, "constant_", False)),
    )


def _splits(
    plan: ValidationPlan, y: np.ndarray, centers: np.ndarray | None
) -> tuple[list[tuple[int, int, np.ndarray, np.ndarray]], int, list[str]]:
    """(repeat, fold, train, test) for every outer fold, the number of repeats, and notes."""
    notes: list[str] = []
    n_events, n_non = int(y.sum()), int(y.size - y.sum())
    minority = min(n_events, n_non)
    out: list[tuple[int, int, np.ndarray, np.ndarray]] = []
    if plan.method == "leave_one_centre_out":
        if centers is None or len(np.unique(centers)) < 2:
            raise CrsRiskError(
                "validation.method leave_one_centre_out needs at least 2 centres in the cohort"
            )
        for f, (tr, te) in enumerate(LeaveOneGroupOut().split(np.zeros(y.size), y, centers)):
            out.append((0, f, tr, te))
        return out, 1, notes
    k = plan.folds
    if minority < k:
        k = max(2, minority)
        notes.append(f"folds reduced from {plan.folds} to {k}: only {minority} in the rarer class")
    if minority < 2:
        raise CrsRiskError(
            f"cannot cross-validate: {n_events} events and {n_non} non-events (need ≥2 of each)"
        )
    for r in range(plan.repeats):
        seed = plan.seed + 1000 * r
        if plan.group_by_center and centers is not None:
            splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
            split = splitter.split(np.zeros(y.size), y, centers)
        else:
            split = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(
                np.zeros(y.size), y
            )
        for f, (tr, te) in enumerate(split):
            out.append((r, f, tr, te))
    return out, plan.repeats, notes


def cross_validate(
    estimator: BaseEstimator,
    X: pd.DataFrame,
    y: pd.Series | np.ndarray,
    plan: ValidationPlan,
    *,
    centers: pd.Series | np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
) -> ValidationResult:
    """Nested (repeated / grouped / leave-one-centre-out) cross-validated predictions."""
    y_arr = np.asarray(y).astype(int)
    c_arr = None if centers is None else np.asarray(centers).astype(str)
    splits, repeats, notes = _splits(plan, y_arr, c_arr)
    preds = np.full((repeats, y_arr.size), np.nan)
    rows: list[pd.DataFrame] = []
    params: list[dict[str, Any]] = []
    selection: list[FoldSelection] = []
    jobs = (delayed(_fit_predict)(estimator, X, y_arr, tr, te) for _, _, tr, te in splits)
    results = Parallel(n_jobs=plan.n_jobs, return_as="generator")(jobs)
    for (r, f, tr, te), (p, best, sel, calibrated, constant) in zip(splits, results, strict=True):
        if len(np.unique(y_arr[tr])) < 2:
            raise CrsRiskError(f"fold {f + 1} of repeat {r + 1} has a single outcome class")
        preds[r, te] = p
        rows.append(pd.DataFrame({"repeat": r, "fold": f, "row": te, "y": y_arr[te], "p": p}))
        params.append({"repeat": r, "fold": f, **best})
        selection.append(FoldSelection(r, f, sel, calibrated, constant))
        if progress is not None:
            progress(1)
    return ValidationResult(
        method=plan.method,
        predictions=preds,
        folds=pd.concat(rows, ignore_index=True),
        fold_params=params,
        notes=notes,
        selection=selection,
        test_rows=[te for _, _, _, te in splits],
    )


def n_steps(plan: ValidationPlan, y: np.ndarray, centers: np.ndarray | None) -> int:
    """Number of model fits the plan will report through ``progress`` (for progress bars)."""
    if plan.method == "leave_one_centre_out":
        return 0 if centers is None else len(np.unique(centers))
    return plan.repeats * max(2, min(plan.folds, int(min(y.sum(), y.size - y.sum()))))


def validate(
    estimator: BaseEstimator,
    X: pd.DataFrame,
    y: pd.Series | np.ndarray,
    plan: ValidationPlan,
    *,
    centers: pd.Series | np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
) -> ValidationResult:
    """Out-of-sample predictions of ``estimator`` by the plan's method."""
    return cross_validate(estimator, X, y, plan, centers=centers, progress=progress)
