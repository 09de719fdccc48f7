"""Riley's minimum sample size of a binary-outcome prediction model (TRIPOD+AI sample size).

Is the cohort large enough for the model? A statistics helper that both the profile's
few-events flag (features.profile) and training's assessment use.

Riley RD et al. 2020, BMJ 368:m441 ("Calculating the sample size required for developing a
clinical prediction model"), binary outcome, three criteria for the minimum n:

1. expected uniform shrinkage ≥ S = 0.9:  n ≥ p / ((S − 1)·ln(1 − R²cs / S));
2. small optimism in apparent Nagelkerke R² (δ = 0.05):  criterion 1 with
   S = R²cs / (R²cs + δ·max R²cs);
3. precise overall risk (±0.05 at 95%):  n ≥ (1.96 / 0.05)²·φ(1 − φ);

with p candidate predictor parameters, prevalence φ, max R²cs = 1 − exp(2·ln L_null / n)
and, when no prior model tells us the anticipated R²cs, Riley's conservative default of 15% of
its maximum. Also events per candidate parameter (EPP), the older rule of thumb.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SampleSize:
    n_patients: int
    n_events: int
    parameters: int
    events_per_parameter: float
    anticipated_r2_cs: float
    min_n_shrinkage: int
    min_n_optimism: int
    min_n_overall_risk: int

    @property
    def min_n(self) -> int:
        return max(self.min_n_shrinkage, self.min_n_optimism, self.min_n_overall_risk)

    @property
    def adequate(self) -> bool:
        return self.n_patients >= self.min_n

    def to_dict(self) -> dict[str, float | int | bool]:
        return {**asdict(self), "min_n": self.min_n, "adequate": self.adequate}


def max_r2_cs(prevalence: float) -> float:
    """Largest achievable Cox–Snell R² for a binary outcome with this prevalence."""
    phi = prevalence
    ln_null = phi * math.log(phi) + (1 - phi) * math.log(1 - phi)  # per patient
    return 1 - math.exp(2 * ln_null)


def _criterion(parameters: int, r2: float, shrinkage: float) -> int:
    return math.ceil(parameters / ((shrinkage - 1) * math.log(1 - r2 / shrinkage)))


def riley_sample_size(
    n_patients: int,
    n_events: int,
    parameters: int,
    r2_cs: float | None = None,
    shrinkage: float = 0.9,
    delta: float = 0.05,
    margin: float = 0.05,
) -> SampleSize:
    """Minimum n by Riley's three criteria for a model with ``parameters`` candidate parameters."""
    phi = n_events / n_patients if n_patients else float("nan")
    if not 0 < phi < 1 or parameters < 1:
        nan_int = 0
        return SampleSize(
            n_patients, n_events, parameters, float("nan"), float("nan"), nan_int, nan_int, nan_int
        )
    max_r2 = max_r2_cs(phi)
    r2 = 0.15 * max_r2 if r2_cs is None else r2_cs
    s2 = r2 / (r2 + delta * max_r2)
    return SampleSize(
        n_patients=n_patients,
        n_events=n_events,
        parameters=parameters,
        events_per_parameter=n_events / parameters,
        anticipated_r2_cs=r2,
        min_n_shrinkage=_criterion(parameters, r2, shrinkage),
        min_n_optimism=_criterion(parameters, r2, s2),
        min_n_overall_risk=math.ceil((1.96 / margin) ** 2 * phi * (1 - phi)),
    )
