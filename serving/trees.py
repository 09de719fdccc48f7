"""XGBoost margins of a few rows in NumPy, bit-identical to ``Booster.inplace_predict``.

Why: scoring one patient's trend calls the booster once per landmark, and for one row most of
``inplace_predict``'s ≈ 0.2 ms is Python and ctypes overhead around a few hundred comparisons.
The fitted trees are read once at load time (``Booster.save_raw("json")``, the model format
documented by XGBoost) into flat node arrays and walked here the way XGBoost's CPU predictor
walks them (``xgboost/src/predictor/cpu_predictor.cc``, ``tree_model.h`` ``GetNext``):

- inputs are cast to float32 (XGBoost's ``bst_float``); a NaN cell is missing and follows the
  node's default direction, any other value goes left iff ``value < split_condition``
  (both float32: the comparison is exact);
- the margin starts at the base margin and adds each tree's leaf value in tree order in float32
  (``np.cumsum`` with ``dtype=float32`` accumulates sequentially, not pairwise).

The base margin is the intercept in margin space (for ``binary:logistic`` XGBoost converts the
stored ``base_score`` probability with a float32 ``logf``); it is taken as the float32 value
next to ``logit(base_score)`` that reproduces the booster's own margins. :func:`compile_trees`
then checks the walk against ``inplace_predict`` on thousands of rows built around the split
conditions (exact thresholds, their float32 neighbours, NaN, random values) and returns None on
any difference or any model feature it does not reproduce (categorical splits, DART, vector
leaves, several outputs): the caller then keeps XGBoost for that model.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

SUPPORTED_OBJECTIVES = ("binary:logistic", "binary:logitraw", "reg:logistic")
CHECK_ROWS = 4096
ONE_ROW_CHECKS = 512  # of them also scored one at a time (the request path)
BASE_ULPS = 16  # float32 neighbours of logit(base_score) tried as the base margin


@dataclass(frozen=True)
class TreeEnsemble:
    """A gbtree booster's trees as flat node arrays (leaves point to themselves)."""

    feature: np.ndarray  # int64 split feature per node (0 at leaves)
    threshold: np.ndarray  # float32 split condition (leaf value at leaves)
    left: np.ndarray  # int64 global node ids
    right: np.ndarray
    missing: np.ndarray  # the default child (where a NaN goes)
    roots: np.ndarray  # int64 root node of each tree, in tree order
    depth: int  # longest root-to-leaf path
    base: np.float32  # base margin
    n_features: int

    def margins(self, X: np.ndarray) -> np.ndarray:
        """Margins of the rows of ``X`` (n, features) as float64 holding float32 values, as
        ``np.asarray(booster.inplace_predict(X, predict_type="margin"), dtype=np.float64)``."""
        with np.errstate(over="ignore"):  # beyond float32: ±inf, as XGBoost's own cast
            x = np.asarray(X, dtype=np.float32)
        if x.shape[0] == 1:
            return np.array([self.margin_one(x[0])])
        n = x.shape[0]
        flat = x.reshape(-1)
        offset = (np.arange(n, dtype=np.int64) * self.n_features)[:, None]
        node = np.broadcast_to(self.roots, (n, len(self.roots)))
        for _ in range(self.depth):
            v = flat[offset + self.feature[node]]
            nxt = np.where(v < self.threshold[node], self.left[node], self.right[node])
            node = np.where(np.isnan(v), self.missing[node], nxt)
        leaves = np.empty((n, len(self.roots) + 1), dtype=np.float32)
        leaves[:, 0] = self.base
        leaves[:, 1:] = self.threshold[node]
        return np.cumsum(leaves, axis=1, dtype=np.float32)[:, -1].astype(np.float64)

    def margin_one(self, x: np.ndarray) -> float:
        """:meth:`margins` of one float32 row (n_features,): the same walk on 1-D arrays (a
        request's trend point; :func:`compile_trees` checks this path too)."""
        node = self.roots
        for _ in range(self.depth):
            v = x[self.feature[node]]
            nxt = np.where(v < self.threshold[node], self.left[node], self.right[node])
            node = np.where(np.isnan(v), self.missing[node], nxt)
        leaves = np.empty(len(self.roots) + 1, dtype=np.float32)
        leaves[0] = self.base
        leaves[1:] = self.threshold[node]
        return float(np.cumsum(leaves, dtype=np.float32)[-1])


def _parse(booster: Any) -> tuple[TreeEnsemble, np.float32, str] | None:
    """The trees of a supported booster, its ``base_score`` and objective (None otherwise)."""
    learner = json.loads(booster.save_raw("json"))["learner"]
    gb = learner["gradient_booster"]
    params = learner["learner_model_param"]
    objective = learner["objective"]["name"]
    if gb.get("name") != "gbtree" or objective not in SUPPORTED_OBJECTIVES:
        return None
    if int(params.get("num_class", 0)) > 1 or int(params.get("num_target", 1)) != 1:
        return None
    trees = gb["model"]["trees"]
    if not trees or any(int(g) != 0 for g in gb["model"].get("tree_info", [])):
        return None
    base_text = str(params["base_score"]).strip("[]").split(",")
    if len(base_text) != 1:
        return None
    n_features = int(params["num_feature"])
    feature, threshold, left, right, missing, roots = [], [], [], [], [], []
    depth = 0
    start = 0
    for tree in trees:
        if int(tree["tree_param"].get("size_leaf_vector", 1)) > 1 or any(tree["split_type"]):
            return None
        lc = np.asarray(tree["left_children"], dtype=np.int64)
        rc = np.asarray(tree["right_children"], dtype=np.int64)
        leaf = lc < 0
        ids = np.arange(len(lc), dtype=np.int64) + start
        lg = np.where(leaf, ids, lc + start)
        rg = np.where(leaf, ids, rc + start)
        dl = np.asarray(tree["default_left"], dtype=bool)
        feature.append(np.where(leaf, 0, np.asarray(tree["split_indices"], dtype=np.int64)))
        threshold.append(np.asarray(tree["split_conditions"], dtype=np.float64))
        left.append(lg)
        right.append(rg)
        missing.append(np.where(dl, lg, rg))
        roots.append(start)
        depth = max(depth, _depth(lc, rc))
        start += len(lc)
    f = np.concatenate(feature)
    if len(f) and (f.min() < 0 or f.max() >= n_features):
        return None
    ensemble = TreeEnsemble(
        feature=f,
        threshold=np.concatenate(threshold).astype(np.float32),
        left=np.concatenate(left),
        right=np.concatenate(right),
        missing=np.concatenate(missing),
        roots=np.asarray(roots, dtype=np.int64),
        depth=depth,
        base=np.float32(0.0),
        n_features=n_features,
    )
    return ensemble, np.float32(float(base_text[0])), objective


def _depth(lc: np.ndarray, rc: np.ndarray) -> int:
    """Longest root-to-leaf path (edges) of one tree."""
    best, stack = 0, [(0, 0)]
    while stack:
        node, d = stack.pop()
        if lc[node] < 0:
            best = max(best, d)
        else:
            stack += [(int(lc[node]), d + 1), (int(rc[node]), d + 1)]
    return best


def check_rows(ensemble: TreeEnsemble, n: int = CHECK_ROWS, seed: int = 0) -> np.ndarray:
    """Rows that exercise every split: per cell a split condition of that feature, its float32
    neighbours, NaN or a random value (float64, often not a float32 number)."""
    rng = np.random.default_rng(seed)
    p = ensemble.n_features
    inner = ensemble.left != np.arange(len(ensemble.left))
    by_feature: dict[int, np.ndarray] = {}
    for j in np.unique(ensemble.feature[inner]):
        by_feature[int(j)] = ensemble.threshold[inner & (ensemble.feature == j)]
    every = ensemble.threshold[inner].astype(np.float64)
    scale = float(np.std(every)) + 1.0 if len(every) else 1.0
    X = rng.normal(0.0, scale, size=(n, p))
    kind = rng.integers(0, 6, size=(n, p))
    for j, t in by_feature.items():
        pick = t[rng.integers(0, len(t), size=n)]
        exact = pick.astype(np.float64)
        below = np.nextafter(pick, np.float32(-np.inf)).astype(np.float64)
        above = np.nextafter(pick, np.float32(np.inf)).astype(np.float64)
        col = X[:, j]
        col[kind[:, j] == 1] = exact[kind[:, j] == 1]
        col[kind[:, j] == 2] = below[kind[:, j] == 2]
        col[kind[:, j] == 3] = above[kind[:, j] == 3]
        # halfway to the next float32 below: float64 input that rounds onto the threshold
        half = (exact + below) / 2.0
        col[kind[:, j] == 4] = half[kind[:, j] == 4]
    X[kind == 5] = np.nan
    huge = rng.random((n, p)) < 0.01  # beyond float32 (cast to ±inf) and infinities
    X[huge] = rng.choice([np.inf, -np.inf, 1e300, -1e300], size=int(huge.sum()))
    X[0] = np.nan
    X[1] = 0.0
    return X


def compile_trees(booster: Any, rows: np.ndarray | None = None) -> TreeEnsemble | None:
    """The booster's trees for :meth:`TreeEnsemble.margins`, or None when the NumPy walk does
    not reproduce ``booster.inplace_predict(..., predict_type="margin")`` bit for bit on
    :func:`check_rows` (plus ``rows``, e.g. real transformed inputs)."""
    parsed = _parse(booster)
    if parsed is None:
        return None
    ensemble, base_score, objective = parsed
    X = check_rows(ensemble)
    if rows is not None and len(rows):
        X = np.vstack([X, np.asarray(rows, dtype=np.float64)])
    want = np.asarray(
        booster.inplace_predict(X, predict_type="margin", validate_features=False),
        dtype=np.float64,
    )
    if want.shape != (len(X),):
        return None
    if objective == "binary:logitraw":
        centre = base_score
    else:
        b = float(base_score)
        if not 0.0 < b < 1.0:
            return None
        centre = np.float32(np.log(b / (1.0 - b)))
    candidates = [centre]
    up = down = centre
    for _ in range(BASE_ULPS):
        up = np.nextafter(up, np.float32(np.inf))
        down = np.nextafter(down, np.float32(-np.inf))
        candidates += [up, down]
    for base in candidates:
        trial = dataclasses.replace(ensemble, base=np.float32(base))
        if np.array_equal(trial.margins(X), want):
            # the one-row path of a request, row by row on part of the same rows
            with np.errstate(over="ignore"):
                x32 = X.astype(np.float32)
            one = np.array([trial.margin_one(x32[i]) for i in range(min(len(X), ONE_ROW_CHECKS))])
            return trial if np.array_equal(one, want[: len(one)]) else None
    return None
