"""True potential outcomes per patient, in closed form (``truth.csv``).

Given the latent state (mean liability μ = E + δ·H, outcome SD σ), the drawn course timing and
the centre's practice, the outcome randomness ν ~ N(0, 1), the response draw and the drop
Δ ~ Exponential(rate λ; λ larger when dosed later, see ``treatment``) are integrated out exactly:

- natural: P(G ≥ τ₃) = Φ((μ − τ₃)/σ);
- a responder dosed before grade 3 stays below 3 iff G − Δ < τ₃, and
  P(G ≥ τ₃, G − Δ < τ₃) = exp(λ(τ₃ − μ) + λ²σ²/2) · Φ̄((τ₃ − μ)/σ + λσ) (complete the square);
- P(severe | policy) = P(G ≥ τ₃) − w · (1 − p_ref) · P(G ≥ τ₃, G − Δ < τ₃), where w is the
  probability that the policy doses before the natural time of grade 3 (the probability of a
  dose at the threshold grade times whether the drawn dose time precedes it).

Usual care uses the centre's own threshold (grade 2, or grade 1 for high burden at a
pre-emptive centre); the *pre-emptive* potential outcome doses every patient at the first grade
≥1 (onset plus the same drawn delay). Tocilizumab failure, given the grade at the first dose
g: p_ref + (1 − p_ref) · P(G − Δ ≥ τ_{g+1} | G ≥ τ_g), zero escalation when the timing shows the
natural course had already passed g without reaching g + 1 (tocilizumab-first patients).

Tocilizumab failure for *every* patient (``p_toci_failure_threshold``): a first dose at the
centre's threshold grade k (at t_k plus the same drawn delay), given that the patient reaches
grade k. With m the natural grade the timing reaches at the dose (m ≥ k), the grade at the dose
is min(m, N) (N the natural maximum); a responder escalates only when N > m and G − Δ ≥ τ_{m+1},
so P(fail) = p_ref + (1 − p_ref) · P(G − Δ ≥ τ_{m+1}) / P(G ≥ τ_k) with Δ's rate for a dose at
grade m — the responder model ``treatment.treat`` draws from. It ignores the always-at-grade-3
rule, so it is the centre's threshold dose, not every dose its practice gives.

The means of these columns equal the simulated rates (``tests/features/test_synth_causal.py``).
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr, ndtr

from features.synth.course import grade_reached
from features.synth.params import SynthParams
from features.synth.treatment import dose_delay, reduction_scale


def _survival(mu: np.ndarray, sigma: float, c: np.ndarray | float) -> np.ndarray:
    """P(G ≥ c)."""
    return ndtr((mu - c) / sigma)


def _rescued(
    mu: np.ndarray, sigma: float, lam: np.ndarray | float, c: np.ndarray | float
) -> np.ndarray:
    """P(G ≥ c, G − Δ < c): the drop takes a liability at or above ``c`` back below it."""
    z = (c - mu) / sigma
    return np.exp(lam * (c - mu) + 0.5 * (lam * sigma) ** 2 + log_ndtr(-(z + lam * sigma)))


def potential_outcomes(
    lat: dict[str, np.ndarray], crs: dict[str, np.ndarray], tr: dict[str, np.ndarray],
    p: SynthParams,
) -> dict[str, np.ndarray]:  # fmt: skip
    """``p_severe_natural``, ``p_severe_usual``, ``p_severe_preemptive``, ``p_toci_failure``
    (given the actual first dose; tocilizumab-first patients, NaN otherwise) and
    ``p_toci_failure_threshold`` (every patient: a dose at the centre's threshold grade)."""
    mu, sigma = lat["mean_g"], p.latent.sigma_out
    tau = np.asarray(p.latent.tau)
    resp = 1.0 - tr["p_ref"]
    s3 = _survival(mu, sigma, tau[2])
    t3 = crs["t3"]
    # grade at the dose on the way to grade 3 is set by the timing alone (G ≥ τ₃ reaches it)
    t_usual = tr["t_k"] + tr["delay"]
    t_pre = crs["onset"] + dose_delay(tr["u_delay"], np.ones(len(mu)), p)
    lam_usual = 1.0 / reduction_scale(grade_reached(crs, t_usual, np.full(len(mu), 4)), p)
    lam_pre = 1.0 / reduction_scale(grade_reached(crs, t_pre, np.full(len(mu), 4)), p)
    w_usual = tr["q"] * (t_usual < t3)
    w_pre = (t_pre < t3).astype(float)
    g = np.clip(tr["g_dose"].astype(int), 1, 4)
    lam = 1.0 / reduction_scale(g, p)
    base = _survival(mu, sigma, tau[g - 1])
    nxt = tau[np.minimum(g, len(tau) - 1)]
    escalate = _survival(mu, sigma, nxt) - _rescued(mu, sigma, lam, nxt)
    escalate = np.where(tr["m_time"] > tr["g_dose"], 0.0, escalate / np.maximum(base, 1e-300))
    fail = tr["p_ref"] + resp * np.clip(escalate, 0.0, 1.0)
    # every patient: the centre's threshold dose at t_usual, given grade k is reached
    k = tr["k"].astype(int)
    m = np.clip(grade_reached(crs, t_usual, np.full(len(mu), 4)).astype(int), k, 4)
    nxt_m = tau[np.minimum(m, len(tau) - 1)]
    esc_m = _survival(mu, sigma, nxt_m) - _rescued(mu, sigma, 1.0 / reduction_scale(m, p), nxt_m)
    esc_m = esc_m / np.maximum(_survival(mu, sigma, tau[k - 1]), 1e-300)
    fail_threshold = tr["p_ref"] + resp * np.clip(esc_m, 0.0, 1.0)
    return {
        "p_severe_natural": s3,
        "p_severe_usual": np.clip(
            s3 - w_usual * resp * _rescued(mu, sigma, lam_usual, tau[2]), 0, 1
        ),
        "p_severe_preemptive": np.clip(
            s3 - w_pre * resp * _rescued(mu, sigma, lam_pre, tau[2]), 0, 1
        ),
        "p_toci_failure": np.where(tr["toci"], fail, np.nan),
        "p_toci_failure_threshold": fail_threshold,
    }
