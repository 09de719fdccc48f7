"""Calibrate the latent model's intercepts and thresholds by simulation.

Shape parameters (effect sizes, noise) come from the literature or from the discrimination
targets; the intercepts then follow from the published marginals and are found here on a large
simulated latent population (n = 200,000 by default), not by hand:

- ``latent.h0``: HLH-like phenotype ≈14% (PRWCC);
- ``latent.tau``: thresholds of the severity liability for max grade ≥1 (82%, seed cohort),
  ≥2 (so that anti-IL-6 treatment reaches ≈60% tocilizumab / 9% siltuximab first-line among CRS),
  ≥3 (18.5%, PRWCC/registry), ≥4 (9%, PRWCC grade 3 ≈ grade 4) and 5 (0.5%, PRWCC);
- ``treatment.r0``: refractory ≈22% of tocilizumab-treated (seed, derived 13/59);
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
from features.synth.simulate import _latent, _patients, make_centres

GRADE_AT_LEAST = {1: 0.82, 3: 0.185, 4: 0.09, 5: 0.005}
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


def calibrate(params: SynthParams, n: int = 200_000, seed: int = 2024) -> dict[str, dict]:
    """Intercepts and thresholds that put ``params`` on the published marginals."""
    cen = make_centres(params, 4, 1.0, False)

    def latent(p: SynthParams) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        pt = _patients(rng, n, p, cen)
        return {**_latent(rng, pt, p, cen), "c": pt["c"]}

    lp = params.latent
    base = latent(params)

    def hlh_share(h0: float) -> float:
        return float(expit(h0 + lp.h_e * base["e"] + lp.h_m * base["m"]).mean())

    h0 = _solve(hlh_share, HLH_SHARE, -15.0, 10.0)
    params = with_overrides({"latent": {"h0": h0}}, params)
    lat = latent(params)
    g = lat["g"]
    p2_treat = float(params.treatment.p_treat_grade2)  # centre probabilities average to it
    treated = TREATED_SHARE_OF_CRS * GRADE_AT_LEAST[1]
    at_least_2 = GRADE_AT_LEAST[3] + (treated - GRADE_AT_LEAST[3]) / p2_treat
    shares = [
        GRADE_AT_LEAST[1],
        at_least_2,
        GRADE_AT_LEAST[3],
        GRADE_AT_LEAST[4],
        GRADE_AT_LEAST[5],
    ]
    tau = tuple(float(np.quantile(g, 1.0 - s)) for s in shares)
    params = with_overrides({"latent": {"tau": tau}}, params)
    grade = (g[:, None] >= np.asarray(tau)[None, :]).sum(axis=1)
    tp = params.treatment
    weight = np.where(grade >= 3, 1.0, np.where(grade == 2, p2_treat, 0.0))
    lin = tp.r_b * lat["b"] + tp.r_h * lat["h"] + tp.r_m * lat["m"] + tp.r_e * lat["e"]
    dead = grade >= 5

    def refractory(r0: float) -> float:
        pr = np.where(dead, 1.0, expit(r0 + lin))
        return float((weight * pr).sum() / weight.sum())

    r0 = _solve(refractory, REFRACTORY_SHARE, -15.0, 10.0)
    xp = params.toxicity
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
