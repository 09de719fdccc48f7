"""Internal validation for small cohorts: nothing is tuned on the data it is scored on.

- ``repeated_cv``: repeated stratified k-fold (or ``StratifiedGroupKFold`` by centre when
  ``group_by_center``). The estimator passed in is the whole modelling procedure
  (``training.tuned.TunedCalibratedClassifier``: inner tuning + calibration), so every outer
  fold repeats it on its training part only — nested cross-validation (Varma & Simon 2006).
  Each repeat yields one out-of-fold prediction per patient; metrics are computed per repeat
  and averaged (``training.metrics``).
- ``leave_one_centre_out``: each centre is predicted by a model trained on the others
  (internal–external validation, Steyerberg EW, Harrell FE 2016, J Clin Epidemiol 69:245).
- ``bootstrap_optimism``: Harrell's optimism correction (Harrell FE, Lee KL, Mark DB 1996,
  Stat Med 15:361; Steyerberg 2019 §5.3) for very small cohorts: the procedure is refitted on
  B bootstrap samples; optimism = mean over B of (performance on the bootstrap sample −
  performance of that model on the original data), subtracted from the apparent performance.

Per-fold predictions carry the row position in the feature table, the fold and the outcome —
never a patient identifier.
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
from training.metrics import SCALAR_METRICS, stratified_bootstrap_indices

Method = Literal["repeated_cv", "leave_one_centre_out", "bootstrap_optimism"]
METHODS: tuple[str, ...] = ("repeated_cv", "leave_one_centre_out", "bootstrap_optimism")


@dataclass(frozen=True)
class ValidationPlan:
    """How one model is validated (from the experiment file's ``validation`` section)."""

    method: Method = "repeated_cv"
    folds: int = 5
    repeats: int = 2
    group_by_center: bool = False
    n_bootstrap: int = 100  # Harrell optimism replicates
    seed: int = 0
    n_jobs: int = 1


@dataclass
class ValidationResult:
    """Out-of-sample predictions (or apparent + optimism) of one modelling procedure."""

    method: str
    predictions: np.ndarray  # (repeats, n); for bootstrap_optimism the apparent predictions
    folds: pd.DataFrame  # repeat, fold, row, y, p — no identifiers
    fold_params: list[dict[str, Any]]
    optimism: dict[str, float] | None = None
    final_model: BaseEstimator | None = None  # fitted on all data (bootstrap_optimism only)
    out_of_bag: dict[str, np.ndarray] | None = None  # per-refit out-of-bag metric values
    notes: list[str] = field(default_factory=list)


def _fit_predict(
    estimator: BaseEstimator,
    X: pd.DataFrame,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
) -> tuple[np.ndarray, dict[str, Any]]:
    model = clone(estimator).fit(X.iloc[train], y[train])
    p = model.predict_proba(X.iloc[test])[:, 1]
    return p, dict(getattr(model, "best_params_", {}))


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
    jobs = (delayed(_fit_predict)(estimator, X, y_arr, tr, te) for _, _, tr, te in splits)
    results = Parallel(n_jobs=plan.n_jobs, return_as="generator")(jobs)
    for (r, f, tr, te), (p, best) in zip(splits, results, strict=True):
        if len(np.unique(y_arr[tr])) < 2:
            raise CrsRiskError(f"fold {f + 1} of repeat {r + 1} has a single outcome class")
        preds[r, te] = p
        rows.append(pd.DataFrame({"repeat": r, "fold": f, "row": te, "y": y_arr[te], "p": p}))
        params.append({"repeat": r, "fold": f, **best})
        if progress is not None:
            progress(1)
    return ValidationResult(
        method=plan.method,
        predictions=preds,
        folds=pd.concat(rows, ignore_index=True),
        fold_params=params,
        notes=notes,
    )


def _optimism_one(
    estimator: BaseEstimator, X: pd.DataFrame, y: np.ndarray, idx: np.ndarray
) -> tuple[dict[str, float], dict[str, float]]:
    """Optimism of one bootstrap refit, and its performance on the out-of-bag patients."""
    model = clone(estimator).fit(X.iloc[idx], y[idx])
    p_boot = model.predict_proba(X.iloc[idx])[:, 1]
    p_orig = model.predict_proba(X)[:, 1]
    oob = np.setdiff1d(np.arange(y.size), idx)
    optimism = {name: fn(y[idx], p_boot) - fn(y, p_orig) for name, fn in SCALAR_METRICS.items()}
    out_of_bag = {name: fn(y[oob], p_orig[oob]) for name, fn in SCALAR_METRICS.items()}
    return optimism, out_of_bag


def bootstrap_optimism(
    estimator: BaseEstimator,
    X: pd.DataFrame,
    y: pd.Series | np.ndarray,
    plan: ValidationPlan,
    *,
    progress: Callable[[int], None] | None = None,
) -> ValidationResult:
    """Harrell's bootstrap optimism: apparent predictions, per-metric optimism, final model."""
    y_arr = np.asarray(y).astype(int)
    final = clone(estimator).fit(X, y_arr)
    apparent = final.predict_proba(X)[:, 1]
    indices = stratified_bootstrap_indices(y_arr, plan.n_bootstrap, plan.seed + 7)
    jobs = (delayed(_optimism_one)(estimator, X, y_arr, idx) for idx in indices)
    values: dict[str, list[float]] = {name: [] for name in SCALAR_METRICS}
    oob: dict[str, list[float]] = {name: [] for name in SCALAR_METRICS}
    for res, res_oob in Parallel(n_jobs=plan.n_jobs, return_as="generator")(jobs):
        for name, v in res.items():
            values[name].append(v)
            oob[name].append(res_oob[name])
        if progress is not None:
            progress(1)
    optimism = {
        name: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
        for name, v in values.items()
    }
    folds = pd.DataFrame(
        {"repeat": 0, "fold": -1, "row": np.arange(y_arr.size), "y": y_arr, "p": apparent}
    )
    return ValidationResult(
        method="bootstrap_optimism",
        predictions=apparent[None, :],
        folds=folds,
        fold_params=[dict(getattr(final, "best_params_", {}))],
        optimism=optimism,
        final_model=final,
        out_of_bag={k: np.asarray(v, dtype=float) for k, v in oob.items()},
        notes=[
            f"apparent performance corrected by the mean optimism of {plan.n_bootstrap} "
            "bootstrap refits (Harrell); 95% CIs take their width from the spread of the "
            "refits' out-of-bag performance, centred on the corrected estimate (an approximation:"
            " exact CIs after optimism correction need a double bootstrap, Noma H et al. 2021,"
            " Stat Med 40:5691)"
        ],
    )


def n_steps(plan: ValidationPlan, y: np.ndarray, centers: np.ndarray | None) -> int:
    """Number of model fits the plan will report through ``progress`` (for progress bars)."""
    if plan.method == "bootstrap_optimism":
        return plan.n_bootstrap
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
    """Dispatch on ``plan.method``."""
    if plan.method == "bootstrap_optimism":
        return bootstrap_optimism(estimator, X, y, plan, progress=progress)
    return cross_validate(estimator, X, y, plan, centers=centers, progress=progress)
