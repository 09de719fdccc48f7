"""Per task and landmark: who would be eligible, excluded (by reason) and positive — computed
with ``features.tasks``' own rules, so the counts are the ones training sees — and the flag of
a landmark with too few events for the sample-size rule training applies (Riley RD et al. 2020,
BMJ 368:m441, through ``features.sample_size``)."""

from __future__ import annotations

from dataclasses import dataclass

from features.cohort import Cohort
from features.profile.rules import Flag, FlagRules
from features.sample_size import riley_sample_size
from features.tasks import TASKS, assign, exclusion_summary


@dataclass(frozen=True)
class TaskCounts:
    task: str
    landmark: str
    patients: int
    eligible: int
    positive: int
    excluded: dict[str, int]  # reason → patients


def task_counts(cohort: Cohort, task: str, landmark: str) -> TaskCounts:
    """Eligible, excluded by reason and positive at one landmark, from
    :func:`features.tasks.exclusion_summary` (the counts training logs)."""
    a = assign(cohort, task, landmark)
    summary = exclusion_summary(a)
    excluded = summary["exclusions"]
    assert isinstance(excluded, dict)
    return TaskCounts(
        task=task,
        landmark=landmark,
        patients=len(a.eligible),
        eligible=int(summary["eligible"]),  # type: ignore[call-overload]  # int from the summary
        positive=int(summary["positives"] or 0),  # type: ignore[call-overload]  # None = unlabelled
        excluded={str(k): int(v) for k, v in excluded.items()},
    )


def all_task_counts(
    cohort: Cohort, landmarks: dict[str, tuple[str, ...]] | None = None
) -> list[TaskCounts]:
    """:func:`task_counts` of every task at its landmarks (the tasks' defaults unless given)."""
    plan = landmarks or {name: t.landmarks for name, t in TASKS.items()}
    return [task_counts(cohort, name, lm) for name in plan for lm in plan[name]]


def few_events_flag(counts: TaskCounts, rules: FlagRules) -> Flag | None:
    """Too few eligible patients or events at a landmark for training (see FlagRules)."""
    n, e = counts.eligible, counts.positive
    minority = min(e, n - e)
    size = riley_sample_size(n, e, rules.min_parameters)
    if minority >= 2 and size.adequate:
        return None
    reasons = ", ".join(f"{r}: {k}" for r, k in list(counts.excluded.items())[:3])
    why = (
        f"{minority} patients in the smaller outcome class (training skips a landmark with "
        "fewer than 2)" + (f"; excluded — {reasons}" if n == 0 and reasons else "")
        if minority < 2
        else f"Riley's minimum sample size for {rules.min_parameters} candidate parameter(s) "
        f"is {size.min_n}"
    )
    return Flag(
        kind="few_events",
        subject=f"{counts.task}@{counts.landmark}",
        evidence=f"{counts.task} at {counts.landmark}: {e} events among {n} eligible; {why}",
        fix=(
            "add patients, or choose landmarks where the outcome is still ahead (the task's "
            "landmarks: in the experiment file — e.g. later landmarks when CRS starts late), "
            "or drop this landmark"
        ),
        numbers={
            "eligible": float(n),
            "events": float(e),
            "min_n": float(size.min_n),
        },
    )
