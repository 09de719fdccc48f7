"""The champion rule (pure): which candidate wins, and whether it may take ``@champion``.

:func:`choose_champion` applies an experiment's declared rule (``ChampionSpec``) to candidates'
metrics; :func:`decide` says whether a challenger replaces the current champion (issue 12 §4:
same cohort digest and task definition and better by the rule, or ``--promote``; a synthetic
cohort never replaces a real one without it). No MLflow here: ``training.registry`` describes
registered versions as :class:`Candidate` and ``training.promotion`` acts on the decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from training.experiment import ChampionSpec

SYNTHETIC, REAL = "synthetic", "real"


@dataclass
class Candidate:
    """One trained run eligible for registration."""

    task: str
    landmark: str
    model: str
    feature_set: str
    run_id: str
    model_id: str  # MLflow LoggedModel id (``m-…``) of the final refitted model
    calibrated: bool
    metrics: dict[str, float] = field(default_factory=dict)
    cohort_digest: str = ""
    cohort_kind: str = ""  # "real" | "synthetic" | "" (unknown)
    task_definition: str = ""

    @property
    def label(self) -> str:
        return f"{self.model}/{self.feature_set}"


def choose_champion(
    candidates: list[Candidate], rule: ChampionSpec
) -> tuple[Candidate | None, str]:
    """Apply the declared rule; return the winner (or None) and the reason in words."""
    pool = [c for c in candidates if rule.models is None or c.model in rule.models]
    if rule.require_calibrated:
        pool = [c for c in pool if c.calibrated]
    pool = [c for c in pool if math.isfinite(c.metrics.get(rule.metric, float("nan")))]
    if not pool:
        return None, f"no candidate with a finite {rule.metric} (rule: {rule.describe()})"
    lo, hi = rule.slope_band

    def slope(c: Candidate) -> float:
        return c.metrics.get("calibration_slope", float("nan"))

    in_band = [c for c in pool if math.isfinite(slope(c)) and lo <= slope(c) <= hi]

    def metric_text(c: Candidate) -> str:
        m = rule.metric
        value = c.metrics[m]
        low, high = c.metrics.get(f"{m}_ci_low"), c.metrics.get(f"{m}_ci_high")
        ci = f" [{low:.3f}–{high:.3f}]" if low is not None and high is not None else ""
        return f"{m} {value:.3f}{ci}, calibration slope {slope(c):.2f}"

    if in_band:
        # ties broken by name so the choice is deterministic
        best = sorted(in_band, key=lambda c: (-c.metrics[rule.metric], c.label))[0]
        return best, f"{best.label}: {metric_text(best)} — {rule.describe()}"
    if rule.fallback == "closest_slope":
        finite = [c for c in pool if math.isfinite(slope(c))]
        if finite:
            best = sorted(
                finite, key=lambda c: (abs(math.log(slope(c))) if slope(c) > 0 else 1e9, c.label)
            )[0]
            return best, (
                f"{best.label}: {metric_text(best)} — no model had calibration slope in "
                f"[{lo}, {hi}]; fallback: slope closest to 1"
            )
    return None, f"no candidate had calibration slope in [{lo}, {hi}] (rule: {rule.describe()})"


# --- promotion decision ----------------------------------------------------------------------
def decide(
    champion: Candidate | None, challenger: Candidate, rule: ChampionSpec, force: bool = False
) -> tuple[bool, str]:
    """Should ``challenger`` take ``@champion`` from ``champion``? (decision, reason in words)."""
    if force:
        if champion is not None and champion.cohort_kind == REAL and challenger.cohort_kind != REAL:
            return True, "--promote given: a synthetic-cohort model replaces a real-cohort champion"
        return True, "--promote given"
    if champion is None:
        return True, "no champion yet"
    if champion.cohort_kind == REAL and challenger.cohort_kind != REAL:
        return False, (
            "a synthetic-cohort run never replaces a real-cohort champion (use --promote to force)"
        )
    if not champion.cohort_digest or champion.cohort_digest != challenger.cohort_digest:
        return False, (
            f"validated on another cohort (digest {challenger.cohort_digest[:12] or '?'} vs "
            f"champion's {champion.cohort_digest[:12] or '?'}): not comparable (use --promote)"
        )
    if not champion.task_definition or champion.task_definition != challenger.task_definition:
        return False, "the task definition differs from the champion's: not comparable"
    best, why = choose_champion([champion, challenger], rule)
    if best is challenger:
        return True, f"beats the champion by the rule: {why}"
    return False, f"does not beat the champion by the rule ({why or 'no winner'})"
