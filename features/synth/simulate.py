"""Generative simulator of a pediatric/AYA CD19 CAR T cohort with known truth.

The model is a chain, not independent columns (parameters and sources: ``params.py``):

patient characteristics → marrow burden ``b`` and baseline inflammation ``Z`` → pre-infusion labs
→ latent CAR T expansion/inflammation intensity ``E`` (+ IL-6-independent macrophage axis ``M``,
HLH-like phenotype ``H``) → cytokine and lab trajectories that rise before CRS onset and more
steeply when ``E`` is high → maximum ASTCT grade from the liability ``G = E + δ·H + σ·ν`` (ν is
randomness no measurement sees) → onset, escalation, support rows (vasopressors, oxygen) that
reproduce the ASTCT 2019 grade (Lee DW 2019) → anti-IL-6 treatment at grade ≥2 with timed doses,
siltuximab first-line in a minority, second-line agents when refractory → ICANS, ICU, death.

Tocilizumab-refractory follows DESIGN.md: a second-line agent was needed and the grade did not
improve within 24 h of the first dose; responders improve below the grade at the first dose
within 24 h (a responder's peak is reached within hours of the dose). Hence the generator's
refractory flag and both clauses of the definition always agree.

Everything is vectorised over patients with NumPy; randomness comes from
``Generator(PCG64(...))`` streams spawned from the seed, one per stage, so the same seed and
parameters give identical frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr, ndtri

from features.schema import EVENTS, PATIENTS
from features.synth.params import DEFAULT, AnalyteDynamics, SynthParams
from features.vocabulary import ANALYTES, OxygenDevice, conversion

STAGES = ("centres", "patients", "latent", "course", "treatment", "toxicity")
CHUNK = 100_000  # patients per measurement chunk (bounds memory at n = 10⁶)

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

CYTOKINES = ("il6", "ifng", "sgp130", "sil6r", "il1ra", "il10", "mcp1", "il2", "tnfa")
LABS = ("crp", "ferritin", "ldh", "platelets", "creatinine", "fibrinogen")
SUPPORT = ("hypotension", "vasopressors", "oxygen_device", "oxygen_flow")

# Draw occasions: (nominal h, ± jitter h, labs?, cytokines?, kind). "extra" draws are taken more
# often when the patient is febrile (informative missingness); "late" draws less often when the
# patient never had CRS. Pre-LD labs feed m-EASIX (Pennisi 2021: best at lymphodepletion).
OCCASIONS: tuple[tuple[float, float, bool, bool, str], ...] = (
    (-144.0, 24.0, True, False, "preld"),
    (-3.0, 2.0, True, True, "day0"),
    (12.0, 2.0, False, True, "extra"),
    (24.0, 2.0, True, True, "early"),
    (36.0, 2.0, False, True, "extra"),
    (48.0, 2.0, True, True, "early"),
    (60.0, 2.0, False, True, "extra"),
    (72.0, 2.0, True, True, "early"),
    (96.0, 3.0, True, True, "late"),
    (120.0, 3.0, True, False, "late"),
    (168.0, 6.0, True, True, "late"),
    (240.0, 6.0, True, False, "late"),
    (336.0, 12.0, True, False, "late"),
)
# Labs whose storm amplitude is signed (platelets fall; fibrinogen rises, falls in HLH-like).
_SIGNED_LABS = ("platelets", "fibrinogen")
# CRP is also drawn at the cytokine-only occasions (bedside inflammation marker).
_EXTRA_LABS = ("crp",)

# Alternative units: per-centre conventions and occasional single rows (realistic spellings).
_CENTRE_UNITS = {
    "crp": ("p_crp_mg_dl", "mg/dL"),
    "creatinine": ("p_creatinine_umol", "µmol/L"),
    "temperature": ("p_temperature_f", "°F"),
    "ldh": ("p_ldh_ukat", "µkat/L"),
    "platelets": ("p_platelets_ul", "/µL"),
}
_ROW_ALT_UNIT = {
    "crp": "mg/dL",
    "ferritin": "µg/L",
    "ldh": "IU/L",
    "platelets": "10^3/µL",
    "creatinine": "µmol/L",
    "il6": "ng/L",
    "ifng": "ng/L",
    "il10": "ng/L",
    "sgp130": "µg/L",
}
_DECIMALS = {
    "mg/dL": {"crp": 2, "creatinine": 2, "fibrinogen": 0},
    "µmol/L": {"creatinine": 0},
    "µkat/L": {"ldh": 2},
    "/µL": {"platelets": -3},
    "°F": {"temperature": 1},
    "pmol/L": {"ferritin": 0},
}

# Course matrix columns (time-ordered within a patient): onset, escalations, de-escalations.
_COLS = ("on", "up2", "up3", "up4", "dn3", "dn2", "dn1", "dn0")
_GRADES = np.array([1, 2, 3, 4, 3, 2, 1, 0], dtype=np.int8)

_UNITS: tuple[str, ...] = tuple(
    sorted({u for a in ANALYTES.values() for u in a.units}, key=lambda s: (len(s), s))
)
_UNIT_CODE = {u: i for i, u in enumerate(_UNITS)}
_ANALYTE_KEYS: tuple[str, ...] = tuple(ANALYTES)
_ANALYTE_CODE = {a: i for i, a in enumerate(_ANALYTE_KEYS)}
_ANALYTE_RANK = np.argsort(np.argsort(np.array(_ANALYTE_KEYS)))  # canonical (text) order
_EVENT_CODE = {e: i for i, e in enumerate(EVENTS)}
_EVENT_ORDER = np.array(
    [
        {
            "crs_onset": 0,
            "crs_grade": 1,
            "crs_max_grade": 2,
            "tocilizumab": 3,
            "siltuximab": 4,
            "anakinra": 5,
            "corticosteroids": 6,
            "icans": 7,
            "icu_admission": 8,
            "icu_discharge": 9,
            "crs_resolved": 10,
            "death": 11,
            "lost_to_follow_up": 12,
        }[e]
        for e in EVENTS
    ]
)


@dataclass(frozen=True)
class SyntheticCohort:
    """Frames in the cohort contract plus the generator's truth (one row per patient).

    ``measurements`` and ``events`` use categorical ``patient_id``/``analyte``/``unit``/``event``
    columns (memory: 10⁷–10⁸ rows) and report values in the centre's units, exactly as written
    to disk; ``features.io.validate_frames`` turns them into the canonical ``Cohort``.
    """

    patients: pd.DataFrame
    measurements: pd.DataFrame
    events: pd.DataFrame
    truth: pd.DataFrame
    params: SynthParams


@dataclass(frozen=True)
class Centres:
    """Per-centre characters (index 0..K-1 of the simulated centres).

    ``p_*`` are per-centre probabilities whose size-weighted mean over the training centres is
    the calibrated marginal (so centre differences never move the default targets).
    """

    codes: tuple[str, ...]
    weights: np.ndarray
    p_high: np.ndarray  # marrow blasts ≥40%
    p_ari: np.ndarray
    e: np.ndarray
    p_treat2: np.ndarray
    p_silt: np.ndarray
    assay: dict[str, np.ndarray]
    units: dict[str, tuple[str, ...]]
    panel: dict[str, np.ndarray]  # analyte -> measured by centre (bool)
    lod_factor: np.ndarray


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    return rng.uniform(bounds[0], bounds[1], n)


def _choice(
    rng: np.random.Generator, weights: tuple[float, ...] | np.ndarray, n: int
) -> np.ndarray:
    """Categorical draws (vectorised; weights need not be normalised)."""
    w = np.asarray(weights, dtype=float)
    cum = np.cumsum(w / w.sum())
    return np.minimum(np.searchsorted(cum, rng.random(n), side="right"), len(w) - 1)


def _row_choice(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs`` (rows × k, rows sum to 1)."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None]
    return np.minimum((u > cum).sum(axis=1), probs.shape[1] - 1)


def _lognormal(
    rng: np.random.Generator, median: np.ndarray | float, sigma: float, n: int
) -> np.ndarray:
    return np.asarray(median) * np.exp(sigma * rng.standard_normal(n))


# --- centres ------------------------------------------------------------------------------------
def _centred_probs(
    p: float, shifts: np.ndarray, weights: np.ndarray, train: int, sel: np.ndarray
) -> np.ndarray:
    """Per-centre probabilities expit(a + shift) with the training centres' weighted mean = p."""
    if p <= 0.0 or p >= 1.0:
        return np.full(len(sel), float(p))
    lo, hi = -40.0, 40.0
    for _ in range(80):  # bisection on the common intercept a
        a = (lo + hi) / 2
        if (weights * expit(a + shifts[:train])).sum() < p:
            lo = a
        else:
            hi = a
    return expit((lo + hi) / 2 + shifts[sel])


def make_centres(
    p: SynthParams,
    centers: int,
    center_shift: float,
    new_center: bool,
    ari_fraction: float | None = None,
) -> Centres:
    """Centre characters; centre k's draws come from its own stream so it keeps its character."""
    cp = p.centres
    names = ("size", "burden", "ari", "e", "treat", "silt", "assay", "units", "lim", "lod")
    raw: dict[str, list] = {k: [] for k in names}
    all_assay = (*CYTOKINES, *LABS)
    for k in range(1, centers + 2):  # training centres 1..K and the 'new' centre K+1
        rng = np.random.Generator(np.random.PCG64([cp.seed, k]))
        raw["size"].append(rng.gamma(cp.size_concentration))
        raw["burden"].append(rng.standard_normal() * cp.burden_sd)
        raw["ari"].append(rng.standard_normal() * cp.ari_sd)
        raw["e"].append(rng.standard_normal() * cp.e_sd)
        raw["treat"].append(rng.standard_normal() * cp.treat_sd)
        raw["silt"].append(rng.standard_normal() * cp.silt_sd)
        z = rng.standard_normal(len(all_assay))
        sd = np.array([cp.assay_sd if a in CYTOKINES else cp.lab_assay_sd for a in all_assay])
        raw["assay"].append(z * sd)
        raw["units"].append(rng.random(len(_CENTRE_UNITS)))
        raw["lim"].append(rng.random())
        raw["lod"].append(rng.random())
    size = np.array(raw["size"][:centers])
    w = size / size.sum()
    shift = {k: np.array(raw[k], dtype=float) * center_shift for k in names[1:6]}
    assay_all = np.array(raw["assay"])  # (K+1) × analytes
    # Centre the training centres' effects on their weighted mean; a new centre is not centred.
    e_shift = shift["e"] - (w * shift["e"][:centers]).sum()
    assay_all = (assay_all - (w[:, None] * assay_all[:centers]).sum(axis=0)) * center_shift
    sel = np.array([centers]) if new_center else np.arange(centers)
    codes = tuple(f"C{k + 1:02d}" for k in sel)
    shifted = center_shift > 0
    units: dict[str, tuple[str, ...]] = {}
    for j, (analyte, (field, alt)) in enumerate(_CENTRE_UNITS.items()):
        prob = getattr(cp, field)
        units[analyte] = tuple(
            alt if shifted and raw["units"][k][j] < prob else ANALYTES[analyte].canonical_unit
            for k in sel
        )
    limited = np.array([shifted and raw["lim"][k] < cp.p_limited_panel for k in sel])
    panel = {a: ~limited | (a in cp.limited_panel) for a in CYTOKINES}
    lod_factor = np.array([3.0 if shifted and raw["lod"][k] < cp.p_high_lod else 1.0 for k in sel])
    p_ari = p.cohort.p_ari if ari_fraction is None else ari_fraction

    def probs(base: float, key: str) -> np.ndarray:
        return _centred_probs(base, shift[key], w, centers, sel)

    return Centres(
        codes=codes,
        weights=np.array([1.0]) if new_center else w,
        p_high=probs(p.cohort.burden_weights[2] / sum(p.cohort.burden_weights), "burden"),
        p_ari=probs(p_ari, "ari"),
        e=e_shift[sel],
        p_treat2=probs(p.treatment.p_treat_grade2, "treat"),
        p_silt=probs(p.treatment.p_silt_first, "silt"),
        assay={a: assay_all[sel, i] for i, a in enumerate(all_assay)},
        units=units,
        panel=panel,
        lod_factor=lod_factor,
    )


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
        "h": h,
        "g": g,
        "mean_g": mean_g,
        "grade": grade,
        "pre": pre,
        "day0": day0,
    }


# --- CRS course and treatment -------------------------------------------------------------------
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


def _course(
    rng: np.random.Generator, lat: dict[str, np.ndarray], p: SynthParams
) -> dict[str, np.ndarray]:
    cp = p.course
    e, h, grade = lat["e"], lat["h"], lat["grade"]
    n = len(e)
    crs = grade >= 1
    geff = np.minimum(grade, 4)
    onset = _lognormal(rng, cp.onset_median_h * np.exp(-cp.onset_e * e), cp.onset_sigma, n)
    onset = np.clip(onset, cp.onset_min_h, cp.follow_up_h - 120.0)
    start2 = (geff >= 2) & (rng.random(n) < cp.onset_at_grade2)
    esc = np.exp(-cp.esc_e * e)
    d12 = np.maximum(_lognormal(rng, cp.esc12_median_h * esc, cp.esc_sigma, n), 1.0)
    d23 = np.maximum(_lognormal(rng, cp.esc23_median_h * esc, cp.esc_sigma, n), 1.0)
    d34 = np.maximum(_lognormal(rng, cp.esc34_median_h * esc, cp.esc_sigma, n), 1.0)
    t2 = np.where(start2, onset, onset + d12)
    t3 = t2 + d23
    t4 = t3 + d34
    peak = np.choose(np.maximum(geff - 1, 0), [onset, t2, t3, t4])
    dur_med = np.asarray(cp.duration_h)[np.maximum(geff - 1, 0)]
    dur_med = np.where(h & (geff >= 2), cp.duration_hlh_h, dur_med)
    dur = _lognormal(rng, dur_med, cp.duration_sigma, n)
    res = np.maximum(onset + dur, peak + 12.0)
    hold = np.maximum(cp.peak_hold * (res - peak), 8.0)
    drop = np.minimum(peak + hold, res - 1.0 * (geff - 1))
    step = np.where(geff >= 2, (res - drop) / np.maximum(geff - 1, 1), 0.0)
    tm = np.full((n, len(_COLS)), np.nan)
    tm[:, 0] = onset
    tm[:, 1] = np.where((geff >= 2) & ~start2, t2, np.nan)
    tm[:, 2] = np.where(geff >= 3, t3, np.nan)
    tm[:, 3] = np.where(geff >= 4, t4, np.nan)
    # de-escalation: grade geff-1 at `drop`, then one grade per step, 0 at resolution
    for j, gr in ((4, 3), (5, 2), (6, 1)):
        k = geff - 1 - gr  # steps after `drop` at which grade `gr` starts
        tm[:, j] = np.where(geff > gr, drop + k * step, np.nan)
    tm[:, 7] = res
    tm[~crs] = np.nan
    gm = np.tile(_GRADES, (n, 1))
    gm[:, 0] = np.where(start2, 2, 1)
    return {
        "crs": crs,
        "geff": geff,
        "onset": onset,
        "t2": t2,
        "tm": tm,
        "gm": gm,
        "death_delay": _lognormal(rng, cp.death_median_h, 0.5, n),
        "u_other": rng.random(n),
        "other_time": rng.uniform(240.0, cp.follow_up_h - 24.0, n),
        "resp_tail": _lognormal(rng, 24.0, 0.5, n),
    }


def _treatment(
    rng: np.random.Generator,
    pt: dict[str, np.ndarray],
    lat: dict[str, np.ndarray],
    crs: dict[str, np.ndarray],
    p: SynthParams,
    cen: Centres,
) -> dict[str, np.ndarray]:
    """Anti-IL-6 at grade ≥2, responder/refractory course changes, second-line agents, death."""
    tp, cp = p.treatment, p.course
    n = len(pt["c"])
    geff, grade = crs["geff"], lat["grade"]
    tm = crs["tm"].copy()
    p_treat2 = cen.p_treat2[pt["c"]]
    treated = (geff >= 3) | ((geff == 2) & (rng.random(n) < p_treat2))
    t_first = crs["t2"] + _uniform(rng, tp.treat_delay_h, n)
    silt_first = treated & (rng.random(n) < cen.p_silt[pt["c"]])
    toci = treated & ~silt_first
    p_ref = expit(
        tp.r0 + tp.r_b * lat["b"] + tp.r_h * lat["h"] + tp.r_m * lat["m"] + tp.r_e * lat["e"]
    )
    died_crs = grade >= 5
    refractory = treated & ((rng.random(n) < p_ref) | died_crs)
    responder = treated & ~refractory
    ups = tm[:, 1:4]
    peak_nat = np.fmax.reduce(np.c_[tm[:, 0], ups], axis=1)
    # Responders reach their peak within a few hours of the dose, then improve within 24 h.
    window = _uniform(rng, tp.response_escalation_h, n)
    span = np.where(peak_nat > t_first, peak_nat - t_first, 1.0)
    s = np.where(responder & (peak_nat > t_first), np.minimum(1.0, window / span), 1.0)
    ups = np.where(
        ups > t_first[:, None], t_first[:, None] + (ups - t_first[:, None]) * s[:, None], ups
    )
    tm[:, 1:4] = ups
    peak = np.fmax.reduce(np.c_[tm[:, 0], ups], axis=1)
    t_imp = np.maximum(t_first + _uniform(rng, tp.response_h, n), peak + rng.uniform(1.0, 3.0, n))
    t_imp = np.minimum(t_imp, t_first + 23.5)
    tm[:, 4:6] = np.where(responder[:, None], np.nan, tm[:, 4:6])
    tm[:, 6] = np.where(responder, t_imp, tm[:, 6])
    tm[:, 7] = np.where(responder, t_imp + np.maximum(crs["resp_tail"], 2.0), tm[:, 7])
    # Refractory: no improvement until after the second-line agent has acted.
    t_2l = t_first + _uniform(rng, tp.second_line_h, n)
    t_rec = t_2l + _uniform(rng, tp.recovery_after_second_line_h, n)
    first_drop = np.where(np.isnan(tm[:, 4:8]), np.inf, tm[:, 4:8]).min(axis=1)
    shift = np.where(refractory, np.maximum(0.0, t_rec - first_drop), 0.0)
    tm[:, 4:8] = tm[:, 4:8] + shift[:, None]
    # Death from CRS (grade 5) after reaching grade 4; no de-escalation.
    t4 = tm[:, 3]
    t_death_crs = np.where(died_crs, t4 + crs["death_delay"], np.nan)
    tm[died_crs, 4:8] = np.nan
    tm = _increasing(tm, 0.5)
    tm = np.round(tm, 1)
    last = np.fmax.reduce(tm, axis=1)
    t_death_crs = np.round(np.where(died_crs, np.fmax(t_death_crs, last + 1.0), np.nan), 1)
    res = tm[:, 7]
    # Deaths from other causes (leukaemia, infection), after any CRS has resolved.
    other = (~died_crs) & (crs["u_other"] < cp.p_other_death)
    t_other = np.maximum(crs["other_time"], np.where(np.isnan(res), 0.0, res + 48.0))
    other &= t_other < cp.follow_up_h
    t_death = np.where(died_crs, t_death_crs, np.where(other, np.round(t_other, 1), np.nan))
    # Tocilizumab doses.
    severe = geff >= 3
    probs = np.where(
        refractory[:, None],
        np.asarray(tp.doses_refractory)[None, :],
        np.where(
            severe[:, None], np.asarray(tp.doses_responder_severe), np.asarray(tp.doses_responder)
        ),
    )
    n_doses = np.where(toci, _row_choice(rng, probs / probs.sum(axis=1, keepdims=True)) + 1, 0)
    t_first = np.round(t_first, 1)
    dose_t = np.c_[
        t_first,
        np.round(t_first + _uniform(rng, tp.second_dose_h, n), 1),
        np.round(t_first + _uniform(rng, tp.third_dose_h, n), 1),
    ]
    dose_t = np.where(np.arange(3)[None, :] < n_doses[:, None], dose_t, np.nan)
    alive_at = lambda t: np.isnan(t_death) | (t < t_death)  # noqa: E731
    dose_t = np.where(alive_at(dose_t.T).T, dose_t, np.nan)
    w = pt["weight"]
    toci_mgkg = np.where(w < 30.0, tp.toci_mg_per_kg[0], tp.toci_mg_per_kg[1])
    toci_mgkg = np.round(np.minimum(toci_mgkg, tp.toci_max_mg / w), 2)
    # Second-line agents for refractory CRS.
    weights = np.asarray(tp.second_line_weights, dtype=float)
    agent_toci = _choice(rng, weights, n)  # 0 siltuximab, 1 anakinra, 2 corticosteroids
    agent_silt = _choice(rng, weights[1:], n) + 1
    agent = np.where(silt_first, agent_silt, agent_toci)
    t_2l = np.round(t_2l, 1)
    second = refractory & alive_at(t_2l)
    add_steroid = second & (agent != 2) & (rng.random(n) < tp.p_add_steroids)
    t_steroid_add = np.round(t_2l + rng.uniform(2.0, 12.0, n), 1)
    add_steroid &= alive_at(t_steroid_add)
    return {
        "tm": tm,
        "treated": treated,
        "toci": toci,
        "silt_first": silt_first,
        "refractory": refractory,
        "p_ref": p_ref,
        "p_treat2": p_treat2,
        "t_first": np.where(treated, t_first, np.nan),
        "dose_t": dose_t,
        "n_doses": n_doses,
        "toci_mgkg": toci_mgkg,
        "agent": agent,
        "t_2l": np.where(second, t_2l, np.nan),
        "t_steroid_add": np.where(add_steroid, t_steroid_add, np.nan),
        "t_death": t_death,
        "died_crs": died_crs,
        # first time fever stops being required for grading (tocilizumab or corticosteroids)
        "t_waiver": np.fmin(
            np.where(toci, t_first, np.nan),
            np.fmin(
                np.where(second & (agent == 2), t_2l, np.nan),
                np.where(add_steroid, t_steroid_add, np.nan),
            ),
        ),
    }


def _toxicity(
    rng: np.random.Generator,
    lat: dict[str, np.ndarray],
    crs: dict[str, np.ndarray],
    tr: dict[str, np.ndarray],
    p: SynthParams,
) -> dict[str, np.ndarray]:
    xp = p.toxicity
    n = len(lat["e"])
    geff = crs["geff"]
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
        "icu": icu,
        "t_icu": np.where(icu, t_icu, np.nan),
        "t_icu_out": np.where(discharged, t_out, np.nan),
    }


# --- measurements -------------------------------------------------------------------------------
@dataclass
class _Rows:
    """Column arrays of measurement rows (codes instead of strings)."""

    pid: list[np.ndarray]
    t: list[np.ndarray]
    analyte: list[np.ndarray]
    value: list[np.ndarray]
    unit: list[np.ndarray]
    qual: list[np.ndarray]

    def add(
        self,
        analyte: str,
        pid: np.ndarray,
        t: np.ndarray,
        value: np.ndarray,
        unit: np.ndarray,
        qual: np.ndarray,
    ) -> None:
        self.pid.append(pid.astype(np.int32))
        self.t.append(t.astype(np.float64))
        self.analyte.append(np.full(len(pid), _ANALYTE_CODE[analyte], dtype=np.int16))
        self.value.append(value.astype(np.float64))
        self.unit.append(unit.astype(np.int16))
        self.qual.append(qual.astype(np.int8))


def _report(
    rng: np.random.Generator,
    analyte: str,
    canon: np.ndarray,
    centre_unit: np.ndarray,
    p: SynthParams,
    decimals: int,
    lod: np.ndarray | None = None,
    uloq: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reported value, unit code and qualifier code (0 none, 1 '<', 2 '>') for canonical values."""
    a = ANALYTES[analyte]
    if analyte in CYTOKINES or analyte in LABS:  # saturate inside the plausible range
        canon = np.clip(canon, a.soft[0], a.soft[1] * 0.98)
    qual = np.zeros(len(canon), dtype=np.int8)
    if lod is not None:
        below = canon < lod
        canon = np.where(below, lod, canon)
        qual[below] = 1
    if uloq > 0:
        above = canon > uloq
        canon = np.where(above, uloq, canon)
        qual[above] = 2
    unit = centre_unit.astype(np.int16)
    alt = _ROW_ALT_UNIT.get(analyte)
    if alt is not None:
        flip = rng.random(len(canon)) < p.mess.p_alt_unit_row
        unit = np.where(flip, _UNIT_CODE[alt], unit).astype(np.int16)
    value = np.empty(len(canon))
    for code in np.unique(unit):
        sel = unit == code
        name = _UNITS[code]
        conv = conversion(analyte, name)
        d = _DECIMALS.get(name, {}).get(analyte, decimals)
        value[sel] = np.round(conv.from_canonical(canon[sel]), d)
    return value, unit, qual


def _profile(
    t: np.ndarray, centre: np.ndarray, width: np.ndarray, dur: np.ndarray, decay: float
) -> np.ndarray:
    """Rise (logistic around ``centre``) × decay after ``centre + dur``; zero before infusion."""
    x = np.clip((t - centre) / width, -50.0, 50.0)
    rise = expit(x)
    dec = np.exp(-np.maximum(0.0, t - centre - dur) / decay)
    gate = np.clip(t / 6.0, 0.0, 1.0)
    return rise * dec * gate


def _measurements(
    rng: np.random.Generator,
    sl: slice,
    pt: dict[str, np.ndarray],
    lat: dict[str, np.ndarray],
    crs: dict[str, np.ndarray],
    tr: dict[str, np.ndarray],
    p: SynthParams,
    cen: Centres,
    rows: _Rows,
) -> None:
    """Rows of labs, cytokines, temperature and support for the patients in ``sl``."""
    dp, mp = p.dynamics, p.mess
    idx = np.arange(sl.start, sl.stop)
    n = len(idx)
    c = pt["c"][sl]
    e, m, h = lat["e"][sl], lat["m"][sl], lat["h"][sl]
    onset = crs["onset"][sl]
    is_crs = crs["crs"][sl]
    t_death = tr["t_death"][sl]
    tm, gm = tr["tm"][sl], crs["gm"][sl]
    width = dp.rise_width_h * np.exp(-dp.rise_width_e * e)
    dur = dp.storm_duration_h * np.exp(dp.storm_duration_e * e) * np.where(h, 2.0, 1.0)
    t_first = tr["t_first"][sl]
    toci = tr["toci"][sl]
    refractory = tr["refractory"][sl]
    responder = tr["treated"][sl] & ~refractory

    # Draw occasions: times, presence (random + informative missingness).
    k = len(OCCASIONS)
    nominal = np.array([o[0] for o in OCCASIONS])
    jitter = np.array([o[1] for o in OCCASIONS])
    times = np.round(nominal[None, :] + rng.uniform(-1.0, 1.0, (n, k)) * jitter[None, :], 1)
    kinds = [o[4] for o in OCCASIONS]
    present = rng.random((n, k)) >= mp.p_visit_missing
    local = np.arange(n)
    febrile = np.zeros((n, k), dtype=bool)
    for j in range(k):
        g = grade_at(tm, gm, local, times[:, j])
        febrile[:, j] = (g >= 1) | (is_crs & (times[:, j] >= onset - 6.0))
    u = rng.random((n, k))
    for j, kind in enumerate(kinds):
        if kind == "extra":
            present[:, j] = u[:, j] < np.where(
                febrile[:, j], mp.p_extra_draw_sick, mp.p_extra_draw_well
            )
        elif kind == "late":
            present[:, j] &= is_crs | (u[:, j] < mp.p_late_draw_well)
    present &= np.isnan(t_death)[:, None] | (times < t_death[:, None])

    def emit(
        analyte: str,
        occ: np.ndarray,
        canon: np.ndarray,
        spec_decimals: int,
        lod: np.ndarray | None,
        uloq: float,
    ) -> None:
        keep = occ & (rng.random(occ.shape) >= mp.p_row_missing)
        ii, jj = np.nonzero(keep)
        cu = cen.units.get(analyte)
        unit_c = (
            np.array([_UNIT_CODE[x] for x in cu])[c[ii]]
            if cu is not None
            else np.full(len(ii), _UNIT_CODE[ANALYTES[analyte].canonical_unit])
        )
        lod_rows = None if lod is None else lod[ii]
        value, unit, qual = _report(
            rng, analyte, canon[ii, jj], unit_c, p, spec_decimals, lod_rows, uloq
        )
        rows.add(analyte, idx[ii], times[ii, jj], value, unit, qual)

    has_labs = np.array([o[2] for o in OCCASIONS])
    has_cyt = np.array([o[3] for o in OCCASIONS])
    after_toci = toci[:, None] & (times > t_first[:, None])
    # Cytokines.
    for a in CYTOKINES:
        spec: AnalyteDynamics = dp.cytokines[a]
        base = np.log(spec.base) + spec.base_sd * rng.standard_normal(n) + cen.assay[a][c]
        amp = np.logaddexp(
            0.0,
            spec.amp0
            + spec.amp_e * e
            + spec.amp_m * m
            + spec.amp_h * h
            + spec.amp_sd * rng.standard_normal(n),
        )
        f = _profile(
            times, (onset - spec.lead_h)[:, None], width[:, None], dur[:, None], spec.decay_h
        )
        logx = base[:, None] + amp[:, None] * f + spec.noise * rng.standard_normal((n, k))
        if a == "il6":
            fold = dp.toci_il6_fold * np.where(refractory, dp.toci_il6_fold_refractory, 1.0)
            fold = fold * np.exp(0.3 * rng.standard_normal(n))
            ramp = expit((times - t_first[:, None] - 6.0) / 2.0)
            logx = logx + np.where(after_toci, np.log1p((fold[:, None] - 1.0) * ramp), 0.0)
        if a == "sil6r":
            ramp = expit((times - t_first[:, None] - 12.0) / 4.0)
            logx = logx + np.where(after_toci, np.log1p((dp.toci_sil6r_fold - 1.0) * ramp), 0.0)
        occ = present & has_cyt[None, :] & cen.panel[a][c][:, None]
        lod = spec.lod * cen.lod_factor[c] if spec.lod > 0 else None
        emit(a, occ, np.exp(logx), spec.decimals, lod, spec.uloq)
    # Labs: pre-LD value before −24 h, post-LD (day 0) value afterwards, plus the storm.
    for a in LABS:
        spec = dp.labs[a]
        base = np.where(times < -24.0, lat["pre"][a][sl][:, None], lat["day0"][a][sl][:, None])
        base = base + cen.assay[a][c][:, None]
        amp = (
            spec.amp0
            + spec.amp_e * e
            + spec.amp_m * m
            + spec.amp_h * h
            + spec.amp_sd * rng.standard_normal(n)
        )
        if a not in _SIGNED_LABS:  # rises only (softplus); signed labs may fall
            amp = np.logaddexp(0.0, amp)
        f = _profile(
            times, (onset - spec.lead_h)[:, None], width[:, None], dur[:, None], spec.decay_h
        )
        logx = base + amp[:, None] * f + spec.noise * rng.standard_normal((n, k))
        if a == "crp":
            drop = expit((times - t_first[:, None] - 18.0) / 6.0) * dp.toci_crp_drop
            logx = logx - np.where(responder[:, None] & (times > t_first[:, None]), drop, 0.0)
        occ = present & (has_labs[None, :] | (a in _EXTRA_LABS))
        lod = np.full(n, spec.lod) if spec.lod > 0 else None
        emit(a, occ, np.exp(logx), spec.decimals, lod, 0.0)
    _vitals(rng, idx, pt, crs, tr, p, cen, rows, sl)


def _vitals(
    rng: np.random.Generator,
    idx: np.ndarray,
    pt: dict[str, np.ndarray],
    crs: dict[str, np.ndarray],
    tr: dict[str, np.ndarray],
    p: SynthParams,
    cen: Centres,
    rows: _Rows,
    sl: slice,
) -> None:
    """Temperature on a charting grid and at every grade change; ASTCT support rows during CRS."""
    n = len(idx)
    tm, gm = tr["tm"][sl], crs["gm"][sl]
    onset = tr["tm"][sl][:, 0]  # recorded (rounded) onset; NaN without CRS
    is_crs = crs["crs"][sl]
    t_death = tr["t_death"][sl]
    every = p.mess.temp_every_h
    grid = np.r_[np.arange(-24.0, 240.0 + 1e-9, every), np.arange(264.0, 336.0 + 1e-9, 24.0)]
    local = np.repeat(np.arange(n), len(grid))
    t = np.tile(grid, n)
    chg = ~np.isnan(tm)
    cl, cj = np.nonzero(chg)
    local = np.r_[local, cl]
    t = np.r_[t, tm[cl, cj]]
    alive = np.isnan(t_death[local]) | (t < t_death[local])
    local, t = local[alive], t[alive]
    key = local.astype(np.int64) * 10_000_000 + np.round((t + 1000.0) * 10).astype(np.int64)
    _, first = np.unique(key, return_index=True)
    local, t = local[first], t[first]
    g = grade_at(tm, gm, local, t)
    res = tm[:, 7]
    in_crs_window = is_crs[local] & (t >= onset[local]) & ((t <= res[local]) | np.isnan(res[local]))
    waived = t >= np.nan_to_num(tr["t_waiver"][sl][local], nan=np.inf)
    m = len(t)
    # temperature (°C), fever ≥38.1 whenever the grade needs it
    fever = 38.1 + np.abs(rng.normal(0.5 + 0.3 * g, 0.5))
    afebrile_ok = (g >= 2) & waived & (rng.random(m) < 0.6)
    pre = is_crs[local] & (t < onset[local]) & (t >= onset[local] - 24.0)
    normal = np.where(pre, rng.normal(37.5, 0.25, m), rng.normal(36.9, 0.3, m))
    normal = np.clip(normal, 35.8, 37.8)
    temp = np.where((g >= 1) & ~afebrile_ok, np.minimum(fever, 41.5), normal)
    temp = np.where(afebrile_ok, np.clip(rng.normal(37.3, 0.3, m), 36.0, 37.8), temp)
    c = pt["c"][sl][local]
    tunit = np.array([_UNIT_CODE[x] for x in cen.units["temperature"]])[c]
    value, unit, qual = _report(rng, "temperature", temp, tunit, p, 1)
    rows.add("temperature", idx[local], t, value, unit, qual)
    # support rows: every charting time within CRS and at each change (zeros at resolution)
    s = in_crs_window
    ls, ts, gs = local[s], t[s], g[s]
    ms = len(ts)
    pat_u = rng.random((n, 3))  # per-patient driver of grade 2, 3, 4 (hypotension/hypoxia/both)
    drv = np.zeros(ms, dtype=np.int8)
    for lvl, cuts in ((2, (0.5, 0.8)), (3, (0.5, 0.75)), (4, (0.5, 0.8))):
        uu = pat_u[ls, lvl - 2]
        d = np.where(uu < cuts[0], 0, np.where(uu < cuts[1], 1, 2))
        drv = np.where(gs == lvl, d, drv)
    hypo = (drv == 0) | (drv == 2)
    hypox = (drv == 1) | (drv == 2)
    u = rng.random(ms)
    vaso = np.zeros(ms, dtype=np.int8)
    vaso = np.where((gs == 3) & hypo, 1, vaso)
    vaso = np.where((gs == 4) & hypo, np.where(u < 0.7, 2, 3), vaso)
    vaso = np.where((gs == 4) & ~hypo & (u < 0.5), 1, vaso)
    hyp = ((gs == 2) & hypo) | (vaso >= 1) | ((gs == 3) & ~hypo & (u < 0.3))
    dev = np.full(ms, int(OxygenDevice.ROOM_AIR), dtype=np.int8)
    u2 = rng.random(ms)
    dev = np.where(
        (gs == 2) & hypox,
        np.where(u2 < 0.2, int(OxygenDevice.BLOW_BY), int(OxygenDevice.NASAL_CANNULA)),
        dev,
    )
    dev = np.where(
        (gs == 3) & hypox,
        np.where(u2 < 0.3, int(OxygenDevice.FACEMASK), int(OxygenDevice.HIGH_FLOW_NASAL_CANNULA)),
        dev,
    )
    dev = np.where((gs == 3) & ~hypox & (u2 < 0.3), int(OxygenDevice.NASAL_CANNULA), dev)
    dev = np.where(
        (gs == 4) & hypox,
        np.where(
            u2 < 0.6,
            int(OxygenDevice.NONINVASIVE_POSITIVE_PRESSURE),
            int(OxygenDevice.MECHANICAL_VENTILATION),
        ),
        dev,
    )
    dev = np.where((gs == 4) & ~hypox & (u2 < 0.3), int(OxygenDevice.HIGH_FLOW_NASAL_CANNULA), dev)
    u3 = rng.random(ms)
    flow = np.where(
        dev == int(OxygenDevice.NASAL_CANNULA),
        np.round((0.5 + u3 * 4.5) * 2.0) / 2.0,  # 0.5–5 L/min: low flow
        np.round(8.0 + u3 * 32.0),  # high-flow nasal cannula
    )
    pid = idx[ls]
    zeros = np.zeros(ms, dtype=np.int8)
    for analyte, val in (
        ("hypotension", hyp.astype(float)),
        ("vasopressors", vaso.astype(float)),
        ("oxygen_device", dev.astype(float)),
    ):
        code = np.full(ms, _UNIT_CODE[ANALYTES[analyte].canonical_unit])
        rows.add(analyte, pid, ts, val, code, zeros)
    has_flow = (dev == int(OxygenDevice.NASAL_CANNULA)) | (
        dev == int(OxygenDevice.HIGH_FLOW_NASAL_CANNULA)
    )
    rows.add(
        "oxygen_flow",
        pid[has_flow],
        ts[has_flow],
        flow[has_flow],
        np.full(int(has_flow.sum()), _UNIT_CODE["L/min"]),
        zeros[has_flow],
    )


# --- events -------------------------------------------------------------------------------------
def _events(
    pt: dict[str, np.ndarray],
    crs: dict[str, np.ndarray],
    tr: dict[str, np.ndarray],
    tox: dict[str, np.ndarray],
    p: SynthParams,
    ids: np.ndarray,
) -> pd.DataFrame:
    tp = p.treatment
    n = len(pt["c"])
    blocks: list[tuple[np.ndarray, np.ndarray, str, np.ndarray | None, np.ndarray | None]] = []
    allp = np.arange(n)

    def add(
        times: np.ndarray,
        event: str,
        grade: np.ndarray | None = None,
        dose: np.ndarray | float | None = None,
    ) -> None:
        ok = ~np.isnan(times)
        g = None if grade is None else np.broadcast_to(grade, (n,))[ok]
        d = None if dose is None else np.broadcast_to(np.asarray(dose, dtype=float), (n,))[ok]
        blocks.append((allp[ok], times[ok], event, g, d))

    tm, gm = tr["tm"], crs["gm"]
    add(tm[:, 0], "crs_onset", gm[:, 0])
    for j in range(tm.shape[1]):
        add(tm[:, j], "crs_grade", gm[:, j])
    add(tm[:, 7], "crs_resolved")
    died_crs = tr["died_crs"]
    add(np.where(died_crs, tr["t_death"], np.nan), "crs_grade", np.full(n, 5))
    for j in range(3):
        add(tr["dose_t"][:, j], "tocilizumab", None, tr["toci_mgkg"])
    add(
        np.where(tr["silt_first"], tr["t_first"], np.nan),
        "siltuximab",
        None,
        tp.siltuximab_mg_per_kg,
    )
    agent, t_2l = tr["agent"], tr["t_2l"]
    add(np.where(agent == 0, t_2l, np.nan), "siltuximab", None, tp.siltuximab_mg_per_kg)
    add(np.where(agent == 1, t_2l, np.nan), "anakinra", None, tp.anakinra_mg_per_kg)
    add(
        np.fmin(np.where(agent == 2, t_2l, np.nan), tr["t_steroid_add"]),
        "corticosteroids",
        None,
        tp.steroid_mg_per_kg,
    )
    add(np.where(tox["icans"], tox["t_icans"], np.nan), "icans", tox["icans_grade"])
    add(tox["t_icu"], "icu_admission")
    add(tox["t_icu_out"], "icu_discharge")
    add(tr["t_death"], "death")
    pid = np.concatenate([b[0] for b in blocks])
    t = np.concatenate([b[1] for b in blocks])
    ev = np.concatenate([np.full(len(b[0]), _EVENT_CODE[b[2]], dtype=np.int16) for b in blocks])
    grade = np.concatenate([b[3] if b[3] is not None else np.full(len(b[0]), -1) for b in blocks])
    dose = np.concatenate(
        [b[4] if b[4] is not None else np.full(len(b[0]), np.nan) for b in blocks]
    )
    order = np.lexsort((_EVENT_ORDER[ev], t, pid))
    pid, t, ev, grade, dose = pid[order], t[order], ev[order], grade[order], dose[order]
    return pd.DataFrame(
        {
            "patient_id": pd.Categorical.from_codes(pid, categories=ids),
            "hours_from_infusion": t,
            "event": pd.Categorical.from_codes(ev, categories=list(EVENTS)),
            "grade": pd.arrays.IntegerArray(np.maximum(grade, 0).astype("int64"), grade < 0),
            "dose_mg_per_kg": dose,
        }
    )


# --- entry point --------------------------------------------------------------------------------
def patient_ids(n: int, seed: int) -> np.ndarray:
    """Opaque identifiers such as ``S7-000123`` (seed-prefixed so cohorts never collide)."""
    width = max(6, len(str(n - 1)))
    return np.array([f"S{seed}-{i:0{width}d}" for i in range(n)], dtype=object)


@dataclass(frozen=True)
class PatientStages:
    """Every patient-level stage of one simulation, before the measurement rows are drawn."""

    params: SynthParams
    meas_ss: np.random.SeedSequence
    centres: Centres
    patients: dict[str, np.ndarray]
    latent: dict[str, np.ndarray]
    course: dict[str, np.ndarray]
    treatment: dict[str, np.ndarray]
    toxicity: dict[str, np.ndarray]
    ids: np.ndarray


def patient_stages(
    n: int,
    seed: int,
    params: SynthParams | None,
    *,
    centers: int,
    center_shift: float,
    new_center: bool,
    ari_fraction: float | None,
) -> PatientStages:
    """The patient-level stages shared by ``simulate`` and the chunked writer (same RNG streams)."""
    p = params or DEFAULT
    ss = np.random.SeedSequence(seed)
    rngs = {
        name: np.random.Generator(np.random.PCG64(s))
        for name, s in zip(STAGES, ss.spawn(len(STAGES)), strict=True)
    }
    cen = make_centres(p, centers, center_shift, new_center, ari_fraction)
    pt = _patients(rngs["patients"], n, p, cen)
    lat = _latent(rngs["latent"], pt, p, cen)
    crs = _course(rngs["course"], lat, p)
    tr = _treatment(rngs["treatment"], pt, lat, crs, p, cen)
    tox = _toxicity(rngs["toxicity"], lat, crs, tr, p)
    return PatientStages(
        p, np.random.SeedSequence([seed, 1]), cen, pt, lat, crs, tr, tox, patient_ids(n, seed)
    )


def simulate(
    n: int,
    seed: int = 7,
    params: SynthParams | None = None,
    *,
    centers: int = 4,
    center_shift: float = 1.0,
    new_center: bool = False,
    ari_fraction: float | None = None,
) -> SyntheticCohort:
    """Simulate ``n`` infusions; same arguments → identical frames.

    ``centers`` training centres (C01…) with differences scaled by ``center_shift``;
    ``new_center`` puts every patient in one unseen centre (external validation);
    ``ari_fraction`` overrides the share of ARI-0001 infusions.
    """
    st = patient_stages(
        n,
        seed,
        params,
        centers=centers,
        center_shift=center_shift,
        new_center=new_center,
        ari_fraction=ari_fraction,
    )
    p, cen, ids = st.params, st.centres, st.ids
    pt, lat, crs, tr, tox = st.patients, st.latent, st.course, st.treatment, st.toxicity
    chunks = [chunk for _, chunk in measurement_chunks(st, CHUNK)]
    measurements = _assemble_measurements(chunks, ids)
    events = _events(pt, crs, tr, tox, p, ids)
    patients = _patient_frame(pt, cen, ids)
    truth = _truth(pt, lat, crs, tr, tox, p, cen, ids)
    return SyntheticCohort(patients, measurements, events, truth, p)


def measurement_chunks(
    st: PatientStages, block: int
) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
    """Each block of ``block`` patients with its measurement rows in canonical order, drawn
    from the block's own stream of ``st.meas_ss`` — the one loop behind :func:`simulate`
    (``block = CHUNK``) and the chunked writer, so both draw the same values."""
    n = len(st.ids)
    for bi, s in enumerate(st.meas_ss.spawn((n + block - 1) // block)):
        sl = slice(bi * block, min(n, (bi + 1) * block))
        rows = _Rows([], [], [], [], [], [])
        rng = np.random.Generator(np.random.PCG64(s))
        _measurements(
            rng, sl, st.patients, st.latent, st.course, st.treatment, st.params, st.centres, rows
        )
        chunk = _sorted_chunk(rows)
        del rows  # the unsorted pieces; the chunk's arrays go as _assemble_measurements pops them
        yield sl, chunk


def _sorted_chunk(rows: _Rows) -> dict[str, np.ndarray]:
    """Concatenate one chunk's rows in canonical order (patient, time, analyte name).

    One int64 key replaces a three-way lexsort (3–5× faster): times are on a 0.1 h grid, so
    patient · 2²¹ + (10·t + 10⁴) · 2⁵ + analyte rank is exact and ordered.
    """
    pid = np.concatenate(rows.pid)
    t = np.concatenate(rows.t)
    an = np.concatenate(rows.analyte)
    tenths = np.round(t * 10.0).astype(np.int64) + 10_000
    key = (pid.astype(np.int64) << 21) | (tenths << 5) | _ANALYTE_RANK[an]
    order = np.argsort(key, kind="stable")
    return {
        "pid": pid[order],
        "t": t[order],
        "analyte": an[order],
        "value": np.concatenate(rows.value)[order],
        "unit": np.concatenate(rows.unit)[order],
        "qual": np.concatenate(rows.qual)[order],
    }


def _assemble_measurements(chunks: list[dict[str, np.ndarray]], ids: np.ndarray) -> pd.DataFrame:
    # one column at a time, releasing the chunk pieces as we go (peak ≈ data + one column)
    col = {k: np.concatenate([c.pop(k) for c in chunks]) for k in list(chunks[0])}
    return pd.DataFrame(
        {
            "patient_id": pd.Categorical.from_codes(col["pid"], categories=ids),
            "hours_from_infusion": col["t"],
            "analyte": pd.Categorical.from_codes(col["analyte"], categories=list(_ANALYTE_KEYS)),
            "value": col["value"],
            "unit": pd.Categorical.from_codes(col["unit"], categories=list(_UNITS)),
            "qualifier": pd.Categorical.from_codes(col["qual"] - 1, categories=["<", ">"]),
        },
        copy=False,
    )


def _patient_frame(pt: dict[str, np.ndarray], cen: Centres, ids: np.ndarray) -> pd.DataFrame:
    cols = [c.name for c in PATIENTS.columns]
    frame = pd.DataFrame(
        {
            "patient_id": ids,
            "center": np.asarray(cen.codes, dtype=object)[pt["c"]],
            "age_years": pt["age"],
            "sex": np.where(pt["male"], "M", "F"),
            "weight_kg": pt["weight"],
            "product": np.where(pt["ari"], "ARI-0001", "tisagenlecleucel"),
            "prior_hsct": pt["hsct"],
            "prior_blinatumomab": pt["blin"],
            "prior_inotuzumab": pt["ino"],
            "marrow_blasts_pct": pt["blasts"],
            "extramedullary_disease": pt["emd"],
            "lymphodepletion": np.array(["flu_cy", "other", "none"], dtype=object)[pt["ld"]],
            "car_t_dose": pt["dose"],
        }
    )
    return frame[cols]


def _truth(
    pt: dict[str, np.ndarray],
    lat: dict[str, np.ndarray],
    crs: dict[str, np.ndarray],
    tr: dict[str, np.ndarray],
    tox: dict[str, np.ndarray],
    p: SynthParams,
    cen: Centres,
    ids: np.ndarray,
) -> pd.DataFrame:
    """Latent variables and true probabilities per patient (never a feature)."""
    lp = p.latent
    tau = np.asarray(lp.tau)
    mg = lat["mean_g"]
    sf = lambda k: ndtr((mg - tau[k]) / lp.sigma_out)  # noqa: E731  P(G ≥ τ_k | E, H)
    p_any, p2, p3, p5 = sf(0), sf(1), sf(2), sf(4)
    # P(refractory | latent, treated): the latent draw, or death from CRS (always refractory).
    p_treated = p3 + (p2 - p3) * tr["p_treat2"]
    p_ref = tr["p_ref"] + (1.0 - tr["p_ref"]) * p5 / np.maximum(p_treated, 1e-12)
    toci = tr["toci"]
    tm = tr["tm"]
    grade = np.where(tr["died_crs"], 5, crs["geff"])
    return pd.DataFrame(
        {
            "patient_id": ids,
            "center": np.asarray(cen.codes, dtype=object)[pt["c"]],
            "burden_score": np.round(lat["b"], 6),
            "baseline_inflammation": np.round(lat["z"], 6),
            "expansion_intensity": np.round(lat["e"], 6),
            "macrophage_activation": np.round(lat["m"], 6),
            "hlh_like": lat["h"].astype(int),
            "severity_liability": np.round(lat["g"], 6),
            "p_any_crs": np.round(p_any, 6),
            "p_severe_crs": np.round(p3, 6),
            "p_toci_refractory": np.round(np.where(toci, p_ref, np.nan), 6),
            "crs_max_grade": grade.astype(int),
            "severe_crs": (grade >= 3).astype(int),
            "latent_onset_h": np.round(crs["onset"], 1),
            "time_grade3_h": tm[:, 2],
            "first_line_agent": np.where(
                toci, "tocilizumab", np.where(tr["silt_first"], "siltuximab", "")
            ),
            "first_anti_il6_h": tr["t_first"],
            "toci_refractory": np.where(toci, tr["refractory"].astype(float), np.nan),
            "icans": tox["icans"].astype(int),
            "p_icans": np.round(tox["p_icans"], 6),
        }
    )
