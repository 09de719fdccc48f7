"""Synthetic example patients for ``GET /v1/examples`` and the clinician page.

They come from the project's simulator (``features.synth.simulate``), never from real data:
a few simulated infusions are turned into request bodies with their records up to a data cut
(``as_of_hours``), in the units the simulated centre reports (so unit conversion is exercised).
The choice is deterministic (fixed seed) and picks contrasting courses: no CRS, CRS treated with
tocilizumab, an early severe course, and a pre-infusion-only patient.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from features.synth import simulate
from serving.schemas import MAX_MEASUREMENTS, PATIENT_FIELDS

SEED = 2026
N_SIMULATED = 60


def _clean(value: Any) -> Any:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(float(value)) else float(value)
    return str(value)


def to_request(
    patient: pd.Series, measurements: pd.DataFrame, events: pd.DataFrame, as_of: float
) -> dict[str, Any]:
    """One simulated patient's records up to ``as_of`` hours as a ``RiskRequest`` body."""
    m = measurements[measurements["hours_from_infusion"] <= as_of]
    e = events[events["hours_from_infusion"].notna() & (events["hours_from_infusion"] <= as_of)]
    body: dict[str, Any] = {
        "patient": {f: _clean(patient.get(f)) for f in PATIENT_FIELDS},
        "measurements": [
            {
                "analyte": str(r.analyte),
                "hours_from_infusion": float(r.hours_from_infusion),
                "value": float(r.value),
                "unit": str(r.unit),
                **({"qualifier": str(r.qualifier)} if _clean(r.qualifier) else {}),
            }
            for r in m.itertuples(index=False)
        ][:MAX_MEASUREMENTS],
        "events": [
            {
                "event": str(r.event),
                "hours_from_infusion": float(r.hours_from_infusion),
                **({"grade": int(r.grade)} if _clean(r.grade) is not None else {}),
                **({"dose_mg_per_kg": float(r.dose_mg_per_kg)} if _clean(r.dose_mg_per_kg) else {}),
            }
            for r in e.itertuples(index=False)
        ],
        "as_of_hours": float(as_of),
    }
    return body


def example_patients(n_simulated: int = N_SIMULATED, seed: int = SEED) -> list[dict[str, Any]]:
    """Titled synthetic request bodies (deterministic)."""
    s = simulate(n_simulated, seed=seed)
    pats = s.patients.reset_index(drop=True)
    ev = s.events
    by_pid_m = dict(tuple(s.measurements.groupby("patient_id", sort=False)))
    by_pid_e = dict(tuple(ev.groupby("patient_id", sort=False)))
    empty_e = ev.iloc[0:0]

    def max_grade(pid: str) -> int:
        g = by_pid_e.get(pid, empty_e)["grade"].dropna()
        return int(g.max()) if len(g) else 0

    def first(event: str, pid: str) -> float | None:
        e = by_pid_e.get(pid, empty_e)
        t = e.loc[e["event"] == event, "hours_from_infusion"].dropna()
        return float(t.min()) if len(t) else None

    chosen: list[tuple[str, str, float]] = []
    used: set[str] = set()

    def pick(title: str, cond: Any, as_of: Any) -> None:
        for pid in pats["patient_id"]:
            if pid not in used and pid in by_pid_m and cond(pid):
                used.add(pid)
                chosen.append((pid, title, float(as_of(pid))))
                return

    pick("No CRS so far (data to 48 h)", lambda p: max_grade(p) == 0, lambda p: 48.0)
    pick(
        "CRS treated with tocilizumab (data to the first dose + 2 h)",
        lambda p: (t := first("tocilizumab", p)) is not None and t <= 70,
        lambda p: (first("tocilizumab", p) or 0) + 2,
    )
    pick(
        "CRS grade 1–2 by 24 h (data to 24 h)",
        lambda p: (first("crs_onset", p) or 1e9) <= 24 and max_grade(p) >= 1,
        lambda p: 24.0,
    )
    pick("Before infusion (pre-lymphodepletion labs only)", lambda p: True, lambda p: 0.0)
    out = []
    for k, (pid, title, as_of) in enumerate(chosen):
        row = pats.loc[pats["patient_id"] == pid].iloc[0]
        body = to_request(row, by_pid_m.get(pid), by_pid_e.get(pid, empty_e), as_of)
        body["patient_ref"] = f"synthetic-{k + 1}"
        out.append({"title": f"Synthetic patient {k + 1}: {title}", "request": body})
    return out
