"""Synthetic pediatric/AYA CD19 CAR T cohorts with known truth (``crs-risk cohort synth``).

``simulate`` returns the frames (and the truth) without touching disk; ``synth_to_folder``
writes a validated cohort folder with ``truth.csv`` (latent state and potential outcomes) and
``manifest.json`` (provenance, ``features.manifest``); ``describe_folder`` compares a cohort's
marginals, real-scale cytokines and predictive discrimination with the published targets
(``params.TARGETS``). The steps live in one module each: ``centres``, ``patients``, ``course``,
``treatment``, ``toxicity``, ``cytokines``, ``vitals``, ``events``, ``potential``.
"""

from features.synth.describe import DescribeReport, describe_cohort, describe_folder
from features.synth.output import SynthReport, synth_to_folder
from features.synth.params import DEFAULT, TARGETS, SynthParams, load_params, with_overrides
from features.synth.simulate import SyntheticCohort, simulate

__all__ = [
    "DEFAULT",
    "TARGETS",
    "DescribeReport",
    "SynthParams",
    "SynthReport",
    "SyntheticCohort",
    "describe_cohort",
    "describe_folder",
    "load_params",
    "simulate",
    "synth_to_folder",
    "with_overrides",
]
