"""What a registered model carries for serving, computed from the training run (pure).

``serving/distribution.json``: the training distribution of the model's inputs
(``training.distribution``); ``serving/interval.json``: the per-patient interval table
(``training.interval``) from the run's out-of-fold predictions and, given the registered model,
its bootstrap refits on the training patients. The sink logs both beside
the model (one call, ``training.sink_runs.log_procedure``); the service reads them at load time and
falls back clearly for models registered before they existed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from training.distribution import training_distribution
from training.interval import fit_interval, fit_procedure_interval

DISTRIBUTION_PATH = "serving/distribution.json"
INTERVAL_PATH = "serving/interval.json"


def serving_artifacts(
    X: pd.DataFrame,
    centers: Sequence[Any] | None,
    folds: pd.DataFrame,
    seed: int = 0,
    *,
    model: Any = None,
    y: Any = None,
    synthetic: bool = False,
) -> dict[str, dict[str, Any]]:
    """Artifact path → JSON document (aggregates only: no rows, no identifiers).

    ``model``, ``y``: the registered model and the outcomes of ``X`` it was fitted on (the
    interval's refit part); without them the interval is the recalibration part alone.
    ``synthetic``: a simulated cohort, whose observed extremes may be stored (issue 12 §6).
    """

    out = {DISTRIBUTION_PATH: training_distribution(X, centers, synthetic=synthetic)}
    if {"y", "p"} <= set(folds.columns):
        groups = folds["row"].to_numpy() if "row" in folds.columns else None
        p, yo = folds["p"].to_numpy(), folds["y"].to_numpy()
        if model is not None and y is not None:
            Xf = X.astype("float64")
            table = fit_procedure_interval(model, Xf, y, p, yo, groups, seed=seed)
        else:
            table = fit_interval(p, yo, groups, seed=seed)
        if table is not None:
            out[INTERVAL_PATH] = table.to_dict()
    return out
