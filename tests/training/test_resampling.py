"""Nested validation: nothing is tuned or calibrated on the patients it is scored on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from features.errors import CrsRiskError
from training.metrics import auroc
from training.resampling import ValidationPlan, cross_validate, n_steps
from training.tuned import TunedCalibratedClassifier

from .helpers import random_table

SEEN: list[set[int]] = []


class Probe(ClassifierMixin, BaseEstimator):
    """Logistic regression that records the row labels of every fit (in-process only)."""

    def __init__(self, C: float = 1.0) -> None:
        self.C = C

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Probe:
        SEEN.append(set(X.index.tolist()))
        self.lr_ = LogisticRegression(C=self.C).fit(X.fillna(0).to_numpy(), y)
        self.classes_ = self.lr_.classes_
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.lr_.predict_proba(X.fillna(0).to_numpy())

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.lr_.predict(X.fillna(0).to_numpy())


def _tuned(seed: int = 0) -> TunedCalibratedClassifier:
    return TunedCalibratedClassifier(
        estimator=Probe(),
        param_grid={"C": [0.01, 1.0]},
        calibration="sigmoid",
        inner_folds=3,
        random_state=seed,
    )


def test_tuning_and_calibration_never_see_the_scored_fold():
    t = random_table(90)
    SEEN.clear()
    res = cross_validate(_tuned(), t.X, t.y, ValidationPlan(folds=3, repeats=2, seed=1))
    folds = res.folds
    assert len(folds) == 2 * 90 and set(folds["repeat"]) == {0, 1}
    # every fit made while validating (grid × inner folds, calibration folds, refit) used only
    # rows of the training part of its outer fold
    per_outer = len(SEEN) // 6
    for k, (_, part) in enumerate(folds.groupby(["repeat", "fold"])):
        scored = set(part["row"].tolist())
        for seen in SEEN[k * per_outer : (k + 1) * per_outer]:
            assert not (seen & scored)
    assert np.isfinite(res.predictions).all()
    assert set(res.fold_params[0]) >= {"repeat", "fold", "C"}


def test_same_seed_same_predictions_other_seed_other_splits():
    t = random_table(60)
    a = cross_validate(_tuned(), t.X, t.y, ValidationPlan(folds=3, repeats=1, seed=4))
    b = cross_validate(_tuned(), t.X, t.y, ValidationPlan(folds=3, repeats=1, seed=4))
    c = cross_validate(_tuned(), t.X, t.y, ValidationPlan(folds=3, repeats=1, seed=5))
    assert np.array_equal(a.predictions, b.predictions)
    assert not np.array_equal(a.predictions, c.predictions)


def test_grouped_and_leave_one_centre_out_keep_centres_apart():
    t = random_table(120)
    centers = t.groups["center"].to_numpy()
    res = cross_validate(
        _tuned(), t.X, t.y, ValidationPlan(method="leave_one_centre_out"), centers=centers
    )
    assert res.predictions.shape == (1, 120) and np.isfinite(res.predictions).all()
    for _, part in res.folds.groupby("fold"):
        assert len(set(centers[part["row"]])) == 1
    grouped = cross_validate(
        _tuned(),
        t.X,
        t.y,
        ValidationPlan(folds=3, repeats=1, group_by_center=True),
        centers=centers,
    )
    for _, part in grouped.folds.groupby("fold"):
        others = set(centers) - set(centers[part["row"]])
        assert len(others) == 2  # each test fold is exactly one of the three centres
    with pytest.raises(CrsRiskError, match="at least 2 centres"):
        cross_validate(
            _tuned(),
            t.X,
            t.y,
            ValidationPlan(method="leave_one_centre_out"),
            centers=np.array(["C01"] * 120),
        )


def test_every_fold_carries_selection_statistics_of_its_training_part_only():
    table = random_table(n=90, seed=3)
    plan = ValidationPlan(folds=3, repeats=1, seed=2)
    res = cross_validate(_tuned(), table.X, table.y, plan)
    assert len(res.selection) == len(res.test_rows) == 3
    for sel, test in zip(res.selection, res.test_rows, strict=True):
        assert sel.calibrated and np.isfinite(sel.metrics["auroc"])
        # the selection statistic differs from the fold's held-out performance (it never saw it)
        held_out = auroc(table.y.to_numpy()[test], res.predictions[0, test])
        assert sel.metrics["auroc"] != held_out


def test_too_few_events_is_a_clear_error_and_folds_shrink():
    t = random_table(60)
    y = np.zeros(60, dtype=int)
    y[:3] = 1
    res = cross_validate(_tuned(), t.X, y, ValidationPlan(folds=5, repeats=1))
    assert res.notes and "folds reduced from 5 to 3" in res.notes[0]
    y[1:] = 0
    with pytest.raises(CrsRiskError, match="events"):
        cross_validate(_tuned(), t.X, y, ValidationPlan(folds=5, repeats=1))
    assert n_steps(ValidationPlan(folds=5, repeats=2), np.array([1, 1, 1, 0, 0, 0, 0]), None) == 6
