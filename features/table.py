"""The model-ready table handed from ``features`` to ``training`` and ``serving``.

``X`` holds only float64 feature columns named as in the feature catalog (no identifiers, NaN =
missing); ``ids`` carries the patient identifiers separately, aligned row by row, so they can be
used for grouping and joins but never enter a model, a log or MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class FeatureTable:
    task: str  # "severe_crs" | "toci_refractory"
    landmark: str  # "0h", "24h", "48h", "72h" or "first_toci"
    X: pd.DataFrame  # float64 features, RangeIndex
    y: pd.Series  # int 0/1 outcome, same index
    ids: pd.Series  # patient_id, same index; never a feature
    groups: pd.DataFrame  # subgroup columns (center, age_band, product, marrow_burden), same index
    summary: dict[str, Any] = field(
        default_factory=dict
    )  # eligible, events, exclusions, missingness

    @property
    def n_events(self) -> int:
        return int(self.y.sum())
