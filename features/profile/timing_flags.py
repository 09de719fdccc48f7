"""Flags on the timing of the rows: day sequences with gaps and measurements after death."""

from __future__ import annotations

import numpy as np

from features.cohort import Cohort
from features.profile.rows import CohortRows, patient_codes
from features.profile.rules import Flag, FlagRules
from features.profile.windows import Windows


def death_hours(cohort: Cohort) -> np.ndarray:
    """Time of the first timed death per patient row (NaN = none recorded)."""
    ev = cohort.events
    dead = (ev["event"].astype(str) == "death").to_numpy() & ev[
        "hours_from_infusion"
    ].notna().to_numpy()
    out = np.full(len(cohort.patients), np.inf)
    codes = patient_codes(cohort, ev.loc[dead, "patient_id"])
    hours = ev.loc[dead, "hours_from_infusion"].to_numpy(dtype=float)
    ok = codes >= 0
    np.minimum.at(out, codes[ok], hours[ok])
    out[np.isinf(out)] = np.nan
    return out


def after_death_flag(cohort: Cohort, rows: CohortRows, rules: FlagRules) -> Flag | None:
    """Measurement rows timed after the patient's recorded death."""
    died = death_hours(cohort)
    n_rows, patients, analytes = 0, set(), []
    for a in rows.analytes.values():
        t = died[a.patient]
        late = ~np.isnan(t) & (a.hours > t)
        if late.any():
            n_rows += int(late.sum())
            patients.update(np.unique(a.patient[late]).tolist())
            analytes.append(a.analyte)
    if n_rows < rules.after_death_rows:
        return None
    return Flag(
        kind="after_death",
        subject="cohort",
        evidence=(
            f"{n_rows} measurement rows of {len(patients)} patients are timed after the "
            f"patient's death (analytes: {', '.join(analytes)})"
        ),
        fix=(
            "check the time origin and unit of the measurement rules in the import mapping "
            "(time: {unit: days} counts from infusion) and the time of the death event; a "
            "sample cannot follow death"
        ),
        numbers={"rows": float(n_rows), "patients": float(len(patients))},
    )


def day_gap_flag(rows: CohortRows, windows: Windows, rules: FlagRules) -> Flag | None:
    """Patients whose measured days (any analyte, day d = (24(d-1), 24d] h, day 0 = ≤ 0 h)
    up to the last landmark skip ≥ ``gap_days`` consecutive days between the first and the
    last measured one."""
    n = rows.n_patients
    last_day = int(np.ceil(windows.last_landmark / 24.0))
    nd = last_day + 1
    seen = np.zeros(n * nd, dtype=bool)
    for a in rows.analytes.values():
        day = np.ceil(np.maximum(a.hours, 0.0) / 24.0).astype(np.int64)
        ok = day <= last_day
        seen[a.patient[ok] * nd + day[ok]] = True
    grid = seen.reshape(n, nd)
    longest = np.zeros(n, dtype=np.int64)
    run = np.zeros(n, dtype=np.int64)
    started = grid[:, 0].copy()
    for d in range(1, nd):
        gap_end = grid[:, d] & started
        longest = np.where(gap_end, np.maximum(longest, run), longest)
        run = np.where(grid[:, d], 0, run + started)
        started |= grid[:, d]
    sampled = grid.any(axis=1)
    gapped = longest >= rules.gap_days
    share = gapped.sum() / max(int(sampled.sum()), 1)
    if share < rules.gap_patient_share or not gapped.any():
        return None
    return Flag(
        kind="day_gaps",
        subject="cohort",
        evidence=(
            f"{int(gapped.sum())} of {int(sampled.sum())} patients ({100 * share:.0f}%) have "
            f"≥{rules.gap_days} consecutive days without any measurement between measured days "
            f"up to day {last_day} (the last landmark); longest gap {int(longest.max())} days"
        ),
        fix=(
            "check that the extract holds every day (a patient-day table with dropped rows, or "
            "a day column the mapping's time: rule misreads); if no samples were drawn those "
            "days nothing needs fixing: features treat the days as not measured"
        ),
        numbers={
            "patients": float(gapped.sum()),
            "share": float(share),
            "longest_days": float(longest.max()),
        },
    )
