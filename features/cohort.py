"""The in-memory, validated cohort that every later step receives.

``features.io.load_cohort`` is the only way to make one from files; the simulator and the
importer write files that then go through that door. Frames are in canonical form:

- ``patients``: one row per ``patient_id`` with every column of ``features.schema.PATIENTS``
  (absent optional columns are all-missing), dtypes as declared.
- ``measurements``: ``patient_id``, ``hours_from_infusion`` (float64), ``analyte`` (vocabulary
  key), ``value`` (float64, canonical unit), ``unit`` (canonical unit), ``qualifier``;
  sorted by patient, time, analyte.
- ``events``: ``patient_id``, ``hours_from_infusion`` (float64, NaN = unknown time), ``event``,
  ``grade`` (Int64), ``dose_mg_per_kg`` (float64); sorted by patient and time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class Cohort:
    patients: pd.DataFrame
    measurements: pd.DataFrame
    events: pd.DataFrame
    source: str
    digest: str
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_patients(self) -> int:
        return len(self.patients)
