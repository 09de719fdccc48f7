"""Metrics against hand-computed values and against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from training import metrics as M


def _two_group_fixture():
    # 10 patients predicted 0.2 with 4 events, 10 predicted 0.6 with 8 events.
    p = np.r_[np.full(10, 0.2), np.full(10, 0.6)]
    y = np.r_[np.ones(4), np.zeros(6), np.ones(8), np.zeros(2)]
    return y, p


def test_calibration_slope_and_intercept_by_hand():
    y, p = _two_group_fixture()
    # Two distinct predictions: logistic recalibration is saturated, so it reproduces the observed
    # rates 0.4 and 0.8 exactly: slope = Δlogit(observed) / Δlogit(predicted).
    slope = (logit(0.8) - logit(0.4)) / (logit(0.6) - logit(0.2))
    assert M.calibration_slope(y, p) == pytest.approx(slope, rel=1e-8)
    # One group predicted 0.2 with 4/10 events: a + logit(0.2) = logit(0.4).
    y1, p1 = y[:10], p[:10]
    assert M.calibration_intercept(y1, p1) == pytest.approx(logit(0.4) - logit(0.2), rel=1e-8)
    assert M.calibration_in_the_large(y1, p1) == pytest.approx(0.2)
    assert M.observed_expected_ratio(y1, p1) == pytest.approx(2.0)


def test_calibration_intercept_solves_the_score_equation():
    y, p = _two_group_fixture()
    a = M.calibration_intercept(y, p)
    expected = 1 / (1 + np.exp(-(a + logit(p))))
    assert expected.sum() == pytest.approx(y.sum(), abs=1e-8)


def test_calibration_slope_matches_unpenalised_sklearn():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.02, 0.9, 300)
    y = (rng.uniform(size=300) < p**1.3).astype(float)
    lr = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(logit(p)[:, None], y)
    assert M.calibration_slope(y, p) == pytest.approx(lr.coef_[0, 0], rel=1e-5)


def test_perfect_calibration_has_slope_one_intercept_zero():
    y, _ = _two_group_fixture()
    p_true = np.r_[np.full(10, 0.4), np.full(10, 0.8)]
    assert M.calibration_slope(y, p_true) == pytest.approx(1.0, abs=1e-8)
    assert M.calibration_intercept(y, p_true) == pytest.approx(0.0, abs=1e-8)


def test_net_benefit_by_hand():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.1, 0.7, 0.3, 0.2, 0.1, 0.1, 0.05, 0.05])
    # t = 0.25: treated = {0.9, 0.6, 0.7, 0.3} → TP 2, FP 2; NB = 2/10 − 2/10 · (0.25/0.75)
    assert M.net_benefit(y, p, [0.25])[0] == pytest.approx(0.2 - 0.2 / 3)
    # t = 0.5: treated = {0.9, 0.6, 0.7} → TP 2, FP 1; NB = 0.2 − 0.1 · 1
    assert M.net_benefit(y, p, [0.5])[0] == pytest.approx(0.1)
    # treat all at t = 0.25: 0.3 − 0.7 · (1/3)
    assert M.net_benefit_treat_all(y, [0.25])[0] == pytest.approx(0.3 - 0.7 / 3)
    c = M.confusion_at(y, p, 0.5)
    assert (c.tp, c.fp, c.tn, c.fn) == (2, 1, 6, 1)
    assert c.sensitivity == pytest.approx(2 / 3)
    assert c.specificity == pytest.approx(6 / 7)
    assert c.ppv == pytest.approx(2 / 3)
    assert c.npv == pytest.approx(6 / 7)
    with pytest.raises(ValueError):
        M.net_benefit(y, p, [0.0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_discrimination_and_brier_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 80)
    p = np.round(rng.uniform(size=80), 1)  # many ties
    assert M.auroc(y, p) == pytest.approx(roc_auc_score(y, p))
    assert M.auprc(y, p) == pytest.approx(average_precision_score(y, p))
    assert M.brier(y, p) == pytest.approx(brier_score_loss(y, p))
    prev = y.mean()
    assert M.scaled_brier(y, p) == pytest.approx(1 - brier_score_loss(y, p) / (prev * (1 - prev)))


def test_single_class_gives_nan_not_error():
    assert math.isnan(M.auroc([0, 0, 0], [0.1, 0.2, 0.3]))
    assert math.isnan(M.calibration_slope([1, 1], [0.1, 0.2]))


def test_bootstrap_ci_brackets_estimate_and_is_reproducible():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 120)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 120), 0.01, 0.99)
    a = M.estimate(M.auroc, y, p, n_boot=200, seed=5)
    b = M.estimate(M.auroc, y, p, n_boot=200, seed=5)
    assert a == b
    assert a.low < a.value < a.high
    idx = M.stratified_bootstrap_indices(y, 10, 1)
    assert all(y[i].sum() == y.sum() for i in idx)  # event count fixed in every replicate


def test_repeats_are_averaged():
    y = np.array([0, 0, 1, 1])
    preds = np.array([[0.1, 0.2, 0.8, 0.9], [0.9, 0.2, 0.8, 0.1]])
    assert M.estimate(M.auroc, y, preds, n_boot=0, seed=0).value == pytest.approx(
        (1.0 + 0.25) / 2  # second repeat: 1 of 4 pairs ranked correctly
    )


def test_report_flat_names():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    p = np.clip(0.4 * y + rng.uniform(0, 0.6, 60), 0.01, 0.99)
    rep = M.evaluate_predictions(
        y, p, thresholds=[0.2], decision_thresholds=[0.1, 0.3], n_boot=50, seed=0
    )
    flat = rep.flat()
    for name in ("auroc", "auprc", "brier", "calibration_slope", "calibration_intercept"):
        assert {name, f"{name}_ci_low", f"{name}_ci_high"} <= set(flat)
    assert flat["n_patients"] == 60 and flat["n_events"] == y.sum()
    assert flat["net_benefit_at_0.20"] == pytest.approx(M.net_benefit(y, p, [0.2])[0])
    assert flat["sensitivity_at_0.20"] == pytest.approx(M.confusion_at(y, p, 0.2).sensitivity)
    for name in ("sensitivity", "specificity", "ppv", "npv", "net_benefit"):
        assert flat[f"{name}_at_0.20_ci_low"] <= flat[f"{name}_at_0.20"]
        assert flat[f"{name}_at_0.20"] <= flat[f"{name}_at_0.20_ci_high"]
    assert rep.decision["threshold"] == [0.1, 0.2, 0.3]


def test_subgroup_cells_under_five_patients_are_suppressed():
    import pandas as pd

    from training.subgroups import MIN_CELL, subgroup_table

    rng = np.random.default_rng(3)
    n = 40
    y = np.r_[np.ones(10), np.zeros(30)]
    p = rng.uniform(size=n)
    centres = np.array(["C01"] * 20 + ["C02"] * 16 + ["C03"] * 4)  # C03: 4 patients
    table = subgroup_table(y, p, pd.DataFrame({"center": centres}), ["center"], n_boot=20, seed=1)
    small = table[table["level"] == "C03"].iloc[0]
    assert bool(small["suppressed"]) and MIN_CELL == 5
    for col in ("n_patients", "n_events", "auroc", "observed_risk", "mean_predicted_risk"):
        assert np.isnan(small[col]), col
    big = table[table["level"] == "C01"].iloc[0]
    assert not bool(big["suppressed"]) and big["n_patients"] == 20
