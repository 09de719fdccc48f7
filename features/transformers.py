"""Learned feature transforms as scikit-learn estimators (fit on training folds only).

Everything learned from data (winsorising bounds, imputation medians, scaling) lives in an
estimator so that cross-validation refits it inside each training fold and the logged model
carries it. All transformers accept NaN, provide ``get_feature_names_out``, work with
``set_output(transform="pandas")`` and pass ``sklearn.utils.estimator_checks``.

- :class:`CatalogWinsorizer` clips each column at given bounds (the catalog's plausible range)
  or, without one, at learned quantiles — robust to impossible values (Tukey's winsorising).
- :class:`LogTransformer` applies ``sign(x)·log1p(|x|)`` to skewed columns (cytokines, CRP,
  ferritin, LDH, EASIX are roughly log-normal); equal to ``log1p`` on non-negative values.
- :class:`MissingIndicatorImputer` imputes the training median and appends a ``<col>_was_missing``
  column for every column missing in training — the missing-indicator method, which keeps
  informative missingness visible to the model (Sperrin M et al., Stat Med 2020;39:3231). It is
  written here rather than using ``SimpleImputer(add_indicator=True)`` because it keeps
  all-missing columns (an analyte absent from one cohort must not change the column set a model
  expects) and names indicators so ``features.catalog.variable_of`` maps them back.
- scaling is scikit-learn's ``StandardScaler``; :func:`make_preprocessor` chains them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import Tags
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data

from features.catalog import CATALOG, FeatureSpec

_VALIDATE = {"ensure_all_finite": "allow-nan", "dtype": np.float64}


def _validated(est: BaseEstimator, X: object, **kwargs: object) -> np.ndarray:
    """sklearn's ``validate_data`` with this module's options: a float64 array, NaN allowed."""
    out: np.ndarray = validate_data(est, X, **_VALIDATE, **kwargs)
    return out


def _nan_tags(tags: Tags) -> Tags:
    tags.input_tags.allow_nan = True
    return tags


def _column_indices(estimator: BaseEstimator, columns: Iterable | None) -> np.ndarray:
    """Indices of ``columns``: ints are positions, names need ``feature_names_in_`` (names absent
    from X are ignored, so a catalog-wide list can be given)."""
    n = estimator.n_features_in_
    if columns is None:
        return np.arange(n)
    names = getattr(estimator, "feature_names_in_", None)
    out = []
    for c in columns:
        if isinstance(c, (int, np.integer)):
            if not 0 <= c < n:
                raise ValueError(f"column index {c} out of range for {n} features")
            out.append(int(c))
        elif names is not None and c in set(names):
            out.append(int(np.flatnonzero(names == c)[0]))
        elif names is None:
            raise ValueError(f"column {c!r} given by name but X has no feature names")
    return np.asarray(sorted(set(out)), dtype=np.int64)


class LogTransformer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """``sign(x)·log1p(|x|)`` on ``columns`` (names or positions; ``None`` = every column)."""

    def __init__(self, columns: Sequence | None = None) -> None:
        self.columns = columns

    def fit(self, X: object, y: object = None) -> LogTransformer:
        _validated(self, X)
        self.columns_ = _column_indices(self, self.columns)
        return self

    def transform(self, X: object) -> np.ndarray:
        check_is_fitted(self)
        X = _validated(self, X, reset=False, copy=True)
        cols = X[:, self.columns_]
        X[:, self.columns_] = np.sign(cols) * np.log1p(np.abs(cols))
        return X

    def __sklearn_tags__(self) -> object:
        return _nan_tags(super().__sklearn_tags__())


class CatalogWinsorizer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Clip columns at given ``bounds`` {column: (low, high)} or learned ``quantiles``.

    Columns without a given bound are clipped at the training ``quantiles`` (``None`` = not
    clipped). NaN stays NaN.
    """

    def __init__(
        self,
        bounds: Mapping | None = None,
        quantiles: tuple[float, float] | None = (0.005, 0.995),
    ) -> None:
        self.bounds = bounds
        self.quantiles = quantiles

    def fit(self, X: object, y: object = None) -> CatalogWinsorizer:
        X = _validated(self, X)
        n = X.shape[1]
        low = np.full(n, -np.inf)
        high = np.full(n, np.inf)
        given = np.zeros(n, dtype=bool)
        names = getattr(self, "feature_names_in_", None)
        for key, (lo, hi) in (self.bounds or {}).items():
            if lo > hi:
                raise ValueError(f"bounds for {key!r}: low {lo} > high {hi}")
            if isinstance(key, str) and names is None:
                continue  # a bound given by name applies only to named input
            idx = _column_indices(self, [key])
            low[idx], high[idx], given[idx] = lo, hi, True
        if self.quantiles is not None and not given.all():
            q_lo, q_hi = self.quantiles
            if not 0 <= q_lo <= q_hi <= 1:
                raise ValueError(f"quantiles must satisfy 0 ≤ low ≤ high ≤ 1, got {self.quantiles}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
                qs = np.nanquantile(X[:, ~given], [q_lo, q_hi], axis=0)
            low[~given] = np.where(np.isnan(qs[0]), -np.inf, qs[0])
            high[~given] = np.where(np.isnan(qs[1]), np.inf, qs[1])
        self.lower_, self.upper_ = low, high
        return self

    def transform(self, X: object) -> np.ndarray:
        check_is_fitted(self)
        X = _validated(self, X, reset=False, copy=True)
        return np.clip(X, self.lower_, self.upper_)

    def __sklearn_tags__(self) -> object:
        return _nan_tags(super().__sklearn_tags__())


class MissingIndicatorImputer(TransformerMixin, BaseEstimator):
    """Median imputation plus a ``<column>_was_missing`` indicator per column missing in fit.

    Columns entirely missing in training are kept and filled with ``fill_value``.
    """

    def __init__(self, fill_value: float = 0.0, add_indicator: bool = True) -> None:
        self.fill_value = fill_value
        self.add_indicator = add_indicator

    def fit(self, X: object, y: object = None) -> MissingIndicatorImputer:
        X = _validated(self, X)
        missing = np.isnan(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            med = np.nanmedian(X, axis=0) if X.shape[0] else np.full(X.shape[1], np.nan)
        self.statistics_ = np.where(np.isnan(med), float(self.fill_value), med)
        self.indicator_features_ = (
            np.flatnonzero(missing.any(axis=0)) if self.add_indicator else np.array([], int)
        )
        return self

    def transform(self, X: object) -> np.ndarray:
        check_is_fitted(self)
        X = _validated(self, X, reset=False, copy=True)
        missing = np.isnan(X)
        X = np.where(missing, self.statistics_, X)
        if len(self.indicator_features_):
            X = np.hstack([X, missing[:, self.indicator_features_].astype(np.float64)])
        return X

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        check_is_fitted(self)
        names = _check_feature_names_in(self, input_features)
        extra = [f"{names[j]}_was_missing" for j in self.indicator_features_]
        return np.asarray([*names, *extra], dtype=object)

    def __sklearn_tags__(self) -> object:
        return _nan_tags(super().__sklearn_tags__())


def _specs(catalog: Iterable[FeatureSpec] | Mapping[str, FeatureSpec] | None) -> dict:
    if catalog is None:
        return dict(CATALOG)
    if isinstance(catalog, Mapping):
        return dict(catalog)
    return {s.name: s for s in catalog}


def make_preprocessor(
    feature_names: Sequence[str],
    catalog: Iterable[FeatureSpec] | Mapping[str, FeatureSpec] | None = None,
    scale: bool = True,
) -> Pipeline:
    """Winsorise at catalog ranges → log skewed columns → impute with indicators → scale.

    Columns not in the catalog are winsorised at learned 0.5/99.5% quantiles and not logged.
    Set ``scale=False`` for tree models. Output is a pandas DataFrame with named columns.
    """
    specs = _specs(catalog)
    names = list(feature_names)
    bounds = {c: specs[c].range for c in names if c in specs}
    skewed = [c for c in names if c in specs and specs[c].skewed]
    steps: list[tuple[str, object]] = [
        ("winsorize", CatalogWinsorizer(bounds=bounds)),
        ("log", LogTransformer(columns=skewed)),
        ("impute", MissingIndicatorImputer()),
    ]
    if scale:
        steps.append(("scale", StandardScaler()))
    return Pipeline(steps).set_output(transform="pandas")
