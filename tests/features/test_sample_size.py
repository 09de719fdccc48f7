"""Riley et al. 2020 minimum sample size."""

from __future__ import annotations

import math

from features.sample_size import max_r2_cs, riley_sample_size


def test_riley_worked_example():
    # Riley RD et al. BMJ 2020;368:m441 worked example (binary outcome): prevalence 0.174,
    # anticipated R²cs 0.288, 24 candidate parameters → 623 (shrinkage), 662 (optimism),
    # 221 (overall risk); the minimum sample size is 662.
    s = riley_sample_size(1000, 174, 24, r2_cs=0.288)
    assert (s.min_n_shrinkage, s.min_n_optimism, s.min_n_overall_risk) == (623, 662, 221)
    assert s.min_n == 662 and s.adequate
    assert s.events_per_parameter == 174 / 24


def test_default_r2_is_fifteen_percent_of_max_and_small_cohorts_fall_short():
    s = riley_sample_size(118, 25, 40)
    assert math.isclose(s.anticipated_r2_cs, 0.15 * max_r2_cs(25 / 118))
    assert not s.adequate
    assert s.to_dict()["min_n"] == s.min_n


def test_degenerate_inputs_do_not_raise():
    s = riley_sample_size(10, 0, 3)
    assert math.isnan(s.events_per_parameter)
