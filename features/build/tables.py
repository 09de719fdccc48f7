"""Feature tables of a task at its landmarks: rows, label, groups, summary, exclusions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from features.build.layout import column_indices
from features.build.matrix import feature_matrix
from features.build.patient import float_column, patient_features
from features.catalog import (
    HIGH_BURDEN_BLASTS_PCT,
    catalog_for,
)
from features.cohort import Cohort
from features.grading import SOURCE_NAMES, Course, GradeCourse
from features.records import (
    PreparedCohort,
    prepared,
)
from features.table import FeatureTable
from features.tasks import (
    Assignment,
    Task,
    assign,
    course_of,
    exclusion_summary,
    get_task,
    parse_landmark,
)

GROUP_COLUMNS: tuple[str, ...] = ("center", "age_band", "product", "marrow_burden")


def prepare(cohort: Cohort) -> PreparedCohort:
    """Integer patient/analyte/event codes and (patient, analyte, time) order, once per cohort.

    The result is the same cohort carrying its :class:`~features.records.Records`; every task
    and landmark built from it reuses them (the cut keeps the order).
    """
    return prepared(cohort)


def _band(values: np.ndarray, edges: list[float], labels: list[str]) -> np.ndarray:
    """Label of the half-open interval [edges[i], edges[i+1]) holding each value, or "unknown"."""
    idx = np.searchsorted(np.asarray(edges), values, side="right") - 1
    ok = ~np.isnan(values) & (idx >= 0) & (idx < len(labels))
    return np.where(
        ok, np.asarray(labels, dtype=object)[np.clip(idx, 0, len(labels) - 1)], "unknown"
    )


def _groups(patients: pd.DataFrame) -> pd.DataFrame:
    """Subgroup columns for fairness/calibration checks (never features)."""
    age = _band(
        float_column(patients["age_years"]), [0, 3, 10, 18, np.inf], ["<3", "3–9", "10–17", "≥18"]
    )
    blasts = float_column(patients["marrow_blasts_pct"])
    burden = _band(blasts, [0, 5, HIGH_BURDEN_BLASTS_PCT, np.inf], ["<5%", "5–39%", "≥40%"])
    return pd.DataFrame(
        {
            "center": patients["center"].astype(str).to_numpy(),
            "age_band": age,
            "product": patients["product"].astype("string").fillna("unknown").to_numpy(),
            "marrow_burden": burden,
        }
    ).astype(str)


def _source_counts(course: Course, eligible_codes: np.ndarray) -> dict[str, int]:
    names = np.asarray(SOURCE_NAMES, dtype=object)[course.source[eligible_codes]]
    kinds, counts = np.unique(names.astype(str), return_counts=True)
    return {str(k): int(v) for k, v in zip(kinds, counts, strict=True)}


def _table(
    prepared: Cohort,
    task: Task,
    name: str,
    assignment: Assignment,
    require_label: bool,
) -> FeatureTable:
    names = [s.name for s in catalog_for(task, name)]
    elig = np.flatnonzero(assignment.eligible)
    patients = prepared.patients.iloc[elig]
    # Features of eligible patients only (each patient's row depends only on their own data).
    matrix = feature_matrix(assignment, patient_features(prepared.patients), elig)
    X = pd.DataFrame(matrix[:, column_indices(names)], columns=names, copy=False)  # a fresh array
    y_raw = assignment.y[elig]
    y = (
        pd.Series(y_raw.astype(np.int64), name="y")
        if require_label
        else pd.Series(pd.array([pd.NA] * len(elig), dtype="Int64"), name="y")
    )
    ids = pd.Series(patients["patient_id"].astype(str).to_numpy(), name="patient_id")
    reasons = pd.Series(assignment.reason[assignment.reason != ""], dtype=object)
    exclusions = {str(k): int(v) for k, v in reasons.value_counts(sort=False).items()}
    order = {r: i for i, r in enumerate(dict.fromkeys(assignment.reason[assignment.reason != ""]))}
    exclusions = dict(sorted(exclusions.items(), key=lambda kv: (-kv[1], order[kv[0]])))
    frac = X.isna().mean() if len(X) else pd.Series(0.0, index=names)
    missingness = {c: float(frac[c]) for c in names}
    derivation = [
        *assignment.notes,
        "grade course source among eligible patients: "
        + ", ".join(f"{k} {v}" for k, v in _source_counts(assignment.grades, elig).items()),
    ]
    counted = exclusion_summary(assignment)
    summary: dict[str, Any] = {
        "task": task.name,
        "landmark": name,
        "patients": len(prepared.patients),
        "eligible": len(elig),
        "events": int(y.sum()) if require_label else None,
        "exclusions": exclusions,
        **{
            key: counted[key]
            for key in (
                "excluded_at_landmark",
                "excluded_outcome_unknown",
                "positive_clauses",
                "positive_clause_combinations",
            )
        },
        "missingness": missingness,
        "derivation": derivation,
        "parameters": task.card()["parameters"],
        "cohort": {"source": prepared.source, "digest": prepared.digest},
    }
    return FeatureTable(
        task=task.name,
        landmark=name,
        X=X,
        y=y,
        ids=ids,
        groups=_groups(patients),
        summary=summary,
    )


def build_features(
    cohort: Cohort,
    task: str | Task,
    landmark: str | float,
    require_label: bool = True,
    *,
    full_course: GradeCourse | Course | None = None,
) -> FeatureTable:
    """The model-ready table of ``task`` at ``landmark`` (``"0h"``…``"72h"``, 48, ``"first_toci"``).

    ``require_label=False`` (serving) applies only eligibility rules that use data up to the
    landmark and returns ``y`` as NA. ``full_course`` reuses the uncut cohort's grade course
    (see :func:`build_landmarks`).
    """
    task = get_task(task)
    name, _ = parse_landmark(task, landmark)
    prepared = prepare(cohort)
    if require_label and full_course is None:
        full_course = course_of(prepared)
    assignment = assign(prepared, task, name, require_label, full_course)
    return _table(prepared, task, name, assignment, require_label)


def build_patient_features(cohort: Cohort, task: str | Task, landmark: str | float) -> FeatureTable:
    """Features for patients at serving time: no label, same code path as training.

    Patients not eligible at the landmark (e.g. already grade ≥3) get no row; the reason is in
    ``summary["exclusions"]``.
    """
    return build_features(cohort, task, landmark, require_label=False)


def build_landmarks(
    cohort: Cohort,
    task: str | Task,
    landmarks: tuple[str | float, ...] | None = None,
    require_label: bool = True,
) -> dict[str, FeatureTable]:
    """Tables of ``task`` at several landmarks (default: all of the task's), sharing preparation."""
    task = get_task(task)
    prepared = prepare(cohort)
    full = course_of(prepared) if require_label else None
    out = {}
    for lm in landmarks if landmarks is not None else task.landmarks:
        table = build_features(prepared, task, lm, require_label, full_course=full)
        out[table.landmark] = table
    return out


COUNT_KEYS: tuple[str, ...] = (
    "exclusions",
    "excluded_at_landmark",
    "excluded_outcome_unknown",
    "positive_clauses",
    "positive_clause_combinations",
)


def exclusion_counts(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The aggregate counts of one table's summary (no identifiers): eligible, events and
    exclusions by reason — all, at the landmark, outcome unknown — and the positive labels by
    refractory clause. What training logs and the model card shows."""
    return {
        "eligible": summary.get("eligible"),
        "events": summary.get("events"),
        **{k: dict(summary.get(k, {})) for k in COUNT_KEYS},
    }


def exclusion_report(tables: Mapping[str, FeatureTable]) -> dict[str, Any]:
    """:func:`exclusion_counts` of every landmark's table of one task (``{"task", "landmarks":
    {name: counts}}``): the training run logs it as a JSON artifact."""
    task = next((t.task for t in tables.values()), None)
    return {
        "task": task,
        "landmarks": {name: exclusion_counts(t.summary) for name, t in tables.items()},
    }
