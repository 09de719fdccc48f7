"""Feature table files (Parquet with the summary in its metadata, or CSV) and the CLI run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.build.tables import GROUP_COLUMNS, build_features
from features.errors import CrsRiskError
from features.io import load_cohort
from features.table import FeatureTable
from features.tasks import (
    get_task,
    parse_landmark,
)

META_KEY = b"crs_risk_feature_table"


def write_table(table: FeatureTable, out: Path) -> Path:
    """Write ids, groups, ``y``, ``X`` to ``.parquet`` (summary in the file metadata) or ``.csv``.

    The output is the user's local file like the cohort itself: the ``patient_id`` column is the
    join key and never a feature.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise CrsRiskError(f"--out {out.name}: the table must be .parquet or .csv")
    frame = pd.concat(
        [table.ids.to_frame(), table.groups, table.y.astype("Int64").to_frame(), table.X], axis=1
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.to_csv(out, index=False, float_format="%.10g")
        return out
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(arrow.schema.metadata or {})
    meta[META_KEY] = json.dumps(
        {"task": table.task, "landmark": table.landmark, "summary": table.summary}
    ).encode()
    pq.write_table(arrow.replace_schema_metadata(meta), out)
    return out


def read_table(path: Path) -> FeatureTable:
    """Read a table written by :func:`write_table` (``.parquet``) back into a FeatureTable."""
    arrow = pq.read_table(path)
    meta = json.loads((arrow.schema.metadata or {})[META_KEY])
    frame = arrow.to_pandas()
    feature_cols = [c for c in frame.columns if c not in ("patient_id", "y", *GROUP_COLUMNS)]
    return FeatureTable(
        task=meta["task"],
        landmark=meta["landmark"],
        X=frame[feature_cols].astype(np.float64),
        y=frame["y"],
        ids=frame["patient_id"].astype(str),
        groups=frame[list(GROUP_COLUMNS)],
        summary=meta["summary"],
    )


@dataclass(frozen=True)
class BuildReport:
    """What ``crs-risk features build`` prints: counts, exclusions, missingness, the file."""

    table: FeatureTable
    out: Path | None

    def render(self) -> str:
        s = self.table.summary
        eligible, events = s["eligible"], s["events"]
        lines = [
            f"features build: task {s['task']} at landmark {s['landmark']} "
            f"(cohort {s['cohort']['source']}, digest {str(s['cohort']['digest'])[:12]})",
            f"patients: {s['patients']}  eligible: {eligible}  events: {events}"
            + (f" ({events / eligible:.1%})" if eligible and events is not None else ""),
            "exclusions by reason:",
        ]
        unknown = s.get("excluded_outcome_unknown", {})
        lines += [
            f"  {n:6d}  {r}" + ("  [outcome unknown]" if r in unknown else "")
            for r, n in s["exclusions"].items()
        ] or ["  none"]
        if s.get("positive_clauses"):
            lines.append("positive labels by clause (a patient can meet several):")
            lines += [f"  {n:6d}  {c}" for c, n in s["positive_clauses"].items()]
        lines.append("derivation:")
        lines += [f"  - {d}" for d in s["derivation"]]
        miss = s["missingness"]
        missing = {k: v for k, v in miss.items() if v > 0}
        lines.append(
            f"missingness per feature ({len(miss) - len(missing)} of {len(miss)} features "
            "complete; the rest below):"
        )
        width = max((len(k) for k in missing), default=0)
        lines += [f"  {k:<{width}}  {v:6.1%}" for k, v in missing.items()]
        if self.out is not None:
            lines.append(
                f"written: {self.out} ({len(self.table.X)} rows × {self.table.X.shape[1]} features)"
            )
        return "\n".join(lines)


def build_to_file(
    directory: Path, task: str = "severe_crs", landmark: str = "48", out: Path | None = None
) -> BuildReport:
    """Load the cohort folder, build one table and write it (nothing written if none eligible)."""
    task_obj = get_task(task)
    parse_landmark(task_obj, landmark)  # fail on a bad option before reading the cohort
    cohort = load_cohort(Path(directory))
    table = build_features(cohort, task_obj, landmark)
    if table.summary["eligible"] == 0:
        reasons = "; ".join(f"{r}: {n}" for r, n in table.summary["exclusions"].items())
        raise CrsRiskError(
            f"no eligible patient for {task_obj.name} at {table.landmark} in cohort "
            f"{cohort.source} ({reasons}); nothing written"
        )
    if out is not None:
        write_table(table, Path(out))
    return BuildReport(table, None if out is None else Path(out))
