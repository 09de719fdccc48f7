"""Event sources: ``long_events`` (one event per row) and the CRS course derived from a per-row
CRS grade (onset, each change, maximum). Two grades of one patient at one time are an error
naming file, rows and column, or (``grade_conflicts: max``) the maximum is kept and counted."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from features.importer.reader import Reader
from features.importer.report import R_GRADE_MAX
from features.mapping import ColumnSpec, LongEventsSource
from features.schema import DRUG_EVENTS, EVENTS, GRADED_EVENTS


def read_long_events(r: Reader, k: int, src: LongEventsSource, ids: list[str | None]) -> None:
    before = len(r.problems)
    tj = r.resolve(k, src.time.column, "time.column")
    ej = r.resolve(k, src.event, "event")
    gj = r.resolve(k, src.grade, "grade")
    dj = r.resolve(k, src.dose, "dose")
    ij = (
        r.resolve(k, src.indication, "indication")
        if isinstance(src.indication, ColumnSpec)
        else None
    )
    r.reports[k].columns_used = 3 + sum(j is not None for j in (gj, dj, ij))
    if len(r.problems) > before:
        return
    assert tj is not None and ej is not None  # required: resolved, else a problem returned above
    for i, pid in enumerate(ids):
        if pid is None:
            continue
        present, name = r.cell(k, i, ej, src.event, "event: ")
        if not present:
            continue
        event = str(name).strip()
        if event not in EVENTS:
            message = r.described(
                f"event not in the vocabulary ({', '.join(EVENTS)})", name, type_matters=False
            )
            r.cell_problem(k, i, ej, f"{message}; map it with values")
            continue
        grade = None
        if event in GRADED_EVENTS:
            if gj is None:
                r.cell_problem(k, i, ej, f"{event} needs a grade column")
                continue
            present, value = r.cell(k, i, gj, src.grade, f"{event}: grade ")
            if not present:
                continue
            grade = r.grade(k, i, gj, value, event)
            if grade is None:
                continue
        hours = r.time_cell(k, i, tj, src.time, src.time.number("fallback"), pid, count=False)
        label = f"{event}: "
        dose = r.dose(k, i, dj, src.dose, label)
        indication = None
        if event in DRUG_EVENTS:
            indication = r.indication(k, i, src.indication, ij, label)
        r.add_event(
            k, i, ej, pid, math.nan if hours is None else hours, event, grade, dose, indication
        )


def resolve_grade_conflicts(
    r: Reader, frame: pd.DataFrame, keys: list[str], what: str
) -> pd.DataFrame:
    """Rows of ``frame`` (columns ``keys`` + ``grade`` + provenance) with one grade per key.

    Different grades at one key are an error naming both rows (file, row, column) unless the
    mapping declares ``grade_conflicts: max``; every conflict is counted in its source's report.
    """
    if frame.empty:
        return frame
    keyed = frame[keys].astype(object).where(frame[keys].notna(), "<unknown time>")
    frame = frame.assign(_key=list(keyed.itertuples(index=False, name=None)))
    spread = frame.groupby("_key", sort=False)["grade"].transform("nunique")
    clash = frame[spread > 1]
    if clash.empty:
        return frame.drop(columns="_key")
    keep_max = r.mapping.grade_conflicts == "max"
    drop: list[int] = []
    for _, rows in clash.groupby("_key", sort=False):
        rows = rows.sort_values(["_src", "_row", "_col"], kind="stable")
        k = int(rows["_src"].iloc[0])
        r.reports[k].grade_conflicts += 1
        if keep_max:
            best = rows["grade"].astype(int).idxmax()
            for idx in rows.index:
                if idx != best:
                    drop.append(idx)
                    r.reports[int(rows.at[idx, "_src"])].drop(R_GRADE_MAX)
            continue
        places = []
        for _, row in rows.iterrows():
            t = r.table(int(row["_src"]))
            places.append(  # the grades themselves are cells: never shown
                f"{t.file} row {t.row_number(int(row['_row']))}, {t.column_label(int(row['_col']))}"
            )
        r.problem(
            f"conflicting {what} grades for one patient at the same time: "
            + " vs ".join(places)
            + " (set grade_conflicts: max to keep the maximum)"
        )
    return frame.drop(index=drop).drop(columns="_key")


def derive_crs(
    r: Reader,
    k: int,
    gj: int | None,
    grades: list[tuple[str, float, int, int]],
    wanted: Sequence[str],
) -> None:
    """Per-row grades → ``crs_onset`` (first grade ≥1), ``crs_grade`` at each later change, and
    ``crs_max_grade``: 0 with unknown time when the course never left grade 0; the maximum timed
    at onset only when ``crs_events`` asks for the summary without the timed course."""
    if not grades or gj is None:  # grades come only from a resolved grade column
        return
    frame = pd.DataFrame(grades, columns=["patient_id", "hours", "grade", "_row"])
    frame = frame.assign(_src=k, _col=gj)
    frame = resolve_grade_conflicts(r, frame, ["patient_id", "hours"], "CRS")
    frame = frame.sort_values(["patient_id", "hours", "_row"], kind="stable")
    frame = frame.drop_duplicates(["patient_id", "hours"], keep="first")
    for pid, rows in frame.groupby("patient_id", sort=False):
        onset_h = math.nan
        current = 0
        new: list[tuple[str, float, int, int]] = []
        for hours, grade, row in zip(rows["hours"], rows["grade"], rows["_row"], strict=True):
            if math.isnan(onset_h):
                if grade >= 1:
                    onset_h = hours
                    new.append(("crs_onset", hours, min(grade, 4), row))
                    current = grade
            elif grade != current:
                new.append(("crs_grade", hours, grade, row))
                current = grade
        if math.isnan(onset_h) or "crs_onset" not in wanted:
            # the maximum is a whole-course summary: written at onset only when the timed course
            # is not (it would put the future maximum at the onset time); a course that never
            # left grade 0 says "no CRS" with unknown time
            new.append(
                ("crs_max_grade", onset_h, int(rows["grade"].max()), int(rows["_row"].iloc[0]))
            )
        for event, hours, grade, row in new:
            if event in wanted:
                r.add_event(k, int(row), gj, str(pid), hours, event, int(grade))
