"""Learned transforms: scikit-learn estimator checks, known values, pandas output, the factory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from features.build import build_features
from features.catalog import CATALOG, variable_of
from features.transformers import (
    CatalogWinsorizer,
    LogTransformer,
    MissingIndicatorImputer,
    make_preprocessor,
)
from tests.features.feature_cohorts import make_cohort, patient


@parametrize_with_checks(
    [
        LogTransformer(),
        LogTransformer(columns=[0]),
        CatalogWinsorizer(),
        CatalogWinsorizer(bounds={0: (-1.0, 1.0)}, quantiles=None),
        MissingIndicatorImputer(),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "il6_max": [10.0, 1000.0, np.nan, 1e9],
            "temperature_max": [36.0, 39.0, 50.0, np.nan],
            "slope": [-3.0, 0.0, 2.0, 1.0],
        }
    )


def test_log_transformer_known_values_and_names():
    t = LogTransformer(columns=["il6_max", "slope"]).set_output(transform="pandas")
    out = t.fit_transform(_frame())
    assert list(out.columns) == ["il6_max", "temperature_max", "slope"]
    np.testing.assert_allclose(out["il6_max"], np.log1p([10.0, 1000.0, np.nan, 1e9]))
    np.testing.assert_allclose(out["slope"], [-np.log1p(3.0), 0.0, np.log1p(2.0), np.log1p(1.0)])
    np.testing.assert_array_equal(out["temperature_max"], _frame()["temperature_max"])
    with pytest.raises(ValueError, match="no feature names"):
        LogTransformer(columns=["il6_max"]).fit(_frame().to_numpy())


def test_winsorizer_given_and_learned_bounds():
    w = CatalogWinsorizer(bounds={"temperature_max": (34.0, 42.0)}, quantiles=(0.0, 0.5))
    out = w.set_output(transform="pandas").fit_transform(_frame())
    np.testing.assert_array_equal(out["temperature_max"], [36.0, 39.0, 42.0, np.nan])
    # learned: clip at the training min and median
    np.testing.assert_allclose(out["slope"], [-3.0, 0.0, 0.5, 0.5])
    assert np.isnan(out["il6_max"].iloc[2])
    with pytest.raises(ValueError, match="low"):
        CatalogWinsorizer(bounds={"slope": (2.0, 1.0)}).fit(_frame())


def test_imputer_medians_and_indicator_names():
    imp = MissingIndicatorImputer().set_output(transform="pandas")
    out = imp.fit_transform(_frame())
    assert list(out.columns) == [
        "il6_max",
        "temperature_max",
        "slope",
        "il6_max_was_missing",
        "temperature_max_was_missing",
    ]
    assert out["il6_max"].iloc[2] == 1000.0 and out["temperature_max"].iloc[3] == 39.0
    assert out["il6_max_was_missing"].tolist() == [0, 0, 1, 0]
    empty = pd.DataFrame({"a": [np.nan, np.nan], "b": [1.0, 2.0]})
    kept = (
        MissingIndicatorImputer(fill_value=-1).set_output(transform="pandas").fit_transform(empty)
    )
    assert list(kept.columns) == ["a", "b", "a_was_missing"] and kept["a"].tolist() == [-1, -1]
    assert variable_of("il6_max_was_missing") == "il6"


def test_make_preprocessor_on_a_real_feature_table():
    cohort = make_cohort(
        [patient(p, marrow_blasts_pct=float(i * 20)) for i, p in enumerate("abcde")],
        [
            *[
                (p, float(t), "il6", 10.0 * (i + 1) * (t + 1))
                for i, p in enumerate("abcd")
                for t in (0, 24)
            ],
            ("e", 10.0, "temperature", 39.0),
        ],
    )
    table = build_features(cohort, "severe_crs", 24)
    names = list(table.X.columns)
    pre = make_preprocessor(names)
    out = pre.fit_transform(table.X)
    assert isinstance(out, pd.DataFrame) and not out.isna().any().any()
    assert list(out.columns[: len(names)]) == names
    assert list(pre.get_feature_names_out()) == list(out.columns)
    assert {variable_of(c) for c in out.columns} <= {s.variable for s in CATALOG.values()}
    # skewed columns were logged before scaling: the order of patients is kept
    assert out["il6_max"].iloc[:4].is_monotonic_increasing
    unscaled = make_preprocessor(names, CATALOG, scale=False).fit_transform(table.X)
    np.testing.assert_allclose(unscaled["il6_max"].iloc[0], np.log1p(10.0 * 25))
    assert unscaled["marrow_blasts_pct"].tolist() == [0.0, 20.0, 40.0, 60.0, 80.0]
