"""The paired ΔAUROC is computed at training on the keyed fold predictions; the card only
formats what was logged (issue 15: no statistic at render time)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.card_context import comparison_rows
from training.card_gather import Sibling
from training.paired import fold_matrix, keyed_folds


def _folds(p: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    repeats, n = p.shape
    return pd.DataFrame(
        {
            "repeat": np.repeat(np.arange(repeats), n),
            "fold": np.tile(np.arange(n) % 3, repeats),
            "row": np.tile(np.arange(n), repeats),
            "y": np.tile(y, repeats),
            "p": p.ravel(),
        }
    )


def test_fold_matrix_orders_patients_by_their_logged_key():
    rng = np.random.default_rng(3)
    y = np.array([0, 1, 0, 1, 1, 0])
    p = rng.random((2, 6))
    keys = np.array([4, 0, 5, 1, 3, 2])  # the call's random key of each row
    got = fold_matrix(keyed_folds(_folds(p, y), keys))
    assert got is not None
    order = np.argsort(keys)  # column j is the row whose key is j
    np.testing.assert_array_equal(got[0], y[order])
    np.testing.assert_array_equal(got[1], p[:, order])
    # read back from the logged CSV text, the matrix is the same
    csv = keyed_folds(_folds(p, y), keys).to_csv(index=False)
    again = fold_matrix(pd.read_csv(pd.io.common.StringIO(csv)))
    assert again is not None
    np.testing.assert_array_equal(again[1], got[1])


def test_card_formats_the_logged_difference_and_never_computes_one():
    metrics = {"auroc": 0.7, "auroc_ci_low": 0.6, "auroc_ci_high": 0.8, "brier": 0.2}
    sibs = [
        Sibling({"model": "m_easix", "feature_set": "published"}, metrics),
        Sibling({"model": "logreg", "feature_set": "all"}, metrics),
    ]
    paired = {"delta_auroc": {"logreg/all": {"value": 0.05, "low": -0.01, "high": 0.12}}}
    rows = {r["model"]: r for r in comparison_rows(sibs, paired)}
    assert rows["logreg"]["delta_auroc"] == "0.050 [-0.010–0.120]"
    assert rows["m_easix"]["delta_auroc"] == "—"  # nothing logged: nothing computed
    assert [r["model"] for r in comparison_rows(sibs, {})] == ["m_easix", "logreg"]
