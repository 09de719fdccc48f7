"""The events table: CRS course, drugs with their indication, ICANS, ICU, death."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.schema import EVENTS, INDICATIONS
from features.synth.params import SynthParams

_EVENT_CODE = {e: i for i, e in enumerate(EVENTS)}
_INDICATION_CODE = {"": 0} | {x: i + 1 for i, x in enumerate(INDICATIONS)}
_EVENT_ORDER = np.array(
    [
        {
            "crs_onset": 0,
            "crs_grade": 1,
            "crs_max_grade": 2,
            "tocilizumab": 3,
            "siltuximab": 4,
            "anakinra": 5,
            "corticosteroids": 6,
            "icans": 7,
            "icu_admission": 8,
            "icu_discharge": 9,
            "crs_resolved": 10,
            "death": 11,
            "lost_to_follow_up": 12,
        }[e]
        for e in EVENTS
    ]
)


def events_frame(
    pt: dict[str, np.ndarray],
    crs: dict[str, np.ndarray],
    tr: dict[str, np.ndarray],
    tox: dict[str, np.ndarray],
    p: SynthParams,
    ids: np.ndarray,
) -> pd.DataFrame:
    tp = p.treatment
    n = len(pt["c"])
    """One row per event, sorted by patient, time and a fixed order of kinds."""
    blocks: list[tuple[np.ndarray, np.ndarray, str, np.ndarray | None, np.ndarray | None, int]] = []
    allp = np.arange(n)

    def add(
        times: np.ndarray,
        event: str,
        grade: np.ndarray | None = None,
        dose: np.ndarray | float | None = None,
        indication: str = "",
    ) -> None:
        ok = ~np.isnan(times)
        g = None if grade is None else np.broadcast_to(grade, (n,))[ok]
        d = None if dose is None else np.broadcast_to(np.asarray(dose, dtype=float), (n,))[ok]
        blocks.append((allp[ok], times[ok], event, g, d, _INDICATION_CODE[indication]))

    tm, gm = tr["tm"], tr["gm"]
    add(tm[:, 0], "crs_onset", gm[:, 0])
    for j in range(tm.shape[1]):
        add(tm[:, j], "crs_grade", gm[:, j])
    add(tm[:, 7], "crs_resolved")
    died_crs = tr["died_crs"]
    add(np.where(died_crs, tr["t_death"], np.nan), "crs_grade", np.full(n, 5))
    for j in range(3):
        add(tr["dose_t"][:, j], "tocilizumab", None, tr["toci_mgkg"], "crs")
    silt = tp.siltuximab_mg_per_kg
    add(np.where(tr["silt_first"], tr["t_first"], np.nan), "siltuximab", None, silt, "crs")
    agent, t_2l = tr["agent"], tr["t_2l"]
    add(np.where(agent == 0, t_2l, np.nan), "siltuximab", None, silt, "crs")
    add(np.where(agent == 1, t_2l, np.nan), "anakinra", None, tp.anakinra_mg_per_kg, "crs")
    add(tr["t_steroid"], "corticosteroids", None, tp.steroid_mg_per_kg, "crs")
    add(tox["t_icans_steroid"], "corticosteroids", None, tp.steroid_mg_per_kg, "icans")
    add(np.where(tox["icans"], tox["t_icans"], np.nan), "icans", tox["icans_grade"])
    add(tox["t_icu"], "icu_admission")
    add(tox["t_icu_out"], "icu_discharge")
    add(tr["t_death"], "death")
    pid = np.concatenate([b[0] for b in blocks])
    t = np.concatenate([b[1] for b in blocks])
    ev = np.concatenate([np.full(len(b[0]), _EVENT_CODE[b[2]], dtype=np.int16) for b in blocks])
    grade = np.concatenate([b[3] if b[3] is not None else np.full(len(b[0]), -1) for b in blocks])
    dose = np.concatenate(
        [b[4] if b[4] is not None else np.full(len(b[0]), np.nan) for b in blocks]
    )
    ind = np.concatenate([np.full(len(b[0]), b[5], dtype=np.int8) for b in blocks])
    order = np.lexsort((_EVENT_ORDER[ev], t, pid))
    pid, t, ev, grade, dose = pid[order], t[order], ev[order], grade[order], dose[order]
    ind = ind[order]
    return pd.DataFrame(
        {
            "patient_id": pd.Categorical.from_codes(pid, categories=ids),
            "hours_from_infusion": t,
            "event": pd.Categorical.from_codes(ev, categories=list(EVENTS)),
            "grade": pd.arrays.IntegerArray(np.maximum(grade, 0).astype("int64"), grade < 0),
            "dose_mg_per_kg": dose,
            "indication": pd.Categorical.from_codes(ind - 1, categories=list(INDICATIONS)),
        }
    )
