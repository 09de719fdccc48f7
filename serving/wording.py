"""What a clinician reads: the horizon, the risk as natural frequencies, reasons as points.

Risk is stated as a natural frequency ("about 6 in 100 patients like this"), which readers
interpret more accurately than percentages or odds (Gigerenzer G, Hoffrage U, Psychol Rev
1995;102:684; Akl EA et al., Cochrane Database Syst Rev 2011:CD006776). A reason is the change,
in points on the probability scale, between the patient's calibrated probability and the
probability with that variable's SHAP contribution removed from the log-odds (the model's own
calibration applied to both), so the reasons are in the same units as the headline number;
log-odds stay in the details. Slopes and ratios are said in clinical words ("rising about
3-fold per day", "12 times the pre-infusion value").
"""

from __future__ import annotations

import math
from typing import Any

from features.catalog import CATALOG


def horizon_text(task: Any, landmark: str) -> str:
    """What the probability is of, and over which time (from the task's declared rules)."""
    if task.name == "severe_crs":
        hours = landmark[:-1] if landmark.endswith("h") else landmark
        what = f"ASTCT grade ≥{task.severity_threshold} CRS (or death from CRS)"
        if hours == "0":
            return f"{what} from CAR T infusion until CRS resolves, scored before infusion"
        return f"{what} from {hours} h after CAR T infusion until CRS resolves"
    when = "at the anti-IL-6 decision" if landmark == "decision" else "at the first dose"
    clauses = {
        "second_line": "a second-line drug for CRS",
        "worsening": "worsening to grade ≥3",  # features.tasks.refractory._worsening
        "no_improvement": f"no improvement {task.no_improvement_hours:g} h after up to "
        f"{task.no_improvement_doses} doses",
    }
    said = [clauses[c] for c in clauses if c in task.refractory_criteria]
    listed = said[0] if len(said) == 1 else ", ".join(said[:-1]) + f" or {said[-1]}"
    return (
        f"CRS refractory to tocilizumab, scored {when}: within {task.window_hours:g} h of the "
        f"first dose, {listed} (it does not estimate siltuximab benefit)"
    )


def in_100(p: float) -> str:
    """0.063 → "about 6 in 100"; below 1 in 100 → "fewer than 1 in 100"."""
    k = round(100 * p)
    if 100 * p < 0.5:
        return "fewer than 1 in 100"
    if k >= 100:
        return "nearly all of 100"
    return f"about {k} in 100"


def percent(p: float) -> str:
    return f"{100 * p:.0f}%" if p >= 0.095 or p == 0 else f"{100 * p:.1f}%"


def summary_text(
    p: float, low: float | None, high: float | None, band: str, observed: Any, horizon: str
) -> str:
    """The headline sentence of one scored task."""
    text = f"{in_100(p).capitalize()} patients like this: {horizon}."
    if low is not None and high is not None:
        text += (
            f" Plausible range among patients given this risk: "
            f"{round(100 * low)}–{round(100 * high)} in 100."
        )
    if observed is not None and observed.observed is not None:
        text += (
            f" In validation, {observed.events} of {observed.n} patients in the {band}-risk band "
            f"had the outcome ({percent(observed.observed)})."
        )
    return text


def points(p: float, p_without: float) -> float:
    """Signed probability points a reason adds (+) or removes (−)."""
    return 100.0 * (p - p_without)


def value_words(feature: str, value: float | None, default: str, digits: int = 0) -> str:
    """A feature value in clinical words (slopes, ratios, times); ``default`` otherwise.
    ``digits``: decimals beyond the usual (to tell apart two values that read the same)."""
    spec = CATALOG.get(feature)
    if spec is None or value is None or not math.isfinite(value):
        return default
    if spec.unit.startswith("log10(1+x) per"):
        factor = 10.0 ** abs(value)
        if factor < 1.1 and not digits:
            return "about stable over a day"
        way = "rising" if value > 0 else "falling"
        return f"{way} about {factor:.{1 + digits}f}-fold per day"
    if spec.unit == "ratio":
        return f"{value:.{1 + digits}f} times the pre-infusion value"
    if spec.unit == "h" and "since" in feature:
        return f"{value:.{digits}f} h earlier"
    return default


def reason_text(label: str, value_text: str, pts: float) -> str:
    """'IL-6, maximum: 1,250 pg/mL — raises the risk by about 8 points'."""
    size = abs(pts)
    amount = (
        "less than 1 point"
        if size < 0.5
        else f"about {size:.0f} point" + ("" if round(size) == 1 else "s")
    )
    verb = "raises the risk by" if pts > 0 else "lowers the risk by"
    if size < 0.05:
        return f"{label}: {value_text} — hardly changes the risk"
    return f"{label}: {value_text} — {verb} {amount}"


def missing_text(label: str, pts: float) -> str:
    """The effect of an input that was not measured (never a clinical reason)."""
    size = abs(pts)
    if size < 0.5:
        return f"{label} not measured: the model assumed a typical value (little effect)"
    way = "higher" if pts > 0 else "lower"
    return (
        f"{label} not measured: the model assumed a typical value, which puts the estimate "
        f"about {size:.0f} point{'s' if round(size) != 1 else ''} {way}"
    )
