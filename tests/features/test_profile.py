"""crs-risk cohort profile (issue 17): flags on injected artefacts, none on a clean cohort."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from features.errors import CrsRiskError
from features.profile import FlagRules, flag_aggregates, profile_cohort, quality_flags
from features.sample_size import riley_sample_size
from tests.features.profile_cohorts import (
    cap_at,
    clean_cohort,
    fill_value,
    impute_constant,
    switch_unit,
)


@pytest.fixture(scope="module")
def clean():
    return clean_cohort()


def kinds(flags):
    return {(f.kind, f.subject) for f in flags}


def test_nothing_flagged_on_a_clean_cohort(clean):
    assert quality_flags(clean) == []


def test_each_injected_artefact_is_flagged_and_nothing_else(clean):
    dirty = switch_unit(cap_at(impute_constant(clean, "il10"), "il6"), "ifng")
    flags = quality_flags(dirty)
    assert kinds(flags) == {
        ("constant_imputation", "il10"),
        ("assay_limit", "il6"),
        ("unit_mix", "ifng"),
    }
    by = {f.kind: f for f in flags}
    rows = clean.measurements[clean.measurements["analyte"] == "il10"]
    fill = fill_value(rows["value"].to_numpy())
    assert by["constant_imputation"].numbers["value"] == fill
    assert f"{{missing: [{fill:g}]}}" in by["constant_imputation"].fix
    assert "{ceiling:" in by["assay_limit"].fix
    assert by["unit_mix"].numbers["factor"] == 1000.0
    # a fix the mapping can express (issue 17 §4): a dated unit change, a source or unit column
    assert "ifng ×1000 from pg/mL: ng/mL" in by["unit_mix"].fix
    assert "analyte_values: {ifng: {units_before: {<date of the change>:" in by["unit_mix"].fix


@pytest.mark.parametrize(
    ("inject", "expected"),
    [
        (lambda c: impute_constant(c, "mcp1"), ("constant_imputation", "mcp1")),
        (lambda c: cap_at(c, "il1ra"), ("assay_limit", "il1ra")),
        (lambda c: switch_unit(c, "ferritin", 10.0), ("unit_mix", "ferritin")),
    ],
    ids=["imputation-mcp1", "ceiling-il1ra", "unit-x10-ferritin"],
)
def test_one_artefact_at_a_time(clean, inject, expected):
    assert kinds(quality_flags(inject(clean))) == {expected}


def test_thresholds_are_configurable(clean):
    dirty = impute_constant(clean, "il10", share=0.25)
    assert kinds(quality_flags(dirty, FlagRules(imputation_share=0.5))) == set()
    with pytest.raises(CrsRiskError, match="unknown flag rule"):
        FlagRules.from_mapping({"imputation_shares": 0.5})
    with pytest.raises(CrsRiskError, match="must be > 0"):
        FlagRules(spike_ratio=0)


def test_measurements_after_death_are_flagged(clean):
    ev = clean.events
    dead = ev[(ev["event"].astype(str) == "death") & ev["hours_from_infusion"].notna()].iloc[0]
    row = clean.measurements.iloc[[0]].copy()
    row["patient_id"] = dead["patient_id"]
    row["hours_from_infusion"] = dead["hours_from_infusion"] + 5.0
    m = pd.concat([clean.measurements, row], ignore_index=True)
    flags = quality_flags(dataclasses.replace(clean, measurements=m))
    assert kinds(flags) == {("after_death", "cohort")}
    assert flags[0].numbers == {"rows": 1.0, "patients": 1.0}


def test_day_sequences_with_gaps_are_flagged(clean):
    m = clean.measurements
    ids = clean.patients["patient_id"].astype(str).iloc[::5]  # a fifth of the patients
    h = m["hours_from_infusion"]
    gap = m["patient_id"].astype(str).isin(set(ids)) & (h > 0) & (h <= 48)
    flags = quality_flags(dataclasses.replace(clean, measurements=m[~gap]))
    assert kinds(flags) == {("day_gaps", "cohort")}
    assert flags[0].numbers["longest_days"] >= 2


def test_few_events_follow_trainings_sample_size_rule(clean):
    small = dataclasses.replace(
        clean,
        patients=clean.patients.iloc[:60].reset_index(drop=True),
        measurements=clean.measurements[
            clean.measurements["patient_id"].isin(clean.patients["patient_id"].iloc[:60])
        ],
        events=clean.events[
            clean.events["patient_id"].isin(clean.patients["patient_id"].iloc[:60])
        ],
    )
    flags = [f for f in quality_flags(small) if f.kind == "few_events"]
    assert {f.subject for f in flags} >= {"severe_crs@72h", "toci_refractory@first_toci"}
    f = next(f for f in flags if f.subject == "severe_crs@72h")
    n, e = int(f.numbers["eligible"]), int(f.numbers["events"])
    assert f.numbers["min_n"] == riley_sample_size(n, e, 1).min_n > n


def test_profile_statistics_match_the_rows(clean):
    p = profile_cohort(clean)
    il6 = next(a for a in p.analytes if a.analyte == "il6")
    rows = clean.measurements[clean.measurements["analyte"] == "il6"]
    assert il6.values == len(rows) == int(il6.histogram.sum()) + int((rows["value"] <= 0).sum())
    assert il6.patients == rows["patient_id"].nunique()
    assert il6.log_scale
    pre = rows[rows["hours_from_infusion"] <= 0]
    assert il6.windows[0].values == len(pre)
    missing = 100 * (1 - pre["patient_id"].nunique() / len(clean.patients))
    assert il6.windows[0].missing_pct == pytest.approx(missing)
    assert sum(w.values for w in il6.windows) == len(rows)
    # task counts are the tasks' own
    from features.tasks import assign

    for c in p.tasks:
        a = assign(clean, c.task, c.landmark)
        assert (c.eligible, c.positive) == (int(a.eligible.sum()), int(np.nansum(a.y)))
        assert sum(c.excluded.values()) == c.patients - c.eligible
    # every patient counted once per day in the CRS table
    assert (p.events.grade_by_day.sum(axis=1) == p.events.with_course).all()


def test_aggregates_hold_no_patient_identifier(clean):
    dirty = switch_unit(cap_at(impute_constant(clean, "il10"), "il6"), "ifng")
    agg = flag_aggregates(quality_flags(dirty), FlagRules())
    text = repr(agg)
    ids = clean.patients["patient_id"].astype(str)
    assert not any(f"'{i}'" in text or f" {i} " in text for i in ids)
    assert agg["counts"]["unit_mix"] == 1 and agg["subjects"]["assay_limit"] == ["il6"]
    assert agg["thresholds"]["imputation_share"] == 0.10
