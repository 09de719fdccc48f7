"""One estimator for "tune, then calibrate, then refit" — the procedure that gets validated.

``TunedCalibratedClassifier.fit`` runs the inner loop on the data it is given and nothing else:
grid search over the declared hyper-parameters by inner stratified k-fold, then probability
calibration (sigmoid/isotonic, ``training.calibration.choose_method``) fitted on inner
cross-validated predictions (``CalibratedClassifierCV(ensemble=False)``), and the tuned model
refitted on all of the data given. Cloned inside every outer fold it gives nested
cross-validation (Varma S, Simon R 2006, BMC Bioinformatics 7:91: tuning on the scored data
biases performance upwards); fitted on the whole cohort it gives the model that is registered.

``fit`` also keeps ``inner_predictions_``: the inner cross-validated probabilities of the tuned
(and calibrated) procedure on the data it was given. They are what the champion rule is applied
to (``training.selection``), inside every outer fold and on the whole cohort alike, so choosing
the champion is part of the validated procedure. ``constant_`` is True when the calibration
clamp (below) flattened the model: such a model has no ranking and is never a candidate.

``model_`` is a plain scikit-learn object — the estimator pipeline, or a
``CalibratedClassifierCV`` around it — and is what gets logged to MLflow, so the served model
needs no wrapper: ``model_.calibrated_classifiers_[0].estimator`` is the fitted pipeline.
"""

from __future__ import annotations

import itertools
from typing import Any, cast

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict

from features.errors import CrsRiskError
from training.calibration import CalibrationChoice, choose_method


def grid_size(grid: dict[str, list[Any]] | None) -> int:
    """Number of hyper-parameter combinations in a grid (1 for an empty grid)."""
    if not grid:
        return 1
    return int(np.prod([len(v) for v in grid.values()]))


def grid_combinations(grid: dict[str, list[Any]] | None) -> list[dict[str, Any]]:
    """Every combination of a grid as a list of parameter dicts."""
    if not grid:
        return [{}]
    keys = sorted(grid)
    return [
        dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(grid[k] for k in keys))
    ]


def _clamp_decreasing_sigmoid(model: CalibratedClassifierCV, y: np.ndarray) -> bool:
    """Constrain Platt's slope to be non-negative (a calibration must not invert the ranking).

    With tens of events the inner cross-validated scores of a weak model can be *anti*-related
    to the outcome by chance (the known negative bias of CV under no signal); an unconstrained
    sigmoid then reverses every prediction. The maximum-likelihood sigmoid under the constraint
    "non-decreasing" is, in that case, the flat one at the event rate: predictions carry no
    ranking rather than an inverted one. scikit-learn's calibrator predicts
    ``expit(-(a·s + b))`` (increasing when a < 0); it has no constraint option, so the fitted
    parameters are set here. Returns True when the constraint was active.
    """
    clamped = False
    for cc in model.calibrated_classifiers_:
        for cal in cc.calibrators:
            if hasattr(cal, "a_") and cal.a_ > 0:
                rate = float(np.clip(np.mean(y), 1e-6, 1 - 1e-6))
                cal.a_, cal.b_ = 0.0, -float(np.log(rate / (1 - rate)))
                clamped = True
    return clamped


class TunedCalibratedClassifier(ClassifierMixin, BaseEstimator):
    """Inner-loop tuning + calibration + refit of ``estimator`` on the data passed to ``fit``.

    Parameters mirror the experiment file: ``param_grid`` uses pipeline parameter names
    (``model__C``), ``calibration`` is auto/sigmoid/isotonic/none, ``inner_folds`` the inner
    stratified k, ``scoring`` the inner tuning criterion (log-loss by default: smoother than
    AUROC with tens of events and sensitive to calibration).
    """

    def __init__(
        self,
        estimator: BaseEstimator | None = None,
        param_grid: dict[str, list[Any]] | None = None,
        calibration: str = "auto",
        inner_folds: int = 3,
        scoring: str = "neg_log_loss",
        random_state: int = 0,
        selection_predictions: bool = True,
    ) -> None:
        self.estimator = estimator
        self.param_grid = param_grid
        self.calibration = calibration
        self.inner_folds = inner_folds
        self.scoring = scoring
        self.random_state = random_state
        self.selection_predictions = selection_predictions

    def _inner_cv(self, y: np.ndarray) -> StratifiedKFold:
        minority = int(min(np.sum(y == 1), np.sum(y == 0)))
        if minority < 2:
            raise CrsRiskError(
                f"too few events to fit a model: {int(np.sum(y == 1))} events and "
                f"{int(np.sum(y == 0))} non-events in a training set of {y.size} patients "
                "(need at least 2 of each)"
            )
        k = max(2, min(self.inner_folds, minority))
        return StratifiedKFold(n_splits=k, shuffle=True, random_state=self.random_state)

    def fit(self, X: pd.DataFrame, y: pd.Series | np.ndarray) -> TunedCalibratedClassifier:
        y_arr = np.asarray(y).astype(int)
        if self.estimator is None:
            raise ValueError("TunedCalibratedClassifier needs an estimator")
        cv = self._inner_cv(y_arr)
        est = clone(self.estimator)
        best: dict[str, Any] = {}
        if grid_size(self.param_grid) > 1:
            search = GridSearchCV(
                est,
                self.param_grid,
                scoring=self.scoring,
                cv=cv,
                refit=False,
                error_score="raise",
                n_jobs=1,
            )
            search.fit(X, y_arr)
            best = dict(search.best_params_)
        elif self.param_grid:
            best = grid_combinations(self.param_grid)[0]
        if best:
            est.set_params(**best)
        choice = cast(CalibrationChoice, self.calibration)  # a str hyper-parameter (sklearn)
        method = choose_method(choice, y_arr.size, int(y_arr.sum()))
        self.calibration_clamped_ = False
        if method == "none":
            model = est.fit(X, y_arr)
        else:
            model = CalibratedClassifierCV(est, method=method, cv=cv, ensemble=False)
            model.fit(X, y_arr)
            self.calibration_clamped_ = _clamp_decreasing_sigmoid(model, y_arr)
        self.model_ = model
        self.best_params_ = best
        self.calibration_method_ = method
        self.calibrated_ = method != "none"
        self.constant_ = bool(self.calibration_clamped_)
        self.classes_ = np.asarray(model.classes_)
        self.inner_predictions_ = (
            self._inner_predictions(est, X, y_arr, cv) if self.selection_predictions else None
        )
        return self

    def _inner_predictions(
        self, est: BaseEstimator, X: pd.DataFrame, y: np.ndarray, cv: StratifiedKFold
    ) -> np.ndarray:
        """Inner cross-validated probabilities of the tuned procedure (same inner folds).

        Calibrated models: the fitted calibrator applied to the inner out-of-fold scores it was
        fitted on (the same folds, so the same scores ``CalibratedClassifierCV`` used).
        """
        if not self.calibrated_:
            return cross_val_predict(clone(est), X, y, cv=cv, method="predict_proba")[:, 1]
        use_margin = hasattr(est, "decision_function")
        method = "decision_function" if use_margin else "predict_proba"
        scores = cross_val_predict(clone(est), X, y, cv=cv, method=method)
        scores = scores if use_margin else scores[:, 1]
        calibrator = self.model_.calibrated_classifiers_[0].calibrators[0]
        return np.clip(np.asarray(calibrator.predict(scores), dtype=float), 0.0, 1.0)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_proba(X)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
