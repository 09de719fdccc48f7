"""Published CRS models as baselines in the same harness — refits of their functional form.

Exact published coefficients and cut-offs are mostly unavailable (../shared/published-models.md),
so each baseline is refitted inside every training fold on the team's data:

- ``m_easix`` — Pennisi M et al. 2021, Blood Adv 5:3397: m-EASIX = LDH [U/L] × CRP [mg/dL] /
  platelets [10⁹/L]; here a logistic regression on log m-EASIX (log₂ was used in the paper;
  the base only rescales the coefficient).
- ``cytokine3`` — Teachey DT et al. 2016, Cancer Discov 6:664: logistic regression on log peak
  sgp130, IFN-γ and IL-1RA in the first 72 h (the three cytokines are recalled, not verified;
  coefficients unpublished) — refitted with the peaks available at the landmark.
- ``fever_mcp1`` — Hay KA et al. 2017, Blood 130:2295, classification tree: fever ≥ 38.9 °C
  within 36 h *and* MCP-1 ≥ 1343.5 pg/mL within 36 h → high risk. The thresholds are the
  recalled (unverified) published ones and are **fixed and stated**; ``learn_thresholds`` swaps
  in thresholds chosen by Youden's J on the training fold only.
- ``high_burden`` — Kadauke S et al. 2021, J Clin Oncol 39:920: bone-marrow blasts ≥ 40%
  immediately before infusion.

Rules output probabilities, not just classes: the event rate of their stratum in the training
data, shrunk by half an event (Jeffreys prior), so they enter AUROC, Brier and calibration like
every other model. A missing input makes a rule condition false (not met), which is stated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

BASELINE_NAMES: tuple[str, ...] = ("m_easix", "cytokine3", "fever_mcp1", "high_burden")


def _frame(X: pd.DataFrame | np.ndarray, columns: Sequence[str]) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise TypeError("baseline models need the feature table as a DataFrame with named columns")
    missing = [c for c in columns if c not in X.columns]
    if missing:
        raise KeyError(f"feature table lacks column(s) {missing}")
    return X.loc[:, list(columns)].astype("float64")


class LogLogisticBaseline(ClassifierMixin, BaseEstimator):
    """Logistic regression on log10 of named positive columns (training-median imputation).

    ``floor`` keeps log finite for zeros/values below the assay limit. ``signs`` combines the
    logs into one score before the fit (``(1, 1, -1)`` on LDH, CRP, platelets → log m-EASIX),
    so a published composite is computed from its parts; unit factors (CRP mg/L vs the paper's
    mg/dL) only shift the log score by a constant, which the refitted intercept absorbs. Nearly
    unpenalised (C=1e3 on standardised log values) so that it stays finite if the training fold
    is separable.
    """

    def __init__(
        self,
        columns: tuple[str, ...] = (),
        signs: tuple[int, ...] | None = None,
        floor: float = 1e-3,
        C: float = 1e3,
    ) -> None:
        self.columns = columns
        self.signs = signs
        self.floor = floor
        self.C = C

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        frame = _frame(X, self.columns)
        logs = np.log10(np.clip(frame.to_numpy(dtype=float), self.floor, None))
        logs[np.isnan(frame.to_numpy(dtype=float))] = np.nan
        if self.signs:
            sign = np.asarray(self.signs, dtype=float)[None, :]
            logs = (logs * sign).sum(axis=1, keepdims=True)  # NaN if any part is missing
        return logs

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> LogLogisticBaseline:
        z = self._design(X)
        if np.isnan(z).all(axis=0).any():
            raise ValueError("a baseline input is missing for every training patient")
        medians = np.nanmedian(z, axis=0)
        z = np.where(np.isnan(z), medians, z)
        self.medians_ = medians
        self.mean_ = z.mean(axis=0)
        sd = z.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        self.lr_ = LogisticRegression(C=self.C, max_iter=1000).fit(
            (z - self.mean_) / self.scale_, np.asarray(y).astype(int)
        )
        self.classes_ = self.lr_.classes_
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "lr_")
        z = self._design(X)
        z = np.where(np.isnan(z), self.medians_, z)
        return self.lr_.predict_proba((z - self.mean_) / self.scale_)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _youden_threshold(x: np.ndarray, y: np.ndarray) -> float:
    """Cut-off c maximising sensitivity + specificity of ``x ≥ c`` (ties → lowest c)."""
    values = np.unique(x[np.isfinite(x)])
    if values.size == 0:
        return float("inf")
    pos, neg = max(int(y.sum()), 1), max(int((1 - y).sum()), 1)
    best, best_j = float(values[0]), -np.inf
    for c in values:
        hit = np.nan_to_num(x, nan=-np.inf) >= c
        j = (hit & (y == 1)).sum() / pos + (~hit & (y == 0)).sum() / neg
        if j > best_j + 1e-12:
            best, best_j = float(c), j
    return best


class ThresholdRuleBaseline(ClassifierMixin, BaseEstimator):
    """High risk when every ``column ≥ threshold`` holds; probability = stratum event rate.

    ``thresholds`` are fixed (stated) unless ``learn_thresholds``: then each is chosen by
    Youden's J on the training data passed to ``fit`` (never on scored data). Missing → not met.
    """

    def __init__(
        self,
        columns: tuple[str, ...] = (),
        thresholds: tuple[float, ...] = (),
        learn_thresholds: bool = False,
    ) -> None:
        self.columns = columns
        self.thresholds = thresholds
        self.learn_thresholds = learn_thresholds

    def _positive(self, X: pd.DataFrame, thresholds: Sequence[float]) -> np.ndarray:
        frame = _frame(X, self.columns).to_numpy(dtype=float)
        hit = np.nan_to_num(frame, nan=-np.inf) >= np.asarray(thresholds, dtype=float)[None, :]
        return hit.all(axis=1)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> ThresholdRuleBaseline:
        y_arr = np.asarray(y).astype(int)
        if len(self.thresholds) != len(self.columns):
            raise ValueError("one threshold per column is needed")
        if self.learn_thresholds:
            frame = _frame(X, self.columns).to_numpy(dtype=float)
            self.thresholds_ = tuple(
                _youden_threshold(frame[:, j], y_arr) for j in range(frame.shape[1])
            )
        else:
            self.thresholds_ = tuple(float(t) for t in self.thresholds)
        hit = self._positive(X, self.thresholds_)
        rates = []
        for stratum in (False, True):
            members = hit == stratum
            rates.append((y_arr[members].sum() + 0.5) / (members.sum() + 1.0))
        self.rates_ = np.array(rates)  # [rule not met, rule met]
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "rates_")
        p = self.rates_[self._positive(X, self.thresholds_).astype(int)]
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self._positive(X, self.thresholds_).astype(int)
