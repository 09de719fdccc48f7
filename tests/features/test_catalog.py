"""The feature catalog: complete metadata for every column, fixed lists per task/landmark."""

from __future__ import annotations

import pytest

from features.build import build_features
from features.catalog import (
    CATALOG,
    DYNAMIC_ANALYTES,
    catalog_for,
    catalog_frame,
    feature_names,
    variable_of,
)
from features.vocabulary import ANALYTES
from tests.features.feature_cohorts import make_cohort, patient

GROUPS = {
    "patient characteristics",
    "disease burden",
    "CAR T treatment",
    "baseline labs",
    "cytokines",
    "labs",
    "vital signs",
    "CRS course",
    "treatment so far",
}


@pytest.mark.parametrize("spec", list(CATALOG.values()), ids=list(CATALOG))
def test_every_feature_is_fully_described(spec):
    assert spec.label and spec.unit and spec.description and spec.variable
    assert spec.group in GROUPS
    assert spec.low < spec.high
    assert spec.direction in (-1, 0, 1)
    assert spec.kind in ("continuous", "binary", "count", "grade")
    if spec.kind == "binary":
        assert spec.range == (0, 1) and not spec.skewed
    if spec.source_analyte is not None:
        assert spec.source_analyte in ANALYTES


def test_published_directions():
    assert CATALOG["il6_max"].direction == 1
    assert CATALOG["platelets_pre_ld"].direction == -1  # thrombocytopenia (Hay 2017)
    assert CATALOG["m_easix_pre_ld"].direction == 1 and CATALOG["m_easix_pre_ld"].skewed
    assert CATALOG["high_marrow_burden"].direction == 1
    assert CATALOG["product_ari0001"].direction == -1
    assert CATALOG["il6_missing"].direction == 0


def test_every_tracked_analyte_has_every_family():
    for a in DYNAMIC_ANALYTES:
        for suffix in ("last", "max", "fold_change", "slope_24h", "hours_since_first", "n"):
            spec = CATALOG[f"{a}_{suffix}"]
            assert spec.variable == a and spec.source_analyte == a
        assert CATALOG[f"{a}_missing"].kind == "binary"


def test_lists_per_task_and_landmark():
    pre = feature_names("severe_crs", "0h")
    post = feature_names("severe_crs", 48)
    toci = feature_names("toci_refractory", "first_toci")
    assert "crs_present" not in pre and "crs_present" in post and "crs_present" in toci
    assert "crs_grade_current" in post and "crs_grade_current" not in toci
    assert "toci_crs_grade" in toci and "toci_crs_grade" not in post
    assert set(pre) < set(post)
    assert feature_names("severe_crs", "24h") == post == feature_names("severe_crs", "72")
    assert not any(n in ("patient_id", "center") for n in toci)
    assert [s.name for s in catalog_for("severe_crs", 48)] == post


def test_build_columns_are_exactly_the_catalog_lists():
    c = make_cohort(
        [patient("a")],
        [("a", 10, "il6", 5.0)],
        [("a", 12, "crs_onset", 1), ("a", 20, "tocilizumab")],
    )
    for task, landmark in [
        ("severe_crs", "0h"),
        ("severe_crs", "48h"),
        ("toci_refractory", "first_toci"),
    ]:
        built = build_features(c, task, landmark, require_label=False)
        assert list(built.X.columns) == feature_names(task, landmark)
        assert all(name in CATALOG for name in built.X.columns)


def test_variable_of_sums_derived_columns_back():
    assert variable_of("il6_max") == "il6"
    assert variable_of("il6_missing") == "il6"
    assert variable_of("il6_max_was_missing") == "il6"  # indicator added by the imputer
    assert variable_of("num__ferritin_fold_change") == "ferritin"  # ColumnTransformer prefix
    assert variable_of("easix_pre_ld") == "easix"
    assert variable_of("product_ari0001") == "product"
    assert variable_of("something_else") == "something_else"


def test_catalog_frame_for_docs():
    frame = catalog_frame()
    assert len(frame) == len(CATALOG)
    for col in ("name", "label", "unit", "group", "description", "low", "high", "direction"):
        assert col in frame.columns
    assert frame["name"].is_unique
