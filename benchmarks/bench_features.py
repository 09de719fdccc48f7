"""Benchmark: build every landmark of both tasks for 100,000 synthetic patients.

Target (issue): all landmarks for 100,000 patients in under 60 s on 2 cores. The cohort comes
from ``features.synth.simulate``, normalised through ``features.validation.validate_frames``
(an import error is an error, never a silent switch of cohort). Only with ``--numpy`` are
canonical frames generated here instead: pre-lymphodepletion labs, then cytokines, CRP,
ferritin and temperature every 12 h for a week, and a CRS course with tocilizumab and
second-line events. The first output line names the cohort used. Generation time is not
counted; peak RSS covers the whole process.

Usage: ``python benchmarks/bench_features.py [--n 100000] [--seed 1] [--numpy]``
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.build import build_landmarks, prepare
from features.cohort import Cohort
from features.schema import PRODUCTS
from features.synth import simulate
from features.validation import validate_frames

DYNAMIC = ("il6", "ifng", "sgp130", "il1ra", "il10", "crp", "ferritin", "temperature")
PRE_LD = ("ldh", "crp", "ferritin", "platelets", "creatinine")


def numpy_cohort(n: int, seed: int) -> Cohort:
    """Canonical frames with a latent severity driving labs, cytokines, grades and treatment."""
    rng = np.random.default_rng(seed)
    ids = np.char.add("B-", np.char.zfill(np.arange(n).astype(str), 6))
    blasts = np.where(rng.random(n) < 0.45, rng.uniform(0, 5, n), rng.uniform(5, 99, n))
    latent = 0.03 * blasts + rng.normal(0, 1, n)
    patients = pd.DataFrame(
        {
            "patient_id": pd.array(ids, dtype="string"),
            "center": pd.array(np.char.add("C0", (rng.integers(1, 5, n)).astype(str)), "string"),
            "age_years": rng.uniform(1, 25, n).round(1),
            "sex": pd.array(np.where(rng.random(n) < 0.56, "M", "F"), dtype="string"),
            "weight_kg": rng.uniform(10, 90, n).round(1),
            "product": pd.array(rng.choice(PRODUCTS[:2], n), dtype="string"),
            "prior_hsct": pd.array(rng.random(n) < 0.6, dtype="boolean"),
            "prior_blinatumomab": pd.array(rng.random(n) < 0.3, dtype="boolean"),
            "prior_inotuzumab": pd.array(rng.random(n) < 0.2, dtype="boolean"),
            "marrow_blasts_pct": blasts.round(1),
            "extramedullary_disease": pd.array(rng.random(n) < 0.1, dtype="boolean"),
            "lymphodepletion": pd.array(np.full(n, "flu_cy"), dtype="string"),
            "car_t_dose": rng.uniform(0.5, 5, n).round(2),
        }
    )
    times = np.r_[-120.0, np.arange(0.0, 169.0, 12.0)]
    pid, hours, analyte, value = [], [], [], []
    for a in PRE_LD:
        pid.append(np.arange(n))
        hours.append(np.full(n, -120.0) + rng.integers(0, 24, n))
        analyte.append(np.full(n, a))
        value.append(np.exp(rng.normal(np.log(100), 0.5, n) + 0.3 * latent))
    for a in DYNAMIC:
        for t in times[1:]:
            present = rng.random(n) < 0.9
            k = int(present.sum())
            pid.append(np.flatnonzero(present))
            hours.append(np.full(k, t) + rng.uniform(0, 2, k).round(1))
            analyte.append(np.full(k, a))
            if a == "temperature":
                v = (
                    37.0
                    + 1.5 * (rng.random(k) < 0.3 + 0.1 * latent[present])
                    + rng.normal(0, 0.3, k)
                )
            else:
                v = np.exp(rng.normal(3 + 0.5 * latent[present] * t / 72, 1.0, k))
            value.append(v)
    p = np.concatenate(pid)
    m = pd.DataFrame(
        {
            "patient_id": pd.array(ids[p], dtype="string"),
            "hours_from_infusion": np.concatenate(hours),
            "analyte": pd.array(np.concatenate(analyte), dtype="string"),
            "value": np.concatenate(value),
        }
    )
    m = m.sort_values(["patient_id", "hours_from_infusion", "analyte"], ignore_index=True)
    m["unit"] = pd.array(np.full(len(m), "x"), dtype="string")
    m["qualifier"] = pd.array([pd.NA] * len(m), dtype="string")
    # CRS course: onset, escalation, tocilizumab (1–2 doses), second-line agents, resolution
    crs = rng.random(n) < 0.8
    onset = rng.uniform(12, 120, n)
    max_g = np.clip(np.round(1 + latent + rng.normal(0, 0.7, n)), 1, 4)
    toci = crs & (max_g >= 2)
    second = toci & (rng.random(n) < 0.4)
    refr = toci & (rng.random(n) < 0.22)
    resolved = onset + np.where(refr, 120.0, 40.0)
    rows = [
        (np.flatnonzero(crs), onset[crs], "crs_onset", np.ones(crs.sum())),
        (np.flatnonzero(crs), onset[crs] + 12, "crs_grade", max_g[crs]),
        (np.flatnonzero(crs), resolved[crs], "crs_resolved", np.full(crs.sum(), np.nan)),
        (np.flatnonzero(toci), onset[toci] + 20, "tocilizumab", np.full(toci.sum(), np.nan)),
        (np.flatnonzero(second), onset[second] + 30, "tocilizumab", np.full(second.sum(), np.nan)),
        (np.flatnonzero(refr), onset[refr] + 50, "corticosteroids", np.full(refr.sum(), np.nan)),
    ]
    e = pd.DataFrame(
        {
            "patient_id": pd.array(ids[np.concatenate([r[0] for r in rows])], dtype="string"),
            "hours_from_infusion": np.concatenate([r[1] for r in rows]),
            "event": pd.array(np.concatenate([np.full(len(r[0]), r[2]) for r in rows]), "string"),
            "grade": pd.array(np.concatenate([r[3] for r in rows]), dtype="Float64").astype(
                "Int64"
            ),
            "dose_mg_per_kg": np.nan,
        }
    )
    e = e.sort_values(["patient_id", "hours_from_infusion"], ignore_index=True)
    return Cohort(patients, m, e, source="bench-numpy", digest="0" * 64)


def synth_cohort(n: int, seed: int) -> Cohort:
    """The project's simulator, normalised by the loader's validation."""
    sim = simulate(n=n, seed=seed)
    tables = {"patients": sim.patients, "measurements": sim.measurements, "events": sim.events}
    report = validate_frames(tables, "bench-synth")
    if report.cohort is None:
        raise SystemExit(f"the simulated cohort is not valid:\n{report.render()}")
    return report.cohort


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--numpy", action="store_true", help="use this script's NumPy generator, not features.synth"
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.numpy:
        cohort, kind = numpy_cohort(args.n, args.seed), "NumPy generator (bench script, --numpy)"
    else:
        cohort, kind = synth_cohort(args.n, args.seed), "features.synth"
    gen = time.perf_counter() - t0
    print(
        f"cohort: {kind}, {cohort.n_patients:,} patients, {len(cohort.measurements):,} "
        f"measurements, {len(cohort.events):,} events (made in {gen:.1f} s)"
    )
    t0, c0 = time.perf_counter(), time.process_time()
    prepared = prepare(cohort)  # codes and sort order, shared by both tasks
    tables = {
        **{f"severe_crs@{k}": v for k, v in build_landmarks(prepared, "severe_crs").items()},
        **{
            f"toci_refractory@{k}": v
            for k, v in build_landmarks(prepared, "toci_refractory").items()
        },
    }
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    for name, t in tables.items():
        print(
            f"  {name:<28} eligible {t.summary['eligible']:>7,}  events {t.n_events:>6,}  "
            f"features {t.X.shape[1]}"
        )
    print(
        f"built all landmarks in {elapsed:.1f} s wall, {cpu:.1f} s CPU (target < 60 s); "
        f"peak RSS {peak_gib:.2f} GiB"
    )


if __name__ == "__main__":
    main()
