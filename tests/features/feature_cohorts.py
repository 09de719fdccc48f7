"""Small canonical cohorts written by hand for the feature tests (no loader needed).

``make_cohort`` fills every patients column of the contract (missing ones all-NA), gives the
canonical dtypes and sort order of ``features.cohort`` and returns a :class:`Cohort`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.cohort import Cohort
from features.schema import PATIENTS
from features.vocabulary import ANALYTES

_DTYPES = {"string": "string", "float": "float64", "bool": "boolean", "category": "string"}


def patients_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    out = {}
    for col in PATIENTS.columns:
        missing = pd.Series([pd.NA] * len(frame))
        values = frame.get(col.name, missing)
        out[col.name] = values.astype(_DTYPES[col.dtype])
    return pd.DataFrame(out)


def measurements_frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows ``(patient_id, hours, analyte, value)`` in canonical units."""
    frame = pd.DataFrame(rows, columns=["patient_id", "hours_from_infusion", "analyte", "value"])
    frame = frame.astype(
        {"patient_id": "string", "hours_from_infusion": "float64", "value": "float64"}
    )
    frame["analyte"] = frame["analyte"].astype("string")
    frame["unit"] = (
        frame["analyte"].map(lambda a: ANALYTES[a].canonical_unit).astype("string")
        if len(frame)
        else pd.Series(dtype="string")
    )
    frame["qualifier"] = pd.Series([pd.NA] * len(frame), dtype="string")
    return frame.sort_values(["patient_id", "hours_from_infusion", "analyte"], ignore_index=True)


def events_frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows ``(patient_id, hours or None, event, grade or None[, dose[, indication]])``."""
    rows = [tuple(r) + (None,) * (6 - len(r)) for r in rows]
    frame = pd.DataFrame(
        rows,
        columns=[
            "patient_id",
            "hours_from_infusion",
            "event",
            "grade",
            "dose_mg_per_kg",
            "indication",
        ],
    )
    frame = frame.astype(
        {
            "patient_id": "string",
            "hours_from_infusion": "float64",
            "event": "string",
            "grade": "Int64",
            "dose_mg_per_kg": "float64",
            "indication": "string",
        }
    )
    return frame.sort_values(["patient_id", "hours_from_infusion"], ignore_index=True)


def make_cohort(
    patients: list[dict], measurements: list[tuple] = (), events: list[tuple] = ()
) -> Cohort:
    return Cohort(
        patients=patients_frame(patients),
        measurements=measurements_frame(list(measurements)),
        events=events_frame(list(events)),
        source="handmade",
        digest="0" * 64,
    )


def patient(pid: str, **kw: object) -> dict:
    base = {
        "patient_id": pid,
        "center": "C01",
        "age_years": 10.0,
        "sex": "F",
        "weight_kg": 30.0,
        "product": "tisagenlecleucel",
        "prior_hsct": False,
        "prior_blinatumomab": False,
        "prior_inotuzumab": False,
        "marrow_blasts_pct": 10.0,
        "extramedullary_disease": False,
        "lymphodepletion": "flu_cy",
        "car_t_dose": 3.0,
    }
    base.update(kw)
    return base


def as_float(x: object) -> float:
    return float(np.asarray(x, dtype=float))
