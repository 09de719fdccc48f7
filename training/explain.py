"""SHAP explanations in clinical language: one patient's reasons, and a model's global picture.

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

Contributions are reported per *clinical variable*: Shapley values are additive, so the values of
the columns derived from one variable (summaries, missing indicators, one-hot levels, log
transforms) are summed to the variable the catalog names (``features.catalog.variable_of``), and
shown with its label, unit and the patient's value in original units before any learned
transform: "IL-6, maximum: 1,250 pg/mL → +0.84 log-odds".

:class:`ModelExplainer` is built once per loaded model. ``explain_row`` is the per-request path
for the service: the fitted preprocessing steps are compiled to NumPy operations (no pandas on one
row, which is where most single-row time goes) and give bit-identical output to the pipeline.
``explain`` does a batch; :func:`log_global_explanations` logs the global artifacts of a run
(``shap/importance.png``, ``shap/beeswarm.png``, ``shap/dependence.png``,
``shap/importance.csv``) — aggregates and plots only, never per-patient values or identifiers.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from features.catalog import CATALOG, FeatureSpec, after_tocilizumab_note, variable_of
from features.errors import CrsRiskError
from features.vocabulary import ANALYTES

ADDITIVITY_TOL = 1e-4  # |base + Σ SHAP − model log-odds| allowed (XGBoost computes in float32)
MISSING_SUFFIX = "_was_missing"  # features.transformers.MissingIndicatorImputer
SHAP_DIR = "shap"
IMPORTANCE_CSV = f"{SHAP_DIR}/importance.csv"
IMPORTANCE_PNG = f"{SHAP_DIR}/importance.png"
BEESWARM_PNG = f"{SHAP_DIR}/beeswarm.png"
DEPENDENCE_PNG = f"{SHAP_DIR}/dependence.png"
EPS = 1e-12

# Labels of clinical variables that are neither one analyte nor one feature.
VARIABLE_LABELS: dict[str, str] = {
    "product": "CAR T product",
    "lymphodepletion": "Lymphodepletion",
    "crs_grade": "CRS grade",
    "crs_onset": "CRS onset",
    "toci_time": "Time of first tocilizumab",
    "marrow_blasts": "Marrow blasts",
    "sex": "Sex",
    "temperature": "Temperature / fever",
    "m_easix": "m-EASIX",
    "easix": "EASIX",
}
M_EASIX_PARTS = ("ldh_last", "crp_last", "platelets_last")


# --- formatting ------------------------------------------------------------------------------
def format_number(value: float) -> str:
    """Clinical rounding: 1,250 · 312 · 38.9 · 2.35 · 0.0412."""
    a = abs(value)
    if a >= 1000:
        return f"{value:,.0f}"
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a == 0:
        return "0"
    return f"{value:.3g}"


def format_log_odds(value: float) -> str:
    """Signed with a true minus sign: ``+0.84`` / ``−0.12``."""
    return f"{value:+.2f}".replace("-", "−")


def format_value(spec: FeatureSpec | None, value: float | None) -> str:
    """A raw feature value in its catalog unit ("1,250 pg/mL", "yes", "grade 2", "×12.0")."""
    if value is None or not math.isfinite(value):
        return "not measured" if spec is not None and spec.source_analyte else "unknown"
    if spec is None:
        return format_number(value)
    if spec.kind == "binary" or spec.unit == "yes/no":
        return "yes" if value >= 0.5 else "no"
    if spec.unit == "ASTCT grade":
        return f"grade {value:.0f}"
    if spec.unit == "count":
        return f"{value:.0f}"
    if spec.unit == "ratio":
        return f"×{format_number(value)}"
    if spec.unit == "score":
        return format_number(value)
    return f"{format_number(value)} {spec.unit}"


# --- catalog helpers -------------------------------------------------------------------------
def _specs(catalog: Sequence[FeatureSpec] | Mapping[str, FeatureSpec] | None) -> dict:
    base = dict(CATALOG)
    if catalog is None:
        return base
    if isinstance(catalog, Mapping):
        return {**base, **catalog}
    return {**base, **{s.name: s for s in catalog}}


def variable_label(name: str, specs: Mapping[str, FeatureSpec]) -> str:
    """Display label of a clinical variable ("IL-6", "CAR T product", "Age")."""
    if name in VARIABLE_LABELS:
        return VARIABLE_LABELS[name]
    if name in ANALYTES:
        return ANALYTES[name].label
    members = [s for s in specs.values() if s.variable == name]
    if len(members) == 1:
        return members[0].label
    return name.replace("_", " ")


def _one_hot_prefix(members: Sequence[FeatureSpec | None]) -> bool:
    """Members are the levels of one categorical variable ("Product: X", "Product: Y")."""
    return (
        len(members) > 1
        and all(s is not None and s.kind == "binary" and ": " in s.label for s in members)
        and len({s.label.split(": ")[0] for s in members if s is not None}) == 1
    )


# --- model unwrapping and the NumPy fast path ------------------------------------------------
def unwrap(model: Any) -> tuple[Any, Any]:
    """(fitted estimator, calibrated wrapper or None) of a logged model.

    Accepts the ``TunedCalibratedClassifier``, its ``model_`` (the pipeline or a
    ``CalibratedClassifierCV(ensemble=False)`` around it) or a bare estimator.
    """
    from sklearn.calibration import CalibratedClassifierCV

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


class _Unsupported(Exception):
    """A preprocessing step the NumPy fast path does not know (use the pipeline instead)."""


Op = Callable[[np.ndarray], np.ndarray]


def _column_positions(spec: Any, names_in: list[str]) -> np.ndarray:
    if isinstance(spec, slice):
        return np.arange(len(names_in))[spec]
    items = list(np.atleast_1d(spec))
    if items and isinstance(items[0], str):
        where = {n: i for i, n in enumerate(names_in)}
        return np.asarray([where[c] for c in items], dtype=np.int64)
    arr = np.asarray(items)
    if arr.dtype == bool:
        return np.flatnonzero(arr)
    return arr.astype(np.int64)


def _is_passthrough(trans: Any) -> bool:
    """A ``ColumnTransformer`` part that returns its columns unchanged: ``"passthrough"`` as
    declared, or the identity ``FunctionTransformer`` that scikit-learn ≥ 1.6 puts in its place
    in the fitted ``transformers_`` (``_get_transformer_list``: ``FunctionTransformer(
    accept_sparse=True, check_inverse=False, feature_names_out="one-to-one")``)."""
    from sklearn.preprocessing import FunctionTransformer

    if isinstance(trans, str):
        return trans == "passthrough"
    return (
        type(trans) is FunctionTransformer
        and trans.func is None
        and trans.kw_args is None
        and trans.feature_names_out == "one-to-one"
    )


def _compile_step(step: Any, names_in: list[str]) -> list[Op]:
    """NumPy operations reproducing one fitted step (bit-identical to its ``transform``)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from features.transformers import CatalogWinsorizer, LogTransformer, MissingIndicatorImputer

    if step is None or (isinstance(step, str) and step == "passthrough"):
        return []
    if isinstance(step, Pipeline):
        ops: list[Op] = []
        names = list(names_in)
        for _, sub in step.steps:
            ops += _compile_step(sub, names)
            if sub is not None and sub != "passthrough":
                names = list(sub.get_feature_names_out(names))
        return ops
    if isinstance(step, ColumnTransformer):
        idx = []
        for _, trans, cols in step.transformers_:
            if isinstance(trans, str) and trans == "drop":
                continue
            if not _is_passthrough(trans):
                raise _Unsupported(f"ColumnTransformer part {type(trans).__name__}")
            idx.append(_column_positions(cols, names_in))
        sel = np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64)
        return [lambda X, sel=sel: X[:, sel]]
    if isinstance(step, CatalogWinsorizer):
        lo, hi = step.lower_, step.upper_
        return [lambda X, lo=lo, hi=hi: np.clip(X, lo, hi)]
    if isinstance(step, LogTransformer):
        cols = step.columns_

        def log(X: np.ndarray, cols: np.ndarray = cols) -> np.ndarray:
            c = X[:, cols]
            X[:, cols] = np.sign(c) * np.log1p(np.abs(c))
            return X

        return [log]
    if isinstance(step, MissingIndicatorImputer):
        stats, ind = step.statistics_, np.asarray(step.indicator_features_, dtype=np.int64)

        def impute(X: np.ndarray, stats: np.ndarray = stats, ind: np.ndarray = ind) -> np.ndarray:
            missing = np.isnan(X)
            out = np.where(missing, stats, X)
            if ind.size:
                out = np.hstack([out, missing[:, ind].astype(np.float64)])
            return out

        return [impute]
    if isinstance(step, StandardScaler):
        mean = step.mean_ if step.with_mean else None
        scale = step.scale_ if step.with_std else None

        def standardise(X: np.ndarray, mean: Any = mean, scale: Any = scale) -> np.ndarray:
            if mean is not None:
                X -= mean
            if scale is not None:
                X /= scale
            return X

        return [standardise]
    raise _Unsupported(type(step).__name__)


# --- results ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Contribution:
    """One clinical variable's share of a patient's log-odds, in words and numbers."""

    variable: str
    label: str  # clinical variable ("IL-6")
    feature: str  # the input column shown ("il6_max")
    feature_label: str  # its label ("IL-6, maximum")
    value: float | None  # raw value in the catalog unit; None = missing
    value_text: str  # "1,250 pg/mL"
    unit: str
    log_odds: float

    @property
    def text(self) -> str:
        """'IL-6, maximum: 1,250 pg/mL → +0.84 log-odds'."""
        change = format_log_odds(self.log_odds)
        return f"{self.feature_label}: {self.value_text} → {change} log-odds"


@dataclass(frozen=True)
class PatientExplanation:
    """One patient's risk and its reasons (the service returns ``to_dict()``).

    ``log_odds = base_value + Σ contributions + other_log_odds`` (the uncalibrated model's
    margin); ``probability`` is what the logged (calibrated) model returns for the patient.
    """

    probability: float
    log_odds: float
    base_value: float
    contributions: tuple[Contribution, ...]
    other_log_odds: float
    n_other: int
    family: str
    calibrated: bool

    @property
    def model_probability(self) -> float:
        """Uncalibrated probability expit(log-odds)."""
        return float(expit(self.log_odds))

    @property
    def base_probability(self) -> float:
        return float(expit(self.base_value))

    def to_dict(self) -> dict[str, Any]:
        return {
            "probability": self.probability,
            "log_odds": self.log_odds,
            "base_value": self.base_value,
            "base_probability": self.base_probability,
            "model_probability": self.model_probability,
            "contributions": [{**asdict(c), "text": c.text} for c in self.contributions],
            "other_log_odds": self.other_log_odds,
            "n_other": self.n_other,
            "family": self.family,
            "calibrated": self.calibrated,
        }

    def lines(self) -> list[str]:
        """The reasons as sentences, largest first, then the rest summed."""
        out = [c.text for c in self.contributions]
        if self.n_other:
            out.append(
                f"{self.n_other} other variables together → "
                f"{format_log_odds(self.other_log_odds)} log-odds"
            )
        return out


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
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from xgboost import XGBModel

        from training.baselines import LogLogisticBaseline, ThresholdRuleBaseline

        self.model = model
        self.estimator, self.calibrated_classifier = unwrap(model)
        self.specs = _specs(catalog)
        est = self.estimator
        self._rule: dict[str, Any] | None = None
        self._design: Op | None = None
        self.unsupported = ""  # the preprocessing step without a NumPy version, if any
        if isinstance(est, Pipeline):
            final = est.steps[-1][1]
            pre = est[:-1]
            self.input_columns = [str(c) for c in est.feature_names_in_]
            self.columns = [str(c) for c in pre.get_feature_names_out()]
            self._pre = pre
            try:
                self._ops = _compile_step(pre, self.input_columns)
            except _Unsupported as exc:  # transform() then runs the pipeline's own steps
                self._ops = None
                self.unsupported = str(exc)
            if isinstance(final, XGBModel):
                import shap

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
        import shap
        from sklearn.preprocessing import StandardScaler

        if reference is None:
            last = pre.steps[-1][1] if pre is not None and hasattr(pre, "steps") else None
            inner = last.steps[-1][1] if hasattr(last, "steps") else last
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
            v: _one_hot_prefix([self.specs.get(self.input_columns[i]) for i in m])
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

    # -- transforms --
    def _log_design(self, X: np.ndarray) -> np.ndarray:
        """LogLogisticBaseline's standardised design, as in its ``predict_proba``."""
        est = self.estimator
        logs = np.log10(np.clip(X, est.floor, None))
        logs[np.isnan(X)] = np.nan
        if est.signs:
            sign = np.asarray(est.signs, dtype=float)[None, :]
            logs = (logs * sign).sum(axis=1, keepdims=True)
        z = np.where(np.isnan(logs), est.medians_, logs)
        return (z - est.mean_) / est.scale_

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
            import xgboost

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
        p = np.asarray(self._calibrator_predict(pred), dtype=np.float64)
        return np.clip(p, 0.0, 1.0)

    def _calibrator_predict(self, pred: np.ndarray) -> np.ndarray:
        """``self._calibrator.predict(pred)`` without scikit-learn's per-call input checks
        (≈ 50 µs a call, more than the arithmetic on one row).

        The same operations on the fitted parameters, in the same order, as scikit-learn
        1.9's ``_SigmoidCalibration.predict`` (``expit(-(a_ * T + b_))``) and
        ``IsotonicRegression._transform`` (clip to ``[X_min_, X_max_]``, then the fitted
        interpolator ``f_``), so the values are bit-identical; any other calibrator, or input
        the checks would convert, goes through its own ``predict``.
        """
        from sklearn.calibration import _SigmoidCalibration
        from sklearn.isotonic import IsotonicRegression

        cal = self._calibrator
        if pred.ndim == 1 and pred.dtype == np.float64 and np.isfinite(pred).all():
            if type(cal) is _SigmoidCalibration:
                return expit(-(cal.a_ * pred + cal.b_))
            if (
                type(cal) is IsotonicRegression
                and getattr(cal, "X_thresholds_", None) is not None
                and cal.X_thresholds_.dtype == np.float64
            ):
                t = np.clip(pred, cal.X_min_, cal.X_max_) if cal.out_of_bounds == "clip" else pred
                return np.asarray(cal.f_(t)).astype(np.float64)
        return cal.predict(pred)

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

    def explain_row(self, row: Any, top: int = 5) -> PatientExplanation:
        """One patient's probability, base value and top ``top`` variable contributions.

        ``row`` is the patient's feature row (dict, Series, 1-row DataFrame or array in
        ``input_columns`` order) in catalog units, as ``features.build`` makes it.
        """
        return self.explain_row_effects(row, top)[0]

    def explain_row_effects(self, row: Any, top: int = 5) -> tuple[PatientExplanation, np.ndarray]:
        """:meth:`explain_row` and every variable's SHAP log-odds (``variables`` order) from the
        same SHAP values: for a caller that words the top variables but reads all of them
        (wording costs more per variable than the SHAP values of a linear model)."""
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
            self._contribution(self.variables[v], float(grouped[v]), x[0], per_input) for v in order
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

    # -- words --
    def headline(self, variable: str, x: np.ndarray, per_input: np.ndarray) -> int:
        """Input column shown for a variable: the level that is 1 for one-hot variables, else
        the member carrying the largest share of the variable's contribution."""
        members = self._members[variable]
        if self._one_hot[variable]:
            on = [i for i in members if x[i] >= 0.5]
            if on:
                return int(on[0])
        shares = np.abs(per_input[members])
        return int(members[int(np.argmax(shares))])

    def _contribution(
        self, variable: str, value: float, x: np.ndarray, per_input: np.ndarray
    ) -> Contribution:
        label = self.variable_labels[variable]
        if variable == "m_easix" and "m_easix_score" in self.columns:
            ldh, crp, plt = (x[self.input_columns.index(c)] for c in M_EASIX_PARTS)
            ok = all(math.isfinite(v) for v in (ldh, crp, plt)) and plt > 0
            score = ldh * (crp / 10.0) / plt if ok else None
            parts = ", ".join(
                f"{self.specs[c].label.split(',')[0]} "
                f"{format_value(self.specs[c], x[self.input_columns.index(c)])}"
                for c in M_EASIX_PARTS
            )
            text = (format_number(score) if score is not None else "not computable") + (
                f" ({parts})"
            )
            return Contribution(
                variable,
                label,
                "m_easix_score",
                "m-EASIX (LDH × CRP[mg/dL] / platelets, latest values)",
                score,
                text,
                "score",
                value,
            )
        i = self.headline(variable, x, per_input)
        name = self.input_columns[i]
        spec = self.specs.get(name)
        raw = float(x[i])
        if self._one_hot[variable]:
            on = [j for j in self._members[variable] if x[j] >= 0.5]
            level = self.specs[self.input_columns[on[0]]].label.split(": ", 1)[1] if on else "other"
            return Contribution(variable, label, name, label, raw, level, "", value)
        text = format_value(spec, raw)
        # issue 11 §5 (features.catalog): a cytokine measured after tocilizumab says so
        flag = f"{spec.source_analyte}_after_toci" if spec is not None else ""
        if flag in self.input_columns:
            text += after_tocilizumab_note(name, {flag: x[self.input_columns.index(flag)]})
        if self._rule is not None:
            t = self._rule["thresholds"][self.input_columns.index(name)]
            met = math.isfinite(raw) and raw >= t
            text += f" (rule ≥{format_number(float(t))}: {'met' if met else 'not met'})"
        return Contribution(
            variable,
            label,
            name,
            spec.label if spec is not None else name,
            raw if math.isfinite(raw) else None,
            text,
            spec.unit if spec is not None else "",
            value,
        )


# --- global explanations ---------------------------------------------------------------------
def _direction(x: np.ndarray, phi: np.ndarray) -> tuple[int, float]:
    """Sign of Spearman's ρ between a variable's value and its contribution (0 if |ρ| < 0.1)."""
    from scipy.stats import spearmanr

    ok = np.isfinite(x)
    if ok.sum() < 5 or np.ptp(x[ok]) == 0 or np.ptp(phi[ok]) == 0:
        return 0, float("nan")
    rho = float(spearmanr(x[ok], phi[ok]).statistic)
    if not math.isfinite(rho) or abs(rho) < 0.1:
        return 0, rho
    return (1 if rho > 0 else -1), rho


def global_importance(explainer: ModelExplainer, result: ShapResult) -> pd.DataFrame:
    """One row per clinical variable, by mean |SHAP|: label, shown feature, unit, direction
    (observed, and expected from the catalog), and the share of patients with it missing."""
    X = result.data.to_numpy(dtype=np.float64)
    per_input = np.zeros((X.shape[0], len(explainer.input_columns) + 1))
    np.add.at(per_input.T, explainer._col_input, result.values.T)
    mean_abs_input = np.abs(per_input).mean(axis=0)
    rows = []
    for v_idx, v in enumerate(result.variables):
        phi = result.grouped[:, v_idx]
        members = explainer._members[v]
        composite = v == "m_easix" and "m_easix_score" in explainer.columns
        if composite:
            parts = [explainer.input_columns.index(c) for c in M_EASIX_PARTS]
            with np.errstate(divide="ignore", invalid="ignore"):
                x = X[:, parts[0]] * X[:, parts[1]] / 10.0 / X[:, parts[2]]
            feature, unit, kind = "m_easix_score", "score", "continuous"
            expected = 1
        else:
            head = int(members[int(np.argmax(mean_abs_input[members]))])
            feature = explainer.input_columns[head]
            spec = explainer.specs.get(feature)
            x = X[:, head]
            unit = spec.unit if spec is not None else ""
            kind = spec.kind if spec is not None else "continuous"
            dirs = {
                int(explainer.specs[explainer.input_columns[i]].direction)
                for i in members
                if explainer.input_columns[i] in explainer.specs
                and not explainer.input_columns[i].endswith("_missing")
            } - {0}
            expected = dirs.pop() if len(dirs) == 1 else 0
        if explainer._one_hot[v]:
            direction, rho = 0, float("nan")  # levels: no single "higher value" direction
        else:
            direction, rho = _direction(x, phi)
        rows.append(
            {
                "variable": v,
                "label": explainer.variable_labels[v],
                "feature": feature,
                "unit": unit,
                "kind": kind,
                "mean_abs_log_odds": float(np.abs(phi).mean()) if len(phi) else 0.0,
                "mean_log_odds": float(phi.mean()) if len(phi) else 0.0,
                "direction": direction,
                "spearman_rho": rho,
                "expected_direction": expected,
                "agrees": (direction == expected) if direction and expected else None,
                "missing_pct": float(100.0 * np.isnan(x).mean()) if len(x) else 0.0,
                "n_patients": len(phi),
            }
        )
    table = pd.DataFrame(rows).sort_values(
        ["mean_abs_log_odds", "variable"], ascending=[False, True], kind="stable"
    )
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table.reset_index(drop=True)


def direction_text(direction: int, kind: str) -> str:
    """'higher → higher risk' / 'present → lower risk' / 'no consistent direction'."""
    if direction == 0:
        return "no consistent direction"
    what = "present" if kind == "binary" else "higher"
    return f"{what} → {'higher' if direction > 0 else 'lower'} risk"


def log_global_explanations(
    model: Any,
    X: pd.DataFrame,
    catalog: Sequence[FeatureSpec] | Mapping[str, FeatureSpec] | None = None,
    *,
    title: str = "",
    n_dependence: int = 3,
    max_rows: int = 5000,
    seed: int = 0,
    per_patient: bool = True,
) -> pd.DataFrame:
    """Log the run's global SHAP artifacts to the active MLflow run; return the importance table.

    ``per_patient=False`` (a real cohort) logs only aggregate views: the importance table and
    bar chart, no beeswarm or dependence plot (one point per patient). SHAP values of the final
    model on its own training patients are *apparent* (in-sample) — the figures say so.

    ``X`` is the training feature table (no identifiers; ``features.table.FeatureTable.X``).
    Writes ``shap/importance.csv`` (per clinical variable: mean |SHAP|, mean SHAP, observed and
    expected direction, missingness — aggregates only), ``shap/importance.png``,
    ``shap/beeswarm.png`` and ``shap/dependence.png`` (one panel for each of the top
    ``n_dependence`` variables). Above ``max_rows`` patients a random subsample is explained
    (plots stay legible, large synthetic cohorts stay fast). Raises when SHAP values do not add
    up to the model's log-odds within ``ADDITIVITY_TOL``.
    """
    import mlflow

    from training import explain_plots

    if mlflow.active_run() is None:
        raise RuntimeError("log_global_explanations needs an active MLflow run")
    data = X.astype("float64")
    if len(data) > max_rows:
        data = data.sample(n=max_rows, random_state=seed)
    explainer = ModelExplainer(model, catalog)
    result = explainer.explain(data)
    err = result.additivity_error()
    if not err <= ADDITIVITY_TOL:
        raise RuntimeError(
            f"SHAP additivity failed for a {explainer.family} model: |base + Σφ − log-odds| = "
            f"{err:.2e} > {ADDITIVITY_TOL:g}"
        )
    table = global_importance(explainer, result)
    with tempfile.TemporaryDirectory(prefix="crs-risk-shap-") as tmp:
        out = Path(tmp)
        (out / SHAP_DIR).mkdir()
        table.to_csv(out / IMPORTANCE_CSV, index=False, float_format="%.6g")
        title = f"{title} (apparent: final model on its training data)" if title else title
        explain_plots.importance_plot(table, out / IMPORTANCE_PNG, title)
        if per_patient:
            explain_plots.beeswarm_plot(explainer, result, table, out / BEESWARM_PNG, title)
            top = table.head(n_dependence)
            panels = [(r.variable, r.feature) for r in top.itertuples() if r.mean_abs_log_odds > 0]
            if panels:
                explain_plots.dependence_plot(
                    explainer, result, panels, out / DEPENDENCE_PNG, title
                )
        mlflow.log_artifacts(tmp)
    return table
