"""Per-patient interval: what it covers on fresh data, and what it costs (issue 14 §5).

Estimand (``training.interval``): the outcome rate among patients to whom the model gives this
probability (its calibration curve at that probability). Reference on a fresh synthetic cohort
from the same simulator (another seed; n = ``--n``): patients in deciles of the model's
probability, the decile's *true* rate (mean simulator risk, ``truth.csv``: 0 h only, the truth
is not conditional on a later landmark) or, after 0 h, its observed rate (binomial noise of
~2 points at n = 3000). Reported per method:

- ``calibration_coverage``: share of fresh patients whose interval holds their decile's rate;
- ``patients_true_risk_inside`` (0 h): share whose own simulated risk is inside — which no
  method claims, reported so nobody reads the interval as a per-patient truth interval;
- ``mean_width_points`` and the time to compute the table at training.

Part 1, ``store``: the registered severe-CRS models of a store (one training cohort: coverage
of one realisation, its deciles are not independent). Part 2, ``replicated`` (what the
documented coverage comes from): ``--reps`` training cohorts of the store's size simulated
afresh; on each, the store champion's pipeline (same steps and hyper-parameters; the choice
among candidates is not redone) is fitted, its out-of-fold predictions made by 5-fold CV, and
every candidate method computed — the recalibration interval alone, the refit spread alone,
their union (the method served), the untabulated per-patient refit ensemble, and the
Venn–Abers interval (inductive Venn–Abers predictor on the out-of-fold predictions, Vovk V,
Petej I, Fedorova V, NeurIPS 2015; tabulated on the same grid). Cost: one
``IntervalTable.at`` per request and per 10,000 patients.

Usage: ``python benchmarks/bench_interval.py --store DIR [--n 3000] [--reps 10]`` (a
quickstart/demo store: ``DIR/mlflow.db`` and ``DIR/cohort``); ``--reps 0`` re-measures the
store part only and keeps the replicated figures already in ``results_interval.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def venn_abers(p_oof: np.ndarray, y_oof: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inductive Venn–Abers (p0, p1) on ``training.interval.GRID`` (isotonic on the log-odds)."""
    from sklearn.isotonic import IsotonicRegression

    from training.interval import GRID, _logit

    s = _logit(p_oof)
    lo, hi = np.empty(GRID.size), np.empty(GRID.size)
    for k, g in enumerate(GRID):
        xs = np.append(s, g)
        for label, out in ((0.0, lo), (1.0, hi)):
            iso = IsotonicRegression(out_of_bounds="clip").fit(xs, np.append(y_oof, label))
            out[k] = iso.predict([g])[0]
    return lo, hi


def score(
    lo: np.ndarray, hi: np.ndarray, p: np.ndarray, ref: np.ndarray, t: np.ndarray | None
) -> dict[str, float]:
    """Coverage of the decile reference ``ref`` (per patient), of the truth ``t``, width."""
    out = {
        "calibration_coverage": float(np.mean((lo <= ref) & (ref <= hi))),
        "mean_width_points": float(100 * np.mean(hi - lo)),
    }
    if t is not None:
        ok = np.isfinite(t)
        out["patients_true_risk_inside"] = float(np.mean(((lo <= t) & (t <= hi))[ok]))
    return out


def decile_reference(p: np.ndarray, y: np.ndarray, t: np.ndarray | None) -> np.ndarray:
    """Per patient: the true (``t``) or observed (``y``) rate of the decile of ``p``."""
    edges = np.quantile(p, np.linspace(0, 1, 11))
    d = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
    v = y if t is None else np.where(np.isfinite(t), t, np.nan)
    rate = np.array([np.nanmean(v[d == k]) if np.any(d == k) else np.nan for k in range(10)])
    return rate[d]


def methods(
    model: Any, X: Any, y: np.ndarray, p_oof: np.ndarray, y_oof: np.ndarray, seed: int
) -> tuple[dict[str, Any], dict[str, float], list[Any]]:
    """Every candidate's table (or ensemble) for one fitted model, and the time each took."""
    from training.interval import (
        bootstrap_refits,
        combine,
        fit_interval,
        refit_offsets,
        tabulate_offsets,
    )

    cost: dict[str, float] = {}
    t0 = time.perf_counter()
    recal = fit_interval(p_oof, y_oof, seed=seed)
    cost["recalibration"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    members = bootstrap_refits(model, X, y, n_refit=30, seed=seed)
    z, off = refit_offsets(model, X, y, refits=members)
    refit = tabulate_offsets(z, off)
    cost["refit_spread"] = time.perf_counter() - t0
    union = combine(recal, refit, level=0.95, n=len(y), events=int(np.sum(y)))
    t0 = time.perf_counter()
    va = venn_abers(p_oof, y_oof)
    cost["venn_abers"] = time.perf_counter() - t0
    tables = {"recalibration": recal, "refit_spread": refit, "union (served)": union, "va": va}
    return tables, cost, members


def evaluate_all(
    tables: dict[str, Any], members: list[Any], Xf: Any, p: np.ndarray, ref: np.ndarray, t: Any
) -> dict[str, dict[str, float]]:
    from training.interval import GRID, IntervalTable, _logit

    z = _logit(p)
    out = {}
    for name, tab in tables.items():
        if isinstance(tab, IntervalTable):
            lo, hi = tab.at(p)
        else:
            lo, hi = np.interp(z, GRID, tab[0]), np.interp(z, GRID, tab[1])
        out["venn_abers" if name == "va" else name] = score(lo, hi, p, ref, t)
    ens = np.array([m.predict_proba(Xf)[:, 1] for m in members])
    lo, hi = np.quantile(ens, [0.025, 0.975], axis=0)
    out["refit_ensemble_per_patient"] = score(lo, hi, p, ref, t)
    return out


def mean_rows(rows: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {m: {k: float(np.mean([r[m][k] for r in rows])) for k in rows[0][m]} for m in rows[0]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--landmarks", default="0h,48h")
    args = ap.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from features.build import build_features
    from features.io import load_cohort, write_cohort
    from features.synth import simulate
    from serving.explaining import probabilities
    from serving.loading import _read_folds, load_snapshot

    uri = f"sqlite:///{args.store / 'mlflow.db'}"
    snap = load_snapshot(uri)
    client = mlflow.tracking.MlflowClient(uri)
    tmp = Path(tempfile.mkdtemp())

    def cohort_of(n: int, seed: int, name: str) -> tuple[Any, Any]:
        sim = simulate(n, seed=seed)
        write_cohort(tmp / name, sim.patients, sim.measurements, sim.events)
        return load_cohort(tmp / name), sim.truth.set_index("patient_id")["p_severe_crs"]

    fresh, truth = cohort_of(args.n, args.seed, "fresh")
    train = load_cohort(args.store / "cohort")
    out: dict[str, Any] = {
        "n_simulated": args.n,
        "seed": args.seed,
        "estimand": "outcome rate among patients given this probability by the model (decile)",
        "store": {},
        "replicated": {},
    }
    for (task, lm), model in sorted(snap.models.items()):
        if task != "severe_crs" or model.interval is None:
            continue
        ft = build_features(fresh, task, lm)
        Xf = ft.X.astype("float64")
        y = ft.y.to_numpy(dtype=float)
        p = probabilities(
            model.model, model.explainer, Xf[list(model.columns)].to_numpy(), model.columns
        )
        t = None
        if lm == "0h":
            t = truth.reindex(ft.ids.astype(str).to_numpy()).to_numpy(dtype=float)
        ref = decile_reference(p, y, t)
        lo, hi = model.interval.at(p)
        row: dict[str, Any] = {
            "n_scored": len(p),
            "events": int(y.sum()),
            "stored_method": model.interval.method,
            "stored": score(lo, hi, p, ref, t),
        }
        tt = build_features(train, task, lm)
        folds = _read_folds(client, model.run_id)
        if folds is not None:
            Xt = tt.X.astype("float64")
            yt = tt.y.to_numpy(dtype=int)
            tables, cost, members = methods(
                model.model, Xt, yt, folds["p"].to_numpy(), folds["y"].to_numpy(), 0
            )
            row["methods"] = evaluate_all(tables, members, Xf, p, ref, t)
            row["training_seconds"] = cost
        out["store"][model.name] = row
        print(model.name, json.dumps(row, indent=1), flush=True)

        if lm not in args.landmarks.split(",") or args.reps <= 0:
            continue
        rows = []
        costs = []
        n_train = len(tt.y)
        for r in range(args.reps):
            cr, _ = cohort_of(n_train, 10_000 + r, f"train{r}")
            tr = build_features(cr, task, lm)
            Xr, yr = tr.X.astype("float64"), tr.y.to_numpy(dtype=int)
            if min(yr.sum(), len(yr) - yr.sum()) < 5:
                continue
            fitted = clone(model.model).fit(Xr, yr)
            cv = StratifiedKFold(5, shuffle=True, random_state=r)
            p_oof = cross_val_predict(clone(model.model), Xr, yr, cv=cv, method="predict_proba")
            tables, cost, members = methods(fitted, Xr, yr, p_oof[:, 1], yr.astype(float), r)
            pr = fitted.predict_proba(Xf)[:, 1]
            rows.append(evaluate_all(tables, members, Xf, pr, decile_reference(pr, y, t), t))
            costs.append(cost)
            print(f"  rep {r}: {json.dumps(rows[-1]['union (served)'])}", flush=True)
        out["replicated"][model.name] = {
            "reps": len(rows),
            "n_train": n_train,
            "pipeline": type(model.model).__name__,
            "methods": mean_rows(rows),
            "training_seconds": {k: float(np.mean([c[k] for c in costs])) for k in costs[0]},
        }
    table = next(m.interval for m in snap.models.values() if m.interval is not None)
    many = np.random.default_rng(0).random(10_000)
    t0 = time.perf_counter()
    for _ in range(1000):
        table.at(0.2)
    t1 = time.perf_counter()
    table.at(many)
    t2 = time.perf_counter()
    out["cost"] = {"one_patient_us": (t1 - t0) / 1000 * 1e6, "10000_patients_ms": (t2 - t1) * 1e3}
    out["load_average"] = os.getloadavg()
    results = HERE / "results_interval.json"
    if args.reps <= 0 and results.exists():  # store part only: keep the replicated figures
        before = json.loads(results.read_text(encoding="utf-8"))
        out["replicated"] = before.get("replicated", {})
        out["replicated_load_average"] = before.get(
            "replicated_load_average", before.get("load_average")
        )
    text = json.dumps(out, indent=1)
    results.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
