"""Calibrate the latent model's intercepts and thresholds by simulation.

Shape parameters (effect sizes, noise) come from the literature or from the discrimination
targets; the intercepts then follow from the published marginals and are found here on a large
simulated latent population (n = 200,000 by default), not by hand:

- ``latent.h0``: HLH-like phenotype ≈14% (PRWCC);
- ``latent.tau``: thresholds of the severity liability for max grade ≥1 (82%, seed cohort),
  ≥2 (so that anti-IL-6 treatment reaches ≈60% tocilizumab / 9% siltuximab first-line among CRS),
  ≥3 (18.5% *under usual care*, PRWCC/registry), natural ≥4 (12%) and 5 (0.6%, PRWCC);
- ``treatment.r0``: refractory ≈22% of tocilizumab-treated (seed, derived 13/59), counting
  non-responders and responders who still escalate after the dose;
- ``toxicity.i0``: ICANS ≈22% (seed);
- ``course.onset_median_h``: CRS onset median day 3 (pooled ELIANA/ENSIGN).

``python -m features.synth.calibrate [overrides.yaml]`` prints the values as a YAML override.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import yaml
from scipy.special import expit

from features.synth.params import SynthParams, load_params, with_overrides
from features.synth.potential import potential_outcomes
from features.synth.simulate import PatientStages, patient_stages

GRADE_AT_LEAST = {1: 0.82, 3: 0.185, 4: 0.12, 5: 0.006}  # 3: under usual care; 4, 5: natural
TREATED_SHARE_OF_CRS = 0.60 / (1.0 - 0.09)  # tocilizumab 60% of CRS, siltuximab first-line 9%
HLH_SHARE = 0.14
REFRACTORY_SHARE = 0.22
ICANS_SHARE = 0.22
ONSET_MEDIAN_H = 72.0


def _solve(f: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """Root of the increasing function ``f(x) = target`` by bisection."""
    for _ in range(60):
        mid = (lo + hi) / 2
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _refractory_intercept(st: PatientStages, params: SynthParams) -> float:
    """r0 such that non-responders plus responders who still escalate are 22% of tocilizumab."""
    tr, lat, tp = st.treatment, st.latent, params.treatment
    po = potential_outcomes(lat, st.course, tr, params)
    toci = tr["toci"]
    esc = (po["p_toci_failure"][toci] - tr["p_ref"][toci]) / (1.0 - tr["p_ref"][toci])
    lin = (tp.r_b * lat["b"] + tp.r_h * lat["h"] + tp.r_m * lat["m"] + tp.r_e * lat["e"])[toci]

    def refractory(r0: float) -> float:
        pr = expit(r0 + lin)
        return float((pr + (1.0 - pr) * esc).mean())

    return _solve(refractory, REFRACTORY_SHARE, -15.0, 10.0)


def calibrate(params: SynthParams, n: int = 200_000, seed: int = 2024) -> dict[str, dict]:
    """Intercepts and thresholds that put ``params`` on the published marginals.

    Grade ≥3 is calibrated *under usual care* (treatment prevents part of it): the threshold τ₃
    solves mean P(severe | usual care) = 18.5% with the closed form of ``potential``; the
    other thresholds are natural quantiles of the liability.
    """

    def stages(p: SynthParams) -> PatientStages:
        return patient_stages(
            n, seed, p, centers=4, center_shift=1.0, new_center=False, ari_fraction=None
        )

    lp = params.latent
    base = stages(params).latent

    def hlh_share(h0: float) -> float:
        return float(expit(h0 + lp.h_e * base["e"] + lp.h_m * base["m"]).mean())

    h0 = _solve(hlh_share, HLH_SHARE, -15.0, 10.0)
    params = with_overrides({"latent": {"h0": h0}}, params)
    st = stages(params)
    g = st.latent["g"]
    p2_treat = float(params.treatment.p_treat_grade2)  # centre probabilities average to it
    treated = TREATED_SHARE_OF_CRS * GRADE_AT_LEAST[1]
    q = lambda s: float(np.quantile(g, 1.0 - s))  # noqa: E731
    tau = [q(GRADE_AT_LEAST[1]), 0.0, 0.0, q(GRADE_AT_LEAST[4]), q(GRADE_AT_LEAST[5])]

    def usual(t3: float) -> float:
        p = with_overrides({"latent": {"tau": (*tau[:2], t3, *tau[3:])}}, params)
        return float(
            potential_outcomes(st.latent, st.course, st.treatment, p)["p_severe_usual"].mean()
        )

    r0 = params.treatment.r0
    for _ in range(3):  # timing and response depend on the thresholds and r0: settle them jointly
        tau[2] = _solve(lambda t: -usual(t), -GRADE_AT_LEAST[3], tau[0], tau[3])
        severe_nat = float((g >= tau[2]).mean())
        at_least_2 = severe_nat + (treated - severe_nat) / p2_treat
        tau[1] = q(at_least_2)
        params = with_overrides({"latent": {"tau": tuple(tau)}}, params)
        st = stages(params)
        r0 = _refractory_intercept(st, params)
        params = with_overrides({"treatment": {"r0": r0}}, params)
        st = stages(params)
    tr, lat = st.treatment, st.latent
    xp = params.toxicity
    grade = tr["rmax"]
    ilin = xp.i_severe * (grade >= 3) + xp.i_h * lat["h"] + xp.i_e * lat["e"]
    i0 = _solve(lambda a: float(expit(a + ilin).mean()), ICANS_SHARE, -15.0, 10.0)
    cp = params.course
    crs = grade >= 1
    rng = np.random.default_rng(seed + 1)
    z = rng.standard_normal(n)
    onset = np.clip(np.exp(-cp.onset_e * lat["e"] + cp.onset_sigma * z), cp.onset_min_h / 1e3, None)
    onset_median = ONSET_MEDIAN_H / float(np.median(onset[crs]))
    return {
        "latent": {"h0": round(h0, 4), "tau": [round(t, 4) for t in tau]},
        "treatment": {"r0": round(r0, 4)},
        "toxicity": {"i0": round(i0, 4)},
        "course": {"onset_median_h": round(onset_median, 2)},
    }


def main(argv: list[str] | None = None) -> None:
    """Print the calibrated values for the default (or overridden) parameters as YAML."""
    args = sys.argv[1:] if argv is None else argv
    params = load_params(args[0] if args else None)
    print(yaml.safe_dump(calibrate(params), sort_keys=True), end="")


if __name__ == "__main__":
    main()
