"""Where a training cohort comes from: the experiment's folder, synthesis or import; its truth.

``experiment_cohort`` yields the validated cohort (synthesised or imported ones live in a
temporary folder for the duration of the call); ``read_truth`` / ``oracle_auroc`` read the
simulator's true probabilities beside a synthetic cohort; ``is_synthetic`` says whether SHAP
figures may show per-patient points.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.errors import CrsRiskError
from features.importer import import_cohort
from features.io import load_cohort
from features.manifest import is_synthetic as manifest_is_synthetic
from features.manifest import read_manifest
from features.synth import synth_to_folder
from features.table import FeatureTable
from training.experiment import Experiment
from training.metrics import auroc


@contextmanager
def experiment_cohort(exp: Experiment, override: Path | None) -> Iterator[tuple[Any, Path]]:
    """Load the experiment's cohort (or ``override``); synthesised/imported ones in a temp dir."""

    with tempfile.TemporaryDirectory(prefix="crs-risk-cohort-") as tmp:
        if override is not None:
            folder = Path(override)
        elif exp.cohort.path is not None:
            folder = exp.resolve(exp.cohort.path)
        elif exp.cohort.synth is not None:
            s = exp.cohort.synth
            folder = Path(tmp) / "cohort"
            synth_to_folder(
                folder,
                n=s.n,
                seed=s.seed,
                centers=s.centers,
                new_center=s.new_center,
                center_shift=s.center_shift,
            )
        else:
            spec = exp.cohort.import_
            assert spec is not None
            folder = Path(tmp) / "cohort"
            import_cohort(exp.resolve(spec.mapping), [exp.resolve(p) for p in spec.sources], folder)
        if not folder.is_dir():
            raise CrsRiskError(f"cohort folder not found: {folder}")
        try:
            cohort = load_cohort(folder)
        except CrsRiskError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid cohort"
            raise CrsRiskError(
                f"cohort {folder} is not valid: {first} (run `crs-risk cohort validate {folder}` "
                "for every problem)"
            ) from None
        yield cohort, folder


def read_truth(folder: Path) -> pd.DataFrame | None:
    """The simulator's ``truth.csv`` beside a synthetic cohort, indexed by patient, if any."""
    for name in ("truth.csv", "truth.parquet"):
        path = folder / name
        if path.is_file():
            frame = pd.read_csv(path) if name.endswith(".csv") else pd.read_parquet(path)
            if "patient_id" in frame.columns:
                return frame.assign(patient_id=frame["patient_id"].astype(str)).set_index(
                    "patient_id"
                )
    return None


def oracle_auroc(truth: pd.DataFrame | None, table: FeatureTable) -> float | None:
    """AUROC of the true probability for the task on the table's patients (see ORACLE_NOTE)."""
    if truth is None:
        return None
    column = {"severe_crs": "p_severe_crs", "toci_refractory": "p_toci_refractory"}[table.task]
    if column not in truth.columns:
        return None
    p = truth[column].reindex(table.ids.astype(str).to_numpy()).to_numpy(dtype=float)
    ok = np.isfinite(p)
    if ok.sum() < len(p) or ok.sum() == 0:
        return None
    value = auroc(table.y.to_numpy(dtype=float), p)
    return value if math.isfinite(value) else None


def cohort_label(folder: Path, exp: Experiment, override: Path | None) -> str:
    """How runs name the cohort (never a patient-level detail)."""
    if override is None and exp.cohort.synth is not None:
        s = exp.cohort.synth
        return f"synthetic n={s.n} seed={s.seed}"
    return folder.name


def is_synthetic(folder: Path, exp: Experiment, override: Path | None, truth: Any) -> bool:
    """True for a simulated cohort: the folder's provenance manifest says so
    (``features.manifest``); a folder without one is synthetic when the experiment synthesises
    it or a simulator ``truth`` file lies beside it."""
    if read_manifest(folder) is not None:
        return manifest_is_synthetic(folder)
    return (override is None and exp.cohort.synth is not None) or truth is not None
