"""The compact clinical sets (``training.parsimony``): ≤ 10 pre-specified predictors, and after
infusion the treatment so far is among them (issue 11 §5: IL-6 raised by tocilizumab must not
read as risk), for logistic regression and for any model below Riley's minimum."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.catalog import CATALOG, catalog_for
from training.parsimony import (
    COMPACT_AFTER_INFUSION,
    COMPACT_AFTER_INFUSION_DROPPED,
    COMPACT_PRE_INFUSION,
    COMPACT_RATIONALE,
    COMPACT_TOCI,
    compact_columns,
    resolve_columns,
)

TREATMENT = ("toci_hours_since_first", "steroids_given")


@pytest.mark.parametrize("wanted", [COMPACT_PRE_INFUSION, COMPACT_AFTER_INFUSION, COMPACT_TOCI])
def test_compact_sets_are_small_and_in_the_catalog(wanted):
    assert len(wanted) <= 10 and len(set(wanted)) == len(wanted)
    assert all(c in CATALOG for c in wanted)


@pytest.mark.parametrize("landmark", ["24h", "48h", "72h", "120h"])
def test_after_infusion_the_compact_set_holds_the_treatment_so_far(landmark):
    catalog = catalog_for("severe_crs", landmark)
    cols = compact_columns("severe_crs", landmark, catalog)
    assert set(TREATMENT) <= set(cols) and "il6_max" in cols and len(cols) <= 10
    # every predictor left out is said why, and the rationale names the treatment
    assert not set(COMPACT_AFTER_INFUSION_DROPPED) & set(cols)
    assert "treatment so far" in COMPACT_RATIONALE and "tocilizumab" in COMPACT_RATIONALE


def test_logreg_and_a_model_below_rileys_minimum_get_the_treatment_columns():
    landmark = "48h"
    catalog = catalog_for("severe_crs", landmark)
    names = [s.name for s in catalog]
    rng = np.random.default_rng(3)
    n = 40
    X = pd.DataFrame(rng.normal(size=(n, len(names))), columns=names)
    X["toci_hours_since_first"] = np.where(rng.random(n) < 0.5, np.nan, rng.uniform(1, 40, n))
    X["steroids_given"] = (rng.random(n) < 0.3).astype(float)
    y = pd.Series((rng.random(n) < 0.25).astype(int))
    for model in ("logreg", "xgboost"):  # xgboost: 40 patients are far below Riley for ~200
        choice = resolve_columns(
            model, names, task="severe_crs", landmark=landmark, catalog=catalog, X=X, y=y
        )
        assert choice.compact and set(TREATMENT) <= set(choice.columns), model
