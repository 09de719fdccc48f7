"""Treatment that acts on the course: anti-IL-6, second-line agents, corticosteroids.

Practice (per centre, ``features.synth.centres``): the first anti-IL-6 dose comes at the
centre's threshold grade — grade 2 (with probability ``p_treat_grade2``), or grade 1 for
high-burden patients at a pre-emptive centre (Kadauke 2021: a single dose at persistent fever
when marrow blasts ≥40%) — and always once grade 3 is reached. Siltuximab is the first-line
drug in a minority (Galán-Gómez 2025).

Effect (the causal mechanism): a biological non-responder (probability ``p_ref`` from burden,
HLH-like phenotype, IL-6-independent inflammation ``M`` and ``E``; Zhang 2022, PRWCC) keeps
the natural course. In a responder the dose lowers the severity liability by a drawn amount
Δ ~ Exponential(mean ``reduction_mean``): the realised maximum is max(grade at the dose,
ordinal(G − Δ)) — escalation never accelerates, and when the drop is enough the patient stops
escalating at the dose. A patient who still escalates after the dose, or a non-responder, is
tocilizumab-refractory and gets a second-line agent *for CRS* (siltuximab in most, as in the
seed cohort; anakinra; corticosteroids). Responders improve within 24 h of the dose; the others
only after the second-line agent has acted; de-escalation is stepwise (``course.course_matrix``).

Corticosteroids: nearly every patient reaching grade ≥3 gets them for CRS (ASTCT/Lee 2019,
Neelapu 2018: tocilizumab ± corticosteroids from grade 3; Levine 2021: 24 of 25 steroid-treated
patients also had tocilizumab) — with the dose when grade 3 came first, else when grade 3 is
reached. ICANS gets its own corticosteroids (``features.synth.toxicity``, indication ``icans``).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from features.synth.centres import Centres
from features.synth.course import course_matrix, escalation_times, grade_reached
from features.synth.draws import _choice, _row_choice, _uniform
from features.synth.params import SynthParams


def practice(
    pt: dict[str, np.ndarray],
    crs: dict[str, np.ndarray],
    p: SynthParams,
    cen: Centres,
    preempt_blasts: float | None,
) -> dict[str, np.ndarray]:
    """Per patient: pre-emptive or not, the probability of a dose at the threshold grade and the
    time the patient reaches that grade (``preempt_blasts`` overrides every centre's rule)."""
    c = pt["c"]
    thr = cen.preempt_blasts[c] if preempt_blasts is None else np.full(len(c), preempt_blasts)
    preempt = pt["blasts"] >= thr
    return {
        "preempt": preempt,
        "k": np.where(preempt, 1, 2),
        "q": np.where(preempt, p.treatment.p_preempt_given, cen.p_treat2[c]),
        "t_k": np.where(preempt, crs["onset"], crs["t2"]),
    }


def refractory_probability(lat: dict[str, np.ndarray], p: SynthParams) -> np.ndarray:
    """P(biological non-response to anti-IL-6) from the latent state."""
    tp = p.treatment
    return expit(
        tp.r0 + tp.r_b * lat["b"] + tp.r_h * lat["h"] + tp.r_m * lat["m"] + tp.r_e * lat["e"]
    )


def dose_delay(u: np.ndarray, k: np.ndarray, p: SynthParams) -> np.ndarray:
    """Threshold grade → first dose (h): quick at a pre-emptive trigger (k = 1), slower at 2."""
    tp = p.treatment
    lo = np.where(k <= 1, tp.preempt_delay_h[0], tp.treat_delay_h[0])
    hi = np.where(k <= 1, tp.preempt_delay_h[1], tp.treat_delay_h[1])
    return lo + u * (hi - lo)


def reduction_scale(g_dose: np.ndarray, p: SynthParams) -> np.ndarray:
    """Mean liability drop of a responder dosed at grade ``g_dose`` (1: pre-emptive)."""
    early, late = p.treatment.reduction_mean
    return np.where(g_dose <= 1, early, late)


def treat(
    rng: np.random.Generator,
    pt: dict[str, np.ndarray],
    lat: dict[str, np.ndarray],
    crs: dict[str, np.ndarray],
    p: SynthParams,
    cen: Centres,
    preempt_blasts: float | None = None,
) -> dict[str, np.ndarray]:
    """Dose times, response, the realised course, second-line agents, steroids and death."""
    tp, cp = p.treatment, p.course
    n = len(pt["c"])
    nat = crs["nat"]
    tau = np.asarray(p.latent.tau)
    pr = practice(pt, crs, p, cen, preempt_blasts)
    u_delay = rng.random(n)
    delay = dose_delay(u_delay, pr["k"], p)
    given_k = (nat >= pr["k"]) & (rng.random(n) < pr["q"])
    t_dose3 = np.where(nat >= 3, crs["t3"] + _uniform(rng, tp.grade3_delay_h, n), np.nan)
    t_first = np.fmin(np.where(given_k, pr["t_k"] + delay, np.nan), t_dose3)
    treated = ~np.isnan(t_first)
    t_first = np.round(t_first, 1)
    tf = np.where(treated, t_first, -np.inf)
    g_dose = np.where(treated, grade_reached(crs, tf, nat), 0).astype(np.int8)
    m_time = np.where(treated, grade_reached(crs, tf, np.full(n, 4)), 0).astype(np.int8)
    silt_first = treated & (rng.random(n) < cen.p_silt[pt["c"]])
    toci = treated & ~silt_first
    p_ref = refractory_probability(lat, p)
    bio_ref = rng.random(n) < p_ref
    delta = rng.exponential(1.0, n) * reduction_scale(g_dose, p)
    reduced = (lat["g"][:, None] - delta[:, None] >= tau[None, :]).sum(axis=1)
    rmax = np.where(treated & ~bio_ref, np.maximum(g_dose, np.minimum(reduced, nat)), nat)
    rmax = rmax.astype(np.int8)
    refractory = treated & (bio_ref | (rmax > g_dose))
    responder = treated & ~refractory
    died_crs = rmax >= 5
    esc = escalation_times(crs)
    g4 = np.minimum(rmax, 4)
    t_peak = np.take_along_axis(esc, np.maximum(g4 - 1, 0)[:, None], axis=1)[:, 0]
    # Refractory: second-line at the escalation after the dose, or after 24–40 h without change.
    nxt = np.c_[esc, crs["t4"] + crs["death_delay"]]
    t_next = np.take_along_axis(nxt, np.minimum(g_dose, 4)[:, None], axis=1)[:, 0]
    t_plan = t_first + _uniform(rng, tp.second_line_h, n)
    t_esc2l = t_next + _uniform(rng, tp.escalation_second_line_h, n)
    t_2l = np.round(np.maximum(np.where(rmax > g_dose, np.fmin(t_esc2l, t_plan), t_plan),
                               t_first + 1.0), 1)  # fmt: skip
    t_rec = t_2l + _uniform(rng, tp.recovery_after_second_line_h, n)
    # Duration by realised max grade (HLH-like longer; shorter when tocilizumab works).
    med = np.asarray(cp.duration_h)[np.maximum(g4 - 1, 0)]
    med = np.where(lat["h"] & (g4 >= 2), cp.duration_hlh_h, med)
    med = np.where(responder, med * cp.responder_duration, med)
    res0 = crs["onset"] + med * np.exp(cp.duration_sigma * crs["dur_z"])
    hold = np.maximum(cp.peak_hold * (res0 - t_peak), 8.0)
    t_resp = t_first + _uniform(rng, tp.response_h, n)
    drop = np.where(
        responder, t_resp, np.where(refractory, np.maximum(t_rec, t_peak + 8.0), t_peak + hold)
    )
    drop = np.maximum(drop, t_peak + 1.0)
    res = np.maximum(res0, drop + cp.step_min_h * np.maximum(g4 - 1, 0))
    res = np.where(responder & (g4 == 1), drop, res)
    tm, gm = course_matrix(crs, rmax, drop, res)
    last = np.fmax.reduce(tm, axis=1)
    t_death_crs = np.where(died_crs, np.fmax(crs["t4"] + crs["death_delay"], last + 1.0), np.nan)
    t_death_crs = np.round(t_death_crs, 1)
    res = tm[:, 7]
    other = (~died_crs) & (crs["u_other"] < cp.p_other_death)
    t_other = np.maximum(crs["other_time"], np.where(np.isnan(res), 0.0, res + 48.0))
    other &= t_other < cp.follow_up_h
    t_death = np.where(died_crs, t_death_crs, np.where(other, np.round(t_other, 1), np.nan))

    def alive_at(t: np.ndarray) -> np.ndarray:
        return np.isnan(t_death) | (t < t_death)

    # Tocilizumab doses (1–3, Levine 2021).
    severe = rmax >= 3
    probs = np.where(
        refractory[:, None],
        np.asarray(tp.doses_refractory)[None, :],
        np.where(
            severe[:, None], np.asarray(tp.doses_responder_severe), np.asarray(tp.doses_responder)
        ),
    )
    n_doses = np.where(toci, _row_choice(rng, probs / probs.sum(axis=1, keepdims=True)) + 1, 0)
    dose_t = np.c_[
        t_first,
        np.round(t_first + _uniform(rng, tp.second_dose_h, n), 1),
        np.round(t_first + _uniform(rng, tp.third_dose_h, n), 1),
    ]
    dose_t = np.where(np.arange(3)[None, :] < n_doses[:, None], dose_t, np.nan)
    dose_t = np.where(alive_at(dose_t.T).T, dose_t, np.nan)
    w = pt["weight"]
    toci_mgkg = np.where(w < 30.0, tp.toci_mg_per_kg[0], tp.toci_mg_per_kg[1])
    toci_mgkg = np.round(np.minimum(toci_mgkg, tp.toci_max_mg / w), 2)
    # Corticosteroids for CRS at grade ≥3: with the dose if grade 3 came first, else at grade 3.
    u_st = rng.random(n)
    t_st3 = np.where(
        g_dose >= 3,
        t_first,
        np.round(crs["t3"] + _uniform(rng, tp.steroid_delay_h, n), 1),
    )
    steroid3 = severe & (u_st < tp.p_steroids_severe) & alive_at(t_st3)
    # Second-line agent (0 siltuximab, 1 anakinra, 2 corticosteroids) for refractory CRS.
    weights = np.asarray(tp.second_line_weights, dtype=float)
    agent = np.where(
        silt_first | steroid3,
        np.where(silt_first, _choice(rng, weights[1:], n) + 1, _choice(rng, weights[:2], n)),
        _choice(rng, weights, n),
    )
    agent = np.where(silt_first & steroid3, 1, agent)  # steroids given: anakinra after silt.
    second = refractory & alive_at(t_2l)
    add_steroid = second & ~severe & (agent != 2) & (rng.random(n) < tp.p_add_steroids)
    t_steroid_add = np.round(t_2l + rng.uniform(2.0, 12.0, n), 1)
    add_steroid &= alive_at(t_steroid_add)
    t_steroid = np.fmin(
        np.where(steroid3, t_st3, np.nan),
        np.fmin(
            np.where(second & (agent == 2), t_2l, np.nan),
            np.where(add_steroid, t_steroid_add, np.nan),
        ),
    )
    return {
        "tm": tm,
        "gm": gm,
        "rmax": rmax,
        "treated": treated,
        "toci": toci,
        "silt_first": silt_first,
        "refractory": refractory,
        "responder": responder,
        "p_ref": p_ref,
        "preempt": pr["preempt"],
        "k": pr["k"],
        "q": pr["q"],
        "t_k": pr["t_k"],
        "delay": delay,
        "u_delay": u_delay,
        "g_dose": g_dose,
        "m_time": m_time,
        "t_first": np.where(treated, t_first, np.nan),
        "dose_t": dose_t,
        "n_doses": n_doses,
        "toci_mgkg": toci_mgkg,
        "agent": agent,
        "t_2l": np.where(second, t_2l, np.nan),
        "t_steroid": t_steroid,
        "t_death": t_death,
        "died_crs": died_crs,
        # first time fever stops being required for grading (tocilizumab or CRS corticosteroids)
        "t_waiver": np.fmin(np.where(toci, t_first, np.nan), t_steroid),
    }
