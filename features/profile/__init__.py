"""Cohort data-quality profile (``crs-risk cohort profile``; issue 17): look at a cohort before
trusting a model trained on it.

Pure computations in small modules — ``rows`` (measurements split by analyte), ``windows``
(pre-infusion, each day to the last landmark), ``analytes`` (values, patients, distribution,
sampling density, missingness by window), ``events`` (CRS grade by day, treatment timing,
ICANS), ``eligibility`` (per task and landmark, with features.tasks' own rules), ``rules`` /
``value_flags`` / ``timing_flags`` (flags with evidence and a suggested fix); ``report``
assembles them, ``render`` writes the self-contained HTML page. :func:`quality_flags` is what
training computes at ``train`` time; :func:`flag_aggregates` is what may leave the cohort.
"""

from features.profile.render import profile_folder
from features.profile.report import (
    Profile,
    flag_aggregates,
    load_rules,
    profile_cohort,
    quality_flags,
)
from features.profile.rules import KINDS, Flag, FlagRules

__all__ = [
    "KINDS",
    "Flag",
    "FlagRules",
    "Profile",
    "flag_aggregates",
    "load_rules",
    "profile_cohort",
    "profile_folder",
    "quality_flags",
]
