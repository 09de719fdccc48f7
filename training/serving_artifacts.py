"""What a registered model carries for serving, computed from the training run (pure).

``serving/distribution.json``: the training distribution of the model's inputs
(``training.distribution``); ``serving/interval.json``: the per-patient interval table
(``training.interval``) from the run's out-of-fold predictions. The sink logs both beside
the model (one call, ``training.sink.log_procedure``); the service reads them at load time and
falls back clearly for models registered before they existed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from training.distribution import training_distribution
from training.interval import fit_interval

DISTRIBUTION_PATH = "serving/distribution.json"
INTERVAL_PATH = "serving/interval.json"


def serving_artifacts(
    X: pd.DataFrame, centers: Sequence[Any] | None, folds: pd.DataFrame, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Artifact path → JSON document (aggregates only: no rows, no identifiers)."""

    out = {DISTRIBUTION_PATH: training_distribution(X, centers)}
    if {"y", "p"} <= set(folds.columns):
        groups = folds["row"].to_numpy() if "row" in folds.columns else None
        table = fit_interval(folds["p"].to_numpy(), folds["y"].to_numpy(), groups, seed=seed)
        if table is not None:
            out[INTERVAL_PATH] = table.to_dict()
    return out
