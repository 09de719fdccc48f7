"""Centre characters: size, case mix, assay offsets, units, panels and treatment practice.

Centres differ in when they give tocilizumab: a *pre-emptive* centre gives it at the first
CRS grade (persistent fever) to patients with high marrow burden (≥40% blasts), as in the CHOP
pilot (Kadauke S et al., JCO 2021;39:920, NCT02906371); the others wait for grade 2. Because
treatment acts on the course (``features.synth.treatment``), this changes a centre's outcomes:
the transport problem a model trained elsewhere meets. The 'new' centre (``--new-center``) is
pre-emptive by default (``centres.new_centre_preemptive``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from features.synth.params import SynthParams
from features.vocabulary import ANALYTES

CYTOKINES = ("il6", "ifng", "sgp130", "sil6r", "il1ra", "il10", "mcp1", "il2", "tnfa")
LABS = ("crp", "ferritin", "ldh", "platelets", "creatinine", "fibrinogen")

# Alternative units: per-centre conventions and occasional single rows (realistic spellings).
_CENTRE_UNITS = {
    "crp": ("p_crp_mg_dl", "mg/dL"),
    "creatinine": ("p_creatinine_umol", "µmol/L"),
    "temperature": ("p_temperature_f", "°F"),
    "ldh": ("p_ldh_ukat", "µkat/L"),
    "platelets": ("p_platelets_ul", "/µL"),
}


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
    preempt_blasts: np.ndarray  # blasts (%) from which the centre treats at grade 1 (inf: never)


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
    names = ("size", "burden", "ari", "e", "treat", "silt", "assay", "units", "lim", "lod", "pre")
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
        raw["pre"].append(rng.random())
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
    preemptive = [
        (k == centers and cp.new_centre_preemptive) or (shifted and raw["pre"][k] < cp.p_preemptive)
        for k in sel
    ]

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
        preempt_blasts=np.where(preemptive, cp.preempt_blasts, np.inf),
    )
