"""Measure predictions: metrics with CIs and the subgroup table — one step for train and evaluate.

``train`` measures each candidate's and the procedure's out-of-fold predictions with the
experiment's settings (:meth:`MeasureSpec.of`); ``evaluate`` measures a registered model's
predictions on a new cohort with the same function and the experiment defaults, so an external
validation reports exactly what training reports (``training.metrics``, ``training.subgroups``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.experiment import Experiment
from training.metrics import MetricReport, evaluate_predictions
from training.subgroups import subgroup_table


@dataclass(frozen=True)
class MeasureSpec:
    """How predictions are measured: thresholds, decision-curve grid, subgroups, bootstrap."""

    thresholds: list[float]
    decision_thresholds: list[float]
    subgroups: list[str]
    n_boot: int
    subgroup_n_boot: int
    seed: int
    level: float = 0.95

    @classmethod
    def of(cls, exp: Experiment) -> MeasureSpec:
        """The experiment's declared settings."""
        v = exp.validation
        return cls(
            thresholds=list(exp.thresholds),
            decision_thresholds=exp.decision_curve.grid(),
            subgroups=list(exp.subgroups),
            n_boot=v.bootstrap_ci,
            subgroup_n_boot=v.subgroup_bootstrap_ci,
            seed=exp.seed,
            level=v.ci_level,
        )


def measure_predictions(
    spec: MeasureSpec, y: np.ndarray, predictions: np.ndarray, groups: pd.DataFrame
) -> tuple[MetricReport, pd.DataFrame]:
    """Metrics with CIs and the subgroup table of predictions ((n,) or (repeats, n))."""
    report = evaluate_predictions(
        y,
        predictions,
        thresholds=spec.thresholds,
        decision_thresholds=spec.decision_thresholds,
        n_boot=spec.n_boot,
        seed=spec.seed,
        level=spec.level,
    )
    subgroups = subgroup_table(
        y,
        predictions,
        groups,
        spec.subgroups,
        n_boot=spec.subgroup_n_boot,
        seed=spec.seed,
        level=spec.level,
    )
    return report, subgroups
