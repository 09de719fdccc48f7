"""In-process champions for the fast serving tests: fitted here, no MLflow store.

``build_snapshot`` fits the plan below on a simulated cohort and describes each model as
``serving.loading.load_one`` does; ``tests/serving/conftest.py`` builds it once per test worker
(``fast_snapshot``) for the modules that read it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.build import build_features
from features.catalog import catalog_for
from features.io import load_cohort, write_cohort
from features.synth import simulate
from serving.bands import DEFAULT_THRESHOLDS, band_evidence
from serving.explaining import input_columns, make_explainer, prepare
from serving.loading import LoadedModel, Snapshot
from serving.registry_names import model_name
from tests.training.test_explain import fit
from training.distribution import training_distribution
from training.interval import fit_interval
from training.parsimony import compact_columns

# landmark → (model, calibration, compact set); 72h has no champion (the "not registered" path).
# Compact sets as training uses them (``training.parsimony``): a column-selection step first.
PLAN = {
    ("severe_crs", "0h"): ("xgboost", "auto", True),
    ("severe_crs", "24h"): ("xgboost", "none", False),
    ("severe_crs", "48h"): ("logreg", None, True),
    ("toci_refractory", "first_toci"): ("logreg", None, True),
}


def fit_model(name: str, table, task: str, landmark: str, calibration: str | None, compact: bool):
    catalog = catalog_for(task, landmark)
    return fit(
        name,
        table.X,
        table.y.to_numpy(dtype=int),
        catalog,
        calibration,
        landmark=landmark,
        n_estimators=40,
        max_depth=3,
        columns=compact_columns(task, landmark, catalog) if compact else None,
    )


def loaded_model(task: str, landmark: str, model, X: pd.DataFrame, y: np.ndarray) -> LoadedModel:
    """A champion as ``serving.loading.load_one`` describes it (explainer built and prepared,
    training distribution and interval table as the runner stores them)."""
    explainer = make_explainer(model)
    columns = input_columns(model, explainer)
    prepare(model, explainer, columns)
    p = model.predict_proba(X[list(columns)])[:, 1]
    return LoadedModel(
        name=model_name(task, landmark),
        task=task,
        landmark=landmark,
        version="1",
        run_id=None,
        model=model,
        columns=columns,
        thresholds=DEFAULT_THRESHOLDS,
        metrics={},
        n_patients=None,
        n_events=None,
        cohort_digest=None,
        model_type=None,
        bands=band_evidence(pd.DataFrame({"y": y, "p": p}), DEFAULT_THRESHOLDS),
        explainer=explainer,
        distribution=training_distribution(X[list(columns)].astype(float)),
        interval=fit_interval(p, y),
    )


def build_snapshot(folder: Path) -> Snapshot:
    """The plan's champions fitted on 240 simulated patients (seed 21); 72h left unregistered."""
    sc = simulate(240, seed=21)
    write_cohort(folder / "cohort", sc.patients, sc.measurements, sc.events)
    cohort = load_cohort(folder / "cohort")
    models = {}
    for (task, lm), (name, calibration, compact) in PLAN.items():
        table = build_features(cohort, task, lm)
        model = fit_model(name, table, task, lm, calibration, compact)
        models[(task, lm)] = loaded_model(task, lm, model, table.X, table.y.to_numpy(dtype=int))
    return Snapshot(
        models=models,
        missing=(model_name("severe_crs", "72h"),),
        loaded_at="",
        tracking_uri="",
    )
