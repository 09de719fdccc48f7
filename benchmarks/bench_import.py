"""Import benchmark: ``crs-risk cohort import`` of a wide patient-day extract.

Writes the shape of ``docs/examples/patient-day`` at scale (one row per patient and day, days
-1..8, patient columns repeated on every row, sex as text, text-coded oxygen device, a per-row
CRP unit, a daily CRS grade, daily tocilizumab/steroid flags with the reason) for ``--patients``
patients, then imports it with ``docs/examples/patient-day/mapping.yaml`` in a fresh process so
that the wall time and peak RSS are those of the import alone (read, convert, validate, write).

    .venv/bin/python benchmarks/bench_import.py [--patients 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
MAPPING = REPO / "docs" / "examples" / "patient-day" / "mapping.yaml"
DAYS = np.arange(-1, 9)


def extract(folder: Path, patients: int, seed: int) -> int:
    """Write ``patient_days.csv`` for ``patients`` patients; return its row count."""
    rng = np.random.default_rng(seed)
    n = patients * len(DAYS)
    pid = np.repeat(np.array([f"P{i:06d}" for i in range(patients)]), len(DAYS))
    day = np.tile(DAYS, patients)

    def per_patient(values: np.ndarray) -> np.ndarray:
        return np.repeat(values, len(DAYS))

    grade = rng.choice(["0", "0", "0", "1", "1", "2", "3", ""], size=n)
    steroid = rng.choice(["N"] * 9 + ["Y"], size=n)
    crp_unit = rng.choice(["mg/L", "mg/dL"], size=n)
    crp = rng.lognormal(2.5, 1.0, size=n).clip(0, 1500) / np.where(crp_unit == "mg/dL", 10, 1)
    frame = pd.DataFrame(
        {
            "Study ID": pid,
            "Sex": per_patient(rng.choice(["Female", "Male"], size=patients)),
            "Age": per_patient(rng.integers(1, 26, size=patients)),
            "Weight (kg)": per_patient(np.round(rng.uniform(10, 90, size=patients), 1)),
            "Product": per_patient(rng.choice(["Kymriah", "ARI-0001"], size=patients)),
            "Day": day,
            "Tmax (C)": np.round(rng.uniform(36.2, 40.5, size=n), 1),
            "CRP": np.round(crp, 2),
            "CRP unit": crp_unit,
            "O2": rng.choice(["RA", "RA", "RA", "NC", "HFNC", "CPAP"], size=n),
            "Hypotension": rng.choice(["N", "N", "N", "Y"], size=n),
            "Vasopressin": rng.choice(["N"] * 19 + ["Y"], size=n),
            "CRS grade": grade,
            "Toci": rng.choice(["N"] * 9 + ["Y"], size=n),
            "Steroids": steroid,
            "Steroid reason": np.where(steroid == "Y", rng.choice(["CRS", "ICANS"], size=n), ""),
            "ICU": rng.choice(["N"] * 19 + ["Y"], size=n),
        }
    )
    frame.to_csv(folder / "patient_days.csv", index=False)
    return n


def run_import(src: Path, out: Path) -> dict[str, float]:
    """Time ``import_cohort`` in this process; report wall time and peak RSS."""
    from features.importer import import_cohort

    t0 = time.perf_counter()
    c0 = time.process_time()
    report = import_cohort(MAPPING, [src], out, fmt="parquet")
    return {
        "import_s": time.perf_counter() - t0,
        "import_cpu_s": time.process_time() - c0,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "patients": report.n_patients,
        "measurements": report.n_measurements,
        "events": report.n_events,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("SRC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(REPO))
        print(json.dumps(run_import(Path(args.child[0]), Path(args.child[1]))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "extract", Path(tmp) / "cohort"
        src.mkdir()
        t0 = time.perf_counter()
        rows = extract(src, args.patients, args.seed)
        made = time.perf_counter() - t0
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(src), str(out)],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        result = {"extract_rows": rows, "extract_s": made, **json.loads(child.stdout)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
