"""Marginals of a cohort next to the calibration targets, and the oracle AUROC.

``crs-risk cohort describe DIR`` loads the cohort through ``features.io.load_cohort`` (canonical
units) and, when present, the simulator's ``truth.csv`` beside it, then reports every target of
``features.synth.params.TARGETS`` as value, target, tolerance, status (OK/OUT) and source.

Definitions (../shared/DESIGN.md): severe CRS = ASTCT maximum grade ≥3; tocilizumab-refractory
= among patients whose first anti-IL-6 drug was tocilizumab, within 72 h of the first dose a
second-line agent given for CRS (indication ``crs`` or not recorded), or worsening to grade ≥3,
or a grade 24 h after the last of the first two doses that is not below max(grade at the first
dose, 1).

Discrimination is *predictive*, on the tasks' own design (``features.tasks.assign``): patients
eligible for ``severe_crs`` at the landmark (alive, below grade 3), features from data known at
the landmark and before the first anti-IL-6 dose only. "Early cytokines" at 48 h and 72 h = log
of the maximum of IL-6, IFN-γ, sgp130, sIL-6R, IL-1RA, IL-10, MCP-1 and IL-2 after infusion
(Teachey 2016, Zhou 2023: published 0.80–0.93); m-EASIX = LDH (U/L) × CRP (mg/dL) / platelets
(10⁹/L) from the last pre-lymphodepletion draw (Pennisi 2021: 0.70–0.82); marrow blasts ≥40%
alone (Kadauke 2021); each fed to a logistic regression scored by 5-fold cross-validated AUROC.
The oracle AUROC scores the generator's ``p_severe_crs`` (usual care) at 0 h; it keeps the
outcome's own randomness, so it is at most ≈0.92 as no published model does better.

Real scale: median peak IL-6, IFN-γ, IL-10 and CRP at maximum grade 1, 2 and ≥3 (car22 CD22
cohort, the only public paediatric per-patient anchor; its caveats: CD22 product, daily
sampling, HLH-rich, CRP only around days 0/7/14 — the bands in ``params.TARGETS`` say how) and
peak ferritin (PRWCC non-high-grade 2,035 ng/mL; Fitzgerald 2017 grade 3–4 60,214 ng/mL).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from features.cohort import Cohort
from features.errors import CrsRiskError
from features.io import load_cohort
from features.schema import SECOND_LINE_AGENTS
from features.synth.params import TARGETS, Target
from features.tasks import assign

EARLY_CYTOKINES: tuple[str, ...] = (
    "il6",
    "ifng",
    "sgp130",
    "sil6r",
    "il1ra",
    "il10",
    "mcp1",
    "il2",
)
MIN_EVENTS_FOR_AUROC = 10
REFRACTORY_WINDOW_H = 72.0
ANTI_IL6 = ("tocilizumab", "siltuximab")


@dataclass(frozen=True)
class Line:
    """One reported quantity: its value, the target it is held to (if any) and the count."""

    key: str
    label: str
    value: float
    target: Target | None = None
    n: int = 0  # denominator of a rate (for its confidence interval)

    @property
    def status(self) -> str:
        if self.target is None:
            return ""
        if math.isnan(self.value):
            return "n/a"
        return "OK" if self.target.ok(self.value) else "OUT"

    def ci(self) -> str:
        """Wilson 95% interval of a rate (sampling error alone at this sample size)."""
        if self.target is None or self.target.kind != "rate" or self.n == 0:
            return ""
        z, p, n = 1.96, self.value, self.n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return f"{centre - half:.3f}–{centre + half:.3f}"


@dataclass(frozen=True)
class DescribeReport:
    """Marginals vs targets for one cohort (``render()`` for the CLI)."""

    source: str
    n_patients: int
    lines: tuple[Line, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def values(self) -> dict[str, float]:
        return {line.key: line.value for line in self.lines}

    @property
    def out_of_tolerance(self) -> list[str]:
        return [line.key for line in self.lines if line.status == "OUT"]

    @property
    def ok(self) -> bool:
        return not self.out_of_tolerance

    def render(self) -> str:
        def fmt(v: float, kind: str) -> str:
            if math.isnan(v):
                return "n/a"
            return f"{v:.3f}" if kind in ("rate", "auroc") else f"{v:.2f}"

        head = ("quantity", "value", "target", "tolerance", "95% CI", "status", "source")
        rows = []
        for line in self.lines:
            t = line.target
            kind = t.kind if t else "value"
            rows.append(
                (
                    line.label,
                    fmt(line.value, kind),
                    "" if t is None else f"{t.target:g}",
                    "" if t is None else t.tolerance,
                    line.ci(),
                    line.status,
                    "" if t is None else t.source,
                )
            )
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(6)]
        out = [f"cohort {self.source!r}: {self.n_patients:,} patients"]
        out.append(
            "  ".join(h.ljust(w) for h, w in zip(head[:6], widths, strict=True)) + "  source"
        )
        out.extend(
            "  ".join(c.ljust(w) for c, w in zip(r[:6], widths, strict=True)) + "  " + r[6]
            for r in rows
        )
        outside = self.out_of_tolerance
        out.append(
            "all targets within tolerance"
            if not outside
            else f"{len(outside)} target(s) OUT of tolerance: {', '.join(outside)}"
        )
        out.extend(self.notes)
        return "\n".join(out)


# --- per-patient outcomes -----------------------------------------------------------------------
def grade_in_force(events: pd.DataFrame, pid: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """Recorded CRS grade in force at ``hours`` for patients ``pid`` (0 before onset)."""
    ev = events[events["event"].isin(["crs_onset", "crs_grade", "crs_resolved"])]
    ev = ev[ev["hours_from_infusion"].notna()]
    steps = pd.DataFrame(
        {
            "patient_id": ev["patient_id"].astype(str).to_numpy(),
            "hours_from_infusion": ev["hours_from_infusion"].to_numpy(dtype=float),
            "g": np.where(
                ev["event"].astype(str) == "crs_resolved",
                0.0,
                pd.to_numeric(ev["grade"]).to_numpy(dtype=float, na_value=np.nan),
            ),
        }
    )
    steps = steps.groupby(["patient_id", "hours_from_infusion"], as_index=False)["g"].max()
    left = pd.DataFrame(
        {
            "patient_id": np.asarray(pid, dtype=str),
            "hours_from_infusion": hours,
            "_i": np.arange(len(pid)),
        }
    )
    ok = ~np.isnan(hours)
    # one string dtype on both sides (imported cohorts carry pandas strings, synthetic objects)
    left["patient_id"] = left["patient_id"].astype(object)
    steps["patient_id"] = steps["patient_id"].astype(object)
    merged = pd.merge_asof(
        left[ok].sort_values("hours_from_infusion"),
        steps.sort_values("hours_from_infusion"),
        on="hours_from_infusion",
        by="patient_id",
        direction="backward",
    )
    out = np.zeros(len(pid))
    out[~ok] = np.nan
    out[merged["_i"].to_numpy()] = merged["g"].fillna(0.0).to_numpy()
    return out


def patient_outcomes(patients: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """One row per patient: max grade, onset, tocilizumab use and refractoriness, ICANS, ICU."""
    ids = patients["patient_id"].astype(str)
    ev = events.assign(
        patient_id=events["patient_id"].astype(str), event=events["event"].astype(str)
    )
    g = ev.groupby("event")
    out = pd.DataFrame(index=pd.Index(ids, name="patient_id"))

    def per(event: str, col: str, how: str) -> pd.Series:
        if event not in g.groups:
            return pd.Series(np.nan, index=out.index)
        frame = g.get_group(event)
        return frame.groupby("patient_id")[col].agg(how).reindex(out.index)

    graded = ev[ev["event"].isin(["crs_onset", "crs_grade", "crs_max_grade"])]
    out["max_grade"] = (
        pd.to_numeric(graded["grade"])
        .groupby(graded["patient_id"])
        .max()
        .reindex(out.index)
        .fillna(0)
    )
    out["onset_h"] = per("crs_onset", "hours_from_infusion", "min")
    sev = graded[pd.to_numeric(graded["grade"]) >= 3]
    out["grade3_h"] = sev.groupby("patient_id")["hours_from_infusion"].min().reindex(out.index)
    out["toci_first_h"] = per("tocilizumab", "hours_from_infusion", "min")
    out["n_toci"] = per("tocilizumab", "hours_from_infusion", "count").fillna(0)
    silt_first_h = per("siltuximab", "hours_from_infusion", "min")
    toci_h = out["toci_first_h"]
    out["first_agent"] = np.where(
        toci_h.notna() & ~(silt_first_h < toci_h),
        "tocilizumab",
        np.where(silt_first_h.notna(), "siltuximab", ""),
    )
    second = ev[ev["event"].isin(SECOND_LINE_AGENTS)]
    first = second["patient_id"].map(toci_h).to_numpy(dtype=float)
    after = second[second["hours_from_infusion"].to_numpy(dtype=float) > first]
    out["second_line_after_toci"] = out.index.isin(after["patient_id"].unique())
    # no improvement: grade 24 h after the last of the first two doses ≥ max(grade at dose 1, 1)
    toci = ev[ev["event"] == "tocilizumab"].sort_values(["patient_id", "hours_from_infusion"])
    rank = toci.groupby("patient_id").cumcount()
    ref_rank = np.minimum(toci.groupby("patient_id")["patient_id"].transform("size"), 2) - 1
    ref = toci[rank == ref_rank].set_index("patient_id")["hours_from_infusion"].reindex(out.index)
    pid = out.index.to_numpy()
    at_first = grade_in_force(events, pid, toci_h.to_numpy(dtype=float))
    later = grade_in_force(events, pid, ref.to_numpy(dtype=float) + 24.0)
    out["no_improvement"] = later >= np.maximum(at_first, 1.0)
    is_toci = out["first_agent"] == "tocilizumab"
    # DESIGN.md: within the window, a second-line agent for CRS or worsening to grade ≥3 also count
    ind = ev["indication"].astype(str) if "indication" in ev else pd.Series("", index=ev.index)
    crs_2l = second[ind.reindex(second.index).isin(["crs", "", "nan", "<NA>"]).to_numpy()]
    t2l = crs_2l["hours_from_infusion"].to_numpy(dtype=float)
    first2 = crs_2l["patient_id"].map(toci_h).to_numpy(dtype=float)
    inwin = crs_2l[(t2l > first2) & (t2l <= first2 + REFRACTORY_WINDOW_H)]
    out["second_line_for_crs"] = out.index.isin(inwin["patient_id"].unique())
    out["grade3_after_toci"] = (at_first < 3) & (out["grade3_h"] > toci_h).to_numpy()
    worse = out["grade3_after_toci"] & (out["grade3_h"] <= toci_h + REFRACTORY_WINDOW_H)
    out["refractory"] = np.where(
        is_toci,
        (out["second_line_for_crs"] | worse | out["no_improvement"]).astype(float),
        np.nan,
    )
    steroids = ev[(ev["event"] == "corticosteroids") & ind.isin(["crs"]).to_numpy()]
    out["steroids_for_crs"] = out.index.isin(steroids["patient_id"].unique())
    resolved = per("crs_resolved", "hours_from_infusion", "max")
    out["duration_h"] = resolved - out["onset_h"]
    out["icans"] = per("icans", "hours_from_infusion", "count").fillna(0) > 0
    out["icu"] = per("icu_admission", "hours_from_infusion", "count").fillna(0) > 0
    return out


# --- discrimination -----------------------------------------------------------------------------
def _last_value(m: pd.DataFrame, analyte: str, lo: float, hi: float) -> pd.Series:
    rows = m[
        (m["analyte"] == analyte)
        & (m["hours_from_infusion"] >= lo)
        & (m["hours_from_infusion"] < hi)
    ]
    rows = rows.sort_values(["patient_id", "hours_from_infusion"])
    return rows.groupby("patient_id", observed=True)["value"].last()


def m_easix(patients: pd.DataFrame, measurements: pd.DataFrame) -> pd.Series:
    """Pre-lymphodepletion m-EASIX per patient (canonical units: CRP mg/L → mg/dL)."""
    m = measurements.assign(
        patient_id=measurements["patient_id"].astype(str),
        analyte=measurements["analyte"].astype(str),
    )
    ldh = _last_value(m, "ldh", -np.inf, -24.0)
    crp = _last_value(m, "crp", -np.inf, -24.0) / 10.0
    plt = _last_value(m, "platelets", -np.inf, -24.0)
    ids = patients["patient_id"].astype(str)
    return (ldh * crp / plt).reindex(ids).rename("m_easix")


def early_cytokines(
    patients: pd.DataFrame, measurements: pd.DataFrame, hours: float = 72.0
) -> pd.DataFrame:
    """log max of each early cytokine over (0, ``hours``] per patient (NaN = never measured)."""
    m = measurements[
        measurements["analyte"].astype(str).isin(EARLY_CYTOKINES)
        & (measurements["hours_from_infusion"] > 0)
        & (measurements["hours_from_infusion"] <= hours)
    ]
    wide = (
        m.assign(patient_id=m["patient_id"].astype(str), analyte=m["analyte"].astype(str))
        .pivot_table(index="patient_id", columns="analyte", values="value", aggfunc="max")
        .reindex(patients["patient_id"].astype(str))
    )
    wide = wide.reindex(columns=list(EARLY_CYTOKINES))
    return np.log(wide.clip(lower=1e-3))


def cv_auroc(x: pd.DataFrame | pd.Series, y: np.ndarray, seed: int = 0) -> float:
    """5-fold cross-validated AUROC of a logistic regression (median imputation + indicators)."""
    X = x.to_frame() if isinstance(x, pd.Series) else x
    X = X.loc[:, X.notna().any()]
    y = np.asarray(y, dtype=int)
    events = int(y.sum())
    if X.shape[1] == 0 or min(events, len(y) - events) < MIN_EVENTS_FOR_AUROC:
        return float("nan")
    model = make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True),
        StandardScaler(),
        LogisticRegression(max_iter=1000),
    )
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    p = cross_val_predict(model, X.to_numpy(dtype=float), y, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    y = np.asarray(y, dtype=int)
    if min(int(y.sum()), len(y) - int(y.sum())) < 1:
        return float("nan")
    return float(roc_auc_score(y, score))


# --- the report ---------------------------------------------------------------------------------
def _rate(
    mask: pd.Series | np.ndarray, among: pd.Series | np.ndarray | None = None
) -> tuple[float, int]:
    mask = np.asarray(mask, dtype=bool)
    among = np.ones(len(mask), dtype=bool) if among is None else np.asarray(among, dtype=bool)
    n = int(among.sum())
    return (float(mask[among].mean()) if n else float("nan")), n


def describe_cohort(cohort: Cohort, truth: pd.DataFrame | None = None) -> DescribeReport:
    """Every target's value for a canonical cohort (plus ``truth`` when the cohort is synthetic)."""
    with warnings.catch_warnings():  # empty groups (e.g. no ages in an imported cohort) → n/a
        warnings.simplefilter("ignore", RuntimeWarning)
        return _describe(cohort, truth)


def _describe(cohort: Cohort, truth: pd.DataFrame | None) -> DescribeReport:
    pat, ev, meas = cohort.patients, cohort.events, cohort.measurements
    o = patient_outcomes(pat, ev)
    n = len(pat)
    crs = (o["max_grade"] >= 1).to_numpy()
    severe = (o["max_grade"] >= 3).to_numpy()
    toci = (o["n_toci"] > 0).to_numpy()
    treated = (o["first_agent"] != "").to_numpy()
    blasts = pat["marrow_blasts_pct"].to_numpy(dtype=float)
    age = pat["age_years"].to_numpy(dtype=float)
    ari = (pat["product"].astype(str) == "ARI-0001").to_numpy()
    onset_d = o["onset_h"].to_numpy(dtype=float) / 24.0
    doses = np.minimum(o["n_toci"].to_numpy(), 3)
    v: dict[str, tuple[float, int]] = {
        "any_crs": _rate(crs),
        "severe_crs": _rate(severe),
        "toci_in_crs": _rate(toci, crs),
        "toci_refractory": _rate(o["refractory"] == 1, o["first_agent"] == "tocilizumab"),
        "silt_first": _rate(o["first_agent"] == "siltuximab", treated),
        "icans": _rate(o["icans"]),
        "age_median": (float(np.nanmedian(age)), 0),
        "age_min": (float(np.nanmin(age)), 0),
        "age_max": (float(np.nanmax(age)), 0),
        "blasts_ge40": _rate(blasts >= 40, ~np.isnan(blasts)),
        "weight_gt50": _rate(pat["weight_kg"].to_numpy(dtype=float) > 50),
        "onset_median_day": (float(np.nanmedian(onset_d[crs])) if crs.any() else math.nan, 0),
        "onset_earlier_severe": (
            float(np.nanmedian(onset_d[crs & ~severe]) - np.nanmedian(onset_d[severe]))
            if severe.any() and (crs & ~severe).any()
            else math.nan,
            0,
        ),
        "toci_doses_1": _rate(doses == 1, toci),
        "toci_doses_2": _rate(doses == 2, toci),
        "toci_doses_3": _rate(doses == 3, toci),
        "severe_blasts_lt5": _rate(severe, blasts < 5),
        "severe_blasts_ge40": _rate(severe, blasts >= 40),
        "icu": _rate(o["icu"]),
    }
    tisa_rate, _ = _rate(severe, ~ari)
    ari_rate, n_ari = _rate(severe, ari)
    v["severe_rr_ari"] = (ari_rate / tisa_rate if n_ari and tisa_rate > 0 else math.nan, 0)
    v["refractory_after_grade3"] = _rate(
        o["refractory"] == 1, o["grade3_after_toci"] & (o["first_agent"] == "tocilizumab")
    )
    v["steroids_severe"] = _rate(o["steroids_for_crs"], severe)
    dur = o["duration_h"].to_numpy(dtype=float) / 24.0
    v["duration_severe_day"] = (_median(dur[severe]), 0)
    grade = o["max_grade"].to_numpy()
    peaks = peak_values(pat, meas, ("il6", "ifng", "il10", "crp", "ferritin"))
    for key, analyte, among in (
        *(
            (f"{a}_peak_g{g}", a, grade == g if g < 3 else severe)
            for a in ("il6", "ifng", "il10", "crp")
            for g in (1, 2, 3)
        ),
        ("ferritin_peak_g02", "ferritin", ~severe),
        ("ferritin_peak_g3", "ferritin", severe),
    ):
        v[key] = (_median(peaks[analyte].to_numpy(dtype=float)[among]), 0)
    at0 = assign(cohort, "severe_crs", 0.0)
    ok0 = at0.eligible
    y0 = at0.y[ok0].astype(int)
    v["auroc_measix"] = (_measix_auroc(pat[ok0], meas, y0), 0)
    v["auroc_blasts40"] = (auroc(y0, (blasts >= 40)[ok0].astype(float)), 0)
    for key, hours in (("auroc_cytokines_48h", 48.0), ("auroc_cytokines", 72.0)):
        v[key] = (landmark_cytokine_auroc(cohort, hours), 0)
    notes = [
        "rates carry sampling error: the 95% CI column is the Wilson interval at this n; "
        "tolerances are meant for n ≈ 20,000 (at n = 118 several targets fall OUT by chance).",
        "AUROCs: 5-fold CV logistic regression on patients eligible for severe_crs at the "
        "landmark (features.tasks), data known at the landmark and before the first anti-IL-6 "
        "dose; m-EASIX from the last pre-lymphodepletion draw.",
    ]
    extra: list[Line] = []
    if truth is not None:
        t = truth.assign(patient_id=truth["patient_id"].astype(str)).set_index("patient_id")
        t = t.reindex(pat["patient_id"].astype(str))
        if t["p_severe_crs"].isna().any():
            raise CrsRiskError("truth.csv: p_severe_crs missing for some patients of the cohort")
        v["hlh_like"] = _rate(t["hlh_like"].to_numpy() == 1)
        v["auroc_oracle"] = (auroc(y0, t["p_severe_crs"].to_numpy(dtype=float)[ok0]), 0)
        ref = o["refractory"].to_numpy(dtype=float)
        pr = t["p_toci_refractory"].to_numpy(dtype=float)
        both = ~np.isnan(ref) & ~np.isnan(pr)
        extra.append(
            Line(
                "auroc_oracle_refractory",
                "Oracle AUROC (p_toci_refractory), tocilizumab-treated",
                auroc(ref[both], pr[both]) if both.any() else math.nan,
            )
        )
        for col, label in (
            ("p_severe_crs", "Mean p_severe_crs (expected grade ≥3 rate, usual care)"),
            ("p_severe_crs_preemptive", "Mean p_severe_crs_preemptive (tocilizumab at grade 1)"),
            ("p_severe_crs_untreated", "Mean p_severe_crs_untreated (no anti-IL-6)"),
        ):
            if col in t:
                extra.append(Line(f"mean_{col}", label, float(t[col].mean())))
    else:
        notes.append("no truth.csv beside the cohort: HLH-like share and oracle AUROC not shown.")
    for hours in (24, 48, 72):
        reached = (o["grade3_h"].to_numpy(dtype=float) <= hours) & severe
        extra.append(
            Line(
                f"severe_by_{hours}h",
                f"Grade ≥3 already reached by {hours} h (share of grade ≥3)",
                float(reached.sum() / severe.sum()) if severe.any() else math.nan,
            )
        )
    lines = [Line(t.key, t.label, v[t.key][0], t, v[t.key][1]) for t in TARGETS if t.key in v]
    return DescribeReport(cohort.source, n, tuple(lines + extra), tuple(notes))


def _median(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(np.median(x)) if len(x) else math.nan


def peak_values(
    patients: pd.DataFrame, measurements: pd.DataFrame, analytes: tuple[str, ...]
) -> pd.DataFrame:
    """Maximum after infusion of each analyte per patient (canonical units; NaN = none)."""
    m = measurements[
        measurements["analyte"].astype(str).isin(analytes)
        & (measurements["hours_from_infusion"] >= 0)
    ]
    wide = (
        m.assign(patient_id=m["patient_id"].astype(str), analyte=m["analyte"].astype(str))
        .pivot_table(index="patient_id", columns="analyte", values="value", aggfunc="max")
        .reindex(patients["patient_id"].astype(str))
    )
    return wide.reindex(columns=list(analytes))


def landmark_cytokine_auroc(cohort: Cohort, hours: float) -> float:
    """CV AUROC of early cytokines for later grade ≥3, on the task's eligible patients at
    ``hours``, from measurements known at the landmark and before the first anti-IL-6 dose."""
    a = assign(cohort, "severe_crs", hours)
    ok = a.eligible
    pat, ev, meas = cohort.patients, cohort.events, cohort.measurements
    drugs = ev[ev["event"].astype(str).isin(ANTI_IL6)]
    first = drugs.groupby(drugs["patient_id"].astype(str))["hours_from_infusion"].min()
    limit = meas["patient_id"].astype(str).map(first).to_numpy(dtype=float)
    t = meas["hours_from_infusion"].to_numpy(dtype=float)
    known = (t <= hours) & ~(t >= limit)
    x = early_cytokines(pat[ok], meas[known], hours)
    return cv_auroc(x, a.y[ok])


def _measix_auroc(pat: pd.DataFrame, meas: pd.DataFrame, severe: np.ndarray) -> float:
    score = m_easix(pat, meas).to_numpy(dtype=float)
    ok = np.isfinite(score) & (score > 0)
    return cv_auroc(pd.Series(np.log(score[ok])), severe[ok])


def describe_folder(path: str | os.PathLike[str]) -> DescribeReport:
    """Load a cohort folder (and its ``truth.csv`` when present) and describe it."""
    folder = Path(path)
    cohort = load_cohort(folder)
    truth_path = folder / "truth.csv"
    truth = None
    if truth_path.exists():
        truth = pd.read_csv(truth_path, dtype={"patient_id": str})
        missing = {"patient_id", "p_severe_crs", "p_toci_refractory", "hlh_like"} - set(
            truth.columns
        )
        if missing:
            raise CrsRiskError(f"{truth_path}: missing column(s) {', '.join(sorted(missing))}")
    return describe_cohort(cohort, truth)
