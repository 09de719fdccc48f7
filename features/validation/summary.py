"""The summary a user checks first: counts per centre, analyte, time window and event."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from features.records import ANALYTE_KEYS
from features.schema import (
    EVENTS,
    SCHEMA,
)

CRS_EVENTS = ("crs_onset", "crs_grade", "crs_max_grade", "lost_to_follow_up")
"""Events that say something about a patient's CRS outcome (or that it is unknown)."""
TIME_WINDOWS: tuple[tuple[str, float, float], ...] = (
    ("pre-infusion (≤ 0 h)", -math.inf, 0.0),
    ("(0, 24] h", 0.0, 24.0),
    ("(24, 48] h", 24.0, 48.0),
    ("(48, 72] h", 48.0, 72.0),
    ("> 72 h", 72.0, math.inf),
)
"""Summary windows of measurement times, the landmark cut's boundaries: lower bound exclusive,
upper inclusive (a value at 0 h is pre-infusion, at 24 h it is known at the 24 h landmark)."""


def _fmt_count_map(counts: Mapping[str, int]) -> str:
    return " · ".join(f"{k} {v:,}" for k, v in counts.items()) or "none"


def render_summary(s: Mapping[str, Any]) -> list[str]:
    if not s:
        return []
    lines = [
        f"patients: {s['patients']:,} in {len(s['centres'])} centre(s): "
        f"{_fmt_count_map(s['centres'])}",
        f"measurements: {s['measurements']:,} rows"
        + (
            f" ({s['duplicates_dropped']:,} identical duplicates dropped)"
            if s["duplicates_dropped"]
            else ""
        ),
        f"  by analyte: {_fmt_count_map(s['measurements_by_analyte'])}",
        f"  by time window: {_fmt_count_map(s['measurements_by_window'])}",
        f"events: {s['events']:,} rows, {s['events_unknown_time']:,} with unknown time",
        f"  by type: {_fmt_count_map(s['events_by_type'])}",
        f"patients without any CRS event: {s.get('patients_without_crs_event', 0):,} (read as "
        f'"no CRS" unless grading rows say otherwise; lost to follow-up with no time: '
        f"{s.get('patients_lost_untimed', 0):,})",
        "missing values per patient column: "
        + " · ".join(f"{k} {v:.0%}" for k, v in s["missing_by_patient_column"].items()),
    ]
    if s["absent_patient_columns"]:
        lines.append(f"  absent optional columns: {', '.join(s['absent_patient_columns'])}")
    return lines


def summarise(
    patients: pd.DataFrame, measurements: pd.DataFrame, events: pd.DataFrame, dropped: int
) -> dict[str, Any]:
    """Counts a user checks first: patients, centres, measurements per analyte and window …"""
    hours = measurements["hours_from_infusion"].to_numpy()
    edges = [w[1] for w in TIME_WINDOWS[1:]]
    window = np.searchsorted(edges, hours, side="left")  # (lo, hi]: as the landmark cut
    window_counts = np.bincount(window, minlength=len(TIME_WINDOWS))
    by_analyte = measurements["analyte"].value_counts()
    by_event = events["event"].value_counts()
    crs = events["event"].isin(CRS_EVENTS).to_numpy()
    lost_untimed = (
        (events["event"] == "lost_to_follow_up") & events["hours_from_infusion"].isna()
    ).to_numpy()
    absent = [
        c.name
        for c in SCHEMA["patients"].columns
        if not c.required and patients[c.name].isna().all() and len(patients)
    ]
    return {
        "patients": len(patients),
        "centres": {
            str(k): int(v) for k, v in patients["center"].value_counts().sort_index().items()
        },
        "measurements": len(measurements),
        "duplicates_dropped": dropped,
        "measurements_by_analyte": {
            k: int(by_analyte[k]) for k in ANALYTE_KEYS if k in by_analyte.index
        },
        "measurements_by_window": {
            w[0]: int(n) for w, n in zip(TIME_WINDOWS, window_counts, strict=True)
        },
        "events": len(events),
        "events_by_type": {e: int(by_event.get(e, 0)) for e in EVENTS if by_event.get(e, 0)},
        "events_unknown_time": int(events["hours_from_infusion"].isna().sum()),
        # issue 11 §3: "no CRS" and "no CRS information" look alike in a cohort folder
        "patients_without_crs_event": int(
            (~patients["patient_id"].isin(set(events.loc[crs, "patient_id"]))).sum()
        ),
        "patients_lost_untimed": int(events.loc[lost_untimed, "patient_id"].nunique()),
        "missing_by_patient_column": {
            c.name: float(patients[c.name].isna().mean()) if len(patients) else 0.0
            for c in SCHEMA["patients"].columns
        },
        "absent_patient_columns": absent,
    }
