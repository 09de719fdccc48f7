"""Cytokine and lab trajectories and their measurement rows (schedule, units, limits, noise).

log x(t) = log base + A·rise(t)·decay(t) + noise, with the amplitude A rising with the latent
expansion ``E`` (and ``M``, ``H``); cytokines rise before fever. Absolute levels are calibrated
to published peak levels by maximum grade (``params.TARGETS``: car22 CD22 cohort as the anchor
that gives pg/mL, Teachey 2016 / Lee 2015 directions). After tocilizumab IL-6 rises (receptor
blockade; a <4-fold rise marks failure, Zhang 2022) and CRP falls in responders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from features.synth.centres import CYTOKINES, LABS, Centres
from features.synth.course import grade_at
from features.synth.params import AnalyteDynamics, SynthParams
from features.vocabulary import ANALYTES, conversion

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


_UNITS: tuple[str, ...] = tuple(
    sorted({u for a in ANALYTES.values() for u in a.units}, key=lambda s: (len(s), s))
)
_UNIT_CODE = {u: i for i, u in enumerate(_UNITS)}
_ANALYTE_KEYS: tuple[str, ...] = tuple(ANALYTES)
_ANALYTE_CODE = {a: i for i, a in enumerate(_ANALYTE_KEYS)}
_ANALYTE_RANK = np.argsort(np.argsort(np.array(_ANALYTE_KEYS)))  # canonical (text) order


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


def lab_rows(
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
    """Rows of labs and cytokines for the patients in ``sl``."""
    dp, mp = p.dynamics, p.mess
    idx = np.arange(sl.start, sl.stop)
    n = len(idx)
    c = pt["c"][sl]
    e, m, h = lat["e"][sl], lat["m"][sl], lat["h"][sl]
    storm = lat["storm"][sl]
    onset = crs["onset"][sl]
    is_crs = tr["rmax"][sl] >= 1
    t_death = tr["t_death"][sl]
    tm, gm = tr["tm"][sl], tr["gm"][sl]
    width = dp.rise_width_h * np.exp(-dp.rise_width_e * e)
    dur = dp.storm_duration_h * np.exp(dp.storm_duration_e * e) * np.where(h, 2.0, 1.0)
    t_first = tr["t_first"][sl]
    toci = tr["toci"][sl]
    refractory = tr["refractory"][sl]
    responder = tr["responder"][sl]

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
            + spec.amp_e * storm
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
