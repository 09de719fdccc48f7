"""ICANS (with its own corticosteroids, indication ``icans``), ICU admission and discharge."""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from features.synth.draws import _choice, _lognormal, _uniform
from features.synth.params import SynthParams


def toxicity(
    rng: np.random.Generator,
    lat: dict[str, np.ndarray],
    crs: dict[str, np.ndarray],
    tr: dict[str, np.ndarray],
    p: SynthParams,
) -> dict[str, np.ndarray]:
    """ICANS, its corticosteroids, and ICU stays driven by the realised CRS course."""
    xp, tp = p.toxicity, p.treatment
    n = len(lat["e"])
    geff = np.minimum(tr["rmax"], 4)
    tm = tr["tm"]
    severe = geff >= 3
    p_icans = expit(xp.i0 + xp.i_severe * severe + xp.i_h * lat["h"] + xp.i_e * lat["e"])
    icans = rng.random(n) < p_icans
    t_icans = _lognormal(rng, xp.icans_onset_median_h, xp.icans_onset_sigma, n)
    t_icans = np.where(crs["crs"], np.maximum(t_icans, crs["onset"] + 12.0), t_icans)
    t_icans = np.round(np.minimum(t_icans, p.course.follow_up_h - 1.0), 1)
    alive = np.isnan(tr["t_death"]) | (t_icans < tr["t_death"])
    icans &= alive
    icans_grade = _choice(rng, xp.icans_grade_weights, n) + 1
    t_st = np.round(t_icans + _uniform(rng, tp.icans_steroid_delay_h, n), 1)
    t_st = np.where(t_st == tr["t_steroid"], t_st + 0.1, t_st)  # one event per time and kind
    steroid = icans & (icans_grade >= 2) & (rng.random(n) < tp.p_icans_steroids)
    steroid &= np.isnan(tr["t_death"]) | (t_st < tr["t_death"])
    # ICU: at grade 3 (or grade 2) for CRS, or for ICANS ≥3.
    p_icu = np.asarray(xp.p_icu_by_grade)[geff]
    icu_crs = rng.random(n) < p_icu
    t_icu_crs = np.where(
        geff >= 3, tm[:, 2] + rng.uniform(0.0, 4.0, n), crs["t2"] + rng.uniform(0.5, 6.0, n)
    )
    icu_icans = icans & (icans_grade >= 3) & (rng.random(n) < xp.p_icu_icans3)
    t_icu_icans = t_icans + rng.uniform(0.0, 12.0, n)
    icu_crs &= geff >= 2
    t_icu = np.fmin(np.where(icu_crs, t_icu_crs, np.nan), np.where(icu_icans, t_icu_icans, np.nan))
    t_icu = np.round(t_icu, 1)
    icu = ~np.isnan(t_icu) & (np.isnan(tr["t_death"]) | (t_icu < tr["t_death"]))
    # discharge once CRS is at grade ≤1 (and ICANS has had time to settle)
    ok_time = np.fmin(tm[:, 6], tm[:, 7])
    ok_time = np.where(icu_icans, np.fmax(ok_time, t_icans + 48.0), ok_time)
    ok_time = np.fmax(ok_time, t_icu)
    t_out = np.round(ok_time + _uniform(rng, xp.icu_stay_after_h, n), 1)
    alive_out = np.isnan(tr["t_death"]) | (t_out < tr["t_death"])
    discharged = icu & alive_out & (t_out < p.course.follow_up_h)
    return {
        "p_icans": p_icans,
        "icans": icans,
        "t_icans": t_icans,
        "icans_grade": icans_grade,
        "t_icans_steroid": np.where(steroid, t_st, np.nan),
        "icu": icu,
        "t_icu": np.where(icu, t_icu, np.nan),
        "t_icu_out": np.where(discharged, t_out, np.nan),
    }
