"""Calibration parameters of the synthetic cohort generator, each with its source.

Every number the generator uses lives here, with the publication it comes from or the word
INFERENCE when it is an assumption (``../shared/clinical-facts.md`` §1–2 lists the anchors and
their limits). Intercepts and thresholds of the latent model are CALIBRATED: they were tuned by
simulation (``python -m features.synth.calibrate``) so that a default cohort of n=20,000 lands on
the published marginals in :data:`TARGETS`.

Real-scale targets by maximum grade (``*_peak_g1/g2/g3``; issue 13, R4). Published paediatric
CD19 median peaks of IFN-γ, IL-10 and CRP by grade were not retrieved (``clinical-facts.md``
§1.6 and its open list), so the car22 CD22 cohort (Lichtenstein 2021; re-computed from the data
by ``cohort describe``, ``tests/features/test_synth.py``) is the one numeric anchor, and its
caveats set the bands:

- ÷3…×3 around the car22 median, as for IL-6: its grade groups hold 12–21 patients;
- IFN-γ ÷8 below (as the grade ≥3 target already had): a CD22 product in an HLH-rich cohort
  (carHLH is IFN-γ-driven) very likely runs higher IFN-γ than CD19 products; car22's grade 2
  and ≥3 medians sit at its assay ceiling (upper quartiles 2,880–2,900 pg/mL), so they bound
  the true medians from below and the upper limit stays ×3;
- CRP (mg/L) ÷3…×3: car22 drew CRP only around days 0, 7, 14, 21 and 28, so its peaks miss the
  day 1–5 maximum and run low; peak CRP rises with grade (Lee 2015) but is weakly tied to
  severity (Teachey 2016), so the bands overlap between grades.

Overrides come from a YAML file with the same nesting as :class:`SynthParams`, e.g.::

    cohort:
      p_ari: 0.5
    latent:
      e_ari: -1.2

Unknown keys and bad values are rejected with a message naming the key (``CrsRiskError``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from features.errors import CrsRiskError

# --- sources -----------------------------------------------------------------------------------
SEED = "Galán-Gómez 2025, Exp Hematol Oncol 14:49 (abstract; PMID 40176077), 118 patients"
LEVINE = "Levine 2021, JITC 9:e002287 (pooled ELIANA+ENSIGN tisagenlecleucel, Tables 1 and 5)"
ELIANA = "Maude 2018 NEJM (ELIANA), eviQ summary: age 11 y (3–23), 61% prior HSCT, Flu/Cy 96%"
PRWCC = "McNerney 2023, Blood Adv 7:2758 (PRWCC tisagenlecleucel, Table 2)"
KADAUKE = "Kadauke 2021, JCO (CHOP; ≥40% blasts = high tumour burden, 21% of cohort)"
SJD = "Caballero-Bellón 2023, Front Immunol 14:1219289 (CART-PICU, Sant Joan de Déu)"
ARI = "Ortiz-Maldonado 2021, Mol Ther 29:636 (CART19-BE-01, ARI-0001 split dose)"
REGISTRY = "real-world tisagenlecleucel registry tables (ASH view-large 12872923 / 12880307)"
PENNISI = "Pennisi 2021, Blood Adv 5:3397 (m-EASIX = LDH × CRP[mg/dL] / platelets)"
PED_EASIX = "pediatric m-EASIX, Blood Adv 2025;9:270 (AUC up to 0.906)"
TEACHEY = "Teachey 2016, Cancer Discov 6:664 (early cytokines predict severe CRS)"
ZHOU = "Zhou 2023, Br J Haematol 202:517 (day 1–2 cytokine nomogram, AUC 0.88–0.91)"
SU = "Su 2024, Front Immunol 15:1450173 (IL-2 rises earliest; IL-6, IFN-γ, IL-10)"
LEE2015 = "Lee 2015, Lancet (IL-6 vs CRP r=0.81; peak CRP rises with grade)"
ZHANG = "Zhang 2022, Front Immunol 13:914959 (<4-fold IL-6 rise after tocilizumab → failure)"
ASTCT = "Lee DW 2019, BBMT 25:625 (ASTCT consensus CRS grading)"
TOCI_LABEL = "tocilizumab label: 12 mg/kg if <30 kg, 8 mg/kg if ≥30 kg, max 800 mg"
STJUDE = "St Jude carHLH series, Br J Haematol 2021;194:701"
CAR22 = (
    "car22 (Lichtenstein 2021, Blood 138:2469; CD22 CAR T, daily sampling, HLH-rich): median "
    "peak IL-6 43/301/880, IFN-γ 364/2,761/2,391, IL-10 61/195/391 pg/mL at max grade 1/2/≥3"
)
CAR22_CRP = (
    "car22 (Lichtenstein 2021; CRP drawn only around days 0, 7, 14, 21, 28): median peak CRP "
    "65/91/152 mg/L at max grade 1/2/≥3; " + LEE2015
)
FITZGERALD = "Fitzgerald 2017, Crit Care Med 45:e124 (CHOP, grade 3–4 peak ferritin 60,214)"
ASTCT_MGMT = (
    "Lee DW 2019 BBMT 25:625 / Neelapu 2018 Nat Rev Clin Oncol 15:47 (tocilizumab ± "
    "corticosteroids from grade 3; steroids for ICANS)"
)
INF = "INFERENCE (clinical-facts.md §2; assumption, replace when data arrive)"
CAL = "CALIBRATED by simulation (python -m features.synth.calibrate) to TARGETS"
TUNED = "tuned by simulation so that the n=20,000 describe() marginals hit TARGETS"
DISC = (
    "tuned by simulation to the discrimination targets (m-EASIX AUROC 0.70–0.82, Pennisi 2021; "
    "early cytokines 0.80–0.93 at 48–72 h, Teachey 2016 / Zhou 2023; oracle ≤ ≈0.92)"
)


def P(default: Any, description: str, source: str) -> Any:
    """A parameter field carrying its description and its source."""
    return Field(default, description=description, json_schema_extra={"source": source})


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CohortParams(_Section):
    """Patient characteristics and pre-infusion disease burden."""

    age_mean: float = P(11.0, "Age, truncated-normal mean (y)", ELIANA)
    age_sd: float = P(5.5, "Age, truncated-normal SD (y)", INF)
    age_min: float = P(1.0, "Youngest age (y)", "issue: age 1–25")
    age_max: float = P(25.0, "Oldest age (y)", "issue: age 1–25")
    p_male: float = P(0.56, "Share of males", STJUDE)
    weight_scale: float = P(
        1.06, "Weight relative to CDC median weight-for-age (34% >50 kg in trials)", LEVINE
    )
    weight_sigma: float = P(0.2, "Log-normal SD of weight around median weight-for-age", INF)
    p_ari: float = P(0.35, "Share of ARI-0001 infusions (rest tisagenlecleucel)", INF)
    p_prior_hsct: float = P(0.6, "Prior allogeneic HSCT", ELIANA)
    p_prior_blinatumomab: float = P(0.35, "Prior blinatumomab", INF)
    p_prior_inotuzumab: float = P(0.15, "Prior inotuzumab ozogamicin", INF)
    burden_weights: tuple[float, float, float] = P(
        (0.45, 0.35, 0.20),
        "Marrow blasts mixture: <5% (MRD-level), 5–40% (log-uniform), ≥40% (uniform 40–99)",
        KADAUKE + "; " + SJD,
    )
    p_zero_blasts: float = P(0.5, "Share of the <5% group with 0% blasts", SJD)
    p_extramedullary: float = P(0.15, "Extramedullary disease", INF)
    lymphodepletion_weights: tuple[float, float, float] = P(
        (0.96, 0.03, 0.01), "flu_cy / other / none", ELIANA
    )
    tisa_dose_median: float = P(3.0, "Tisagenlecleucel dose median (10^6/kg)", LEVINE)
    tisa_dose_sigma: float = P(0.35, "Tisagenlecleucel dose log-SD", INF)
    tisa_dose_range: tuple[float, float] = P((0.2, 5.4), "Tisagenlecleucel dose range", LEVINE)
    ari_dose_median: float = P(1.0, "ARI-0001 dose median (10^6/kg, split 10/30/60%)", ARI)
    ari_dose_sigma: float = P(0.3, "ARI-0001 dose log-SD", INF)
    ari_dose_range: tuple[float, float] = P((0.4, 5.0), "ARI-0001 dose range", ARI)


class BaselineLabParams(_Section):
    """Pre-lymphodepletion labs as log-linear functions of burden ``b`` and inflammation ``Z``.

    ``b`` = log1p(blasts %)/log1p(100) in [0, 1]; ``Z`` ~ N(0, 1) is a latent baseline
    inflammatory state. Medians for b=0 and slopes follow clinical-facts §2.1 (INFERENCE, with
    published directions: higher LDH/CRP/ferritin and lower platelets with burden and in
    HLH-like toxicity, PRWCC; low platelets and high CRP individually predict severe CRS, Pennisi).
    """

    ldh_median: float = P(300.0, "LDH median at b=0 (U/L)", INF)
    ldh_b: float = P(0.6, "log-LDH per unit burden (≈×1.8 at high burden)", INF)
    ldh_z: float = P(0.15, "log-LDH per SD of Z", INF)
    ldh_sigma: float = P(0.45, "log-LDH residual SD", INF)
    crp_median: float = P(4.0, "CRP median at b=0 (mg/L)", INF)
    crp_b: float = P(1.1, "log-CRP per unit burden (≈×3 at high burden)", INF)
    crp_z: float = P(0.45, "log-CRP per SD of Z", INF)
    crp_sigma: float = P(0.9, "log-CRP residual SD", INF)
    ferritin_median: float = P(700.0, "Ferritin median at b=0 (ng/mL)", INF)
    ferritin_b: float = P(0.9, "log-ferritin per unit burden", INF)
    ferritin_z: float = P(0.3, "log-ferritin per SD of Z", INF)
    ferritin_hsct: float = P(0.5, "log-ferritin added by prior HSCT (transfusions)", INF)
    ferritin_sigma: float = P(0.6, "log-ferritin residual SD", INF)
    platelets_median: float = P(140.0, "Platelets median at b=0 (10^9/L)", INF)
    platelets_b: float = P(-0.8, "log-platelets per unit burden (≈÷2.2 at high burden)", INF)
    platelets_z: float = P(-0.2, "log-platelets per SD of Z", INF)
    platelets_sigma: float = P(0.6, "log-platelets residual SD", INF)
    creatinine_intercept: float = P(0.25, "Creatinine at age 0 (mg/dL)", INF)
    creatinine_per_year: float = P(0.025, "Creatinine increase per year of age (mg/dL)", INF)
    creatinine_sigma: float = P(0.15, "log-creatinine residual SD", INF)
    fibrinogen_median: float = P(3.0, "Fibrinogen median (g/L)", INF)
    fibrinogen_sigma: float = P(0.2, "log-fibrinogen residual SD", INF)
    ld_platelet_drop: float = P(-0.45, "log-platelets change lymphodepletion → day 0", INF)
    ld_crp_change: float = P(0.1, "log-CRP change lymphodepletion → day 0", INF)
    day0_sigma: float = P(0.25, "log residual SD of day-0 labs around pre-LD values", INF)


class LatentParams(_Section):
    """The latent model: expansion/inflammation intensity ``E`` and the severity liability.

    E = e0 + e_b·b + e_z·Z + e_ari·ARI + e_dose·ln(dose/3) + e_ld·[Flu/Cy] + centre + σ_η·η.
    Max ASTCT grade = ordinal(G), G = E + δ_H·H + σ_out·ν, with thresholds ``tau``: ν is the
    outcome's own randomness (no measurement sees it), so ``p_severe_crs`` = P(G ≥ τ3 | E, H) is
    the best any model can do. H (HLH-like phenotype) ~ Bernoulli(logistic(h0 + h_e·E + h_m·M)),
    M ~ N(0,1) an IL-6-independent macrophage-activation axis (ferritin, IFN-γ, IL-1RA).
    """

    e0: float = P(-1.45, "Intercept of E (its level is absorbed by the thresholds tau)", INF)
    e_b: float = P(3.0, "E per unit burden: severe risk tied to marrow burden", KADAUKE)
    e_z: float = P(0.45, "E per SD of baseline inflammation Z", PENNISI)
    e_ari: float = P(-0.3, "E shift for ARI-0001 (lower severe CRS than tisagenlecleucel)", ARI)
    e_dose: float = P(0.25, "E per log dose (higher dose → more CRS)", INF)
    e_ld: float = P(0.3, "E shift for Flu/Cy lymphodepletion", INF)
    sigma_eta: float = P(0.55, "SD of unobserved expansion biology η", DISC)
    sigma_out: float = P(0.9, "SD of outcome randomness ν (keeps the oracle imperfect)", DISC)
    storm_nu: float = P(
        0.95,
        "Share of the outcome randomness ν that the post-infusion cytokine storm reflects "
        "(early cytokines see it, a pre-infusion oracle does not)",
        DISC,
    )
    delta_h: float = P(0.6, "Severity liability added by the HLH-like phenotype", PRWCC)
    tau: tuple[float, float, float, float, float] = P(
        (-1.4726, -0.2332, 0.968, 2.0401, 4.1451),
        "Thresholds of the natural liability G for max grade ≥1, ≥2, ≥3, ≥4, 5 (death)",
        CAL + "; any CRS 82% (" + SEED + "); ≥3 18.5% under usual care (" + PRWCC + ")",
    )
    h0: float = P(-3.0154, "HLH-like intercept (≈14% of infusions)", CAL + "; " + PRWCC)
    h_e: float = P(1.3, "HLH-like per unit E", PRWCC)
    h_m: float = P(1.0, "HLH-like per SD of M", INF)
    m_b: float = P(0.8, "M per unit burden (carHLH higher with burden)", STJUDE)


class AnalyteDynamics(_Section):
    """Trajectory of one lab or cytokine (log scale) after infusion.

    log x(t) = log base + A·rise(t)·decay(t) + noise, A = softplus(amp0 + amp_e·E + amp_m·M +
    amp_h·H + amp_sd·ε). ``rise`` is logistic around the latent onset minus ``lead_h`` (cytokines
    rise before fever; IL-2 earliest, Su 2024); steeper when E is high. ``lod``/``uloq`` are assay
    limits in the canonical unit (values outside are reported at the limit with '<' / '>').
    """

    base: float
    base_sd: float = 0.5
    amp0: float = 0.5
    amp_e: float = 1.0
    amp_m: float = 0.0
    amp_h: float = 0.0
    amp_sd: float = 0.35
    lead_h: float = 12.0
    decay_h: float = 48.0
    noise: float = 0.25
    lod: float = 0.0
    uloq: float = 0.0
    decimals: int = 1


def _cytokines() -> dict[str, AnalyteDynamics]:
    # Directions from Teachey 2016, Su 2024 (IL-2 earliest), Wei 2023; absolute levels set so
    # that the median peak by maximum grade lands on the car22 anchor (IL-6 43/301/880, IFN-γ
    # ≥3 2,391, IL-10 ≥3 391 pg/mL; CAR22) — baselines above the normal range (IL-6 ≈8 pg/mL
    # in relapsed leukaemia after lymphodepletion, INFERENCE). IFN-γ and IL-10 at grades 1–2
    # (issue 13, R4: median peaks 44/223 and 20/84 pg/mL, below the by-grade bands) have a
    # higher baseline and amplitude intercept and a flatter slope in E, so grade 1–2 rise ≈2–3×
    # and grade ≥3 stays near its anchor (n=5,000, seeds 7/8: IFN-γ 112–122/448–460/2,573–2,645,
    # IL-10 40–45/141–142/547–556); early-cytokine AUROCs unchanged. The rise leads fever by ≈40 h
    # and noise was set so that early cytokines reach the published predictive AUROC at
    # 48–72 h (0.80–0.93; Teachey 2016, Zhou 2023) on the tasks' landmark design.
    def core(**kw: Any) -> AnalyteDynamics:
        return AnalyteDynamics(**{"amp_sd": 0.2, "base_sd": 0.3, "lead_h": 40.0, **kw})

    return {
        "il6": core(base=8.0, amp0=2.4, amp_e=1.15, amp_m=0.2, lod=1.5, uloq=5000.0),
        "ifng": core(base=30.0, amp0=2.15, amp_e=1.09, amp_m=0.47, lod=1.0, uloq=5000.0),
        "sgp130": AnalyteDynamics(
            base=280.0, base_sd=0.2, amp0=-0.6, amp_e=0.35, amp_sd=0.2, noise=0.12, lead_h=24.0,
            decimals=0,
        ),
        "sil6r": AnalyteDynamics(
            base=40.0, base_sd=0.25, amp0=-0.6, amp_e=0.35, amp_sd=0.2, noise=0.12, lead_h=24.0
        ),
        "il1ra": core(base=250.0, amp0=0.9, amp_e=1.3, amp_m=0.6, lod=20.0, decimals=0),
        "il10": core(base=10.0, amp0=2.13, amp_e=0.86, amp_m=0.26, lod=1.0),
        "mcp1": core(base=350.0, amp0=0.5, amp_e=0.75, amp_m=0.4, lod=5.0, decimals=0),
        "il2": core(base=1.5, amp0=0.4, amp_e=1.1, lod=1.0, lead_h=52.0),
        "tnfa": AnalyteDynamics(base=8.0, amp0=-0.3, amp_e=0.45, amp_sd=0.3, lod=1.0),
    }  # fmt: skip


def _labs() -> dict[str, AnalyteDynamics]:
    # Peak ferritin NLG 2,035 / HG 5,467 / HLH-like 92,204 ng/mL (PRWCC Table 2) set amp_h;
    # CRP tracks IL-6 with a lag (Lee 2015) and is only weakly tied to severity (Teachey 2016).
    return {
        "crp": AnalyteDynamics(
            base=0.0, amp0=2.2, amp_e=0.45, amp_sd=0.5, lead_h=-8.0, decay_h=36.0, lod=0.5
        ),
        "ferritin": AnalyteDynamics(
            base=0.0, amp0=0.4, amp_e=0.6, amp_m=0.35, amp_h=2.6, lead_h=-12.0, decay_h=120.0,
            noise=0.15, decimals=0,
        ),
        "ldh": AnalyteDynamics(
            base=0.0, amp0=-0.5, amp_e=0.35, amp_h=0.6, lead_h=-12.0, decay_h=96.0,
            noise=0.1, decimals=0,
        ),
        "platelets": AnalyteDynamics(
            base=0.0, amp0=-0.9, amp_e=-0.35, amp_h=-0.6, lead_h=-12.0, decay_h=168.0,
            noise=0.12, decimals=0,
        ),
        "creatinine": AnalyteDynamics(
            base=0.0, amp0=-1.6, amp_e=0.35, amp_h=0.4, lead_h=-12.0, decay_h=72.0,
            noise=0.08, decimals=2,
        ),
        "fibrinogen": AnalyteDynamics(
            base=0.0, amp0=0.3, amp_e=0.1, amp_h=-1.5, lead_h=-12.0, decay_h=96.0,
            noise=0.1, decimals=2,
        ),
    }  # fmt: skip


class DynamicsParams(_Section):
    """Shared timing of the cytokine storm and per-analyte trajectories."""

    rise_width_h: float = P(12.0, "Logistic width of the rise at E=0 (h)", INF)
    rise_width_e: float = P(0.25, "Relative steepening of the rise per unit E", TEACHEY)
    storm_duration_h: float = P(60.0, "Latent duration of the storm at E=0 (h)", INF)
    storm_duration_e: float = P(0.2, "Relative lengthening of the storm per unit E", PRWCC)
    toci_il6_fold: float = P(5.0, "Median IL-6 fold rise after tocilizumab (responders)", ZHANG)
    toci_il6_fold_refractory: float = P(0.4, "IL-6 fold multiplier when refractory", ZHANG)
    toci_sil6r_fold: float = P(2.5, "sIL-6R fold rise after tocilizumab", INF)
    toci_crp_drop: float = P(1.2, "log-CRP fall after tocilizumab in responders", INF)
    cytokines: dict[str, AnalyteDynamics] = P(_cytokines(), "Cytokine trajectories", INF)
    labs: dict[str, AnalyteDynamics] = P(_labs(), "Lab trajectories relative to baseline", INF)


class CourseParams(_Section):
    """CRS onset, escalation and duration (hours after infusion)."""

    onset_median_h: float = P(82.4, "Onset median at E=0 (h)", CAL + "; " + LEVINE)
    onset_e: float = P(0.45, "log-onset change per unit E (severe earlier)", PRWCC)
    onset_sigma: float = P(0.5, "log-onset residual SD", PRWCC)
    onset_min_h: float = P(4.0, "Earliest onset (h)", LEVINE)
    onset_at_grade2: float = P(0.15, "Share of grade ≥2 courses starting at grade 2", INF)
    esc12_median_h: float = P(14.0, "Onset → grade 2 median (h)", INF)
    esc23_median_h: float = P(16.0, "Grade 2 → 3 median (h)", INF)
    esc34_median_h: float = P(14.0, "Grade 3 → 4 median (h)", LEVINE)
    esc_e: float = P(0.6, "log-escalation time change per unit E", KADAUKE)
    esc_sigma: float = P(0.9, "log-escalation residual SD", INF)
    duration_h: tuple[float, float, float, float] = P(
        (72.0, 108.0, 168.0, 228.0),
        "CRS duration (onset → resolution) median by realised max grade 1, 2, 3, 4 (h): "
        "non-high-grade 3 d, high-grade 5 d (4–13), grade 3/4 10 d (4–36)",
        PRWCC + "; " + LEVINE,
    )
    duration_hlh_h: float = P(264.0, "Duration median of HLH-like CRS, grade ≥2 (h)", PRWCC)
    duration_sigma: float = P(0.45, "log-duration residual SD", PRWCC)
    responder_duration: float = P(
        0.8, "Duration multiplier when tocilizumab works (shorter CRS)", ZHANG
    )
    step_min_h: float = P(8.0, "Shortest time spent at each grade on the way down (h)", INF)
    peak_hold: float = P(0.4, "Share of the post-peak course spent at the peak grade", INF)
    death_median_h: float = P(96.0, "Grade 4 → death from CRS median (h)", INF)
    p_other_death: float = P(0.012, "Death from other causes within 30 days", LEVINE)
    follow_up_h: float = P(720.0, "Follow-up horizon (h)", INF)


class TreatmentParams(_Section):
    """Anti-IL-6 treatment, refractoriness and second-line agents."""

    p_treat_grade2: float = P(0.93, "Anti-IL-6 at grade 2", INF + "; " + SEED)
    p_preempt_given: float = P(
        1.0,
        "Pre-emptive tocilizumab given at the first grade where the practice calls for it",
        KADAUKE,
    )
    treat_delay_h: tuple[float, float] = P(
        (1.0, 12.0), "Grade 2 → first dose (uniform, h; persistent hypotension/hypoxia)", INF
    )
    preempt_delay_h: tuple[float, float] = P(
        (0.5, 4.0), "First grade → pre-emptive dose (uniform, h; persistent fever)", KADAUKE
    )
    grade3_delay_h: tuple[float, float] = P(
        (0.5, 3.0), "Grade 3 reached untreated → first dose (uniform, h)", ASTCT_MGMT
    )
    reduction_mean: tuple[float, float] = P(
        (5.0, 1.5),
        "Mean of the exponential drop of the severity liability when anti-IL-6 works, dosed "
        "at grade 1 / at grade ≥2 (earlier is stronger; grade 4 Penn in high burden: 27% "
        "pre-emptive vs 50% standard)",
        KADAUKE + "; " + TUNED,
    )
    p_silt_first: float = P(0.09, "Siltuximab first-line among anti-IL-6 treated", SEED)
    r0: float = P(-4.4858, "Refractory intercept", CAL + "; " + SEED + " (13/59 ≈ 22%)")
    r_b: float = P(0.6, "Refractory per unit burden", KADAUKE)
    r_h: float = P(1.5, "Refractory if HLH-like", PRWCC)
    r_m: float = P(0.5, "Refractory per SD of M (IL-6-independent inflammation)", INF)
    r_e: float = P(0.55, "Refractory per unit E (fast IL-6 kinetics)", ZHANG)
    response_h: tuple[float, float] = P((6.0, 22.0), "Dose → improvement in responders (h)", INF)
    second_line_h: tuple[float, float] = P(
        (24.0, 40.0), "First dose → second-line agent when refractory (h)", SEED
    )
    escalation_second_line_h: tuple[float, float] = P(
        (1.0, 6.0), "Escalation after the first dose → second-line agent (h)", ASTCT_MGMT
    )
    p_steroids_severe: float = P(
        0.93, "Corticosteroids for CRS once grade ≥3 (with the dose, or at grade 3)", ASTCT_MGMT
    )
    steroid_delay_h: tuple[float, float] = P(
        (0.5, 4.0), "Grade 3 after the first dose → corticosteroids (h)", ASTCT_MGMT
    )
    p_icans_steroids: float = P(0.85, "Corticosteroids for ICANS grade ≥2", ASTCT_MGMT)
    icans_steroid_delay_h: tuple[float, float] = P(
        (1.0, 12.0), "ICANS → corticosteroids (h)", ASTCT_MGMT
    )
    p_vasopressin_alone: float = P(
        0.15,
        "Grade 3 hypotension treated with vasopressin alone (ASTCT grade 3; features.grading "
        "counts it as grade 3, never toward grade 4's multiple vasopressors) (INFERENCE)",
        ASTCT,
    )
    p_vasopressin_added: float = P(
        0.3, "Vasopressin added to multiple vasopressors at grade 4 (does not count)", ASTCT
    )
    recovery_after_second_line_h: tuple[float, float] = P(
        (12.0, 48.0), "Second-line agent → first improvement (h)", INF
    )
    doses_refractory: tuple[float, float, float] = P(
        (0.1, 0.45, 0.45), "Tocilizumab 1/2/3 doses when refractory", TUNED + "; " + LEVINE
    )
    doses_responder_severe: tuple[float, float, float] = P(
        (0.5, 0.42, 0.08), "Tocilizumab 1/2/3 doses, responder with grade ≥3", TUNED + "; " + LEVINE
    )
    doses_responder: tuple[float, float, float] = P(
        (0.7, 0.27, 0.03), "Tocilizumab 1/2/3 doses, responder with grade 2", TUNED + "; " + LEVINE
    )
    second_dose_h: tuple[float, float] = P((8.0, 20.0), "First → second dose (h)", TOCI_LABEL)
    third_dose_h: tuple[float, float] = P((22.0, 34.0), "First → third dose (h)", TOCI_LABEL)
    second_line_weights: tuple[float, float, float] = P(
        (0.7, 0.15, 0.15),
        "Second-line agent after tocilizumab: siltuximab / anakinra / corticosteroids",
        SEED + " (all 13 refractory got siltuximab); " + SJD,
    )
    p_add_steroids: float = P(0.45, "Corticosteroids added to another second-line agent", LEVINE)
    toci_mg_per_kg: tuple[float, float] = P((12.0, 8.0), "Dose <30 kg / ≥30 kg", TOCI_LABEL)
    toci_max_mg: float = P(800.0, "Maximum single tocilizumab dose (mg)", TOCI_LABEL)
    siltuximab_mg_per_kg: float = P(11.0, "Siltuximab dose", "siltuximab label")
    anakinra_mg_per_kg: float = P(5.0, "Anakinra dose (pediatric high-dose)", INF)
    steroid_mg_per_kg: float = P(2.0, "Methylprednisolone dose", INF)


class ToxicityParams(_Section):
    """ICANS, ICU admission and their timing."""

    i0: float = P(-1.7011, "ICANS intercept", CAL + "; " + SEED + " (ICANS 22%)")
    i_severe: float = P(1.0, "ICANS if max CRS grade ≥3", PRWCC)
    i_h: float = P(0.6, "ICANS if HLH-like", PRWCC)
    i_e: float = P(0.35, "ICANS per unit E", INF)
    icans_onset_median_h: float = P(156.0, "ICANS onset median (h; day 6.5)", REGISTRY)
    icans_onset_sigma: float = P(0.35, "log-onset SD of ICANS", REGISTRY)
    icans_grade_weights: tuple[float, float, float, float] = P(
        (0.35, 0.25, 0.3, 0.1), "ICANS grade 1/2/3/4", REGISTRY + " (grade ≥3 ≈ 40% of ICANS)"
    )
    p_icu_by_grade: tuple[float, float, float, float, float] = P(
        (0.0, 0.03, 0.45, 0.9, 1.0), "ICU admission by max CRS grade 0–4", SJD
    )
    p_icu_icans3: float = P(0.8, "ICU admission for ICANS grade ≥3", SJD)
    icu_stay_after_h: tuple[float, float] = P((12.0, 72.0), "Grade ≤1 → ICU discharge (h)", SJD)


class CentreParams(_Section):
    """Centre-to-centre differences (case mix, assay offsets, practice, units).

    Effects of centre k are drawn from ``Generator(PCG64([seed, k]))``, so a centre keeps its
    character across cohorts; the continuous effects of the training centres are centred on
    their size-weighted mean (marginals stay on target) and everything is scaled by
    ``center_shift``. A 'new centre' (external validation) is centre K+1, not centred.
    """

    seed: int = P(2025, "Seed of the centre characters", INF)
    size_concentration: float = P(4.0, "Gamma shape of centre sizes", INF)
    burden_sd: float = P(0.4, "SD of log-odds shift of high burden", INF)
    ari_sd: float = P(1.0, "SD of log-odds shift of ARI-0001 use", INF)
    e_sd: float = P(0.1, "SD of centre effect on E (unmeasured practice)", INF)
    assay_sd: float = P(0.2, "SD of log assay offsets of cytokines", INF)
    lab_assay_sd: float = P(0.04, "SD of log assay offsets of labs", INF)
    treat_sd: float = P(0.5, "SD of log-odds shift of anti-IL-6 at grade 2", INF)
    silt_sd: float = P(0.6, "SD of log-odds shift of siltuximab first-line", INF)
    p_preemptive: float = P(
        0.35, "Share of centres giving pre-emptive tocilizumab at grade 1 to high burden", KADAUKE
    )
    preempt_blasts: float = P(
        40.0, "Marrow blasts (%) from which a pre-emptive centre treats at grade 1", KADAUKE
    )
    new_centre_preemptive: bool = P(
        True, "The new (external) centre gives pre-emptive tocilizumab", KADAUKE
    )
    p_crp_mg_dl: float = P(0.3, "Centre reports CRP in mg/dL", INF)
    p_creatinine_umol: float = P(0.4, "Centre reports creatinine in µmol/L", INF)
    p_temperature_f: float = P(0.2, "Centre reports temperature in °F", INF)
    p_ldh_ukat: float = P(0.15, "Centre reports LDH in µkat/L", INF)
    p_platelets_ul: float = P(0.15, "Centre reports platelets per µL", INF)
    p_limited_panel: float = P(0.3, "Centre measures only IL-6, IFN-γ, IL-10, IL-2", INF)
    p_high_lod: float = P(0.3, "Centre's cytokine assay has 3× higher detection limits", INF)
    limited_panel: tuple[str, ...] = P(
        ("il6", "ifng", "il10", "il2"), "Cytokines of a limited panel", SU
    )


class MessParams(_Section):
    """Measurement schedule and missingness."""

    p_visit_missing: float = P(0.06, "Scheduled draw missing at random", INF)
    p_row_missing: float = P(0.04, "Single analyte missing at random", INF)
    p_extra_draw_sick: float = P(0.85, "12/36/60 h draw taken when febrile or in CRS", INF)
    p_extra_draw_well: float = P(0.25, "12/36/60 h draw taken otherwise", INF)
    p_late_draw_well: float = P(0.55, "Draws after 72 h when never in CRS", INF)
    p_alt_unit_row: float = P(0.02, "Single rows reported in an alternative unit", INF)
    temp_every_h: float = P(12.0, "Temperature/support charting interval (h)", INF)


class SynthParams(_Section):
    """All parameters of the generator (defaults = the published calibration)."""

    cohort: CohortParams = CohortParams()
    baseline: BaselineLabParams = BaselineLabParams()
    latent: LatentParams = LatentParams()
    dynamics: DynamicsParams = DynamicsParams()
    course: CourseParams = CourseParams()
    treatment: TreatmentParams = TreatmentParams()
    toxicity: ToxicityParams = ToxicityParams()
    centres: CentreParams = CentreParams()
    mess: MessParams = MessParams()


DEFAULT = SynthParams()


def _merge(base: dict[str, Any], over: dict[str, Any], path: str) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in base:
            raise CrsRiskError(f"calibration override: unknown parameter {where!r}")
        if isinstance(base[key], dict) and isinstance(value, dict):
            out[key] = _merge(base[key], value, where)
        else:
            out[key] = value
    return out


def with_overrides(overrides: dict[str, Any], base: SynthParams = DEFAULT) -> SynthParams:
    """Parameters with nested ``overrides`` applied (unknown keys or bad values → CrsRiskError)."""
    merged = _merge(base.model_dump(), overrides, "")
    try:
        return SynthParams.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CrsRiskError(
            f"calibration override: {where}: {first['msg']} (got {first.get('input')!r})"
        ) from None


def load_params(path: str | os.PathLike[str] | None) -> SynthParams:
    """Default parameters, overridden by the YAML file at ``path`` when given."""
    if path is None:
        return DEFAULT
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CrsRiskError(f"{path}: calibration file not found") from None
    except yaml.YAMLError as exc:
        raise CrsRiskError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return DEFAULT
    if not isinstance(data, dict):
        raise CrsRiskError(f"{path}: expected a mapping of parameter sections at the top level")
    try:
        return with_overrides(data)
    except CrsRiskError as exc:
        raise CrsRiskError(f"{path}: {exc}") from None


# --- calibration targets ----------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """A published marginal or association the default cohort must reproduce.

    ``lo``/``hi`` is the tolerance band (inclusive); ``target`` the published value.
    """

    key: str
    label: str
    target: float
    lo: float
    hi: float
    source: str
    kind: str = "rate"  # rate | value | auroc

    @property
    def tolerance(self) -> str:
        return f"{self.lo:g}–{self.hi:g}"

    def ok(self, value: float) -> bool:
        return self.lo <= value <= self.hi


TARGETS: tuple[Target, ...] = (
    Target("any_crs", "Any CRS", 0.82, 0.79, 0.85, SEED),
    Target("severe_crs", "ASTCT grade ≥3", 0.185, 0.15, 0.22, PRWCC + "; " + REGISTRY),
    Target("toci_in_crs", "Tocilizumab among CRS", 0.60, 0.55, 0.65, SEED + " (59/97, derived)"),
    Target("toci_refractory", "Refractory among tocilizumab-treated", 0.22, 0.18, 0.26, SEED),
    Target("silt_first", "Siltuximab first-line among treated CRS", 0.09, 0.06, 0.12, SEED),
    Target("icans", "ICANS", 0.22, 0.19, 0.25, SEED),
    Target("age_median", "Age median (y)", 11.0, 10.0, 12.0, ELIANA, "value"),
    Target("age_min", "Age minimum (y)", 1.0, 1.0, 3.0, "issue: 1–25 y", "value"),
    Target("age_max", "Age maximum (y)", 25.0, 22.0, 25.0, "issue: 1–25 y", "value"),
    Target("blasts_ge40", "Marrow blasts ≥40%", 0.20, 0.17, 0.23, KADAUKE),
    Target("weight_gt50", "Weight >50 kg", 0.34, 0.28, 0.40, LEVINE, "rate"),
    Target("onset_median_day", "CRS onset median (day)", 3.0, 2.5, 3.5, LEVINE, "value"),
    Target(
        "onset_earlier_severe",
        "Onset median, non-severe minus severe (days)",
        1.5,
        0.5,
        2.5,
        PRWCC + " (5 vs 3 days)",
        "value",
    ),
    Target("toci_doses_1", "Tocilizumab 1 dose", 0.53, 0.48, 0.58, LEVINE),
    Target("toci_doses_2", "Tocilizumab 2 doses", 0.33, 0.28, 0.38, LEVINE),
    Target("toci_doses_3", "Tocilizumab 3 doses", 0.14, 0.10, 0.18, LEVINE),
    Target("severe_blasts_lt5", "Grade ≥3 if blasts <5%", 0.04, 0.0, 0.07, SJD + "; " + KADAUKE),
    Target("severe_blasts_ge40", "Grade ≥3 if blasts ≥40%", 0.47, 0.38, 0.56, KADAUKE),
    Target(
        "severe_rr_ari",
        "Grade ≥3 risk ratio ARI-0001 / tisagenlecleucel",
        0.5,
        0.3,
        0.75,
        ARI + " (13.2%, 4.3% after split dosing) vs " + REGISTRY,
        "value",
    ),
    Target("hlh_like", "HLH-like phenotype (truth)", 0.14, 0.10, 0.18, PRWCC),
    Target("icu", "ICU/PICU admission", 0.41, 0.33, 0.49, SJD),
    Target(
        "refractory_after_grade3",
        "Labelled refractory among grade ≥3 reached after the first tocilizumab dose",
        1.0,
        0.95,
        1.0,
        "DESIGN.md: worsening to grade ≥3 after tocilizumab is failure (Jain 2023)",
    ),
    Target(
        "steroids_severe",
        "Corticosteroids for CRS among grade ≥3",
        0.93,
        0.85,
        1.0,
        ASTCT_MGMT + "; " + LEVINE + " (24/25 steroid-treated also had tocilizumab)",
    ),
    Target(
        "duration_severe_day",
        "CRS duration median, grade ≥3 (days)",
        7.5,
        5.0,
        10.0,
        PRWCC + " (5 d, 4–13); " + LEVINE + " (10 d, 4–36)",
        "value",
    ),
    Target("il6_peak_g1", "IL-6 median peak, max grade 1 (pg/mL)", 43, 15, 130, CAR22, "value"),
    Target("il6_peak_g2", "IL-6 median peak, max grade 2 (pg/mL)", 301, 100, 900, CAR22, "value"),
    Target("il6_peak_g3", "IL-6 median peak, max grade ≥3 (pg/mL)", 880, 300, 3000, CAR22, "value"),
    # By-grade real scale (issue 13, R4): the bands are justified in the module docstring.
    Target("ifng_peak_g1", "IFN-γ median peak, max grade 1 (pg/mL)", 364, 45, 1100, CAR22, "value"),
    Target(
        "ifng_peak_g2", "IFN-γ median peak, max grade 2 (pg/mL)", 2761, 345, 8300, CAR22, "value"
    ),
    Target(
        "ifng_peak_g3",
        "IFN-γ median peak, max grade ≥3 (pg/mL)",
        2391,
        300,
        8000,
        CAR22 + " (CD22 product: higher IFN-γ than CD19 likely)",
        "value",
    ),
    Target("il10_peak_g1", "IL-10 median peak, max grade 1 (pg/mL)", 61, 20, 180, CAR22, "value"),
    Target("il10_peak_g2", "IL-10 median peak, max grade 2 (pg/mL)", 195, 65, 600, CAR22, "value"),
    Target(
        "il10_peak_g3", "IL-10 median peak, max grade ≥3 (pg/mL)", 391, 130, 1200, CAR22, "value"
    ),
    Target("crp_peak_g1", "CRP median peak, max grade 1 (mg/L)", 65, 22, 200, CAR22_CRP, "value"),
    Target("crp_peak_g2", "CRP median peak, max grade 2 (mg/L)", 91, 30, 270, CAR22_CRP, "value"),
    Target("crp_peak_g3", "CRP median peak, max grade ≥3 (mg/L)", 152, 50, 450, CAR22_CRP, "value"),
    Target(
        "ferritin_peak_g02",
        "Ferritin median peak, max grade 0–2 (ng/mL)",
        2035,
        1000,
        4500,
        PRWCC + " (non-high-grade)",
        "value",
    ),
    Target(
        "ferritin_peak_g3",
        "Ferritin median peak, max grade ≥3 (ng/mL)",
        20000,
        5000,
        90000,
        PRWCC + " (high-grade 5,467; HLH-like 92,204); " + FITZGERALD,
        "value",
    ),
    Target(
        "auroc_measix",
        "AUROC m-EASIX (pre-LD) for grade ≥3, eligible at 0 h",
        0.76,
        0.70,
        0.82,
        PENNISI,
        "auroc",
    ),
    Target(
        "auroc_blasts40",
        "AUROC marrow blasts ≥40% alone, eligible at 0 h",
        0.70,
        0.65,
        0.75,
        KADAUKE,
        "auroc",
    ),
    *(
        Target(
            key,
            f"AUROC early cytokines at {hours} h (eligible, before anti-IL-6)",
            0.87,
            0.80,
            0.93,
            TEACHEY + "; " + ZHOU,
            "auroc",
        )
        for key, hours in (("auroc_cytokines_48h", 48), ("auroc_cytokines", 72))
    ),
    Target(
        "auroc_oracle",
        "Oracle AUROC (p_severe_crs, usual care), eligible at 0 h",
        0.90,
        0.85,
        0.93,
        "design: at most ≈0.92, no published model does better (outcome keeps randomness)",
        "auroc",
    ),
)
TARGETS_BY_KEY: dict[str, Target] = {t.key: t for t in TARGETS}
