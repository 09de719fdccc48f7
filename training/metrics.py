"""Performance measures for a risk model, as TRIPOD+AI asks for them, with bootstrap CIs.

Pure functions of outcomes ``y`` (0/1) and predicted probabilities ``p``:

- discrimination: AUROC (Mann–Whitney form) and AUPRC (average precision, the step-wise area
  scikit-learn reports);
- overall accuracy: Brier score and scaled Brier (1 − Brier / Brier of the prevalence model);
- calibration (Van Calster B et al. 2019, BMC Med 17:230; Cox DR 1958, Biometrika 45:562):
  *calibration slope* = b in logit P(y) = a + b·logit(p); *calibration intercept* = a in
  logit P(y) = a + logit(p) (slope fixed at 1, i.e. logit(p) as an offset); and
  *calibration-in-the-large* = observed minus expected event rate, with the O/E ratio;
- classification at declared thresholds: sensitivity, specificity, PPV, NPV;
- clinical utility (Vickers AJ, Elkin EB 2006, Med Decis Making 26:565): net benefit
  NB(t) = TP/n − FP/n · t/(1 − t), against treat-all (prevalence − (1 − prevalence)·t/(1 − t))
  and treat-none (0).

CIs are percentile intervals from a bootstrap stratified by outcome (events and non-events are
resampled separately, so every replicate keeps the cohort's event count — with tens of events an
ordinary bootstrap sometimes draws too few events to define AUROC). When predictions come from
R repeats of cross-validation, each replicate scores every repeat on the same resampled patients
and averages, so the CI reflects patient sampling, not the arbitrary fold split. These are
CIs for the performance of *this* modelling procedure on *this* population; they do not include
the training-set variability of the procedure (Bates S, Hastie T, Tibshirani R 2023, JASA) and
are therefore somewhat narrow for tiny cohorts — reports say so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
from scipy.special import expit, logit
from scipy.stats import rankdata

EPS = 1e-6  # probabilities are clipped to [EPS, 1 − EPS] before logit (isotonic gives 0 and 1)

Array = np.ndarray


def _as_arrays(y: Sequence[float] | Array, p: Sequence[float] | Array) -> tuple[Array, Array]:
    ya = np.asarray(y, dtype=float).ravel()
    pa = np.asarray(p, dtype=float).ravel()
    if ya.shape != pa.shape:
        raise ValueError(f"y and p differ in length ({ya.size} vs {pa.size})")
    return ya, pa


def auroc(y: Sequence[float] | Array, p: Sequence[float] | Array) -> float:
    """Area under the ROC curve (ties count ½); NaN when only one class is present."""
    ya, pa = _as_arrays(y, p)
    n_pos = ya.sum()
    n_neg = ya.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(pa)
    return float((ranks[ya == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auprc(y: Sequence[float] | Array, p: Sequence[float] | Array) -> float:
    """Average precision Σ (Rₖ − Rₖ₋₁)·Pₖ over distinct thresholds (scikit-learn's definition).

    Written here (instead of ``average_precision_score``) because it runs inside every bootstrap
    replicate; a test checks it equals scikit-learn's value.
    """
    ya, pa = _as_arrays(y, p)
    n_pos = ya.sum()
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-pa, kind="mergesort")
    ys, ps = ya[order], pa[order]
    tp = np.cumsum(ys)
    fp = np.cumsum(1 - ys)
    last_of_tie = np.r_[np.nonzero(np.diff(ps))[0], ys.size - 1]
    tp, fp = tp[last_of_tie], fp[last_of_tie]
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def brier(y: Sequence[float] | Array, p: Sequence[float] | Array) -> float:
    """Mean squared difference between outcome and predicted probability (lower is better)."""
    ya, pa = _as_arrays(y, p)
    return float(np.mean((ya - pa) ** 2))


def scaled_brier(y: Sequence[float] | Array, p: Sequence[float] | Array) -> float:
    """1 − Brier / (prevalence·(1 − prevalence)): 0 = no better than the event rate, 1 = perfect."""
    ya, pa = _as_arrays(y, p)
    prev = ya.mean()
    ref = prev * (1 - prev)
    return float("nan") if ref == 0 else 1 - brier(ya, pa) / ref


def _logistic_fit(y: Array, x: Array | None, offset: Array, max_iter: int = 50) -> Array:
    """Maximum-likelihood logistic regression of ``y`` on [1, x] with an offset (Newton–Raphson).

    Written here rather than with ``LogisticRegression(C=np.inf)`` because the one- and
    two-parameter fits run in every bootstrap replicate (~100× faster); sklearn has no offset
    term, which the calibration intercept needs. Tests compare it with scikit-learn. Returns NaN
    coefficients when the fit does not converge (complete separation).
    """
    design = np.ones((y.size, 1)) if x is None else np.column_stack([np.ones(y.size), x])
    beta = np.zeros(design.shape[1])
    for _ in range(max_iter):
        mu = expit(design @ beta + offset)
        w = mu * (1 - mu)
        grad = design.T @ (y - mu)
        hess = design.T @ (design * w[:, None])
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return np.full(design.shape[1], np.nan)
        beta = beta + step
        if not np.all(np.isfinite(beta)) or np.max(np.abs(beta)) > 1e3:
            return np.full(design.shape[1], np.nan)
        if np.max(np.abs(step)) < 1e-10:
            return beta
    return np.full(design.shape[1], np.nan)


def _safe_logit(p: Array) -> Array:
    return logit(np.clip(p, EPS, 1 - EPS))


def calibration_slope(y: Sequence[float] | Array, p: Sequence[float] | Array) -> float:
    """b in logit P(y=1) = a + b·logit(p): 1 is ideal, < 1 means predictions are too extreme."""
    ya, pa = _as_arrays(y, p)
    if ya.min() == ya.max():
        return float("nan")
    return float(_logistic_fit(ya, _safe_logit(pa), np.zeros(ya.size))[1])


def calibration_intercept(y: Sequence[float] | Array, p: Sequence[float] | Array) -> float:
    """a in logit P(y=1) = a + logit(p) (slope fixed at 1): 0 is ideal, > 0 = risks too low."""
    ya, pa = _as_arrays(y, p)
    if ya.min() == ya.max():
        return float("nan")
    return float(_logistic_fit(ya, None, _safe_logit(pa))[0])


def calibration_in_the_large(y: Sequence[float] | Array, p: Sequence[float] | Array) -> float:
    """Observed minus expected event rate (mean(y) − mean(p)): 0 is ideal."""
    ya, pa = _as_arrays(y, p)
    return float(ya.mean() - pa.mean())


def observed_expected_ratio(y: Sequence[float] | Array, p: Sequence[float] | Array) -> float:
    """Observed / expected number of events (Σy / Σp): 1 is ideal."""
    ya, pa = _as_arrays(y, p)
    return float(ya.sum() / pa.sum()) if pa.sum() > 0 else float("nan")


@dataclass(frozen=True)
class Confusion:
    """Classification of ``p ≥ threshold`` as positive."""

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def sensitivity(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def specificity(self) -> float:
        return self.tn / (self.tn + self.fp) if self.tn + self.fp else float("nan")

    @property
    def ppv(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def npv(self) -> float:
        return self.tn / (self.tn + self.fn) if self.tn + self.fn else float("nan")


def confusion_at(y: Sequence[float] | Array, p: Sequence[float] | Array, t: float) -> Confusion:
    """Counts of the rule "treat when predicted risk ≥ t"."""
    ya, pa = _as_arrays(y, p)
    pos = pa >= t
    return Confusion(
        float(t),
        int(np.sum(pos & (ya == 1))),
        int(np.sum(pos & (ya == 0))),
        int(np.sum(~pos & (ya == 0))),
        int(np.sum(~pos & (ya == 1))),
    )


def net_benefit(
    y: Sequence[float] | Array, p: Sequence[float] | Array, thresholds: Sequence[float] | Array
) -> Array:
    """Net benefit of treating when p ≥ t: TP/n − FP/n · t/(1 − t), one value per threshold."""
    ya, pa = _as_arrays(y, p)
    t = np.asarray(thresholds, dtype=float)
    if np.any((t <= 0) | (t >= 1)):
        raise ValueError("net-benefit thresholds must lie strictly between 0 and 1")
    treated = pa[None, :] >= t[:, None]
    tp = (treated & (ya[None, :] == 1)).sum(axis=1)
    fp = (treated & (ya[None, :] == 0)).sum(axis=1)
    return tp / ya.size - fp / ya.size * t / (1 - t)


def net_benefit_treat_all(y: Sequence[float] | Array, thresholds: Sequence[float] | Array) -> Array:
    """Net benefit of treating everyone: prevalence − (1 − prevalence)·t/(1 − t)."""
    prev = float(np.mean(np.asarray(y, dtype=float)))
    t = np.asarray(thresholds, dtype=float)
    return prev - (1 - prev) * t / (1 - t)


# --- point estimates + bootstrap CIs ---------------------------------------------------------
SCALAR_METRICS: dict[str, Callable[[Array, Array], float]] = {
    "auroc": auroc,
    "auprc": auprc,
    "brier": brier,
    "scaled_brier": scaled_brier,
    "calibration_slope": calibration_slope,
    "calibration_intercept": calibration_intercept,
    "calibration_in_the_large": calibration_in_the_large,
    "oe_ratio": observed_expected_ratio,
}


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% (or declared) percentile-bootstrap interval."""

    value: float
    low: float
    high: float

    def fmt(self, digits: int = 3) -> str:
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}–{self.high:.{digits}f}]"


def stratified_bootstrap_indices(y: Array, n_boot: int, seed: int) -> Array:
    """(n_boot, n) row indices resampling events and non-events separately (fixed event count)."""
    rng = np.random.default_rng(seed)
    ya = np.asarray(y)
    pos = np.flatnonzero(ya == 1)
    neg = np.flatnonzero(ya != 1)
    out = np.empty((n_boot, ya.size), dtype=np.int64)
    out[:, : pos.size] = pos[rng.integers(0, pos.size, size=(n_boot, pos.size))] if pos.size else 0
    out[:, pos.size :] = neg[rng.integers(0, neg.size, size=(n_boot, neg.size))] if neg.size else 0
    return out


def _as_repeats(predictions: Array) -> Array:
    pr = np.asarray(predictions, dtype=float)
    return pr[None, :] if pr.ndim == 1 else pr


def _mean_over_repeats(fn: Callable[[Array, Array], float], y: Array, preds: Array) -> float:
    vals = [fn(y, row) for row in preds]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def _percentile(values: Array, level: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    # fewer than half the replicates defined (e.g. calibration slope under separation): no CI
    if finite.size < max(2, values.size // 2):
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    lo, hi = np.quantile(finite, [alpha, 1 - alpha])
    return float(lo), float(hi)


def estimate(
    fn: Callable[[Array, Array], float],
    y: Sequence[float] | Array,
    predictions: Array,
    *,
    n_boot: int,
    seed: int,
    level: float = 0.95,
    indices: Array | None = None,
) -> Estimate:
    """Point estimate (mean over repeats) and percentile CI of ``fn`` by stratified bootstrap.

    ``predictions`` is (n,) or (repeats, n), each row predicting every patient once.
    """
    ya = np.asarray(y, dtype=float)
    preds = _as_repeats(predictions)
    point = _mean_over_repeats(fn, ya, preds)
    if n_boot <= 0:
        return Estimate(point, float("nan"), float("nan"))
    idx = stratified_bootstrap_indices(ya, n_boot, seed) if indices is None else indices
    boots = np.array([_mean_over_repeats(fn, ya[i], preds[:, i]) for i in idx])
    lo, hi = _percentile(boots, level)
    return Estimate(point, lo, hi)


def paired_difference(
    fn: Callable[[Array, Array], float],
    y: Sequence[float] | Array,
    predictions_a: Array,
    predictions_b: Array,
    *,
    n_boot: int,
    seed: int,
    level: float = 0.95,
) -> Estimate:
    """``fn(a) − fn(b)`` on the same patients with a paired stratified-bootstrap CI."""
    ya = np.asarray(y, dtype=float)
    pa, pb = _as_repeats(predictions_a), _as_repeats(predictions_b)
    point = _mean_over_repeats(fn, ya, pa) - _mean_over_repeats(fn, ya, pb)
    idx = stratified_bootstrap_indices(ya, n_boot, seed)
    diffs = np.array(
        [
            _mean_over_repeats(fn, ya[i], pa[:, i]) - _mean_over_repeats(fn, ya[i], pb[:, i])
            for i in idx
        ]
    )
    lo, hi = _percentile(diffs, level)
    return Estimate(float(point), lo, hi)


@dataclass(frozen=True)
class ThresholdRow:
    threshold: float
    sensitivity: float
    specificity: float
    ppv: float
    npv: float
    treated_fraction: float


def threshold_table(
    y: Array, predictions: Array, thresholds: Sequence[float]
) -> list[ThresholdRow]:
    """Sensitivity/specificity/PPV/NPV at each declared threshold (mean over repeats)."""
    ya = np.asarray(y, dtype=float)
    preds = _as_repeats(predictions)
    rows = []
    for t in thresholds:
        cs = [confusion_at(ya, row, t) for row in preds]

        def avg(attr: str, cs: list[Confusion] = cs) -> float:
            vals = [getattr(c, attr) for c in cs]
            vals = [v for v in vals if np.isfinite(v)]
            return float(np.mean(vals)) if vals else float("nan")

        treated = float(np.mean([(c.tp + c.fp) / ya.size for c in cs]))
        rows.append(
            ThresholdRow(
                float(t), avg("sensitivity"), avg("specificity"), avg("ppv"), avg("npv"), treated
            )
        )
    return rows


def decision_curve(y: Array, predictions: Array, thresholds: Sequence[float]) -> dict[str, list]:
    """Net benefit of the model (mean over repeats), treat-all and treat-none per threshold."""
    ya = np.asarray(y, dtype=float)
    preds = _as_repeats(predictions)
    t = np.asarray(thresholds, dtype=float)
    model = np.mean([net_benefit(ya, row, t) for row in preds], axis=0)
    return {
        "threshold": t.tolist(),
        "model": model.tolist(),
        "treat_all": net_benefit_treat_all(ya, t).tolist(),
        "treat_none": np.zeros_like(t).tolist(),
    }


def threshold_metrics(thresholds: Sequence[float]) -> dict[str, Callable[[Array, Array], float]]:
    """Sensitivity, specificity, PPV, NPV and net benefit at each declared threshold, by name
    (``sensitivity_at_0.20`` …), so they get bootstrap CIs like every other metric."""
    out: dict[str, Callable[[Array, Array], float]] = {}
    for t in thresholds:
        tag = f"{t:.2f}"
        for attr in ("sensitivity", "specificity", "ppv", "npv"):
            out[f"{attr}_at_{tag}"] = partial(_confusion_measure, t=t, attr=attr)
        out[f"net_benefit_at_{tag}"] = partial(_net_benefit_at, t=t)
    return out


def _confusion_measure(y: Array, p: Array, *, t: float, attr: str) -> float:
    """One attribute of :func:`confusion_at` (sensitivity, specificity, PPV, NPV) at ``t``."""
    value: float = getattr(confusion_at(y, p, t), attr)
    return value


def _net_benefit_at(y: Array, p: Array, *, t: float) -> float:
    return float(net_benefit(y, p, [t])[0])


@dataclass(frozen=True)
class MetricReport:
    """Everything measured on one set of predictions (no patient-level data)."""

    n_patients: int
    n_events: int
    estimates: dict[str, Estimate]
    thresholds: list[ThresholdRow]
    decision: dict[str, list]

    def flat(self) -> dict[str, float]:
        """MLflow-style flat metrics: ``auroc``, ``auroc_ci_low``, ``auroc_ci_high``, …"""
        out: dict[str, float] = {
            "n_patients": float(self.n_patients),
            "n_events": float(self.n_events),
        }
        for name, e in self.estimates.items():
            out[name] = e.value
            out[f"{name}_ci_low"] = e.low
            out[f"{name}_ci_high"] = e.high
        for t, nb_all in zip(self.decision["threshold"], self.decision["treat_all"], strict=True):
            if any(abs(t - r.threshold) < 1e-9 for r in self.thresholds):
                out[f"net_benefit_treat_all_at_{t:.2f}"] = nb_all
        return out

    def to_dict(self) -> dict:
        return {
            "n_patients": self.n_patients,
            "n_events": self.n_events,
            "estimates": {k: asdict(v) for k, v in self.estimates.items()},
            "thresholds": [asdict(r) for r in self.thresholds],
            "decision_curve": self.decision,
        }


def evaluate_predictions(
    y: Sequence[float] | Array,
    predictions: Array,
    *,
    thresholds: Sequence[float],
    decision_thresholds: Sequence[float],
    n_boot: int,
    seed: int,
    level: float = 0.95,
) -> MetricReport:
    """All scalar metrics with CIs, threshold table and decision curve for one model."""
    ya = np.asarray(y, dtype=float)
    idx = stratified_bootstrap_indices(ya, n_boot, seed) if n_boot > 0 else None
    functions = dict(SCALAR_METRICS)
    functions.update(threshold_metrics(thresholds))
    estimates = {
        name: estimate(fn, ya, predictions, n_boot=n_boot, seed=seed, level=level, indices=idx)
        for name, fn in functions.items()
    }
    grid = sorted(set(np.round(list(decision_thresholds), 6)) | set(np.round(thresholds, 6)))
    return MetricReport(
        n_patients=int(ya.size),
        n_events=int(ya.sum()),
        estimates=estimates,
        thresholds=threshold_table(ya, predictions, thresholds),
        decision=decision_curve(ya, predictions, grid),
    )
