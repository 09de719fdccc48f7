"""Model factories: the estimators an experiment can name, as full scikit-learn pipelines.

Every model takes the whole landmark feature table (``features.catalog.catalog_for`` columns,
float64, NaN = missing) and returns a probability, so any of them can be registered and served
from the same input:

- ``logreg`` — penalised logistic regression (L2, or elastic net when the grid has
  ``l1_ratio`` > 0) after ``features.transformers.make_preprocessor`` (imputation, logs,
  scaling): the clinical reference model (Steyerberg EW, Clinical Prediction Models, 2019;
  penalisation for small samples: Pavlou M et al. 2015, BMJ 351:h3868).
- ``xgboost`` — gradient-boosted shallow trees with small-data defaults (depth 2, 200 trees,
  learning rate 0.05, row/column subsampling, min child weight 2) and optional monotone
  constraints from the catalog's expected directions (+1 / −1), which keep the model from
  learning clinically implausible shapes from a few dozen events.
- the published baselines (``training.baselines``), each selecting its own columns.

``build_model`` wraps the pipeline in ``training.tuned.TunedCalibratedClassifier`` (inner-loop
tuning + calibration), or returns a skip reason when a baseline's inputs are missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from features.transformers import make_preprocessor
from training.baselines import LogLogisticBaseline, ThresholdRuleBaseline
from training.parsimony import CYTOKINE_MAX, uninformative
from training.tuned import TunedCalibratedClassifier

# Small-data defaults (n ≈ 100–500, tens of events): shallow trees, shrinkage, subsampling.
XGB_DEFAULTS: dict[str, Any] = {
    "n_estimators": 200,
    "learning_rate": 0.05,
    "max_depth": 2,
    "min_child_weight": 2.0,
    "subsample": 0.8,
    "colsample_bytree": 0.5,
    "reg_lambda": 1.0,
    "tree_method": "hist",
    "n_jobs": 1,
    "eval_metric": "logloss",
}
LOGREG_DEFAULTS: dict[str, Any] = {"C": 0.1, "l1_ratio": 0.0, "max_iter": 5000}
DEFAULT_GRIDS: dict[str, dict[str, list[Any]]] = {
    "logreg": {"model__C": [0.01, 0.03, 0.1, 0.3, 1.0]},
    "xgboost": {"model__max_depth": [1, 2, 3], "model__min_child_weight": [1.0, 3.0]},
}

# Published thresholds (../shared/published-models.md; Hay's are recalled, unverified).
HAY_FEVER_C = 38.9
HAY_MCP1_PG_ML = 1343.5
HIGH_BURDEN_BLASTS_PCT = 40.0


def _base_name(column: str) -> str:
    """Catalog name of a (possibly transformer-prefixed) column: ``num__il6_max`` → ``il6_max``."""
    return column.split("__")[-1]


class MonotoneXGBClassifier(XGBClassifier):
    """XGBClassifier whose monotone constraints come from catalog directions by column name.

    The constraints are resolved at ``fit`` against the names of the columns it actually
    receives (after the preprocessor), so derived columns (missing indicators, …) stay
    unconstrained and a column dropped by preprocessing cannot break the fit.
    """

    def __init__(self, *, directions: dict[str, int] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.directions = directions

    def get_xgb_params(self) -> dict[str, Any]:
        params = super().get_xgb_params()
        params.pop("directions", None)  # ours, not a booster parameter
        return params

    def fit(self, X: pd.DataFrame, y: Any, **kwargs: Any) -> MonotoneXGBClassifier:
        names = [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else None
        if self.directions and names is not None:
            constraints = tuple(int(self.directions.get(_base_name(c), 0)) for c in names)
            self.set_params(monotone_constraints=constraints if any(constraints) else None)
        # Fit on the bare array: with hundreds of named columns XGBoost re-reads the feature
        # names at every boosting round (measured ~2× slower); names are attached afterwards
        # so the booster (and TreeSHAP) still reports them.
        super().fit(np.asarray(X, dtype=np.float64), y, **kwargs)
        if names is not None:
            self.get_booster().feature_names = names  # also what ``feature_names_in_`` reads
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """The booster's margin (log-odds): what Platt scaling is fitted on (Platt 1999 fits a
        sigmoid to a score, not to an already squashed probability)."""
        return np.asarray(self.predict(X, output_margin=True), dtype=np.float64)


def directions_for(catalog: list[Any], columns: list[str]) -> dict[str, int]:
    """Expected direction (+1/−1) of every catalog column in ``columns`` with one declared.

    Missing-value indicators (``*_missing``, ``*_was_missing``) get no constraint: absence of a
    measurement has no clinically fixed direction.
    """
    wanted = set(columns)
    return {
        s.name: int(s.direction)
        for s in catalog
        if s.name in wanted and s.direction != 0 and not s.name.endswith("_missing")
    }


def _preprocessor(
    columns: list[str], catalog: list[Any], all_columns: list[str] | None, scale: bool
) -> list[tuple[str, BaseEstimator]]:
    """Steps before the estimator: column selection (feature subsets) + learned transforms."""

    steps: list[tuple[str, BaseEstimator]] = []
    if all_columns is not None and list(all_columns) != list(columns):
        select = ColumnTransformer(
            [("select", "passthrough", list(columns))],
            remainder="drop",
            verbose_feature_names_out=False,
        ).set_output(transform="pandas")
        steps.append(("select", select))
    steps.append(("prep", make_preprocessor(columns, catalog, scale=scale)))
    return steps


def logreg_pipeline(
    columns: list[str],
    catalog: list[Any],
    params: dict[str, Any],
    seed: int,
    all_columns: list[str] | None = None,
) -> Pipeline:
    """Preprocessor + penalised logistic regression (saga when elastic net is possible)."""
    kw = {**LOGREG_DEFAULTS, **params}
    model = LogisticRegression(random_state=seed, **kw)
    return Pipeline([*_preprocessor(columns, catalog, all_columns, True), ("model", model)])


def xgboost_pipeline(
    columns: list[str],
    catalog: list[Any],
    params: dict[str, Any],
    seed: int,
    monotone: bool,
    all_columns: list[str] | None = None,
) -> Pipeline:
    """Preprocessor (no scaling) + gradient-boosted trees with catalog monotone constraints."""
    kw = {**XGB_DEFAULTS, **params}
    directions = directions_for(catalog, columns) if monotone else None
    model = MonotoneXGBClassifier(directions=directions, random_state=seed, **kw)
    return Pipeline([*_preprocessor(columns, catalog, all_columns, False), ("model", model)])


@dataclass
class BuiltModel:
    """A model ready to validate: the procedure, its inputs and how to describe it."""

    name: str
    estimator: TunedCalibratedClassifier
    columns: list[str]
    calibrated: bool
    description: str
    feature_set: str
    fixed_params: dict[str, Any] = field(default_factory=dict)


def _untuned(fixed: dict[str, Any], grid: dict[str, list[Any]]) -> dict[str, Any]:
    """Fixed parameters without those the grid tunes (a tuned C is never logged as fixed)."""
    tuned = {k.split("__")[-1] for k in grid}
    return {k: v for k, v in fixed.items() if k not in tuned}


BASELINE_PARAMS: dict[str, tuple[str, ...]] = {
    "m_easix": (),
    "cytokine3": (),
    "cytokine_max": (),
    "fever_mcp1": ("temperature_threshold", "mcp1_threshold", "learn_thresholds"),
    "high_burden": ("blasts_threshold",),
}


def known_parameters(name: str) -> tuple[set[str], set[str]]:
    """(fixed parameters, grid keys) a model accepts — to reject typos before training."""
    if name == "logreg":
        keys = set(LogisticRegression().get_params())
        return keys, keys
    if name == "xgboost":
        keys = set(XGBClassifier().get_params()) - {"kwargs"}
        return keys, keys
    return set(BASELINE_PARAMS.get(name, ())), set()


def parameter_problem(name: str, params: dict[str, Any], grid: dict[str, Any]) -> str | None:
    """``models.NAME.params.KEY: …`` for the first unknown parameter or grid key, else None."""
    fixed, tunable = known_parameters(name)
    for key in params:
        if key not in fixed:
            known = ", ".join(sorted(fixed)[:12]) or "none"
            return f"models.{name}.params.{key}: unknown parameter of {name} (known: {known})"
    for key in grid:
        base = key.removeprefix("model__")
        if base not in tunable:
            what = "is not tunable" if not tunable else f"unknown parameter of {name}"
            return f"models.{name}.grid.{key}: {what}"
    return None


def baseline_columns(name: str, landmark: str) -> tuple[list[str], dict[str, Any]] | str:
    """Columns (and estimator arguments) of a published baseline at a landmark, or why not."""
    pre = landmark == "0h"
    if name == "m_easix":
        if pre:
            return ["m_easix_pre_ld"], {}
        # m-EASIX from the latest LDH, CRP and platelets at the landmark (Pennisi: day −1, +1)
        return ["ldh_last", "crp_last", "platelets_last"], {"signs": (1, 1, -1)}
    if name == "cytokine3":
        if pre:
            return "Teachey's signature uses cytokine peaks after infusion (not defined at 0h)"
        return ["sgp130_max", "ifng_max", "il1ra_max"], {}
    if name == "fever_mcp1":
        if pre:
            return "Hay's rule uses fever and MCP-1 after infusion (not defined at 0h)"
        return ["temperature_max", "mcp1_max"], {}
    if name == "high_burden":
        return ["marrow_blasts_pct"], {}
    raise ValueError(f"not a baseline: {name}")


def build_model(
    name: str,
    *,
    X: pd.DataFrame,
    catalog: list[Any],
    landmark: str,
    columns: list[str],
    feature_set: str,
    params: dict[str, Any],
    grid: dict[str, list[Any]] | None,
    calibration: str | None,
    monotone: bool,
    inner_folds: int,
    scoring: str,
    seed: int,
    default_calibration: str = "auto",
) -> BuiltModel | str:
    """The validated procedure for model ``name``, or the reason it is skipped.

    ``calibration`` is the model's own setting (None = its default): ``logreg`` is not
    recalibrated by default — a (penalised) logistic model already outputs probabilities, and
    Platt scaling it on inner-fold predictions mostly undoes the penalty while adding noise
    with tens of events; ``xgboost`` uses the experiment's ``default_calibration``.
    """

    def tuned(est: BaseEstimator, grid_: dict[str, list[Any]] | None, calib: str) -> Any:
        return TunedCalibratedClassifier(
            estimator=est,
            param_grid=grid_ or None,
            calibration=calib,
            inner_folds=inner_folds,
            scoring=scoring,
            random_state=seed,
        )

    if name == "logreg":
        g = {f"model__{k}" if "__" not in k else k: v for k, v in (grid or {}).items()}
        g = g or DEFAULT_GRIDS["logreg"]
        kw = dict(params)
        if any(float(v) > 0 for v in g.get("model__l1_ratio", [kw.get("l1_ratio", 0.0)])):
            kw.setdefault("solver", "saga")  # the solver for elastic net
        else:
            kw.setdefault("solver", "newton-cg")  # pure L2: ~5× faster than lbfgs here
        pipe = logreg_pipeline(columns, catalog, kw, seed, list(X.columns))
        logreg_calibration = calibration or "none"
        return BuiltModel(
            name,
            tuned(pipe, g, logreg_calibration),
            columns,
            logreg_calibration != "none",
            "penalised logistic regression on transformed features",
            feature_set,
            _untuned({**LOGREG_DEFAULTS, **kw}, g),
        )
    if name == "xgboost":
        g = {f"model__{k}" if "__" not in k else k: v for k, v in (grid or {}).items()}
        g = g or DEFAULT_GRIDS["xgboost"]
        pipe = xgboost_pipeline(columns, catalog, params, seed, monotone, list(X.columns))
        xgb_calibration = calibration or default_calibration
        return BuiltModel(
            name,
            tuned(pipe, g, xgb_calibration),
            columns,
            xgb_calibration != "none",
            "gradient-boosted trees"
            + (" with monotone constraints from the catalog" if monotone else ""),
            feature_set,
            _untuned({**XGB_DEFAULTS, **params, "monotone": monotone}, g),
        )
    if name == "cytokine_max":
        present = [c for c in CYTOKINE_MAX if c in X.columns]
        dropped = uninformative(X, present)
        cols = [c for c in present if c not in dropped]
        if not cols:
            return f"none of {list(CYTOKINE_MAX)} is measured in this cohort at {landmark}"
        kw = {"C": 1.0, "solver": "newton-cg"}
        pipe = logreg_pipeline(cols, catalog, kw, seed, list(X.columns))
        return BuiltModel(
            name,
            tuned(pipe, None, "none"),
            cols,
            False,
            "published-style compact logistic model on the maxima so far of "
            + ", ".join(cols)
            + " (C = 1 on standardised inputs: finite under separation)",
            "published",
            {**LOGREG_DEFAULTS, **kw},
        )

    resolved = baseline_columns(name, landmark)
    if isinstance(resolved, str):
        return resolved
    cols, extra = resolved
    lacking = [c for c in cols if c not in X.columns]
    if lacking:
        return f"inputs {lacking} are not in the feature table at {landmark}"
    all_missing = [c for c in cols if not X[c].notna().any()]
    if all_missing:
        return f"inputs {all_missing} are missing for every patient in this cohort at {landmark}"
    if name in ("m_easix", "cytokine3"):
        est: BaseEstimator = LogLogisticBaseline(columns=tuple(cols), **extra)
        desc = (
            "logistic regression on log m-EASIX (Pennisi 2021), refitted"
            if name == "m_easix"
            else "logistic regression on log peak sgp130, IFN-γ, IL-1RA (Teachey 2016), refitted"
        )
        return BuiltModel(name, tuned(est, None, "none"), cols, False, desc, "published", extra)
    if name == "fever_mcp1":
        thresholds = (
            float(params.get("temperature_threshold", HAY_FEVER_C)),
            float(params.get("mcp1_threshold", HAY_MCP1_PG_ML)),
        )
        learn = bool(params.get("learn_thresholds", False))
        est = ThresholdRuleBaseline(
            columns=tuple(cols), thresholds=thresholds, learn_thresholds=learn
        )
        desc = (
            f"Hay 2017 rule: max temperature ≥{thresholds[0]} °C and MCP-1 ≥{thresholds[1]} pg/mL"
            + (" (thresholds learned in each training fold)" if learn else " (fixed thresholds)")
        )
        fixed = {
            "temperature_threshold": thresholds[0],
            "mcp1_threshold": thresholds[1],
            "learn_thresholds": learn,
        }
        return BuiltModel(name, tuned(est, None, "none"), cols, False, desc, "published", fixed)
    if name == "high_burden":
        cut = float(params.get("blasts_threshold", HIGH_BURDEN_BLASTS_PCT))
        est = ThresholdRuleBaseline(columns=tuple(cols), thresholds=(cut,))
        desc = f"Kadauke 2021 rule: marrow blasts ≥{cut:g}% before infusion"
        return BuiltModel(
            name,
            tuned(est, None, "none"),
            cols,
            False,
            desc,
            "published",
            {"blasts_threshold": cut},
        )
    raise ValueError(f"unknown model {name!r}")


def n_parameters(built: BuiltModel) -> int:
    """Candidate predictor parameters (for the sample-size criteria)."""
    return max(1, len(built.columns)) if built.name != "m_easix" else 1


def example_input(catalog: list[Any], columns: list[str]) -> pd.DataFrame:
    """A synthetic one-row input for the model signature: mid-range catalog values, never a
    patient's row (geometric midpoint for skewed positive features, 0 for indicators)."""
    by_name = {s.name: s for s in catalog}
    row: dict[str, float] = {}
    for c in columns:
        s = by_name.get(c)
        if s is None or s.kind == "binary":
            row[c] = 0.0
        elif s.skewed and s.low > 0:
            row[c] = float(np.sqrt(s.low * s.high))
        elif s.skewed:
            row[c] = float(np.sqrt(max(s.high, 1.0)))
        else:
            row[c] = float((s.low + s.high) / 2)
    return pd.DataFrame([row], columns=columns).astype("float64")
