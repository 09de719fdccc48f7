"""The landmark cut: the one place where the feature pipeline filters by time.

A prediction made at a landmark may only use what was known then (landmarking: van
Houwelingen HC, Scand J Stat 2007;34:70). :func:`cut` returns the cohort as it looked at the
landmark:

- every measurement with ``hours_from_infusion`` **>** the landmark is dropped; a measurement
  taken exactly at the landmark is kept (its result is taken as known at the landmark);
- every event with time > the landmark **or unknown time** (NaN) is dropped: an event with
  unknown time can define an outcome, never a feature;
- the ``patients`` table (time-free characteristics known before infusion) is kept whole.

The landmark is one number for everybody, or a per-patient Series indexed by ``patient_id``
(e.g. the first tocilizumab dose); patients missing from the Series, or with a NaN landmark,
keep no measurement and no event. Feature code receives only cut cohorts; labels look at the
uncut cohort (``features.tasks``), and "after the landmark" there means "in the cohort but not in
its cut", so no other module compares times with a landmark.

The rule is one function, :func:`known_at`, applied to frames (:func:`cut`) and to
``features.records.Records`` — the cohort's long tables as NumPy columns keyed by patient row,
on which grading, tasks and features compute (``Records.cut``; ``Records.stack`` cuts at several
landmarks at once, each (patient, landmark) pair becoming one row of the same computation).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from features.cohort import Cohort

PATIENT_CODE = "_p"  # positional patient code (row of ``patients``) added by :func:`with_codes`


def patient_codes(cohort: Cohort, frame: pd.DataFrame) -> np.ndarray:
    """Row position in ``cohort.patients`` of every row of ``frame`` (-1 = unknown patient)."""
    if PATIENT_CODE in frame.columns:
        return frame[PATIENT_CODE].to_numpy()
    ids = pd.Index(cohort.patients["patient_id"].astype(str))
    codes, uniques = pd.factorize(frame["patient_id"].astype(str))
    lookup = ids.get_indexer(pd.Index(uniques)) if len(uniques) else np.array([], np.int64)
    return lookup[codes].astype(np.int64) if len(codes) else np.array([], dtype=np.int64)


def with_codes(cohort: Cohort) -> Cohort:
    """The same cohort with a positional patient code column ``_p`` on every table.

    Lets :func:`cut` and the feature code work on integer codes instead of hashing identifier
    strings again at every landmark.
    """
    if PATIENT_CODE in cohort.measurements.columns and PATIENT_CODE in cohort.events.columns:
        return cohort
    patients = cohort.patients.reset_index(drop=True).copy()
    patients[PATIENT_CODE] = np.arange(len(patients), dtype=np.int64)
    base = dataclasses.replace(cohort, patients=patients)
    m = cohort.measurements.copy()
    m[PATIENT_CODE] = patient_codes(base, m)
    e = cohort.events.copy()
    e[PATIENT_CODE] = patient_codes(base, e)
    return dataclasses.replace(
        base,
        measurements=m[m[PATIENT_CODE] >= 0],
        events=e[e[PATIENT_CODE] >= 0],
    )


def landmark_array(cohort: Cohort, landmark_hours: pd.Series | float) -> np.ndarray:
    """Landmark per row of ``cohort.patients`` (NaN where a per-patient landmark is missing)."""
    n = len(cohort.patients)
    if isinstance(landmark_hours, pd.Series):
        ids = cohort.patients["patient_id"].astype(str)
        series = landmark_hours.copy()
        series.index = series.index.astype(str)
        return series.reindex(ids).to_numpy(dtype=float)
    return np.full(n, float(landmark_hours))


def known_at(hours: np.ndarray, limit: np.ndarray | float) -> np.ndarray:
    """The landmark rule on arrays: rows timed at or before their landmark.

    A NaN time (unknown) or a NaN landmark (none for that patient) keeps nothing.
    """
    return hours <= limit  # NaN time or NaN landmark → False (comparisons never warn)


def _keep(cohort: Cohort, frame: pd.DataFrame, limits: np.ndarray, scalar: bool) -> pd.DataFrame:
    hours = frame["hours_from_infusion"].to_numpy(dtype=float)
    if scalar:
        limit = limits[0] if len(limits) else np.nan
    else:
        codes = patient_codes(cohort, frame)
        limit = np.where(codes >= 0, limits[np.clip(codes, 0, None)], np.nan)
    return frame[known_at(hours, limit)]


def cut(cohort: Cohort, landmark_hours: pd.Series | float) -> Cohort:
    """The cohort as known at the landmark (see module docstring for the exact rule)."""
    scalar = not isinstance(landmark_hours, pd.Series)
    if scalar and not np.isfinite(float(landmark_hours)):
        raise ValueError(f"landmark must be a finite number of hours, got {landmark_hours!r}")
    limits = landmark_array(cohort, landmark_hours)
    return dataclasses.replace(
        cohort,
        measurements=_keep(cohort, cohort.measurements, limits, scalar),
        events=_keep(cohort, cohort.events, limits, scalar),
    )
