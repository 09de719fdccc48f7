"""``serving.trees``: the NumPy walk of XGBoost trees equals the booster's margins bit for bit.

The walk serves a few rows at a time (a request's trend points) only after ``compile_trees``
checked it against ``Booster.inplace_predict`` on rows built around every split (thresholds,
their float32 neighbours, halfway values, NaN, values beyond float32). Each way it could be
wrong changes some margin on those rows; unsupported boosters compile to None.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import xgboost
from xgboost import XGBClassifier

from serving.trees import check_rows, compile_trees


@pytest.fixture(scope="module")
def deep_booster() -> xgboost.Booster:
    """Deeper trees than the served models, NaNs, many features, a non-default base score."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 25))
    X[rng.random(X.shape) < 0.2] = np.nan
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) * X[:, 2] > 0).astype(int)
    y[np.isnan(X[:, 3])] = 1
    clf = XGBClassifier(n_estimators=60, max_depth=6, learning_rate=0.3, n_jobs=1, base_score=0.3)
    return clf.fit(X, y).get_booster()


def _want(booster: xgboost.Booster, rows: np.ndarray) -> np.ndarray:
    return np.asarray(
        booster.inplace_predict(rows, predict_type="margin", validate_features=False),
        dtype=np.float64,
    )


def test_compiled_trees_are_bit_identical_to_xgboost(deep_booster):
    trees = compile_trees(deep_booster)
    assert trees is not None and trees.depth >= 5
    rows = check_rows(trees, n=2000, seed=9)
    want = _want(deep_booster, rows)
    assert np.array_equal(trees.margins(rows), want)
    assert [trees.margins(rows[i : i + 1])[0] for i in range(200)] == want[:200].tolist()


def test_named_features_compile(deep_booster):
    """Training attaches column names to the booster (``MonotoneXGBClassifier``)."""
    named = deep_booster.copy()
    named.feature_names = [f"c{i}" for i in range(named.num_features())]
    assert compile_trees(named) is not None


def _set(a: np.ndarray, i: int, value) -> np.ndarray:
    out = a.copy()
    out[i] = value
    return out


def test_the_check_rows_catch_a_one_ulp_difference(deep_booster):
    trees = compile_trees(deep_booster)
    assert trees is not None
    rows = check_rows(trees)
    want = _want(deep_booster, rows)
    root = int(trees.roots[0])
    other_child = trees.right[root] if trees.missing[root] == trees.left[root] else trees.left[root]
    wrong = [
        dataclasses.replace(trees, base=np.nextafter(trees.base, np.float32(1))),
        dataclasses.replace(trees, missing=_set(trees.missing, root, other_child)),
        dataclasses.replace(
            trees,
            threshold=_set(trees.threshold, root, np.nextafter(trees.threshold[root], np.inf)),
        ),
    ]
    for bad in wrong:
        assert not np.array_equal(bad.margins(rows), want)


def test_unsupported_boosters_fall_back_to_xgboost():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 4))
    dart = XGBClassifier(booster="dart", n_estimators=5, n_jobs=1).fit(X, (X[:, 0] > 0).astype(int))
    multi = XGBClassifier(n_estimators=5, n_jobs=1).fit(X, np.digitize(X[:, 0], [-0.5, 0.5]))
    assert compile_trees(dart.get_booster()) is None
    assert compile_trees(multi.get_booster()) is None
