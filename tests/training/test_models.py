"""Model factories, published baselines, tuning + calibration, monotone constraints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression

from features.catalog import catalog_for
from training.baselines import LogLogisticBaseline, ThresholdRuleBaseline, _youden_threshold
from training.calibration import calibration_table, choose_method, wilson_interval
from training.models import MonotoneXGBClassifier, build_model, directions_for, example_input
from training.tuned import TunedCalibratedClassifier, grid_combinations, grid_size

from .helpers import random_table


def test_threshold_rule_probabilities_are_stratum_rates():
    X = pd.DataFrame(
        {"t": [39.5, 39.0, 37.0, 38.0, np.nan, 40.0], "m": [2000, 10, 5000, 3000, 9e3, 1500]}
    )
    y = np.array([1, 0, 0, 1, 1, 1])
    rule = ThresholdRuleBaseline(columns=("t", "m"), thresholds=(38.9, 1343.5)).fit(X, y)
    hit = rule.predict(X)
    assert hit.tolist() == [1, 0, 0, 0, 0, 1]  # missing temperature → rule not met
    # rule met: 2 events of 2 → (2 + .5) / 3; not met: 2 of 4 → 2.5 / 5
    assert rule.predict_proba(X)[:, 1] == pytest.approx([2.5 / 3, 0.5, 0.5, 0.5, 0.5, 2.5 / 3])


def test_learned_threshold_uses_training_data_only():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    y = np.array([0, 0, 0, 1, 1, 1])
    assert _youden_threshold(x, y) == 4.0
    X = pd.DataFrame({"b": x})
    rule = ThresholdRuleBaseline(columns=("b",), thresholds=(40.0,), learn_thresholds=True)
    rule.fit(X, y)
    assert rule.thresholds_ == (4.0,)
    rule.fit(X, np.array([0, 1, 1, 1, 1, 1]))  # other training outcomes → another threshold
    assert rule.thresholds_ == (2.0,)
    fixed = ThresholdRuleBaseline(columns=("b",), thresholds=(40.0,)).fit(X, y)
    assert fixed.thresholds_ == (40.0,)


def test_log_logistic_composite_equals_logistic_on_the_log_score():
    rng = np.random.default_rng(2)
    X = pd.DataFrame(
        {
            "ldh": rng.lognormal(6, 0.5, 200),
            "crp": rng.lognormal(3, 1, 200),
            "plt": rng.lognormal(4, 0.6, 200),
        }
    )
    score = np.log10(X["ldh"] * X["crp"] / X["plt"])
    y = (rng.uniform(size=200) < 1 / (1 + np.exp(-(score - score.mean()) * 2))).astype(int)
    base = LogLogisticBaseline(columns=("ldh", "crp", "plt"), signs=(1, 1, -1), C=1e6).fit(X, y)
    z = score.to_numpy()[:, None]
    ref = LogisticRegression(C=np.inf).fit(z, y)
    assert base.predict_proba(X)[:, 1] == pytest.approx(ref.predict_proba(z)[:, 1], abs=1e-3)


def test_log_logistic_imputes_training_median_and_refuses_all_missing():
    X = pd.DataFrame({"a": [1.0, 10.0, np.nan, 100.0, 1000.0, 5.0]})
    y = np.array([0, 0, 1, 1, 1, 0])
    m = LogLogisticBaseline(columns=("a",)).fit(X, y)
    assert np.isfinite(m.predict_proba(X)).all()
    with pytest.raises(ValueError, match="missing for every"):
        LogLogisticBaseline(columns=("a",)).fit(pd.DataFrame({"a": [np.nan] * 6}), y)


def test_monotone_xgboost_respects_catalog_directions():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 3)), columns=["up", "down", "free"])
    # a non-monotone truth in "up" that an unconstrained model would follow
    y = ((np.sin(3 * X["up"]) - X["down"] + rng.normal(0, 0.3, 300)) > 0).astype(int)
    m = MonotoneXGBClassifier(
        directions={"up": 1, "down": -1}, n_estimators=60, max_depth=2, random_state=0
    ).fit(X, y)
    assert m.get_params()["monotone_constraints"] == (1, -1, 0)
    grid = np.linspace(-3, 3, 41)
    for col, sign in (("up", 1), ("down", -1)):
        Z = pd.DataFrame(0.0, index=range(41), columns=X.columns)
        Z[col] = grid
        diffs = np.diff(m.predict_proba(Z)[:, 1]) * sign
        assert (diffs >= -1e-9).all()
    assert list(m.get_booster().feature_names) == ["up", "down", "free"]
    assert clone(m).get_params()["directions"] == {"up": 1, "down": -1}


def test_directions_from_catalog_skip_missing_indicators():
    cat = catalog_for("severe_crs", "48h")
    cols = [s.name for s in cat]
    d = directions_for(cat, cols)
    assert d["il6_max"] == 1 and d["platelets_last"] == -1
    assert "il6_missing" not in d and "age_years" not in d


def test_tuned_classifier_picks_from_grid_and_calibrates():
    t = random_table(150)
    est = TunedCalibratedClassifier(
        estimator=LogisticRegression(),
        param_grid={"C": [0.001, 1.0]},
        calibration="auto",
        inner_folds=3,
        random_state=0,
    )
    X = t.X.fillna(0)
    est.fit(X, t.y)
    assert est.best_params_ == {"C": 1.0}
    assert est.calibration_method_ == "sigmoid"
    assert isinstance(est.model_, CalibratedClassifierCV)
    assert est.predict_proba(X).shape == (150, 2)
    assert grid_size({"a": [1, 2], "b": [1, 2, 3]}) == 6
    assert len(grid_combinations({"a": [1, 2], "b": [3]})) == 2


def test_calibration_method_chosen_for_sample_size():
    assert choose_method("auto", 118, 25) == "sigmoid"
    assert choose_method("auto", 5000, 800) == "isotonic"
    assert choose_method("auto", 5000, 50) == "sigmoid"
    assert choose_method("none", 5000, 800) == "none"


def test_calibration_table_and_wilson_interval():
    y = np.r_[np.ones(4), np.zeros(6), np.ones(8), np.zeros(2)]
    p = np.r_[np.full(10, 0.2), np.full(10, 0.6)]
    tab = calibration_table(y, p, n_bins=2)
    assert tab["observed"].tolist() == pytest.approx([0.4, 0.8])
    assert tab["mean_predicted"].tolist() == pytest.approx([0.2, 0.6])
    lo, hi = wilson_interval(np.array([4]), np.array([10]))
    assert lo[0] == pytest.approx(0.1682, abs=1e-3) and hi[0] == pytest.approx(0.6873, abs=1e-3)


def _table_for_catalog(n: int = 90, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, list]:
    cat = catalog_for("severe_crs", "48h")
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {s.name: rng.uniform(max(s.low, 0.1), min(s.high, 1000), n) for s in cat}
    ).astype("float64")
    y = (rng.uniform(size=n) < 0.3).astype(int)
    return X, y, cat


def test_build_model_skips_baselines_without_inputs_and_builds_the_rest():
    X, y, cat = _table_for_catalog()
    common = dict(
        X=X,
        catalog=cat,
        columns=list(X.columns),
        feature_set="all",
        params={},
        grid=None,
        calibration="auto",
        monotone=True,
        inner_folds=2,
        scoring="neg_log_loss",
        seed=0,
    )
    assert "0h" in build_model("cytokine3", landmark="0h", **common)
    X2 = X.assign(mcp1_max=np.nan)
    reason = build_model("fever_mcp1", landmark="48h", **{**common, "X": X2})
    assert isinstance(reason, str) and "mcp1_max" in reason
    for name in ("logreg", "xgboost", "m_easix", "cytokine3", "fever_mcp1", "high_burden"):
        built = build_model(name, landmark="48h", **common)
        assert not isinstance(built, str), built
        model = clone(built.estimator).fit(X, y)
        p = model.predict_proba(X)[:, 1]
        assert p.shape == (len(X),) and np.all((p >= 0) & (p <= 1))


def test_example_input_is_synthetic_float64_within_ranges():
    cat = catalog_for("severe_crs", "48h")
    ex = example_input(cat, [s.name for s in cat])
    assert ex.shape == (1, len(cat))
    assert (ex.dtypes == "float64").all()
    for s in cat:
        assert s.low <= ex.loc[0, s.name] <= s.high


class _Backwards(ClassifierMixin, BaseEstimator):
    """Scores that rank patients exactly backwards."""

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        s = 1 / (1 + np.exp(np.asarray(X)[:, 0]))
        return np.column_stack([1 - s, s])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] > 0.5).astype(int)


def test_calibration_never_inverts_the_ranking():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"x": rng.normal(size=80)})
    y = (X["x"] > 0.5).astype(int).to_numpy()
    est = TunedCalibratedClassifier(estimator=_Backwards(), calibration="sigmoid").fit(X, y)
    assert est.calibration_clamped_
    p = est.predict_proba(X)[:, 1]
    assert np.allclose(p, y.mean())  # flat at the event rate, not reversed
