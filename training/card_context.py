"""Model card, step 2: the card's context — every statement, formatted, from what was logged.

Pure: takes the :class:`~training.card_gather.CardSources` read from the store and returns the
mapping the templates render (``training.card_render``). Sections follow Mitchell M et al. 2019,
"Model Cards for Model Reporting" (FAT* '19); ``training.card_tripod`` maps TRIPOD+AI items (Collins
GS et al. 2024, BMJ 385:e078378, item numbers of its checklist) to the section answering each.
Statistics (CIs, the paired comparison) were computed and logged at training; here they are
only formatted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from features.catalog import CATALOG
from features.errors import CrsRiskError
from features.manifest import run_is_synthetic
from features.tasks import get_task
from training.card_gather import FIGURES, CardSources, Sibling
from training.card_tripod import tripod_rows
from training.explain_global import direction_text
from training.registry import model_id_of

BASELINES: tuple[str, ...] = ("m_easix", "cytokine3", "fever_mcp1", "high_burden", "cytokine_max")
METRIC_LABELS: dict[str, str] = {
    "auroc": "AUROC (discrimination)",
    "auprc": "AUPRC",
    "brier": "Brier score",
    "scaled_brier": "Scaled Brier score",
    "calibration_slope": "Calibration slope",
    "calibration_intercept": "Calibration intercept",
    "calibration_in_the_large": "Calibration-in-the-large (observed − expected)",
    "oe_ratio": "Observed / expected events",
}
INTENDED_USE: dict[str, dict[str, str]] = {
    "severe_crs": {
        "purpose": (
            "Early warning of severe cytokine release syndrome (ASTCT grade ≥3) after CD19 CAR "
            "T-cell infusion for B-cell acute lymphoblastic leukaemia in children, adolescents "
            "and young adults, scored at the landmark for patients still below grade 3."
        ),
        "users": (
            "CAR T / haematology-oncology physicians and nurses, to decide on closer "
            "monitoring, ICU awareness or pre-emptive treatment; data scientists comparing "
            "models."
        ),
        "decision": "Closer monitoring or pre-emptive anti-IL-6 therapy in high-risk patients.",
    },
    "toci_refractory": {
        "purpose": (
            "At the first tocilizumab dose for CRS after CD19 CAR T-cell therapy, the risk that "
            "CRS is refractory to tocilizumab (needs a second-line agent or fails to improve)."
        ),
        "users": (
            "CAR T physicians deciding whether a first-line alternative (e.g. siltuximab, "
            "Galán-Gómez 2025) or early escalation deserves consideration; data scientists."
        ),
        "decision": "First-line alternative to tocilizumab or early second-line escalation.",
    },
}
NOT_FOR = (
    "Not a substitute for ASTCT grading, clinical judgement or local guidelines; not validated "
    "for adults, lymphoma or myeloma, non-CD19 products, or centres outside the training data "
    "until an external validation (`crs-risk evaluate`) says so."
)
MISSING_METHOD = (
    "Learned inside the pipeline on training folds only: values winsorised at the catalog's "
    "plausible ranges, skewed analytes log-transformed, missing values imputed with the training "
    "median plus a missing-indicator column per affected feature (Sperrin M et al. 2020, Stat "
    "Med 39:3231), so informative missingness stays visible to the model. Published baselines "
    "impute the training median of their inputs (rules: a missing input means the condition is "
    "not met)."
)
SHAP_NOTE = (
    "Contributions are SHAP values of the model's uncalibrated log-odds (TreeSHAP for XGBoost, "
    "exact linear SHAP for logistic regression, coefficient-based for published baselines), "
    "summed per clinical variable. The reported risk is the calibrated probability, a monotone "
    "function of those log-odds, so the direction and order of reasons hold while their size is "
    "on the uncalibrated scale."
)


# --- small helpers ---------------------------------------------------------------------------
def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return out


def _count(value: Any) -> int:
    """A logged count as int (0 when not recorded)."""
    v = _num(value)
    return int(v) if math.isfinite(v) else 0


def fmt(value: Any, digits: int = 3) -> str:
    v = _num(value)
    return "—" if not math.isfinite(v) else f"{v:.{digits}f}"


def fmt_ci(est: Mapping[str, Any] | None, digits: int = 3) -> str:
    """'0.817 [0.675–0.929]' from {'value', 'low', 'high'}."""
    if not est:
        return "not recorded"
    v, lo, hi = (_num(est.get(k)) for k in ("value", "low", "high"))
    if not math.isfinite(v):
        return "not estimable"
    if math.isfinite(lo) and math.isfinite(hi):
        return f"{v:.{digits}f} [{lo:.{digits}f}–{hi:.{digits}f}]"
    return f"{v:.{digits}f}"


def fmt_pct(value: Any, digits: int = 0) -> str:
    v = _num(value)
    return "—" if not math.isfinite(v) else f"{100 * v:.{digits}f}%"


def _suppressed(row: Mapping[str, Any]) -> bool:
    """A subgroup cell under 5 patients (``training.subgroups.MIN_CELL``): counts withheld."""
    return str(row.get("suppressed", "")).lower() == "true" or not math.isfinite(
        _num(row.get("n_patients"))
    )


def honesty_statements(summary: Mapping[str, Any], metrics: Mapping[str, float]) -> list[str]:
    """What the reported estimate includes, the null check, the compact-baseline comparison."""
    out: list[str] = []
    sel = summary.get("selection") or {}
    if sel:
        counts = sel.get("fold_choices") or {}
        spread = ", ".join(f"{k} in {v}" for k, v in counts.items())
        names = ", ".join(sel.get("candidates", []))
        out.append(
            f"**Selection:** {sel.get('how', '')}. Candidates: {names}."
            + (f" Chosen per outer fold: {spread}." if spread else "")
        )
    null = summary.get("null_check")
    if null and null.get("k"):
        out.append(
            f"**Null check:** the whole procedure refitted on {null['k']} outcome permutations "
            f"read AUROC {fmt(metrics.get('null_auroc_mean'))} on average (95th percentile "
            f"{fmt(metrics.get('null_auroc_p95'))}); the real estimate is "
            f"{fmt(metrics.get('auroc'))} (permutation p = {fmt(metrics.get('null_p_value'))})."
        )
    elif null and null.get("why") == "switched_off":
        out.append(
            "**Null check:** switched off for this training (K = 0 set in the experiment or with "
            "`--null-check 0`): the estimate has no permutation reference."
        )
    else:
        out.append("**Null check:** not run for this training (cohort above the automatic size).")
    if summary.get("verdict"):
        usable = "usable signal" if summary.get("usable") else "**no usable signal**"
        out.append(f"**Signal:** {usable} — {summary['verdict']}.")
    base = summary.get("compact_baseline") or {}
    if base.get("text"):
        out.append(f"**Compact published-style baseline:** {base['text']}.")
    cols = summary.get("columns") or {}
    if cols.get("note"):
        out.append(f"**Predictors:** {cols['note']}.")
    if cols.get("dropped"):
        out.append(
            f"**Dropped before any fit:** {len(cols['dropped'])} column(s) missing for every "
            "patient or constant."
        )
    return out


def comparison_rows(siblings: list[Sibling], paired: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Champion vs every other model of the same call: AUROC [CI], paired ΔAUROC [CI] (logged
    at training, ``training.paired``; "—" for versions trained before it was), Brier,
    calibration slope."""
    deltas = paired.get("delta_auroc") or {}
    rows = []
    for sib in siblings:
        m = sib.metrics
        tags = sib.tags
        model = tags.get("model", "?")
        d = deltas.get(f"{model}/{tags.get('feature_set', '')}")
        rows.append(
            {
                "model": model,
                "feature_set": tags.get("feature_set", ""),
                "published": model in BASELINES,
                "auroc": fmt_ci(
                    {
                        "value": m.get("auroc"),
                        "low": m.get("auroc_ci_low"),
                        "high": m.get("auroc_ci_high"),
                    }
                ),
                "delta_auroc": fmt_ci(d) if d else "—",
                "brier": fmt(m.get("brier")),
                "slope": fmt(m.get("calibration_slope"), 2),
                "calibrated": tags.get("calibrated", ""),
            }
        )
    rows.sort(key=lambda r: (not r["published"], r["model"], r["feature_set"]))
    return rows


def _importance_rows(table: pd.DataFrame, top: int = 10) -> list[dict[str, Any]]:
    out = []
    for r in table.head(top).itertuples():
        expected = int(r.expected_direction) if math.isfinite(_num(r.expected_direction)) else 0
        agrees = str(r.agrees)
        out.append(
            {
                "rank": int(r.rank),
                "label": r.label,
                "feature": r.feature,
                "mean_abs": f"{_num(r.mean_abs_log_odds):.3f}",
                "direction": direction_text(int(r.direction), str(r.kind)),
                "expected": {1: "↑ risk", -1: "↓ risk"}.get(expected, "none declared"),
                "agrees": {"True": "yes", "False": "no"}.get(agrees, "—"),
                "missing_pct": f"{_num(r.missing_pct):.0f}%",
            }
        )
    return out


def card_context(src: CardSources) -> dict[str, Any]:
    """The card's context (formatted text and tables) from what was logged. Pure."""
    mv, run, name, version = src.mv, src.run, src.name, src.version
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    task = mv.tags.get("task") or tags.get("task", "")
    landmark = mv.tags.get("landmark") or tags.get("landmark", "")
    model = mv.tags.get("model") or tags.get("model", "")
    summary, subgroups, importance = src.summary, src.subgroups, src.importance
    parent_params = src.parent_params
    figures = src.figures
    comparison = comparison_rows(src.siblings, src.paired)

    try:
        task_card = get_task(task).card()
    except CrsRiskError:
        task_card = {"description": task, "outcome": "not recorded", "eligibility": ""}
    rep = summary.get("metrics", {})
    estimates = rep.get("estimates", {})
    participants = summary.get("participants", {})
    size = summary.get("sample_size", {})
    n = _count(metrics.get("n_patients", participants.get("eligible")))
    events = _count(metrics.get("n_events", participants.get("events")))
    cohort_label = parent_params.get("cohort") or ", ".join(
        i.dataset.name for i in (run.inputs.dataset_inputs if run.inputs else [])
    )
    sources = [i.dataset.source for i in (run.inputs.dataset_inputs if run.inputs else [])]
    synthetic = run_is_synthetic(tags, metrics, str(cohort_label), sources) is True
    centres = (
        [
            {
                "level": r["level"],
                "n_patients": "<5" if _suppressed(r) else int(r["n_patients"]),
                "n_events": "—" if _suppressed(r) else int(r["n_events"]),
            }
            for r in subgroups[subgroups["subgroup"] == "center"].to_dict("records")
        ]
        if not subgroups.empty
        else []
    )
    products = (
        sorted(subgroups[subgroups["subgroup"] == "product"]["level"].astype(str))
        if not subgroups.empty
        else []
    )
    missing = (
        importance[importance["missing_pct"] > 0][["label", "feature", "missing_pct"]]
        .sort_values("missing_pct", ascending=False)
        .to_dict("records")
        if not importance.empty
        else []
    )
    for m in missing:
        m["missing_pct"] = f"{_num(m['missing_pct']):.0f}%"
        spec = CATALOG.get(str(m["feature"]))
        m["feature_label"] = spec.label if spec else m["feature"]

    thresholds = [
        {
            "threshold": fmt_pct(t.get("threshold")),
            "sensitivity": fmt(t.get("sensitivity"), 2),
            "specificity": fmt(t.get("specificity"), 2),
            "ppv": fmt(t.get("ppv"), 2),
            "npv": fmt(t.get("npv"), 2),
            "treated": fmt_pct(t.get("treated_fraction")),
            "net_benefit": fmt(metrics.get(f"net_benefit_at_{_num(t.get('threshold')):.2f}")),
            "net_benefit_all": fmt(
                metrics.get(f"net_benefit_treat_all_at_{_num(t.get('threshold')):.2f}")
            ),
        }
        for t in rep.get("thresholds", [])
    ]
    subgroup_rows = [
        {
            "subgroup": r["subgroup"],
            "level": r["level"],
            "n": "<5 (suppressed)" if _suppressed(r) else int(r["n_patients"]),
            "events": "—" if _suppressed(r) else int(r["n_events"]),
            "auroc": fmt_ci(
                {"value": r["auroc"], "low": r["auroc_ci_low"], "high": r["auroc_ci_high"]}
            )
            if math.isfinite(_num(r["auroc"]))
            else "not estimable (one class)",
            "observed": fmt_pct(r["observed_risk"], 1),
            "predicted": fmt_pct(r["mean_predicted_risk"], 1),
        }
        for r in (subgroups.to_dict("records") if not subgroups.empty else [])
    ]
    validation = summary.get("validation", {})
    method = params.get("validation_method", validation.get("method", "not recorded"))
    procedure = summary.get("role") == "champion_procedure"
    estimate_scope = (
        "outer-loop estimate of the whole champion procedure (tuning and the choice among "
        "candidates refitted inside every outer fold)"
        if procedure
        else "this candidate's out-of-sample estimate (no selection included)"
    )
    val_text = {
        "repeated_cv": (
            f"repeated stratified {params.get('folds', '?')}-fold cross-validation × "
            f"{params.get('repeats', '?')} repeat(s)"
        ),
        "leave_one_centre_out": "leave-one-centre-out cross-validation",
        "bootstrap_optimism": (
            "bootstrap optimism correction (Harrell; no longer offered — it failed the null "
            "check on small cohorts)"
        ),
    }.get(method, method)
    size_text = size_short = "not recorded"
    if size:
        size_text = (
            f"{size.get('n_patients')} patients, {size.get('n_events')} events, "
            f"{size.get('parameters')} candidate parameter(s): "
            f"{_num(size.get('events_per_parameter')):.1f} events per parameter; Riley et al. "
            f"2020 minimum n = {size.get('min_n')} (shrinkage {size.get('min_n_shrinkage')}, "
            f"optimism {size.get('min_n_optimism')}, overall risk "
            f"{size.get('min_n_overall_risk')}) — "
            + ("adequate." if size.get("adequate") else "**below the minimum**.")
        )
    if size:
        size_short = (
            f"n = {size.get('n_patients')} vs Riley minimum {size.get('min_n')} ("
            + ("adequate" if size.get("adequate") else "below")
            + f"); {_num(size.get('events_per_parameter')):.1f} events per candidate parameter"
        )
    limitations = []
    if synthetic:
        limitations.append(
            "**Trained on SYNTHETIC data** (simulated cohort): every figure here describes the "
            "simulator, not patients. Do not use for clinical decisions."
        )
    else:
        limitations.append(
            f"Trained on one cohort ({cohort_label or 'source not recorded'}) without external "
            "validation in this card; performance in other centres may be lower."
        )
    if size and not size.get("adequate"):
        limitations.append(
            f"Sample size below Riley's minimum ({size.get('n_patients')} < "
            f"{size.get('min_n')}): expect optimism and imprecise calibration."
        )
    if events < 50:
        limitations.append(
            f"Only {events} events: wide confidence intervals; subgroup results are imprecise."
        )
    limitations.append(
        "Population: children, adolescents and young adults with B-ALL given CD19 CAR T "
        + (f"({', '.join(products)})" if products else "")
        + f" in {len(centres) or 'an unrecorded number of'} centre(s)."
    )
    limitations.append(
        "Bootstrap CIs cover patient sampling for this modelling procedure, not its training "
        "variability; they are somewhat narrow for small cohorts."
    )
    if validation.get("notes"):
        limitations.extend(str(n) for n in validation["notes"])

    intended = INTENDED_USE.get(task, {"purpose": task, "users": "", "decision": ""})
    calibration = params.get("calibration", "none")
    context: dict[str, Any] = {
        "name": name,
        "version": str(version),
        "alias": ", ".join(src.aliases) or "—",
        "task": task,
        "landmark": landmark,
        "model": model,
        "feature_set": mv.tags.get("feature_set") or tags.get("feature_set", ""),
        "description": summary.get("description", tags.get("mlflow.note.content", "")),
        "registration_reason": mv.description or "",
        "run_id": run.info.run_id,
        "model_id": model_id_of(mv) or "",
        "code_version": tags.get("code_version", "unknown"),
        "git_commit": tags.get("git_commit", "unknown"),
        "experiment": tags.get("crs_risk_experiment", ""),
        "calibration": calibration,
        "output": (
            "calibrated probability of the outcome (predict_proba[:, 1])"
            + (
                f"; {calibration} calibration fitted on inner cross-validated predictions"
                if calibration not in ("none", "")
                else ""
            )
        ),
        "intended": intended,
        "not_for": NOT_FOR,
        "task_card": task_card,
        "cohort_label": cohort_label or "not recorded",
        "cohort_digest": tags.get("cohort_digest", "not recorded"),
        "synthetic": synthetic,
        "n": n,
        "events": events,
        "event_rate": fmt_pct(events / n if n else float("nan"), 1),
        "exclusions": participants.get("exclusions", {}),
        # issue 11: which exclusions are for an unknown outcome; positives by clause
        "outcome_unknown": participants.get("excluded_outcome_unknown", {}),
        "positive_clauses": participants.get("positive_clauses", {}),
        "centres": centres,
        "missing": missing,
        "missing_recorded": not importance.empty,
        "missing_method": MISSING_METHOD,
        "size_text": size_text,
        "size_short": size_short,
        "validation_text": val_text,
        "validation": {
            "method": method,
            "inner_folds": params.get("inner_folds", "—"),
            "group_by_center": params.get("group_by_center", "—"),
            "tuning_grid": params.get("tuning_grid", "none"),
            "best": {k[5:]: v for k, v in params.items() if k.startswith("best.")},
            "fixed": {k[6:]: v for k, v in params.items() if k.startswith("fixed.")},
            "notes": validation.get("notes", []),
            "optimism": validation.get("optimism"),
        },
        "estimates": [
            {"metric": METRIC_LABELS.get(k, k), "key": k, "value": fmt_ci(estimates.get(k))}
            for k in METRIC_LABELS
            if k in estimates
        ],
        "oracle": fmt(summary.get("oracle_auroc")) if summary.get("oracle_auroc") else None,
        "thresholds": thresholds,
        "subgroups": subgroup_rows,
        "importance": _importance_rows(importance) if not importance.empty else [],
        "shap_note": SHAP_NOTE,
        "estimate_scope": estimate_scope,
        "interval": summary.get("interval")
        or "percentile bootstrap stratified by outcome over the out-of-fold predictions",
        "honesty": honesty_statements(summary, metrics),
        "comparison": comparison,
        "limitations": limitations,
        "data_quality": src.data_quality,  # issue 17 (logged on the parent run)
        "figures": {k: FIGURES[k][1] for k in figures},
    }
    context["tripod"] = tripod_rows(context)
    return context
