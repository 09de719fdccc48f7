"""Model card of a registered model version, in Markdown and self-contained HTML.

The card is assembled from what the training run logged (``training.runner``: parameters,
``metrics.json``, ``subgroups.csv``, fold predictions, validation plots; ``training.explain``:
``shap/importance.csv`` and figures) plus the registry and the task definition
(``features.tasks``), so it states only what was measured. Sections follow Mitchell M et al.
2019, "Model Cards for Model Reporting" (FAT* '19), and a closing table maps TRIPOD+AI items
(Collins GS et al. 2024, BMJ 385:e078378, item numbers of its checklist) to the section that
answers each.

:func:`log_model_card` writes the card beside the registered model (the LoggedModel's artifacts,
``model_card/``) and into the training run, and tags the version with its path;
``crs-risk card models:/NAME@champion`` (:func:`fetch_model_card`) retrieves it. Everything in
a card is an aggregate: counts, metrics, category levels, plots — no patient identifier.
"""

from __future__ import annotations

import base64
import json
import math
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.errors import CrsRiskError

CARD_DIR = "model_card"
CARD_MD = "model_card.md"
CARD_HTML = "model_card.html"
FIGURES_DIR = "figures"
CARD_TAG = "model_card"
TEMPLATES = Path(__file__).resolve().parent / "templates"

# (heading, anchor) of every section, in order — the test parses the card for these.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("Model details", "model-details"),
    ("Intended use and users", "intended-use"),
    ("Task, landmark, eligibility and outcome", "task"),
    ("Training cohort", "training-cohort"),
    ("Data quality", "data-quality"),
    ("Validation method", "validation"),
    ("Performance", "performance"),
    ("Calibration and decision curve", "calibration"),
    ("Top variables", "top-variables"),
    ("Comparison with published baselines", "baselines"),
    ("Limitations", "limitations"),
    ("TRIPOD+AI checklist", "tripod"),
)
# Run artifact → figure file name in the card (embedded in the HTML, beside the Markdown).
FIGURES: dict[str, tuple[str, str]] = {
    "roc": ("plots/roc.png", "ROC curve (out-of-fold predictions)"),
    "calibration": ("plots/calibration.png", "Calibration (out-of-fold predictions)"),
    "decision_curve": ("plots/decision_curve.png", "Decision curve (net benefit)"),
    "subgroups": ("plots/subgroups.png", "AUROC by subgroup"),
    "importance": (
        "shap/importance.png",
        "Mean |SHAP| by clinical variable (apparent: final model on its training data)",
    ),
    "beeswarm": ("shap/beeswarm.png", "SHAP values by clinical variable"),
    "dependence": ("shap/dependence.png", "Contribution against value, top variables"),
}
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


def md_cell(value: Any) -> str:
    """A Markdown table cell (pipes escaped, no newlines)."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def model_id_of(mv: Any) -> str | None:
    """LoggedModel id of a registered version (``model_id`` or its ``models:/m-…`` source)."""
    mid = getattr(mv, "model_id", None)
    if mid:
        return str(mid)
    match = re.match(r"^models:/(m-[0-9a-f]+)$", str(getattr(mv, "source", "") or ""))
    return match.group(1) if match else None


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def _fold_predictions(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(y (n,), predictions (repeats, n)) from a run's ``predictions/folds.csv``, ordered by its
    per-call random ``key`` (runs of one call share the keys, so they pair)."""
    if not path.is_file():
        return None
    folds = pd.read_csv(path)
    index = "key" if "key" in folds.columns else "row"
    if not {"repeat", index, "y", "p"} <= set(folds.columns) or folds.empty:
        return None
    preds = folds.pivot_table(index="repeat", columns=index, values="p", aggfunc="mean")
    y = folds.groupby(index)["y"].first().reindex(preds.columns).to_numpy(dtype=float)
    return y, preds.to_numpy(dtype=float)


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


# --- gathering -------------------------------------------------------------------------------
@dataclass
class ModelCard:
    """A rendered card and the figures it embeds."""

    name: str
    version: str
    markdown: str
    html: str
    figures: dict[str, bytes] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)

    def write(self, out: Path) -> list[Path]:
        """Write ``model_card.md``, ``model_card.html`` and ``figures/*.png`` into ``out``."""
        out = Path(out)
        (out / FIGURES_DIR).mkdir(parents=True, exist_ok=True)
        paths = [out / CARD_MD, out / CARD_HTML]
        paths[0].write_text(self.markdown, encoding="utf-8")
        paths[1].write_text(self.html, encoding="utf-8")
        for key, data in self.figures.items():
            path = out / FIGURES_DIR / f"{key}.png"
            path.write_bytes(data)
            paths.append(path)
        return paths


def _siblings(client: Any, run: Any, task: str, landmark: str) -> list[Any]:
    """Candidate runs of the same experiment call (same parent) at the same landmark."""
    parent = run.data.tags.get("mlflow.parentRunId")
    flt = f"tags.role = 'candidate' and tags.landmark = '{landmark}' and tags.task = '{task}'"
    if parent:
        flt += f" and tags.`mlflow.parentRunId` = '{parent}'"
    else:
        digest = run.data.tags.get("cohort_digest", "")
        flt += f" and tags.cohort_digest = '{digest}'"
    runs = client.search_runs([run.info.experiment_id], filter_string=flt, max_results=500)
    return [r for r in runs if r.info.run_id != run.info.run_id]


def _comparison(
    client: Any, run: Any, task: str, landmark: str, own: tuple[np.ndarray, np.ndarray] | None
) -> list[dict[str, Any]]:
    """Champion vs every other model of the same call: AUROC [CI], paired ΔAUROC [CI], Brier,
    calibration slope (paired stratified bootstrap on the same patients' CV predictions)."""
    from training.metrics import auroc, paired_difference

    rows = []
    for sib in _siblings(client, run, task, landmark):
        m = sib.data.metrics
        tags = sib.data.tags
        diff = "—"
        if own is not None:
            with tempfile.TemporaryDirectory(prefix="crs-risk-card-") as tmp:
                try:
                    local = client.download_artifacts(sib.info.run_id, "predictions/folds.csv", tmp)
                    theirs = _fold_predictions(Path(local))
                except Exception:  # a run without fold predictions: no paired comparison
                    theirs = None
            if theirs is not None and np.array_equal(theirs[0], own[0]):
                d = paired_difference(auroc, own[0], own[1], theirs[1], n_boot=200, seed=7)
                diff = fmt_ci({"value": d.value, "low": d.low, "high": d.high})
        model = tags.get("model", "?")
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
                "delta_auroc": diff,
                "brier": fmt(m.get("brier")),
                "slope": fmt(m.get("calibration_slope"), 2),
                "calibrated": tags.get("calibrated", ""),
            }
        )
    rows.sort(key=lambda r: (not r["published"], r["model"], r["feature_set"]))
    return rows


def _importance_rows(table: pd.DataFrame, top: int = 10) -> list[dict[str, Any]]:
    from training.explain_global import direction_text

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


def gather(client: Any, name: str, version: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Everything the card states, from the registry, the run and its artifacts."""
    from features.catalog import CATALOG
    from features.tasks import get_task
    from training.data_quality import data_quality_section

    mv = client.get_model_version(name, str(version))
    run = client.get_run(mv.run_id) if mv.run_id else None
    if run is None:
        raise CrsRiskError(f"{name} v{version} has no training run to describe")
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    task = mv.tags.get("task") or tags.get("task", "")
    landmark = mv.tags.get("landmark") or tags.get("landmark", "")
    model = mv.tags.get("model") or tags.get("model", "")
    parent = tags.get("mlflow.parentRunId")
    parent_params = client.get_run(parent).data.params if parent else {}

    figures: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="crs-risk-card-") as tmp:
        local = Path(client.download_artifacts(run.info.run_id, "", tmp))
        summary = (
            json.loads((local / "metrics.json").read_text(encoding="utf-8"))
            if (local / "metrics.json").is_file()
            else {}
        )
        subgroups = _read_csv(local / "subgroups.csv")
        importance = _read_csv(local / "shap" / "importance.csv")
        own = _fold_predictions(local / "predictions" / "folds.csv")
        for key, (path, _) in FIGURES.items():
            if (local / path).is_file():
                figures[key] = (local / path).read_bytes()
    comparison = _comparison(client, run, task, landmark, own)

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
    synthetic = "oracle_auroc" in metrics or str(cohort_label).startswith("synthetic")
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
        "alias": ", ".join(
            a
            for a, v in (client.get_registered_model(name).aliases or {}).items()
            if str(v) == str(version)
        )
        or "—",
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
        "data_quality": data_quality_section(client, parent),  # issue 17 (training.data_quality)
        "figures": {k: FIGURES[k][1] for k in figures},
    }
    context["tripod"] = tripod_rows(context)
    return context, figures


def tripod_rows(ctx: Mapping[str, Any]) -> list[dict[str, str]]:
    """TRIPOD+AI items → the card section that answers them, with the short answer."""
    est = {e["key"]: e["value"] for e in ctx["estimates"]}
    n_sub = len({s["subgroup"] for s in ctx["subgroups"]})
    n_published = sum(1 for r in ctx["comparison"] if r["published"])
    return [
        {
            "item": "3b",
            "topic": "Target population, care pathway, intended users",
            "where": "intended-use",
            "answer": "stated",
        },
        {
            "item": "5a, 6a",
            "topic": "Data source, setting, centres",
            "where": "training-cohort",
            "answer": f"{ctx['cohort_label']}; {len(ctx['centres'])} centre(s)",
        },
        {"item": "6b", "topic": "Eligibility criteria", "where": "task", "answer": "stated"},
        {
            "item": "8a",
            "topic": "Outcome definition and timing",
            "where": "task",
            "answer": "stated",
        },
        {
            "item": "10",
            "topic": "Sample size",
            "where": "training-cohort",
            "answer": ctx["size_short"],
        },
        {
            "item": "11",
            "topic": "Missing data",
            "where": "training-cohort",
            "answer": f"imputation with indicators; {len(ctx['missing'])} variable(s) with missing "
            "values",
        },
        {
            "item": "12c",
            "topic": "Model building, tuning, internal validation",
            "where": "validation",
            "answer": ctx["validation_text"],
        },
        {
            "item": "12e, 23a",
            "topic": "Discrimination, calibration, clinical utility (with CIs)",
            "where": "performance",
            "answer": f"AUROC {est.get('auroc', '—')}; slope {est.get('calibration_slope', '—')}; "
            "decision curve",
        },
        {
            "item": "13",
            "topic": "Class imbalance",
            "where": "validation",
            "answer": "no resampling or re-weighting; probabilities calibrated to the event rate "
            f"({ctx['event_rate']})",
        },
        {
            "item": "14, 23a",
            "topic": "Fairness: performance by subgroup",
            "where": "performance",
            "answer": f"{len(ctx['subgroups'])} level(s) of {n_sub} subgroup(s)",
        },
        {
            "item": "15",
            "topic": "Model output and thresholds",
            "where": "performance",
            "answer": f"{ctx['output']}; {len(ctx['thresholds'])} declared threshold(s)",
        },
        {
            "item": "21",
            "topic": "Participants and outcome events in each analysis",
            "where": "training-cohort",
            "answer": f"n = {ctx['n']}, events = {ctx['events']}",
        },
        {
            "item": "22",
            "topic": "Model specification and explainability",
            "where": "top-variables",
            "answer": "logged model; SHAP by clinical variable",
        },
        {
            "item": "3a, 12e",
            "topic": "Comparison with existing (published) models",
            "where": "baselines",
            "answer": f"{n_published} published baseline(s)",
        },
        {
            "item": "26",
            "topic": "Limitations",
            "where": "limitations",
            "answer": f"{len(ctx['limitations'])} stated",
        },
        {
            "item": "18e, 18f",
            "topic": "Data and code availability",
            "where": "model-details",
            "answer": f"code {ctx['code_version']} ({str(ctx['git_commit'])[:12]}); cohort digest",
        },
    ]


# --- rendering -------------------------------------------------------------------------------
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["cell"] = md_cell
    env.filters["plain"] = lambda text: str(text).replace("**", "").replace("`", "")
    return env


def render(context: Mapping[str, Any], figures: Mapping[str, bytes]) -> tuple[str, str]:
    """(Markdown, self-contained HTML) of a card context."""
    env = _environment()
    sections = [{"title": t, "anchor": a} for t, a in SECTIONS]
    titles = dict(SECTIONS)
    by_anchor = {a: t for t, a in SECTIONS}
    md = env.get_template("model_card.md.j2").render(
        **context,
        sections=sections,
        titles=titles,
        by_anchor=by_anchor,
        figure_dir=FIGURES_DIR,
    )
    data_uris = {
        k: "data:image/png;base64," + base64.b64encode(v).decode("ascii")
        for k, v in figures.items()
    }
    html = env.get_template("model_card.html.j2").render(
        **context, sections=sections, titles=titles, by_anchor=by_anchor, images=data_uris
    )
    return md, html


def build_card(client: Any, name: str, version: str) -> ModelCard:
    """Assemble and render the card of registered model ``name`` version ``version``."""
    context, figures = gather(client, name, str(version))
    md, html = render(context, figures)
    return ModelCard(name, str(version), md, html, figures, context)


def log_model_card(client: Any, name: str, version: str) -> ModelCard:
    """Build the card and log it with the model version (LoggedModel + training run + tag)."""
    card = build_card(client, name, version)
    mv = client.get_model_version(name, str(version))
    with tempfile.TemporaryDirectory(prefix="crs-risk-card-") as tmp:
        folder = Path(tmp) / CARD_DIR
        card.write(folder)
        model_id = model_id_of(mv)
        if model_id:
            client.log_model_artifacts(model_id, tmp)
        if mv.run_id:
            client.log_artifacts(mv.run_id, str(folder), CARD_DIR)
    client.set_model_version_tag(name, str(version), CARD_TAG, f"{CARD_DIR}/{CARD_MD}")
    return card


# --- retrieval (``crs-risk card``) -----------------------------------------------------------
@dataclass
class CardResult:
    name: str
    version: str
    out: Path
    files: list[Path]
    source: str  # "logged" | "built"
    sections: list[str]

    def render(self) -> str:
        lines = [
            f"model card of {self.name} v{self.version} ({self.source}) written to {self.out}:",
            *(f"  {p.relative_to(self.out)}" for p in self.files if p.suffix != ".png"),
            f"  {FIGURES_DIR}/ ({sum(1 for p in self.files if p.suffix == '.png')} figures)",
        ]
        return "\n".join(lines)


def card_sections(markdown: str) -> list[str]:
    """Second-level headings of a card's Markdown, in order."""
    return [m.group(1).strip() for m in re.finditer(r"^## (.+)$", markdown, flags=re.M)]


def fetch_model_card(
    model_uri: str,
    *,
    out: Path | None = None,
    tracking_uri: str | None = None,
    rebuild: bool = False,
    log: bool = False,
    default_root: Path | None = None,
) -> CardResult:
    """Retrieve the card logged with ``models:/NAME@ALIAS`` (or ``/VERSION``) into ``out``.

    A version registered before cards existed has none: it is built from its run now (and
    logged with ``log=True``); ``rebuild=True`` always builds from the store.
    """
    import mlflow

    from training.evaluate import resolve_version
    from training.tracking import connect, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    client = connect(uri)
    mv = resolve_version(client, model_uri)
    name, version = mv.name, str(mv.version)
    root = default_root if default_root is not None else Path("crs-risk-output") / "cards"
    target = Path(out) if out is not None else root / f"{name}-v{version}"
    if target.exists() and not target.is_dir():
        raise CrsRiskError(f"--out {target}: exists and is not a folder")
    source = "built"
    files: list[Path] = []
    if not rebuild and mv.tags.get(CARD_TAG):
        with tempfile.TemporaryDirectory(prefix="crs-risk-card-") as tmp:
            try:
                local = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=f"models:/{name}/{version}/{CARD_DIR}",
                        dst_path=tmp,
                        tracking_uri=uri,
                    )
                )
            except Exception as exc:  # the tag exists but the files do not: say which
                raise CrsRiskError(
                    f"{name} v{version}: the logged model card could not be read "
                    f"({type(exc).__name__}); rerun with --rebuild"
                ) from None
            (target / FIGURES_DIR).mkdir(parents=True, exist_ok=True)
            for path in sorted(local.rglob("*")):
                if path.is_file():
                    dest = target / path.relative_to(local)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(path.read_bytes())
                    files.append(dest)
        source = "logged"
    else:
        card = log_model_card(client, name, version) if log else build_card(client, name, version)
        files = card.write(target)
        source = "built and logged" if log else "built now, not logged (use --log)"
    md_path = target / CARD_MD
    sections = card_sections(md_path.read_text(encoding="utf-8")) if md_path.is_file() else []
    return CardResult(name, version, target, files, source, sections)
