"""Behaviour snapshot for refactors (issue 15): same seeds in, identical outputs out.

Runs the pipeline through its public entry points only (the ``crs-risk`` command and the
service over HTTP), so it survives any internal rename or split:

1. ``cohort synth`` (n=118, seed 7) → the feature tables of severe CRS at 48 h and of
   tocilizumab-refractory CRS at the decision (SHA-256 of the CSV text);
2. ``train`` of ``experiment.yaml`` beside this file into a fresh SQLite store → every run's
   metrics and params (timings, paths and ids left out);
3. every registered champion's probabilities for the patients of its feature table;
4. a real ``crs-risk serve`` on that store → its responses to the examples (single and
   batch, JSON and CSV) with request ids and times left out.

``--write FILE`` records a snapshot; ``--check FILE`` computes one and lists every difference
(exit 1), so "behaviour unchanged" is a command: ``python -m tests.regression.snapshot
--check tests/regression/golden.json``. The golden file is re-recorded (and the commit says
why) only when behaviour changes on purpose.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pandas as pd

HERE = Path(__file__).resolve().parent
CRS_RISK = Path(sys.executable).parent / "crs-risk"
TABLES = {
    "crs-severe-48h": ("severe_crs", "48"),
    "crs-toci-refractory-decision": ("toci_refractory", "decision"),
}
VOLATILE = {
    "request_id",
    "scored_at",
    "run_id",
    "timestamp",
    "elapsed_ms",
    "audit_id",
    "loaded_at",
    "created",
    "source",
    "uri",
}
VOLATILE_METRIC = ("seconds", "_time", "rss", "duration")
VOLATILE_PARAM = ("cohort", "path", "uri", "output", "folder", "git")


def _run(*args: str) -> None:
    env = {**os.environ, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    done = subprocess.run([str(CRS_RISK), *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"crs-risk {args[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def _num(x: Any) -> Any:
    """Floats as exact hex (identical means bit-identical), NaN as a string."""
    if isinstance(x, float):
        return "nan" if math.isnan(x) else x.hex()
    return x


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in sorted(obj.items()) if k not in VOLATILE}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return _num(obj)


def _features(cohort: Path, out: Path) -> dict[str, str]:
    digests = {}
    for name, (task, landmark) in TABLES.items():
        table = out / f"{name}.csv"
        _run("features", "build", str(cohort), "--task", task, "--landmark", landmark,
             "--out", str(table))  # fmt: skip
        digests[name] = hashlib.sha256(table.read_bytes()).hexdigest()
    return digests


def _tracking(uri: str) -> dict[str, Any]:
    client = mlflow.MlflowClient(uri)
    runs: dict[str, Any] = {}
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id], max_results=5000):
            tags = run.data.tags
            child = "child" if tags.get("mlflow.parentRunId") else ""
            key = "|".join([exp.name, tags.get("mlflow.runName", ""), child])
            metrics = {
                k: _num(v)
                for k, v in sorted(run.data.metrics.items())
                if not any(s in k for s in VOLATILE_METRIC)
            }
            params = {
                k: v
                for k, v in sorted(run.data.params.items())
                if not any(s in k for s in VOLATILE_PARAM)
            }
            runs.setdefault(key, []).append({"metrics": metrics, "params": params})
    for value in runs.values():
        value.sort(key=lambda r: json.dumps(r, sort_keys=True))
    return runs


def _predictions(uri: str, tables: Path) -> dict[str, Any]:
    client = mlflow.MlflowClient(uri)
    mlflow.set_tracking_uri(uri)
    out: dict[str, Any] = {}
    for name in TABLES:
        versions = client.search_model_versions(f"name='{name}'")
        if not versions:
            out[name] = None
            continue
        version = max(versions, key=lambda v: int(v.version))
        model = mlflow.sklearn.load_model(f"models:/{name}/{version.version}")
        frame = pd.read_csv(tables / f"{name}.csv")
        columns = list(getattr(model, "feature_names_in_", frame.columns))
        proba = model.predict_proba(frame.reindex(columns=columns))[:, 1]
        out[name] = [_num(float(p)) for p in proba]
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _service(uri: str, folder: Path) -> dict[str, Any]:
    port, token = _free_port(), "snapshot-token-0123456789abcdef"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "CRS_RISK_TOKEN": token}
    log = folder / "serve.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            [str(CRS_RISK), "serve", "--host", "127.0.0.1", "--port", str(port), "--audit-db",
             str(folder / "audit.sqlite"), "--log-level", "warning"],
            stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=folder,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"crs-risk serve did not start:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.3)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
            examples = c.get("/v1/examples").json()["examples"]
            requests = [e["request"] for e in examples]
            single = [c.post("/v1/risk", json=r) for r in requests]
            empty = c.post("/v1/risk", json={})
            batch = c.post(
                "/v1/risk/batch",
                json={"patients": [{**r, "patient_ref": f"p{i}"} for i, r in enumerate(requests)]},
            )
            csv = c.post(
                "/v1/risk/batch",
                content="patient_ref,record,hours_from_infusion,analyte,value,unit,event,grade,"
                "age_years,product\nA,patient,,,,,,,9.5,tisagenlecleucel\n"
                "A,measurement,-120,crp,12,mg/L,,,,\n",
                headers={"Content-Type": "text/csv"},
            )
            models = c.get("/v1/models").json()
        return {
            "models": _clean(models),
            "single": [[r.status_code, _clean(r.json())] for r in single],
            "empty": [empty.status_code, _clean(empty.json())],
            "batch_json": [batch.status_code, _clean(batch.json())],
            "batch_csv": [csv.status_code, _clean(csv.json())],
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def snapshot(folder: Path) -> dict[str, Any]:
    """The whole snapshot, computed in ``folder`` (a fresh, empty directory)."""
    cohort, tables = folder / "cohort", folder / "tables"
    tables.mkdir(parents=True)
    _run("cohort", "synth", "--out", str(cohort), "--n", "118", "--seed", "7")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    features = _features(cohort, tables)
    _run("train", str(HERE / "experiment.yaml"), "--cohort", str(cohort), "--tracking-uri", uri)
    return {
        "features": features,
        "tracking": _tracking(uri),
        "predictions": _predictions(uri, tables),
        "service": _service(uri, folder),
    }


def _close(old: Any, new: Any, rtol: float) -> bool:
    """Equal, or (rtol > 0) two hex floats within ``rtol`` of each other."""
    if old == new:
        return True
    if rtol <= 0 or not (isinstance(old, str) and isinstance(new, str)):
        return False
    try:
        a, b = float.fromhex(old), float.fromhex(new)
    except ValueError:
        return False
    return math.isclose(a, b, rel_tol=rtol, abs_tol=rtol)


def differences(old: Any, new: Any, path: str = "$", rtol: float = 0.0) -> list[str]:
    """Every path at which two snapshots differ; ``rtol`` > 0 lets floats differ that much
    (another CPU may round a BLAS sum differently; on one machine the check is exact)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = [f"{path}.{k}: only before" for k in old.keys() - new.keys()]
        out += [f"{path}.{k}: only after" for k in new.keys() - old.keys()]
        for k in sorted(old.keys() & new.keys()):
            out += differences(old[k], new[k], f"{path}.{k}", rtol)
        return out
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{path}: {len(old)} items before, {len(new)} after"]
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out += differences(a, b, f"{path}[{i}]", rtol)
        return out
    return [] if _close(old, new, rtol) else [f"{path}: {old!r} → {new!r}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", type=Path, help="record the snapshot into this JSON file")
    mode.add_argument("--check", type=Path, help="compare with this recorded snapshot")
    parser.add_argument("--rtol", type=float, default=0.0, help="float tolerance (default exact)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="crs-risk-snapshot-") as tmp:
        snap = json.loads(json.dumps(snapshot(Path(tmp)), sort_keys=True))
    if args.write:
        args.write.write_text(json.dumps(snap, indent=1, sort_keys=True) + "\n")
        print(f"snapshot written to {args.write}")
        return 0
    diffs = differences(json.loads(args.check.read_text()), snap, rtol=args.rtol)
    for line in diffs[:200]:
        print(line)
    print(f"{len(diffs)} difference(s)" if diffs else "identical")
    return 1 if diffs else 0


if __name__ == "__main__":
    raise SystemExit(main())
