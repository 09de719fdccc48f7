"""Deterministic per-patient feature table at a landmark (no learning happens here).

``build_features(cohort, task, landmark)`` → :class:`features.table.FeatureTable`: one row per
eligible patient, the fixed column list of ``features.catalog.catalog_for`` (all float64, NaN =
missing), the label, identifiers and subgroup columns separately, and a summary (eligible,
events, exclusions by reason, missingness per feature, derivation notes).

Every feature is computed from the cohort *cut at the landmark* (``features.landmark.cut``), so
nothing recorded after the landmark, and no event with unknown time, can enter a feature. Each
patient's row depends only on that patient's data. The same code builds one patient's row at
serving time (:func:`build_patient_features`).

Definitions (units are canonical, ``features.vocabulary``):

- baseline of an analyte = its earliest value at or before infusion (hours ≤ 0), i.e. the
  pre-lymphodepletion draw when there is one; EASIX = LDH × creatinine / platelets and
  m-EASIX = LDH × CRP[mg/dL] / platelets on baseline values, CRP converted from mg/L (÷10) as
  published (Pennisi M et al., Blood Adv 2021;5:3397);
- per analyte up to the landmark: last value, maximum, fold change = maximum / baseline,
  least-squares slope per 24 h (on log10(1 + x) for log-scale analytes), hours since the first
  value, number of values, missing indicator. Values at a detection limit enter at the limit;
- temperature: maximum, last, count, fever present (≥38.0 °C in the 24 h up to the landmark),
  hours since the first fever, febrile count;
- CRS course from the grade course of the cut cohort (``features.grading``): CRS present, highest
  grade so far, grade in force (missing once a derived grade has expired), hours since onset;
  for ``toci_refractory`` the grade and hours since onset at the first dose, and the dose's time;
- treatment so far (``severe_crs`` after infusion; issue 11 §5): tocilizumab given, hours since
  its first dose, corticosteroids given and siltuximab/anakinra given (for CRS or with no
  recorded indication), and whether IL-6, sIL-6R and CRP were measured after the first
  tocilizumab dose (tocilizumab itself moves them; explanations say so:
  ``features.catalog.after_tocilizumab_note``).

Vectorised with NumPy over (patient, analyte) groups of the cohort's records
(``features.records.Records``: the long tables as arrays, built once by :func:`prepare`), into
one float64 matrix (:data:`FEATURE_COLUMNS`); a task's table selects its catalog columns. No
Python loop over patients and no per-landmark pandas work, so the same code builds one
patient's row for the service in about a millisecond and 10⁵ patients' tables in seconds.

Layout (one step each): ``layout`` (the feature columns), ``patient`` (time-free features),
``matrix`` (features at a landmark), ``tables`` (a task's tables, summary, exclusion counts),
``files`` (table files and the CLI run).
"""

from __future__ import annotations

from features.build.files import META_KEY, BuildReport, build_to_file, read_table, write_table
from features.build.layout import COLUMN, FEATURE_COLUMNS, N_PATIENT, TRACKED
from features.build.matrix import feature_matrix
from features.build.patient import patient_features
from features.build.tables import (
    COUNT_KEYS,
    GROUP_COLUMNS,
    build_features,
    build_landmarks,
    build_patient_features,
    exclusion_counts,
    exclusion_report,
    prepare,
)

__all__ = [
    "COLUMN",
    "COUNT_KEYS",
    "FEATURE_COLUMNS",
    "GROUP_COLUMNS",
    "META_KEY",
    "N_PATIENT",
    "TRACKED",
    "BuildReport",
    "build_features",
    "build_landmarks",
    "build_patient_features",
    "build_to_file",
    "exclusion_counts",
    "exclusion_report",
    "feature_matrix",
    "patient_features",
    "prepare",
    "read_table",
    "write_table",
]
