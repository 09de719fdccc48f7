"""The one probability path: the array path equals each model's own ``predict_proba``, bit for bit.

``serving.explaining.probabilities`` serves a model by NumPy re-implementations of its pipeline
(``training.explain``'s compiled transform, ``serving.trees``' tree walk, the calibrator's
arithmetic) only when the load-time check (``fast_path_problem``) proves, on adversarial probe
rows, that a row gets the same bits alone and in a batch and exactly what ``predict_proba``
gives that patient alone. Models are fitted here the way training fits them: restricted to the
compact clinical set (a column-selection step), XGBoost Platt-scaled on its margin
(``MonotoneXGBClassifier.decision_function``) or isotonic, logistic uncalibrated, published
baselines. A wrong fast path must be refused and the model's own code must then serve.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from features.build import build_features
from features.catalog import catalog_for
from features.io import load_cohort, write_cohort
from features.synth import simulate
from features.transformers import make_preprocessor
from serving.explaining import (
    _FAST,
    fast_path_problem,
    input_columns,
    make_explainer,
    prepare,
    probabilities,
    probe_rows,
)
from tests.training.test_explain import fit
from training.parsimony import compact_columns

LANDMARK = "48h"
# name → (model, calibration, compact set)
PLANS = {
    "logreg_compact": ("logreg", None, True),
    "xgboost_platt_margin_compact": ("xgboost", "sigmoid", True),
    "xgboost_isotonic": ("xgboost", "isotonic", False),
    "xgboost_uncalibrated_compact": ("xgboost", "none", True),
    "m_easix": ("m_easix", None, False),
    "cytokine3": ("cytokine3", None, False),
}


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    sc = simulate(160, seed=13)
    folder = tmp_path_factory.mktemp("probability-path") / "cohort"
    write_cohort(folder, sc.patients, sc.measurements, sc.events)
    return build_features(load_cohort(folder), "severe_crs", LANDMARK)


@pytest.fixture(scope="module")
def models(table):
    catalog = catalog_for("severe_crs", LANDMARK)
    compact = compact_columns("severe_crs", LANDMARK, catalog)
    y = table.y.to_numpy(dtype=int)
    out = {}
    for key, (name, calibration, use_compact) in PLANS.items():
        model = fit(
            name,
            table.X,
            y,
            catalog,
            calibration,
            n_estimators=40,
            max_depth=3,
            columns=compact if use_compact else None,
        )
        explainer = make_explainer(model)
        out[key] = (model, explainer, input_columns(model, explainer))
    return out


def _own(model, x: np.ndarray, columns) -> float:
    """The logged model's own probability for one patient alone."""
    return float(model.predict_proba(pd.DataFrame(x[None, :], columns=list(columns)))[0, 1])


@pytest.mark.parametrize("key", list(PLANS))
def test_every_learned_model_passes_the_load_time_check(key, models):
    model, explainer, columns = models[key]
    assert fast_path_problem(model, explainer, columns) is None
    prepare(model, explainer, columns)
    assert _FAST[explainer] is True


@pytest.mark.parametrize("key", list(PLANS))
def test_the_array_path_is_the_models_own_probability_bit_for_bit(key, models, table):
    """Real rows and fresh adversarial rows: alone, inside a batch, and one-row
    ``predict_proba`` agree exactly."""
    model, explainer, columns = models[key]
    real = table.X[list(columns)].to_numpy(dtype=np.float64)[:20]
    rows = np.vstack([real, probe_rows(model, explainer, len(columns), seed=5)[:20]])
    batch = probabilities(model, explainer, rows, columns)
    for i, x in enumerate(rows):
        alone = probabilities(model, explainer, x, columns)[0]
        assert alone == batch[i] == _own(model, x, columns), (key, i)


def _one_ulp_off(explainer):
    """The explainer with its compiled transform off by one ulp in every cell."""
    bad = copy.copy(explainer)
    bad._ops = [*explainer._ops, lambda X: np.nextafter(X, np.inf)]
    return bad


def _without_log(explainer):
    """The explainer with the log step of its compiled transform forgotten."""
    bad = copy.copy(explainer)
    bad._ops = [op for op in explainer._ops if op.__name__ != "log"]
    assert len(bad._ops) == len(explainer._ops) - 1
    return bad


@pytest.mark.parametrize(
    ("key", "wrong"),
    [
        ("logreg_compact", _one_ulp_off),
        ("logreg_compact", _without_log),
        ("xgboost_platt_margin_compact", _without_log),
    ],
)
def test_a_wrong_fast_path_is_refused_and_the_model_serves(key, wrong, models, table):
    model, explainer, columns = models[key]
    bad = wrong(explainer)
    assert fast_path_problem(model, bad, columns) is not None
    x = table.X[list(columns)].to_numpy(dtype=np.float64)[:5]
    got = probabilities(model, bad, x, columns)
    assert _FAST[bad] is False
    assert got.tolist() == model.predict_proba(table.X[list(columns)].iloc[:5])[:, 1].tolist()


def test_a_step_without_a_numpy_version_falls_back(table):
    """A selection step that is not the identity has no NumPy version: named, and
    ``predict_proba`` serves."""
    catalog = catalog_for("severe_crs", LANDMARK)
    cols = compact_columns("severe_crs", LANDMARK, catalog)
    scale = FunctionTransformer(lambda X: X * 1.0, feature_names_out="one-to-one")
    select = ColumnTransformer([("s", scale, cols)], remainder="drop")
    pipe = Pipeline(
        [
            ("select", select.set_output(transform="pandas")),
            ("prep", make_preprocessor(cols, catalog)),
            ("model", LogisticRegression(C=0.1)),
        ]
    ).fit(table.X, table.y.to_numpy(dtype=int))
    explainer = make_explainer(pipe)
    columns = input_columns(pipe, explainer)
    problem = fast_path_problem(pipe, explainer, columns)
    assert problem is not None and "FunctionTransformer" in problem
    x = table.X[list(columns)].to_numpy(dtype=np.float64)[:3]
    assert probabilities(pipe, explainer, x, columns).tolist() == (
        pipe.predict_proba(table.X.iloc[:3])[:, 1].tolist()
    )
