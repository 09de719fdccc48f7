"""The natural CRS course (no treatment) and the grade-change matrix of the realised course.

Natural course: onset, then escalation through the grades at drawn times (earlier and faster
when the expansion ``E`` is high; PRWCC: onset 3 d in high-grade vs 5 d in non-high-grade CRS),
up to the natural maximum grade. Every patient gets the times of every escalation, so treatment
(``features.synth.treatment``) can compare its dose time with the time the patient *would*
reach grade 3, and stop the escalation there; it never moves an escalation earlier.

The realised course is written as one row of ``_COLS`` per patient: onset, escalations to 2, 3
and 4, then stepwise de-escalation 4 → 3 → 2 → 1 → resolution (one grade at a time, at least
``course.step_min_h`` at each grade). Durations by realised maximum grade follow PRWCC (McNerney
2023: non-high-grade 3 d, high-grade 5 d, HLH-like 11 d) and pooled ELIANA/ENSIGN (Levine 2021:
grade 3/4 10 d, 4–36).
"""

from __future__ import annotations

import numpy as np

from features.synth.draws import _lognormal
from features.synth.params import SynthParams

# Course matrix columns (time-ordered within a patient): onset, escalations, de-escalations.
_COLS = ("on", "up2", "up3", "up4", "dn3", "dn2", "dn1", "dn0")
_GRADES = np.array([1, 2, 3, 4, 3, 2, 1, 0], dtype=np.int8)


def _increasing(t: np.ndarray, gap: float) -> np.ndarray:
    """Force the present (non-NaN) columns of each row to increase by at least ``gap``."""
    out = t.copy()
    cur = np.full(len(t), -np.inf)
    for j in range(t.shape[1]):
        col = out[:, j]
        present = ~np.isnan(col)
        col = np.where(present, np.maximum(col, cur + gap), np.nan)
        out[:, j] = col
        cur = np.where(present, col, cur)
    return out


def grade_at(times: np.ndarray, grades: np.ndarray, pid: np.ndarray, t: np.ndarray) -> np.ndarray:
    """CRS grade in force for patient ``pid`` at hour ``t`` (0 outside CRS)."""
    last = np.full(len(pid), -1)
    for j in range(times.shape[1]):
        tj = times[pid, j]
        with np.errstate(invalid="ignore"):
            last = np.where(tj <= t, j, last)
    return np.where(last >= 0, grades[pid, np.maximum(last, 0)], 0).astype(np.int8)


def natural_course(
    rng: np.random.Generator, lat: dict[str, np.ndarray], p: SynthParams
) -> dict[str, np.ndarray]:
    """Onset and the time of every escalation, as if the patient were never treated."""
    cp = p.course
    e, nat = lat["e"], lat["grade"]
    n = len(e)
    onset = _lognormal(rng, cp.onset_median_h * np.exp(-cp.onset_e * e), cp.onset_sigma, n)
    onset = np.clip(onset, cp.onset_min_h, cp.follow_up_h - 120.0)
    start2 = (nat >= 2) & (rng.random(n) < cp.onset_at_grade2)
    esc = np.exp(-cp.esc_e * e)
    d12 = np.maximum(_lognormal(rng, cp.esc12_median_h * esc, cp.esc_sigma, n), 1.0)
    d23 = np.maximum(_lognormal(rng, cp.esc23_median_h * esc, cp.esc_sigma, n), 1.0)
    d34 = np.maximum(_lognormal(rng, cp.esc34_median_h * esc, cp.esc_sigma, n), 1.0)
    t2 = np.where(start2, onset, onset + d12)
    t3 = t2 + d23
    t4 = t3 + d34
    return {
        "crs": nat >= 1,
        "nat": nat,
        "onset": onset,
        "start2": start2,
        "t2": t2,
        "t3": t3,
        "t4": t4,
        "dur_z": rng.standard_normal(n),
        "death_delay": _lognormal(rng, cp.death_median_h, 0.5, n),
        "u_other": rng.random(n),
        "other_time": rng.uniform(240.0, cp.follow_up_h - 24.0, n),
    }


def escalation_times(crs: dict[str, np.ndarray]) -> np.ndarray:
    """n × 4 natural times of reaching grade 1, 2, 3, 4."""
    return np.c_[crs["onset"], crs["t2"], crs["t3"], crs["t4"]]


def grade_reached(crs: dict[str, np.ndarray], t: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Natural grade in force at ``t`` (before any de-escalation), capped at ``cap``."""
    with np.errstate(invalid="ignore"):
        steps = (escalation_times(crs) <= t[:, None]).sum(axis=1)
    return np.minimum(steps, cap).astype(np.int8)


def course_matrix(
    crs: dict[str, np.ndarray], rmax: np.ndarray, drop: np.ndarray, res: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Grade-change times and grades of the realised course (max ``rmax``; 5 = death).

    Escalations keep their natural times; from ``drop`` the grade falls one step at a time,
    evenly spaced, to 0 at ``res``. A course ending in death (grade 5) has no de-escalation.
    """
    n = len(rmax)
    g = np.minimum(rmax, 4)
    start2 = crs["start2"]
    tm = np.full((n, len(_COLS)), np.nan)
    tm[:, 0] = crs["onset"]
    tm[:, 1] = np.where((g >= 2) & ~start2, crs["t2"], np.nan)
    tm[:, 2] = np.where(g >= 3, crs["t3"], np.nan)
    tm[:, 3] = np.where(g >= 4, crs["t4"], np.nan)
    step = np.where(g >= 2, (res - drop) / np.maximum(g - 1, 1), 0.0)
    for j, gr in ((4, 3), (5, 2), (6, 1)):
        tm[:, j] = np.where(g > gr, drop + (g - 1 - gr) * step, np.nan)
    tm[:, 7] = res
    tm[rmax >= 5, 4:8] = np.nan
    tm[rmax < 1] = np.nan
    gm = np.tile(_GRADES, (n, 1))
    gm[:, 0] = np.where(start2, 2, 1)
    return np.round(_increasing(tm, 0.5), 1), gm
