"""Pre-flight checks of an experiment against the catalog and cohort: feature sets, centres.

Run by ``train`` before anything is written, so a bad experiment file stops with exit 2 and a
message naming the key (``feature_sets.<name>``, ``validation.folds``).
"""

from __future__ import annotations

from typing import Any

from features.catalog import catalog_for
from features.errors import CrsRiskError
from training.experiment import Experiment


def feature_set_columns(exp: Experiment, name: str, catalog: list[Any]) -> list[str]:
    """Catalog columns of feature set ``name`` (``all`` = every column of the landmark)."""
    spec = exp.feature_sets[name]
    cols = []
    groups = {s.group for s in catalog}
    for g in [*(spec.include_groups or []), *spec.exclude_groups]:
        if g not in groups:
            raise CrsRiskError(
                f"{exp.source_file}: feature_sets.{name}: unknown group {g!r} "
                f"(groups: {', '.join(sorted(groups))})"
            )
    for s in catalog:
        if spec.include_groups is not None and s.group not in spec.include_groups:
            continue
        if s.group in spec.exclude_groups or s.name in spec.exclude:
            continue
        cols.append(s.name)
    if not cols:
        raise CrsRiskError(f"{exp.source_file}: feature_sets.{name} selects no column")
    return cols


def check_feature_sets(exp: Experiment) -> None:
    """Resolve every feature set at every landmark before training (errors name the key)."""
    for task, tspec in exp.tasks.items():
        for lm in tspec.landmarks:
            for fs in exp.feature_sets:
                feature_set_columns(exp, fs, catalog_for(task, lm))


def check_centres(exp: Experiment, co: Any) -> None:
    """Grouped CV needs at least as many centres as folds (exit 2 naming the key)."""
    v = exp.validation
    if not v.group_by_center or v.method != "repeated_cv":
        return
    patients = getattr(co, "patients", None)
    if patients is None or "center" not in patients:
        return
    n = int(patients["center"].nunique())
    if v.folds > n:
        raise CrsRiskError(
            f"{exp.source_file}: validation.folds: {v.folds} folds grouped by centre, but the "
            f"cohort has only {n} centre(s)"
        )
