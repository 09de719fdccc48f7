"""Patient characteristics and the latent state (burden, inflammation, expansion, HLH-like).

patient characteristics → marrow burden ``b`` and baseline inflammation ``Z`` → pre-infusion
labs → latent CAR T expansion/inflammation intensity ``E`` (+ IL-6-independent macrophage axis
``M``, HLH-like phenotype ``H``) → the *natural* (untreated) severity liability
``G = E + δ·H + σ·ν`` and its ordinal maximum grade (ν is randomness no measurement sees).
Parameters and sources: ``params.py``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, ndtr, ndtri

from features.synth.centres import Centres
from features.synth.draws import _choice, _lognormal, _row_choice
from features.synth.params import SynthParams

# CDC 2000 growth charts, 50th percentile weight (kg) by age, boys / girls (approximate).
_WFA_AGE = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 25.0])
_WFA_M = np.array(
    [10.0, 12.5, 14.3, 16.3, 18.4, 20.7, 22.9, 25.6, 28.6, 31.9, 35.6, 39.9, 45.3, 50.8, 56.0,
     60.8, 64.6, 67.2, 70.6, 73.0]
)  # fmt: skip
_WFA_F = np.array(
    [9.5, 12.0, 13.9, 15.9, 17.9, 20.0, 22.4, 25.0, 28.2, 31.9, 36.0, 41.5, 45.8, 49.4, 52.0,
     53.5, 54.4, 56.6, 58.0, 60.0]
)  # fmt: skip


# --- patients -----------------------------------------------------------------------------------
def _patients(
    rng: np.random.Generator, n: int, p: SynthParams, cen: Centres
) -> dict[str, np.ndarray]:
    cp = p.cohort
    c = _choice(rng, cen.weights, n)
    lo = ndtr((cp.age_min - cp.age_mean) / cp.age_sd)
    hi = ndtr((cp.age_max - cp.age_mean) / cp.age_sd)
    age = cp.age_mean + cp.age_sd * ndtri(rng.uniform(lo, hi, n))
    age = np.clip(np.round(age, 1), cp.age_min, cp.age_max)
    male = rng.random(n) < cp.p_male
    median_w = np.where(male, np.interp(age, _WFA_AGE, _WFA_M), np.interp(age, _WFA_AGE, _WFA_F))
    median_w = median_w * cp.weight_scale
    weight = np.round(_lognormal(rng, median_w, cp.weight_sigma, n), 1)
    ari = rng.random(n) < cen.p_ari[c]
    hsct = rng.random(n) < cp.p_prior_hsct
    blin = rng.random(n) < cp.p_prior_blinatumomab
    ino = rng.random(n) < cp.p_prior_inotuzumab
    w_low, w_mid, _ = cp.burden_weights
    p_high = cen.p_high[c]
    probs = np.c_[
        (1 - p_high) * w_low / (w_low + w_mid), (1 - p_high) * w_mid / (w_low + w_mid), p_high
    ]
    comp = _row_choice(rng, probs)
    u = rng.random(n)
    zero = rng.random(n) < cp.p_zero_blasts
    low = np.where(zero, 0.0, np.minimum(5.0 * u, 4.9))
    mid = np.clip(np.exp(np.log(5.0) + u * np.log(40.0 / 5.0)), 5.0, 39.9)
    high = 40.0 + 59.0 * u
    blasts = np.round(np.choose(comp, [low, mid, high]), 1)
    emd = rng.random(n) < cp.p_extramedullary
    ld = _choice(rng, cp.lymphodepletion_weights, n)
    dose = np.where(
        ari,
        np.clip(_lognormal(rng, cp.ari_dose_median, cp.ari_dose_sigma, n), *cp.ari_dose_range),
        np.clip(_lognormal(rng, cp.tisa_dose_median, cp.tisa_dose_sigma, n), *cp.tisa_dose_range),
    )
    return {
        "c": c,
        "age": age,
        "male": male,
        "weight": weight,
        "ari": ari,
        "hsct": hsct,
        "blin": blin,
        "ino": ino,
        "blasts": blasts,
        "emd": emd,
        "ld": ld,
        "dose": np.round(dose, 2),
    }


# --- latent state -------------------------------------------------------------------------------
def _latent(
    rng: np.random.Generator, pt: dict[str, np.ndarray], p: SynthParams, cen: Centres
) -> dict[str, np.ndarray]:
    lp, bp = p.latent, p.baseline
    n = len(pt["c"])
    b = np.log1p(pt["blasts"]) / np.log1p(100.0)
    z = rng.standard_normal(n)
    m = lp.m_b * (b - 0.4) + rng.standard_normal(n)
    eta = rng.standard_normal(n)
    e = (
        lp.e0
        + lp.e_b * b
        + lp.e_z * z
        + lp.e_ari * pt["ari"]
        + lp.e_dose * np.log(pt["dose"] / 3.0)
        + lp.e_ld * (pt["ld"] == 0)
        + cen.e[pt["c"]]
        + lp.sigma_eta * eta
    )
    h = rng.random(n) < expit(lp.h0 + lp.h_e * e + lp.h_m * m)
    nu = rng.standard_normal(n)
    mean_g = e + lp.delta_h * h
    g = mean_g + lp.sigma_out * nu
    # the storm the cytokines measure carries part of ν (what a pre-infusion oracle cannot see)
    storm = e + lp.storm_nu * lp.sigma_out * nu
    grade = (g[:, None] >= np.asarray(lp.tau)[None, :]).sum(axis=1).astype(np.int8)
    # Pre-lymphodepletion labs (true values; measurement noise is added per draw).
    sd = rng.standard_normal((n, 6))
    pre = {
        "ldh": np.log(bp.ldh_median) + bp.ldh_b * b + bp.ldh_z * z + bp.ldh_sigma * sd[:, 0],
        "crp": np.log(bp.crp_median) + bp.crp_b * b + bp.crp_z * z + bp.crp_sigma * sd[:, 1],
        "ferritin": np.log(bp.ferritin_median)
        + bp.ferritin_b * b
        + bp.ferritin_z * z
        + bp.ferritin_hsct * pt["hsct"]
        + bp.ferritin_sigma * sd[:, 2],
        "platelets": np.log(bp.platelets_median)
        + bp.platelets_b * b
        + bp.platelets_z * z
        + bp.platelets_sigma * sd[:, 3],
        "creatinine": np.log(bp.creatinine_intercept + bp.creatinine_per_year * pt["age"])
        + bp.creatinine_sigma * sd[:, 4],
        "fibrinogen": np.log(bp.fibrinogen_median) + 0.1 * z + bp.fibrinogen_sigma * sd[:, 5],
    }
    d0 = rng.standard_normal((n, 6))
    day0 = {k: v + bp.day0_sigma * d0[:, i] for i, (k, v) in enumerate(pre.items())}
    day0["platelets"] = day0["platelets"] + bp.ld_platelet_drop
    day0["crp"] = day0["crp"] + bp.ld_crp_change
    return {
        "b": b,
        "z": z,
        "m": m,
        "e": e,
        "storm": storm,
        "h": h,
        "g": g,
        "mean_g": mean_g,
        "grade": grade,
        "pre": pre,
        "day0": day0,
    }
