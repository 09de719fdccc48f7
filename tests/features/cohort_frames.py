"""A small, valid, hand-written cohort for the validation, loader and CLI tests.

Patient identifiers contain ``SECRET`` so tests can assert that no message ever shows one.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

IDS = ("PT-SECRET-01", "PT-SECRET-02", "PT-SECRET-03", "PT-SECRET-04")


def patients() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": list(IDS),
            "center": ["A", "A", "B", "B"],
            "age_years": [4.5, 12.0, 19.5, 8.0],
            "sex": ["F", "M", "F", "M"],
            "weight_kg": [17.0, 40.5, 61.0, 25.0],
            "product": ["tisagenlecleucel", "ARI-0001", "ARI-0001", "other"],
            "prior_hsct": ["true", "false", "yes", "0"],
            "marrow_blasts_pct": [35.0, 2.0, 80.0, None],
            "lymphodepletion": ["flu_cy", "flu_cy", "flu_cy", "none"],
            "car_t_dose": [1.5, 1.0, 0.5, 2.0],
        }
    )


def measurements() -> pd.DataFrame:
    rows = [
        # patient, hours, analyte, value, unit, qualifier
        (IDS[0], -24.0, "il6", 8.0, "pg/mL", None),
        (IDS[0], -24.0, "crp", 1.2, "mg/dL", None),
        (IDS[0], 24.0, "IL-6", 450.0, "pg/mL", None),
        (IDS[0], 24.0, "temperature", 102.2, "°F", None),
        (IDS[0], 50.0, "ferritin", 3500.0, "ug/L", None),
        (IDS[0], 50.0, "vasopressors", 1.0, "count", None),
        (IDS[1], -2.0, "platelets", 150000.0, "/uL", None),
        (IDS[1], 12.0, "creatinine", 88.4, "umol/L", None),
        (IDS[1], 30.0, "ldh", 5.0, "ukat/L", None),
        (IDS[2], 0.0, "il6", 1.5, "pg/mL", "<"),
        (IDS[2], 72.0, "oxygen_device", 3.0, "code", None),
        (IDS[3], 100.0, "crp", 45.0, "mg/L", None),
    ]
    return pd.DataFrame(
        rows, columns=["patient_id", "hours_from_infusion", "analyte", "value", "unit", "qualifier"]
    )


def events() -> pd.DataFrame:
    rows = [
        # patient, hours, event, grade, dose
        (IDS[0], 20.0, "crs_onset", 1, None),
        (IDS[0], 48.0, "crs_grade", 3, None),
        (IDS[0], 50.0, "tocilizumab", None, 8.0),
        (IDS[0], 55.0, "icu_admission", None, None),
        (IDS[0], 90.0, "icu_discharge", None, None),
        (IDS[0], 120.0, "crs_resolved", None, None),
        (IDS[1], None, "crs_max_grade", 2, None),
        (IDS[2], 30.0, "crs_onset", 2, None),
        (IDS[2], 60.0, "icans", 1, None),
        (IDS[2], 200.0, "death", None, None),
    ]
    frame = pd.DataFrame(
        rows, columns=["patient_id", "hours_from_infusion", "event", "grade", "dose_mg_per_kg"]
    )
    frame["grade"] = frame["grade"].astype("Int64")
    return frame


def frames() -> dict[str, pd.DataFrame]:
    return {"patients": patients(), "measurements": measurements(), "events": events()}


def write_raw(folder: Path, tables: dict[str, pd.DataFrame], fmt: str = "csv") -> Path:
    """Write frames as they are (no validation), so tests can write broken cohorts."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if fmt == "csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        else:
            frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder
