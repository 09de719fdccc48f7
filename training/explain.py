"""The explainer: SHAP values of a fitted model's log-odds, per row and per clinical variable.

What is explained, per model family — always the *uncalibrated model's log-odds* (its margin):

- XGBoost pipelines: TreeSHAP (Lundberg SM et al. 2020, Nat Mach Intell 2:56), path-dependent,
  with ``shap.TreeExplainer`` on the booster; the base value is the expected margin over the
  training data (tree covers).
- Logistic-regression pipelines: exact linear SHAP, φⱼ = βⱼ·(xⱼ − E[xⱼ]) (Lundberg SM, Lee SI
  2017, NeurIPS), with ``shap.LinearExplainer``; the reference E[x] is the training mean of the
  transformed features, which the pipeline's ``StandardScaler`` makes zero, so the base value is
  the intercept.
- Published baselines (``training.baselines``), coefficient-based. ``LogLogisticBaseline``: the
  same linear SHAP on its standardised log design (coefficient × centred log value); m-EASIX has
  one coefficient on the composite log(LDH·CRP/platelets), so its contribution belongs to the
  variable *m-EASIX*, not split between its parts. ``ThresholdRuleBaseline``: its one coefficient
  is the log-odds ratio between the "rule met" and "rule not met" strata; the reference is "rule
  not met" and, for a met rule of k conditions, the Shapley value of the AND gives each
  condition 1/k of it.

Calibrated models (``CalibratedClassifierCV(ensemble=False)``, see ``training.tuned``) map the
pipeline's output to the reported probability by a monotone function (Platt sigmoid or isotonic);
the reasons are in the pipeline's log-odds and the calibrated probability is reported beside
them, so contribution sizes are on the uncalibrated scale while their order and direction hold.

:class:`ModelExplainer` is built once per loaded model. ``explain_row`` is the per-request path
for the service: the fitted preprocessing steps are compiled to NumPy operations (no pandas on one
row, which is where most single-row time goes) and give bit-identical output to the pipeline.
``explain`` does a batch. Wording per clinical variable: ``training.explain_attribution``;
NumPy versions of the fitted steps: ``training.explain_fast``; a model's global picture:
``training.explain_global`` (its files are logged by ``training.sink``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shap
import xgboost
from scipy.special import expit, logit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBModel

from features.catalog import FeatureSpec, variable_of
from features.errors import CrsRiskError
from training.baselines import LogLogisticBaseline, ThresholdRuleBaseline
from training.explain_attribution import (
    M_EASIX_PARTS,
    PatientExplanation,
    contribution,
    one_hot_prefix,
    specs_of,
    toci_flags,
    variable_label,
)
from training.explain_fast import Op, Unsupported, calibrator_predict, compile_step, log_design

ADDITIVITY_TOL = 1e-4  # |base + Σ SHAP − model log-odds| allowed (XGBoost computes in float32)
MISSING_SUFFIX = "_was_missing"  # features.transformers.MissingIndicatorImputer
EPS = 1e-12


# --- model unwrapping ------------------------------------------------------------------------
def unwrap(model: Any) -> tuple[Any, Any]:
    """(fitted estimator, calibrated wrapper or None) of a logged model.

    Accepts the ``TunedCalibratedClassifier``, its ``model_`` (the pipeline or a
    ``CalibratedClassifierCV(ensemble=False)`` around it) or a bare estimator.
    """
    inner = getattr(model, "model_", None)
    if inner is not None and not hasattr(model, "calibrated_classifiers_"):
        model = inner
    if isinstance(model, CalibratedClassifierCV):
        ccs = model.calibrated_classifiers_
        if len(ccs) != 1:
            raise CrsRiskError(
                "cannot explain a CalibratedClassifierCV with ensemble=True "
                f"({len(ccs)} calibrated copies); the training harness fits ensemble=False"
            )
        return ccs[0].estimator, ccs[0]
    return model, None


# --- results ---------------------------------------------------------------------------------
@dataclass
class ShapResult:
    """SHAP values of a batch: per explained column and summed per clinical variable."""

    values: np.ndarray  # (n, p) per explained (transformed) column, log-odds
    base_values: np.ndarray  # (n,)
    columns: list[str]  # explained columns
    column_variables: list[str]  # clinical variable of each explained column
    variables: list[str]  # distinct variables, in column order
    grouped: np.ndarray  # (n, V) summed per variable
    data: pd.DataFrame  # the model inputs as given (original units)
    margin: np.ndarray  # the model's own log-odds, computed without SHAP
    probability: np.ndarray  # the logged (calibrated) model's probability

    def additivity_error(self) -> float:
        """max |base + Σ SHAP − model log-odds| over the batch."""
        if not len(self.margin):
            return 0.0
        return float(np.max(np.abs(self.base_values + self.values.sum(axis=1) - self.margin)))

    def grouped_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.grouped, columns=self.variables)


# --- the explainer ---------------------------------------------------------------------------
class ModelExplainer:
    """Explain a fitted model (pipeline, calibrated pipeline or published baseline).

    Build once per loaded model; ``explain_row`` is cheap enough to call per request. ``catalog``
    gives labels and units (default: the full feature catalog).
    """

    def __init__(
        self,
        model: Any,
        catalog: Sequence[FeatureSpec] | Mapping[str, FeatureSpec] | None = None,
    ) -> None:
        self.model = model
        self.estimator, self.calibrated_classifier = unwrap(model)
        self.specs = specs_of(catalog)
        est = self.estimator
        self._rule: dict[str, Any] | None = None
        self._design: Op | None = None
        self._ops: list[Op] | None = None
        self.unsupported = ""  # the preprocessing step without a NumPy version, if any
        if isinstance(est, Pipeline):
            final = est.steps[-1][1]
            pre = est[:-1]
            self.input_columns = [str(c) for c in est.feature_names_in_]
            self.columns = [str(c) for c in pre.get_feature_names_out()]
            self._pre = pre
            try:
                self._ops = compile_step(pre, self.input_columns)
            except Unsupported as exc:  # transform() then runs the pipeline's own steps
                self._ops = None
                self.unsupported = str(exc)
            if isinstance(final, XGBModel):
                self.family = "xgboost"
                self._booster = final.get_booster()
                self._tree = shap.TreeExplainer(self._booster)
                self._tree_base = None
                probe = np.zeros((1, len(self.columns)))
                self._tree_base = float(self.shap_values(probe)[1][0])
            elif isinstance(final, LogisticRegression):
                self.family = "logistic"
                self._linear_setup(final, pre)
            else:
                raise CrsRiskError(f"no explainer for a {type(final).__name__} pipeline")
            self._final = final
        elif isinstance(est, LogLogisticBaseline):
            self.family = "log_logistic"
            self.input_columns = list(est.columns)
            self._ops = None
            self._design = self._log_design
            if est.signs:
                self.columns = [self._composite_name(est)]
            else:
                self.columns = list(est.columns)
            self._linear_setup(est.lr_, None, reference=np.zeros(len(self.columns)))
        elif isinstance(est, ThresholdRuleBaseline):
            self.family = "rule"
            self.input_columns = list(est.columns)
            self.columns = list(est.columns)
            self._ops = None
            r0, r1 = (float(np.clip(r, EPS, 1 - EPS)) for r in est.rates_)
            self._rule = {
                "thresholds": np.asarray(est.thresholds_, dtype=float),
                "base": float(logit(r0)),
                "delta": float(logit(r1) - logit(r0)),
            }
        else:
            raise CrsRiskError(f"no explainer for a {type(est).__name__} model")
        self._index_variables()
        self._calibration_setup()

    # -- setup --
    @staticmethod
    def _composite_name(est: Any) -> str:
        if tuple(est.columns) == M_EASIX_PARTS and tuple(est.signs) == (1, 1, -1):
            return "m_easix_score"
        return "score(" + ",".join(est.columns) + ")"

    def _linear_setup(self, lr: Any, pre: Any, reference: np.ndarray | None = None) -> None:
        if reference is None:
            last = pre.steps[-1][1] if pre is not None and hasattr(pre, "steps") else None
            inner = last.steps[-1][1] if last is not None and hasattr(last, "steps") else last
            if not isinstance(inner, StandardScaler):
                raise CrsRiskError(
                    "linear SHAP needs the training mean of the transformed features: the "
                    "pipeline must end in a StandardScaler (training mean = 0)"
                )
            # The scaler was fitted on the training data, so its output has training mean 0.
            reference = np.zeros(len(self.columns))
        self._lr = lr
        self._linear = shap.LinearExplainer(
            lr, shap.maskers.Independent(reference.reshape(1, -1), max_samples=1)
        )
        self._linear_base = float(np.ravel(self._linear.expected_value)[0])

    def _index_variables(self) -> None:
        where = {c: i for i, c in enumerate(self.input_columns)}
        n_in = len(self.input_columns)
        col_input = []
        col_var = []
        for c in self.columns:
            if c in where:
                col_input.append(where[c])
            elif c.endswith(MISSING_SUFFIX) and c[: -len(MISSING_SUFFIX)] in where:
                col_input.append(where[c[: -len(MISSING_SUFFIX)]])
            else:
                col_input.append(n_in)  # composite (m-EASIX): no single input column
            col_var.append("m_easix" if c == "m_easix_score" else variable_of(c))
        self.column_variables = col_var
        self.variables = list(dict.fromkeys(col_var))
        vindex = {v: i for i, v in enumerate(self.variables)}
        self._group = np.asarray([vindex[v] for v in col_var], dtype=np.int64)
        self._col_input = np.asarray(col_input, dtype=np.int64)
        # members: input columns belonging to each variable (all inputs of a composite)
        members: dict[str, list[int]] = {v: [] for v in self.variables}
        for j, ci in enumerate(col_input):
            v = col_var[j]
            targets = range(n_in) if ci == n_in else [ci]
            for t in targets:
                if t not in members[v]:
                    members[v].append(t)
        self._members = {v: np.asarray(m, dtype=np.int64) for v, m in members.items()}
        self.variable_labels = {v: variable_label(v, self.specs) for v in self.variables}
        self._one_hot = {
            v: one_hot_prefix([self.specs.get(self.input_columns[i]) for i in m])
            for v, m in self._members.items()
        }

    def _calibration_setup(self) -> None:
        cc = self.calibrated_classifier
        self._calibrator = None
        self._calibrate_on = "log_odds"
        if cc is None:
            return
        if cc.method not in ("sigmoid", "isotonic") or len(cc.calibrators) != 1:
            self._calibrator = "model"  # fall back to the model's own predict_proba
            return
        self._calibrator = cc.calibrators[0]
        has_decision = hasattr(self.estimator, "decision_function")
        self._calibrate_on = "log_odds" if has_decision else "probability"

    @property
    def calibrated(self) -> bool:
        return self.calibrated_classifier is not None

    # -- NumPy versions of the model's own steps (training.explain_fast) --
    def _log_design(self, X: np.ndarray) -> np.ndarray:
        """LogLogisticBaseline's standardised design, as in its ``predict_proba``."""
        return log_design(self.estimator, X)

    def _calibrator_predict(self, pred: np.ndarray) -> np.ndarray:
        """The calibrator's ``predict`` without per-call checks (bit-identical)."""
        return calibrator_predict(self._calibrator, pred)

    # -- transforms --
    def as_array(self, rows: Any) -> np.ndarray:
        """Model inputs as a float64 (n, inputs) array from a DataFrame, Series, dict or array."""
        if isinstance(rows, pd.DataFrame):
            missing = [c for c in self.input_columns if c not in rows.columns]
            if missing:
                raise CrsRiskError(
                    f"feature rows lack {len(missing)} model input(s): {', '.join(missing[:8])}"
                )
            return rows[self.input_columns].to_numpy(dtype=np.float64, na_value=np.nan)
        if isinstance(rows, Mapping | pd.Series):
            missing = [c for c in self.input_columns if c not in rows]
            if missing:
                raise CrsRiskError(
                    f"feature row lacks {len(missing)} model input(s): {', '.join(missing[:8])}"
                )
            return np.asarray([[rows[c] for c in self.input_columns]], dtype=np.float64)
        arr = np.asarray(rows, dtype=np.float64)
        arr = arr.reshape(1, -1) if arr.ndim == 1 else arr
        if arr.shape[1] != len(self.input_columns):
            raise CrsRiskError(
                f"feature array has {arr.shape[1]} columns; the model takes "
                f"{len(self.input_columns)}"
            )
        return arr

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Explained (transformed) columns from model inputs, NumPy only where possible."""
        if self._design is not None:
            return self._design(X)
        if self._rule is not None:
            return np.array(X, dtype=np.float64)
        if self._ops is None:
            frame = pd.DataFrame(X, columns=self.input_columns)
            return np.asarray(self._pre.transform(frame), dtype=np.float64)
        out = np.array(X, dtype=np.float64, copy=True)
        for op in self._ops:
            out = op(out)
        return out

    # -- SHAP --
    def shap_values(self, Xt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values (n, p), base values (n,)) in log-odds for transformed rows."""
        n = Xt.shape[0]
        if self.family == "xgboost":
            # One thread: on a busy host, spinning up the default OpenMP pool for a one-row
            # DMatrix costs tens of milliseconds (more than the whole explanation).
            dm = xgboost.DMatrix(Xt, nthread=1)
            if n == 1 and self._tree_base is not None:
                # per-request path: skip building a shap.Explanation (≈1 ms); the base value
                # is the same for every row and was read from one at construction
                values = self._tree.shap_values(dm, check_additivity=False)
                return np.asarray(values, dtype=np.float64).reshape(1, -1), np.array(
                    [self._tree_base]
                )
            exp = self._tree(dm, check_additivity=False)
            values = np.asarray(exp.values, dtype=np.float64).reshape(n, -1)
            base = np.asarray(exp.base_values, dtype=np.float64).reshape(n)
            return values, base
        if self._rule is not None:
            r = self._rule
            hit = np.nan_to_num(Xt, nan=-np.inf) >= r["thresholds"][None, :]
            met = hit.all(axis=1)
            k = Xt.shape[1]
            values = np.where(met[:, None], r["delta"] / k, 0.0) * np.ones((n, k))
            return values, np.full(n, r["base"])
        values = np.asarray(self._linear.shap_values(Xt), dtype=np.float64).reshape(n, -1)
        return values, np.full(n, self._linear_base)

    def model_log_odds(self, X: np.ndarray) -> np.ndarray:
        """The model's own log-odds, computed through its scikit-learn/XGBoost code (no SHAP)."""
        frame = pd.DataFrame(X, columns=self.input_columns)
        est = self.estimator
        if self.family == "xgboost":
            Xt = self._pre.transform(frame)
            return np.asarray(self._final.predict(Xt, output_margin=True), dtype=np.float64)
        if self.family == "logistic":
            return np.asarray(est.decision_function(frame), dtype=np.float64)
        p = np.clip(est.predict_proba(frame)[:, 1], EPS, 1 - EPS)
        return np.asarray(logit(p), dtype=np.float64)

    def calibrate(self, log_odds: np.ndarray, X: np.ndarray | None = None) -> np.ndarray:
        """The logged model's probability from the explained log-odds."""
        lo = np.asarray(log_odds, dtype=np.float64)
        if self._calibrator is None:
            return expit(lo)
        if isinstance(self._calibrator, str):
            if X is None:
                raise ValueError("this calibration method needs the inputs")
            frame = pd.DataFrame(X, columns=self.input_columns)
            return np.asarray(self.model.predict_proba(frame)[:, 1], dtype=np.float64)
        pred = lo if self._calibrate_on == "log_odds" else expit(lo)
        p = np.asarray(calibrator_predict(self._calibrator, pred), dtype=np.float64)
        return np.clip(p, 0.0, 1.0)

    # -- public API --
    def explain(self, X: pd.DataFrame | np.ndarray) -> ShapResult:
        """SHAP values of every row, with the model's own log-odds and probability beside."""
        arr = self.as_array(X)
        Xt = self.transform(arr)
        values, base = self.shap_values(Xt)
        grouped = np.zeros((arr.shape[0], len(self.variables)))
        np.add.at(grouped.T, self._group, values.T)
        margin = self.model_log_odds(arr)
        frame = pd.DataFrame(arr, columns=self.input_columns)
        proba = np.asarray(self.model.predict_proba(frame)[:, 1], dtype=np.float64)
        return ShapResult(
            values=values,
            base_values=base,
            columns=list(self.columns),
            column_variables=list(self.column_variables),
            variables=list(self.variables),
            grouped=grouped,
            data=frame,
            margin=margin,
            probability=proba,
        )

    def explain_row(
        self, row: Any, top: int = 5, flags: Mapping[str, float] | None = None
    ) -> PatientExplanation:
        """One patient's probability, base value and top ``top`` variable contributions.

        ``row`` is the patient's feature row (dict, Series, 1-row DataFrame or array in
        ``input_columns`` order) in catalog units, as ``features.build`` makes it. ``flags``:
        the full row's ``<analyte>_after_toci`` flags (``explain_attribution.toci_flags``),
        read from ``row`` itself when it is named and holds them.
        """
        return self.explain_row_effects(row, top, flags)[0]

    def explain_row_effects(
        self, row: Any, top: int = 5, flags: Mapping[str, float] | None = None
    ) -> tuple[PatientExplanation, np.ndarray]:
        """:meth:`explain_row` and every variable's SHAP log-odds (``variables`` order) from the
        same SHAP values: for a caller that words the top variables but reads all of them
        (wording costs more per variable than the SHAP values of a linear model)."""
        if flags is None and not isinstance(row, np.ndarray):
            flags = toci_flags(row) or None
        x = self.as_array(row)
        if x.shape[0] != 1:
            raise CrsRiskError(f"explain_row takes one patient, got {x.shape[0]} rows")
        values, base = self.shap_values(self.transform(x))
        phi = values[0]
        grouped = np.bincount(self._group, weights=phi, minlength=len(self.variables))
        log_odds = float(base[0] + phi.sum())
        prob = float(self.calibrate(np.array([log_odds]), x)[0])
        k = max(0, min(int(top), len(self.variables)))
        order = np.argsort(-np.abs(grouped), kind="stable")[:k]
        per_input = np.bincount(self._col_input, weights=phi, minlength=len(self.input_columns) + 1)
        contributions = tuple(
            contribution(self, self.variables[v], float(grouped[v]), x[0], per_input, flags)
            for v in order
        )
        other = float(grouped.sum() - grouped[order].sum())
        explanation = PatientExplanation(
            probability=prob,
            log_odds=log_odds,
            base_value=float(base[0]),
            contributions=contributions,
            other_log_odds=other,
            n_other=len(self.variables) - len(order),
            family=self.family,
            calibrated=self.calibrated,
        )
        return explanation, grouped
