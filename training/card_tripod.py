"""Model card: TRIPOD+AI items mapped to the card section that answers each, with the answer.

Item numbers of the TRIPOD+AI checklist (Collins GS et al. 2024, BMJ 385:e078378). Pure: reads
the card context built by ``training.card_context``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
