"""Event rules: vocabulary, grades, ordering of the CRS course (ASTCT 2019), ICU stays."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from features.schema import (
    DRUG_EVENTS,
    EVENTS,
    GRADED_EVENTS,
)
from features.validation.collect import Collector, side_kind
from features.validation.columns import Parsed
from features.validation.rows import repeat_rows


def _sides(grade: np.ndarray, bounds: tuple[float, float], idx: np.ndarray) -> Sequence[str]:
    """Which side of ``bounds`` each listed row's grade lies on (never the grade itself)."""
    return [side_kind(grade[i], bounds) for i in idx]


def check_events(p: Parsed, col: Collector) -> None:
    if "event" not in p.text or p.n == 0:
        return
    event = p.text["event"].codes  # index into EVENTS after _check_allowed
    grade = p.num.get("grade", np.full(p.n, np.nan))
    graded_bad = p.bad.get("grade", np.zeros(p.n, dtype=bool))
    rows_ok = (event >= 0) & ~p.blank
    for e_idx in np.unique(event[rows_ok]).tolist():  # the event types present, in EVENTS order
        e = EVENTS[e_idx]
        this = rows_ok & (event == e_idx)
        if e in GRADED_EVENTS:
            lo, hi = GRADED_EVENTS[e]
            col.rows(
                p.file,
                this & np.isnan(grade) & ~graded_bad,
                f"grade required for {e}",
                column="grade",
            )
            bounds = (float(lo), float(hi))
            col.rows(
                p.file,
                this & ~np.isnan(grade) & ((grade < lo) | (grade > hi)),
                f"grade outside {lo}–{hi}, the range of {e}",
                column="grade",
                kinds=functools.partial(_sides, grade, bounds),
            )
        else:
            col.rows(
                p.file,
                this & ~np.isnan(grade),
                f"grade given for {e}, which is not a graded event (leave it empty)",
                column="grade",
            )
        if e not in DRUG_EVENTS and "dose_mg_per_kg" in p.num:
            col.rows(
                p.file,
                this & ~np.isnan(p.num["dose_mg_per_kg"]),
                f"dose given for {e}, which is not a drug event",
                column="dose_mg_per_kg",
                severity="warning",
            )
        if e not in DRUG_EVENTS and "indication" in p.text:
            col.rows(
                p.file,
                this & (p.text["indication"].codes >= 0),
                f"indication given for {e}, which is not a drug event (leave it empty)",
                column="indication",
            )
    if "patient_id" not in p.text or "hours_from_infusion" not in p.num:
        return
    pid = p.text["patient_id"].codes
    ok = rows_ok & (pid >= 0)
    hours = p.num.get("hours_from_infusion", np.full(p.n, np.nan))
    timed = ok & ~np.isnan(hours)
    n_pid = len(p.text["patient_id"].uniques) + 1

    def is_(name: str) -> np.ndarray:
        return event == EVENTS.index(name)

    for name, rule in (
        ("crs_onset", "more than one crs_onset for this patient"),
        ("death", "death recorded more than once for this patient"),
    ):
        repeat, first = repeat_rows(pid, ok & is_(name))

        def detail(idx: np.ndarray, first: np.ndarray = first) -> list[str]:
            return [f"first at row {first[pid[i]] + 1}" for i in idx]

        col.rows(p.file, repeat, rule, column="event", detail=detail)

    def earliest(mask: np.ndarray) -> np.ndarray:
        out = np.full(n_pid, np.inf)
        np.minimum.at(out, pid[mask], hours[mask])
        return out

    def row_at(mask: np.ndarray, times: np.ndarray) -> Callable[[np.ndarray], list[int]]:
        """For listed rows: the 1-based row of their patient's earliest ``mask`` row (only
        computed for a problem: a row's own time is never quoted, the row it conflicts with is
        named instead)."""

        def rows(idx: np.ndarray) -> list[int]:
            return [
                int(np.flatnonzero(mask & (pid == pid[i]) & (hours == times[pid[i]]))[0]) + 1
                for i in idx
            ]

        return rows

    onset_mask = timed & is_("crs_onset")
    onset = earliest(onset_mask)
    after_onset = is_("crs_grade") | is_("crs_resolved") | is_("crs_max_grade")
    onset_of_row = onset[np.where(pid >= 0, pid, n_pid - 1)]
    # no crs_onset at all is allowed (e.g. crs_max_grade alone, timed at onset)
    early = timed & after_onset & np.isfinite(onset_of_row) & (hours < onset_of_row)
    onset_row = row_at(onset_mask, onset)
    col.rows(
        p.file,
        early,
        "timed before this patient's crs_onset",
        column="hours_from_infusion",
        detail=lambda idx: [f"crs_onset at row {r}" for r in onset_row(idx)],
    )
    death_mask = timed & is_("death")
    death = earliest(death_mask)
    late = timed & ~is_("death") & (hours > death[np.where(pid >= 0, pid, n_pid - 1)])
    death_row = row_at(death_mask, death)
    col.rows(
        p.file,
        late,
        "timed after this patient's death",
        column="hours_from_infusion",
        detail=lambda idx: [f"death at row {r}" for r in death_row(idx)],
    )
    _check_icu(p, col, pid, hours, timed & is_("icu_admission"), timed & is_("icu_discharge"))


def _check_icu(
    p: Parsed,
    col: Collector,
    pid: np.ndarray,
    hours: np.ndarray,
    admit: np.ndarray,
    discharge: np.ndarray,
) -> None:
    """Pair the k-th discharge of a patient with the k-th admission (both in time order)."""

    def ranked(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of ``mask`` in (patient, time, row) order with their rank k within the patient."""
        rows = np.flatnonzero(mask)
        rows = rows[np.lexsort((rows, hours[rows], pid[rows]))]
        who = pid[rows]
        starts = np.flatnonzero(np.r_[True, who[1:] != who[:-1]]) if rows.size else rows
        first = np.repeat(starts, np.diff(np.r_[starts, rows.size]))
        return who, np.arange(rows.size) - first, rows

    # the k-th discharge of a patient pairs with the k-th admission (NumPy, not a merge: cheap for
    # one request and for a million rows alike)
    d_pid, d_k, d_rows = ranked(discharge)
    a_pid, a_k, a_rows = ranked(admit)
    width = int(max(d_k.max(initial=0), a_k.max(initial=0))) + 1
    a_key = a_pid.astype(np.int64) * width + a_k
    d_key = d_pid.astype(np.int64) * width + d_k
    pos = np.searchsorted(a_key, d_key)  # a_key is sorted: (patient, k) order
    found = pos < a_key.size
    found[found] = a_key[pos[found]] == d_key[found]
    admitted = np.full(d_rows.size, np.nan)
    admitted[found] = hours[a_rows[pos[found]]]
    before = found & (hours[d_rows] < admitted)
    admitted_row = dict(zip(d_rows[before].tolist(), a_rows[pos[before]].tolist(), strict=True))
    col.rows(
        p.file,
        np.sort(d_rows[before]),
        "icu_discharge before its icu_admission",
        column="hours_from_infusion",
        detail=lambda idx: [f"icu_admission at row {admitted_row[int(i)] + 1}" for i in idx],
    )
    col.rows(
        p.file,
        np.sort(d_rows[~found]),
        "icu_discharge without an earlier icu_admission",
        column="event",
        severity="warning",
    )
