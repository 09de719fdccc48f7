"""ASTCT 2019 component grades of single observations: fever, hypotension, hypoxia."""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import pandas as pd

from features.vocabulary import OxygenDevice

FEVER_C = 38.0
LOW_FLOW_MAX_L_PER_MIN = 6.0
FEVER_WINDOW_H = 24.0
SUPPORT_VALID_H = 24.0
SUPPORT_ANALYTES: tuple[str, ...] = (
    "temperature",
    "hypotension",
    "vasopressors",
    "vasopressin",
    "oxygen_device",
    "oxygen_flow",
)
COURSE_EVENTS: tuple[str, ...] = ("crs_onset", "crs_grade", "crs_resolved")
FEVER_EXEMPTING_DRUGS: tuple[str, ...] = ("tocilizumab", "corticosteroids")

ArrayLike: TypeAlias = np.ndarray | pd.Series | list | float | None


def _arr(x: ArrayLike, n: int | None = None) -> np.ndarray:
    """Float array from input (``None`` → all NaN of length ``n``)."""
    if x is None:
        return np.full(n or 1, np.nan)
    return np.atleast_1d(np.asarray(x, dtype=float))


def is_fever(temperature_c: ArrayLike) -> np.ndarray:
    """Fever per ASTCT: temperature ≥ 38.0 °C (38.0 is fever, 37.9 is not; NaN is not)."""
    t = _arr(temperature_c)
    with np.errstate(invalid="ignore"):
        # Round to 0.01 °C so that values converted from °F (e.g. 100.4 °F → 37.99999…) grade as
        # the thermometer read them.
        return np.round(t, 2) >= FEVER_C


def fever_values(temperature_c: np.ndarray) -> np.ndarray:
    """:func:`is_fever` of a float64 array, without its conversion and warning guard (NaN
    compares False silently): the feature code calls it on every request."""
    return np.round(temperature_c, 2) >= FEVER_C


def hypotension_grade(
    hypotension: ArrayLike, vasopressors: ArrayLike, vasopressin: ArrayLike = None
) -> np.ndarray:
    """Grade implied by the circulation: 2 hypotension without vasopressors, 3 one vasopressor
    (with or without vasopressin) or vasopressin alone, 4 two or more vasopressors.

    ``vasopressors`` counts agents other than vasopressin (the guideline's "multiple vasopressors
    (excluding vasopressin)"); ``vasopressin`` is a flag and never adds to that count. A running
    vasopressor or vasopressin implies hypotension even without a flag.
    """
    hypo = _arr(hypotension)
    vaso = _arr(vasopressors)
    vp = _arr(vasopressin, len(hypo))
    hypo, vaso, vp = np.broadcast_arrays(hypo, vaso, vp)
    return hypotension_grade_arrays(hypo, vaso, vp)


def hypotension_grade_arrays(
    hypo: np.ndarray, vaso: np.ndarray, vasopressin: np.ndarray | None = None
) -> np.ndarray:
    """:func:`hypotension_grade` of aligned float arrays (no conversion or broadcasting; NaN
    compares False without a floating-point warning)."""
    grade = np.zeros(hypo.shape, dtype=np.int8)
    grade[hypo >= 1] = 2
    if vasopressin is not None:
        grade[vasopressin >= 1] = 3
    grade[vaso >= 1] = 3
    grade[vaso >= 2] = 4
    return grade


def hypoxia_grade(oxygen_device: ArrayLike, oxygen_flow: ArrayLike) -> np.ndarray:
    """Grade implied by oxygen support (ASTCT 2019 hypoxia column).

    Nasal cannula ≤ 6 L/min is low-flow (grade 2), > 6 L/min counts as high-flow (grade 3); a
    nasal cannula without a recorded flow is taken as low-flow. Without a device code, a flow
    alone grades the same way (> 6 L/min → 3, > 0 → 2).
    """
    dev = _arr(oxygen_device)
    flow = _arr(oxygen_flow)
    dev, flow = np.broadcast_arrays(dev, flow)
    return hypoxia_grade_arrays(dev, flow)


def hypoxia_grade_arrays(dev: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """:func:`hypoxia_grade` of aligned float arrays (no conversion or broadcasting)."""
    with np.errstate(invalid="ignore"):
        high_flow = np.round(flow, 3) > LOW_FLOW_MAX_L_PER_MIN
        any_flow = flow > 0
        grade = np.zeros(dev.shape, dtype=np.int8)
        nc = dev == OxygenDevice.NASAL_CANNULA
        grade[nc] = np.where(high_flow[nc], 3, 2)
        grade[dev == OxygenDevice.BLOW_BY] = 2
        grade[(dev == OxygenDevice.HIGH_FLOW_NASAL_CANNULA) | (dev == OxygenDevice.FACEMASK)] = 3
        grade[
            (dev == OxygenDevice.NONINVASIVE_POSITIVE_PRESSURE)
            | (dev == OxygenDevice.MECHANICAL_VENTILATION)
        ] = 4
        no_dev = np.isnan(dev)
        grade[no_dev & any_flow] = 2
        grade[no_dev & high_flow] = 3
    return grade


def astct_grade(
    temperature_c: ArrayLike,
    hypotension: ArrayLike = None,
    vasopressors: ArrayLike = None,
    oxygen_device: ArrayLike = None,
    oxygen_flow: ArrayLike = None,
    fever_exempt: ArrayLike = None,
    vasopressin: ArrayLike = None,
) -> np.ndarray:
    """ASTCT 2019 CRS grade (0–4), element-wise over aligned arrays.

    ``temperature_c`` is the highest temperature in the fever window (NaN = none recorded);
    ``fever_exempt`` is true once tocilizumab or corticosteroids were given, when fever is no
    longer required. Without fever (and not exempt) the grade is 0: hypotension or hypoxia alone
    are not CRS. With fever the grade is at least 1; otherwise the worse of hypotension and
    hypoxia.
    """
    temp = _arr(temperature_c)
    n = temp.shape[0]
    hypo = hypotension_grade(_arr(hypotension, n), _arr(vasopressors, n), _arr(vasopressin, n))
    oxy = hypoxia_grade(_arr(oxygen_device, n), _arr(oxygen_flow, n))
    fever = is_fever(temp)
    exempt = np.zeros(n, dtype=bool) if fever_exempt is None else _arr(fever_exempt, n) > 0
    organ = np.maximum(hypo, oxy)
    grade = np.where(fever, np.maximum(organ, 1), np.where(exempt, organ, 0))
    return np.broadcast_to(grade, np.broadcast_shapes(temp.shape, hypo.shape)).astype(np.int8)
