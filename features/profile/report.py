"""The cohort profile: every statistic and flag of one cohort, the terminal summary, and the
one pure function training calls for the same flags (:func:`quality_flags`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from features.cohort import Cohort
from features.errors import CrsRiskError
from features.profile.analytes import AnalyteStats, all_analyte_stats
from features.profile.eligibility import TaskCounts, all_task_counts, few_events_flag
from features.profile.events import EventStats, event_stats
from features.profile.rows import CohortRows, split_rows
from features.profile.rules import KINDS, Flag, FlagRules
from features.profile.timing_flags import after_death_flag, day_gap_flag
from features.profile.value_flags import value_flags
from features.profile.windows import Windows, default_windows
from features.records import prepared
from features.tasks import TASKS, get_task


@dataclass(frozen=True)
class Profile:
    source: str
    digest: str
    n_patients: int
    n_measurements: int
    n_events: int
    windows: Windows
    analytes: list[AnalyteStats]
    events: EventStats
    tasks: list[TaskCounts]
    flags: list[Flag]
    rules: FlagRules

    def render(self) -> str:
        """Short terminal summary: size, flags by kind with their subjects, task counts."""
        lines = [
            f"profile of {self.source}: {self.n_patients} patients, {self.n_measurements} "
            f"measurements, {self.n_events} events, {len(self.analytes)} analytes",
            f"flags: {len(self.flags)}" + (" (none)" if not self.flags else ""),
        ]
        lines += [f"- {f.kind} [{f.subject}]: {f.evidence}\n    fix: {f.fix}" for f in self.flags]
        lines.append("tasks (eligible / positive / excluded):")
        lines += [
            f"- {c.task}@{c.landmark}: {c.eligible} / {c.positive} / {c.patients - c.eligible}"
            for c in self.tasks
        ]
        return "\n".join(lines)


def _plan(landmarks: dict[str, tuple[str, ...]] | None) -> dict[str, tuple[str, ...]]:
    if landmarks:
        return landmarks
    return {name: t.landmarks for name, t in TASKS.items()}


def _windows_for(plan: dict[str, tuple[str, ...]]) -> Windows:
    hours = []
    for lms in plan.values():
        for lm in lms:
            text = str(lm).lower().removesuffix("h")
            try:
                hours.append(float(text))
            except ValueError:
                continue  # per-patient landmark (first_toci …)
    return default_windows(tuple(hours) or None)


def quality_flags(
    cohort: Cohort,
    rules: FlagRules | None = None,
    landmarks: dict[str, tuple[str, ...]] | None = None,
    *,
    rows: CohortRows | None = None,
    counts: list[TaskCounts] | None = None,
) -> list[Flag]:
    """Every data-quality flag of ``cohort`` (value, timing and task flags), in KINDS order.

    ``landmarks`` maps task → landmark names (default: every task's default landmarks); the
    windows run to the last hour landmark. Pure: reads the cohort, writes nothing.
    """
    rules = rules or FlagRules()
    plan = _plan(landmarks)
    windows = _windows_for(plan)
    prep = prepared(cohort)
    rows = rows or split_rows(prep)
    counts = counts if counts is not None else all_task_counts(prep, plan)
    flags: list[Flag] = []
    for a in rows.analytes.values():
        flags += value_flags(a, windows, rules)
    for f in (after_death_flag(prep, rows, rules), day_gap_flag(rows, windows, rules)):
        if f is not None:
            flags.append(f)
    flags += [f for c in counts if (f := few_events_flag(c, rules)) is not None]
    return sorted(flags, key=lambda f: KINDS.index(f.kind))


def profile_cohort(
    cohort: Cohort,
    rules: FlagRules | None = None,
    landmarks: dict[str, tuple[str, ...]] | None = None,
) -> Profile:
    """Statistics and flags of ``cohort`` (see the package docstring)."""
    rules = rules or FlagRules()
    plan = _plan(landmarks)
    for task, lms in plan.items():
        t = get_task(task)
        unknown = [lm for lm in lms if lm not in t.landmarks]
        if unknown:
            raise CrsRiskError(f"task {task}: unknown landmark(s) {unknown}; use {t.landmarks}")
    windows = _windows_for(plan)
    prep = prepared(cohort)
    rows = split_rows(prep)
    counts = all_task_counts(prep, plan)
    return Profile(
        source=cohort.source,
        digest=cohort.digest,
        n_patients=len(cohort.patients),
        n_measurements=len(cohort.measurements),
        n_events=len(cohort.events),
        windows=windows,
        analytes=all_analyte_stats(rows, windows),
        events=event_stats(prep),
        tasks=counts,
        flags=quality_flags(prep, rules, plan, rows=rows, counts=counts),
        rules=rules,
    )


def flag_aggregates(flags: list[Flag], rules: FlagRules) -> dict[str, object]:
    """What may leave the cohort folder (MLflow, the model card): per kind the count and the
    subjects (analyte names, ``task@landmark``), each flag's evidence and fix (aggregate text:
    counts, shares, assay values — never a row or a patient id), and the thresholds."""
    by_kind = Counter(f.kind for f in flags)
    return {
        "n_flags": len(flags),
        "counts": {k: by_kind.get(k, 0) for k in KINDS},
        "subjects": {k: sorted({f.subject for f in flags if f.kind == k}) for k in KINDS},
        "flags": [
            {"kind": f.kind, "subject": f.subject, "evidence": f.evidence, "fix": f.fix}
            for f in flags
        ],
        "thresholds": rules.to_dict(),
    }


def load_rules(path: Path | None) -> FlagRules:
    """Thresholds from a YAML file of ``name: value`` (see FlagRules), or the defaults."""
    if path is None:
        return FlagRules()
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CrsRiskError(f"{path}: cannot read flag rules: {exc}") from exc
    if not isinstance(data, dict):
        raise CrsRiskError(f"{path}: flag rules must be a mapping of rule name to value")
    try:
        return FlagRules.from_mapping(data)
    except CrsRiskError as exc:
        raise CrsRiskError(f"{path}: {exc}") from exc
