"""The per-patient interval (``training.interval``): coverage of its estimand on a simulated
case whose truth is known, ordered and monotone bounds, width shrinking with n, the artifact
round trip and what the sink's serving artifacts carry. Real scikit-learn models, no mocks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from training.interval import (
    GRID,
    METHOD_UNION,
    IntervalTable,
    _expit,
    fit_interval,
    fit_procedure_interval,
)
from training.serving_artifacts import INTERVAL_PATH, serving_artifacts

BETA = np.array([1.2, -0.8, 0.0, 0.0, 0.0])  # two informative columns, three of noise


def cohort(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """X, y and the true risk of a logistic truth (about 20% events)."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, BETA.size)), columns=[f"x{i}" for i in range(BETA.size)])
    risk = _expit(-1.7 + X.to_numpy() @ BETA)
    return X, (rng.random(n) < risk).astype(int), risk


def procedure_table(n: int, seed: int, **kw) -> tuple[object, IntervalTable]:
    """A fitted logistic pipeline (a small ridge, like the project's clinical model) and its
    interval table, from its 5-fold out-of-fold predictions and its bootstrap refits."""
    X, y, _ = cohort(n, seed)
    est = make_pipeline(StandardScaler(), LogisticRegression(C=0.3))
    model = est.fit(X, y)
    cv = StratifiedKFold(5, shuffle=True, random_state=seed)
    p_oof = cross_val_predict(est, X, y, cv=cv, method="predict_proba")[:, 1]
    table = fit_procedure_interval(model, X, y, p_oof, y.astype(float), seed=seed, **kw)
    assert table is not None
    return model, table


def decile_truth(p: np.ndarray, risk: np.ndarray) -> np.ndarray:
    """Per patient: the mean true risk of the decile of ``p`` (the calibration curve there)."""
    edges = np.quantile(p, np.linspace(0, 1, 11))
    d = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
    return np.array([risk[d == k].mean() for k in range(10)])[d]


@pytest.fixture(scope="module")
def fresh() -> tuple[pd.DataFrame, np.ndarray]:
    X, _, risk = cohort(20_000, 999)
    return X, risk


def test_the_interval_covers_the_models_calibration_curve_on_fresh_patients(fresh):
    """Over training cohorts of 150, fresh patients' decile true rate lies inside their interval
    for ≥ 85% of them (the estimand; nominal 95%), while a single patient's own true risk does
    not (it is not a truth interval: patients given one probability differ in true risk)."""
    Xf, risk = fresh
    cover, own = [], []
    for seed in range(6):
        model, table = procedure_table(150, seed, n_refit=20)
        p = model.predict_proba(Xf)[:, 1]
        lo, hi = table.at(p)
        ref = decile_truth(p, risk)
        cover.append(np.mean((lo <= ref) & (ref <= hi)))
        own.append(np.mean((lo <= risk) & (risk <= hi)))
    assert np.mean(cover) >= 0.85, cover
    assert np.mean(own) < np.mean(cover)


def test_the_recalibration_part_alone_undercovers_the_same_case(fresh):
    """What the refit part is for: without it the same check falls well short (the test above
    can fail)."""
    Xf, risk = fresh
    cover = []
    for seed in range(6):
        X, y, _ = cohort(150, seed)
        est = make_pipeline(StandardScaler(), LogisticRegression(C=0.3))
        model = est.fit(X, y)
        cv = StratifiedKFold(5, shuffle=True, random_state=seed)
        p_oof = cross_val_predict(est, X, y, cv=cv, method="predict_proba")[:, 1]
        table = fit_interval(p_oof, y.astype(float), seed=seed)
        p = model.predict_proba(Xf)[:, 1]
        lo, hi = table.at(p)
        ref = decile_truth(p, risk)
        cover.append(np.mean((lo <= ref) & (ref <= hi)))
    _, union = procedure_table(150, 0, n_refit=20)
    assert union.method == METHOD_UNION
    assert np.mean(cover) < 0.85


def test_bounds_hold_the_probability_and_are_monotone():
    _, table = procedure_table(200, 1, n_refit=20)
    p = _expit(GRID)
    assert np.all(table.low <= p + 1e-12) and np.all(p <= table.high + 1e-12)
    assert np.all(np.diff(table.low) >= 0) and np.all(np.diff(table.high) >= 0)
    assert np.all((table.low >= 0) & (table.high <= 1))
    lo, hi = table.at(np.array([0.05, 0.2, 0.6]))
    assert np.all(lo <= hi)


def test_width_shrinks_with_the_number_of_training_patients():
    widths = []
    for n in (120, 1200):
        _, table = procedure_table(n, 2, n_refit=20)
        lo, hi = table.at(np.linspace(0.05, 0.5, 10))
        widths.append(float(np.mean(hi - lo)))
    assert widths[1] < widths[0] / 1.8, widths


def test_artifact_round_trip_and_the_sinks_serving_artifacts():
    X, y, _ = cohort(200, 3)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.3)).fit(X, y)
    folds = pd.DataFrame({"row": np.arange(y.size), "y": y, "p": model.predict_proba(X)[:, 1]})
    docs = serving_artifacts(X, None, folds, 0, model=model, y=y)
    doc = json.loads(json.dumps(docs[INTERVAL_PATH]))  # what MLflow stores and serving reads
    table = IntervalTable.from_dict(doc)
    assert table.method == METHOD_UNION and table.measured
    assert table.n == 200 and table.events == int(y.sum()) and table.level == 0.95
    again = IntervalTable.from_dict(table.to_dict())
    np.testing.assert_array_equal(again.low, table.low)
    np.testing.assert_array_equal(again.high, table.high)
    # an older caller without the model: the recalibration part alone, said so
    old = IntervalTable.from_dict(serving_artifacts(X, None, folds, 0)[INTERVAL_PATH])
    assert old.method != METHOD_UNION
    # an artifact written before the measured field existed still loads
    legacy = {k: v for k, v in doc.items() if k != "measured"}
    assert IntervalTable.from_dict(legacy).measured == ""
