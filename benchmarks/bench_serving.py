"""Serving benchmark: latency, throughput and concurrency of ``crs-risk serve`` over HTTP.

Measured in one run on one machine, client on the same box (numbers go in the README):

1. single patient ``POST /v1/risk`` with explanations — p50/p99 over sequential requests;
2. ``mlflow models serve`` answering the same registered model (no explanations, the feature
   row already built) — p50/p99, and the ratio;
3. batch scoring of 10,000 synthetic patients without explanations (``/v1/risk/batch``, JSON
   and the same patients as CSV), patients per second, plus an in-process breakdown
   (decode → score: tables, validation, features, predictions, texts, digests → audit);
   per champion, in process: µs of one probability and one explanation, and whether the
   load-time check let the array path serve it (``serving.explaining.fast_path_problem``);
4. the HTTP floor: do-nothing FastAPI endpoints under the same uvicorn and client (what no
   scoring code can beat on the machine);
5. 32 concurrent clients — errors;
6. the deployment's batch throughput: ``crs-risk serve --workers 2`` (one replica per core) at
   the *default* body limit, concurrent clients posting batches of 5,000 patients (11 MB of
   JSON) on fresh connections, patients per second over all of them, with the server's CPU
   time per batch and its share of the cores; then ``crs-risk audit verify`` on the replicas'
   shared audit file. ``--replicas-only`` runs this phase alone (about a minute: sample a
   drifting machine often), ``--bin <checkout>/.venv/bin`` serves another checkout (A/B).

The machine's load average and a pure-Python speed probe are recorded with each phase (a shared
VM whose speed changes from one minute to the next — the same loop ran 0.37–1.66 s on
2026-12-07 — compare runs only with them), and, at the start, the CPU model and a NumPy
small-call probe: on 2026-12-07 at 16:30 UTC the pure-Python probe read its usual 0.37–0.43 s
while the single route's in-process stages (many small NumPy calls) took 1.5–2.3× their usual
time. Latencies are timed as wrk or h2load would: HTTP/1.1 keep-alive round trips on a plain
socket, the request encoded once and the response read by its length (:class:`RawClient`), so
a figure is the server's latency plus the loopback. Client libraries add their own parsing per
request (stdlib ``http.client`` ≈0.4–0.9 ms, httpx more on this machine); their figures are
recorded beside. crs-risk and ``mlflow models serve`` are timed in alternating blocks, so a
change in the machine's speed falls on both.

Usage: ``python benchmarks/bench_serving.py [--store DIR] [--requests 200] [--batch 10000]
[--replica-batch 5000] [--replica-clients 4] [--replicas-only] [--bin DIR] [--out FILE]``
(results: ``benchmarks/results_serving.json``, or ``results_replicas.json`` for
``--replicas-only``).
Without ``--store`` the quickstart is run into a temporary folder first (minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"
TOKEN = "bench-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen, path: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def start_serve(env: dict[str, str], tmp: Path, port: int, audit: Path, *extra: str) -> Any:
    """``crs-risk serve`` on 127.0.0.1:``port`` with the audit log ``audit`` (``extra``: more
    options), quiet, as a subprocess."""
    return subprocess.Popen(
        [
            *(str(BIN / "crs-risk"), "serve", "--port", str(port), "--audit-db", str(audit)),
            *("--log-level", "warning", *extra),
        ],
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(*procs: Any) -> None:
    """Terminate the processes that were started (None: not started), waiting up to 30 s."""
    for p in procs:
        if p is not None:
            p.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=30)


def replica_throughput(
    env: dict[str, str],
    tmp: Path,
    bodies: list[dict],
    workers: int,
    clients: int,
    rounds: int,
) -> dict[str, object]:
    """Patients per second of ``crs-risk serve --workers N`` at the default body limit, as
    JSON and as CSV: ``clients`` threads each post ``rounds`` batches of ``bodies`` (a fresh
    connection per batch, so the kernel hands it to whichever replica accepts), all timed
    together, three times (the median); then the shared audit file's chain is verified."""
    port = free_port()
    audit = tmp / "audit-replicas.sqlite"
    proc = start_serve(env, tmp, port, audit, "--workers", str(workers))
    kinds = {
        "json": (json.dumps({"patients": bodies}).encode(), "application/json"),
        "csv": (csv_body(bodies), "text/csv"),
    }

    def post(kind: str) -> None:
        raw, ctype = kinds[kind]
        hdrs = {"Authorization": f"Bearer {TOKEN}", "Content-Type": ctype}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        try:
            conn.request("POST", "/v1/risk/batch", body=raw, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            if r.status != 200:
                raise RuntimeError(f"replica batch HTTP {r.status}: {data[:300]!r}")
        finally:
            conn.close()

    def client(kind: str) -> None:
        for _ in range(rounds):
            post(kind)

    out: dict[str, object] = {
        "workers": workers,
        "clients": clients,
        "patients_per_request": len(bodies),
        "body_limit": "default (16 MB)",
    }
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, "/readyz")
        for kind in kinds:
            for _ in range(2 * workers):  # warm the replicas (first requests load lazily)
                post(kind)
            load = os.getloadavg()[0]
            n = len(bodies) * clients * rounds
            rates, cpu_ms, use = [], [], []
            for _ in range(3):  # ≈4 s each on a shared machine: the median of three
                c0 = process_tree_cpu(proc.pid)
                t = time.perf_counter()
                with ThreadPoolExecutor(clients) as pool:
                    work = [pool.submit(client, kind) for _ in range(clients)]
                    for w in work:
                        w.result()
                wall = time.perf_counter() - t
                cpu = process_tree_cpu(proc.pid) - c0
                rates.append(n / wall)
                cpu_ms.append(1e3 * cpu / (clients * rounds))
                use.append(cpu / (wall * (os.cpu_count() or 1)))
            out[kind] = {
                "body_mb": len(kinds[kind][0]) / 1e6,
                "patients_per_run": n,
                "patients_per_s": float(np.median(rates)),
                "runs_patients_per_s": rates,
                "server_cpu_ms_per_batch": cpu_ms,  # replicas and parent, user + system
                "server_cpu_use_of_cores": use,
                "load_average_before": load,
                "speed_probe_s": speed_probe(),
            }
    finally:
        stop(proc)
    verify = subprocess.run(
        [str(BIN / "crs-risk"), "audit", "verify", str(audit)],
        env=env,
        capture_output=True,
        text=True,
    )
    out["audit_verify"] = verify.stdout.strip().splitlines()[-1:]
    out["audit_verify_exit"] = verify.returncode
    return out


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its children that still run
    (Linux ``/proc``; the replicas of ``serve --workers N`` are the server's children)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    kids = Path(f"/proc/{pid}/task/{pid}/children")
    pids = [pid, *(int(k) for k in kids.read_text().split())] if kids.exists() else [pid]
    for p in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def speed_probe() -> float:
    """Seconds for 10⁷ pure-Python additions: how fast this (shared) machine is right now."""
    t = time.perf_counter()
    s = 0
    for i in range(10**7):
        s += i
    return time.perf_counter() - t


def numpy_probe() -> float:
    """Milliseconds (best of 3) for 20,000 ``np.nanmax`` calls on 50 numbers: the small-array
    call overhead the single route is made of, which the pure-Python probe does not see."""
    x = np.linspace(0.0, 1.0, 50)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(20_000):
            np.nanmax(x)
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def cpu_model() -> str:
    """The CPU's model name (Linux), or "unknown"."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


class RawClient:
    """HTTP/1.1 keep-alive round trips of one request on a plain socket (module docstring)."""

    def __init__(self, url: str, method: str, path: str, body: bytes, headers: dict) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.address = (host, int(port))
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{k}: {v}" for k, v in {**headers, "Content-Type": "application/json"}.items()]
        lines.append(f"Content-Length: {len(body)}")
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        self.sock: socket.socket | None = None

    def round_trip(self) -> tuple[int, bytes]:
        """Send the request, read the whole response; (status, body)."""
        if self.sock is None:
            self.sock = socket.create_connection(self.address, timeout=60)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = self.sock
        sock.sendall(self.request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed before the response")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        if "content-length" in fields:
            size = int(fields["content-length"])
            while len(rest) < size:
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError("connection closed inside the response")
                rest += chunk
            data = rest[:size]
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            data, rest = self._chunked(rest)
        else:
            raise RuntimeError("a response without a length")
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, data

    def _chunked(self, rest: bytes) -> tuple[bytes, bytes]:
        sock = self.sock
        assert sock is not None
        out = b""
        while True:
            while b"\r\n" not in rest:
                rest += sock.recv(65536)
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest += sock.recv(65536)
            out, rest = out + rest[:size], rest[size + 2 :]
            if size == 0:
                return out, rest

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def raw_timed(client: RawClient, n: int, warmup: int) -> list[float]:
    """Seconds of ``n`` round trips after ``warmup`` on a fresh connection (a server closes
    one left idle); any status but 200 stops the run."""
    client.close()
    out = []
    for k in range(warmup + n):
        t = time.perf_counter()
        status, data = client.round_trip()
        if k >= warmup:
            out.append(time.perf_counter() - t)
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {data[:300]!r}")
    return out


def lean_timed(
    url: str, n: int, warmup: int, method: str, path: str, body: bytes | None, headers: dict
) -> list[float]:
    """Round trips over one keep-alive ``http.client`` connection (no client-library overhead)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    hdrs = {**headers, "Content-Type": "application/json"} if body is not None else headers
    out = []
    try:
        for k in range(warmup + n):
            t = time.perf_counter()
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            if k >= warmup:
                out.append(time.perf_counter() - t)
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}: {data[:300]!r}")
    finally:
        conn.close()
    return out


def percentiles(times: list[float]) -> dict[str, float]:
    ms = np.asarray(times) * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def timed(client: httpx.Client, n: int, warmup: int, send) -> list[float]:
    for _ in range(warmup):
        send(client)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = send(client)
        out.append(time.perf_counter() - t)
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {r.text[:300]}")
    return out


def feature_row(store_uri: str, body: dict, name: str) -> tuple[dict, str]:
    """The registered model's input row for ``body`` (built in process, for MLflow serving)."""
    import mlflow

    from serving.conversion import validate_requests
    from serving.schemas import RiskRequest
    from training.explain import ModelExplainer

    mlflow.set_tracking_uri(store_uri)
    from features.build import build_patient_features

    client = mlflow.MlflowClient(tracking_uri=store_uri, registry_uri=store_uri)
    mv = client.get_model_version_by_alias(name, "champion")
    model = mlflow.sklearn.load_model(f"models:/{name}/{mv.version}")
    landmark = client.get_run(mv.run_id).data.tags["landmark"]
    task = "toci_refractory" if landmark == "first_toci" else "severe_crs"
    cohort = validate_requests([RiskRequest.model_validate(body)]).cohort
    table = build_patient_features(cohort, task, landmark)
    cols = ModelExplainer(model).input_columns
    row = table.X[cols]
    payload = {
        "dataframe_split": {
            "columns": cols,
            "data": [[None if np.isnan(v) else float(v) for v in row.iloc[0]]],
        }
    }
    return payload, str(mv.version)


def batch_bodies(n: int, seed: int = 99) -> list[dict]:
    """``n`` synthetic patients scored before infusion (baseline fields and pre-infusion labs)."""
    from features.synth import simulate
    from serving.examples import _clean
    from serving.schemas import PATIENT_FIELDS

    s = simulate(n, seed=seed)
    m = s.measurements[s.measurements["hours_from_infusion"] <= 0]
    groups = dict(tuple(m.groupby("patient_id", sort=False)))
    bodies = []
    for p in s.patients.to_dict("records"):
        rows = groups.get(p["patient_id"])
        meas = (
            []
            if rows is None
            else [
                {"analyte": a, "hours_from_infusion": float(h), "value": float(v), "unit": u}
                for a, h, v, u in zip(
                    rows["analyte"],
                    rows["hours_from_infusion"],
                    rows["value"],
                    rows["unit"],
                    strict=True,
                )
            ]
        )
        bodies.append(
            {
                "patient": {f: _clean(p.get(f)) for f in PATIENT_FIELDS},
                "measurements": meas,
                "as_of_hours": 0.0,
            }
        )
    return bodies


def csv_body(bodies: list[dict]) -> bytes:
    """The same patients as the long CSV of ``POST /v1/risk/batch`` (one record per row)."""
    from serving.schemas import PATIENT_FIELDS

    head = ["patient_ref", "record", "hours_from_infusion", "analyte", "value", "unit"]
    head += [*PATIENT_FIELDS, "as_of_hours"]
    lines = [",".join(head)]
    blank_m = [""] * 4
    blank_p = [""] * (len(PATIENT_FIELDS) + 1)

    def cell(v: object) -> str:
        return "" if v is None else ("true" if v is True else "false" if v is False else str(v))

    for k, b in enumerate(bodies):
        ref = f"P{k}"
        p = [cell(b["patient"].get(f)) for f in PATIENT_FIELDS] + [cell(b.get("as_of_hours"))]
        lines.append(",".join([ref, "patient", *blank_m, *p]))
        for m in b["measurements"]:
            row = [cell(m["hours_from_infusion"]), m["analyte"], cell(m["value"]), m["unit"]]
            lines.append(",".join([ref, "measurement", *row, *blank_p]))
    return ("\n".join(lines) + "\n").encode()


def single_breakdown(store_uri: str, body: dict, n: int) -> dict[str, float]:
    """Median milliseconds of one request's stages in process (no HTTP), same body."""
    from features.build import patient_features
    from serving.conversion import validate_requests
    from serving.loading import load_snapshot
    from serving.schemas import RiskRequest
    from serving.scoring import choose_landmark, patient_rows, score_request

    snap = load_snapshot(store_uri)
    req = RiskRequest.model_validate(body)
    _, trend, _ = choose_landmark(req, snap)

    def features() -> None:
        valid = validate_requests([req])
        baseline = patient_features(valid.patients)
        patient_rows(valid.records, "severe_crs", trend, baseline)
        patient_rows(valid.records, "toci_refractory", ["first_toci"], baseline)

    def median_ms(f: object) -> float:
        for _ in range(20):
            f()  # type: ignore[operator]
        times = []
        for _ in range(n):
            t = time.perf_counter()
            f()  # type: ignore[operator]
            times.append(time.perf_counter() - t)
        return float(np.median(times) * 1e3)

    validate = median_ms(lambda: validate_requests([req]))
    with_features = median_ms(features)
    total = median_ms(lambda: score_request(snap, req, "bench"))
    return {
        "validate_ms": validate,
        "features_all_landmarks_ms": with_features - validate,
        "models_explanations_response_ms": total - with_features,
        "score_request_ms": total,
        "per_model_us": per_model_us(snap, n),
    }


def per_model_us(snap: object, n: int) -> dict[str, dict[str, object]]:
    """Median µs of one patient's probability and of its explanation (top 5) per champion, and
    whether the load-time check let the array path serve it (else why not)."""
    from serving.explaining import explain_top, fast_path_problem, probabilities

    rng = np.random.default_rng(1)
    out: dict[str, dict[str, object]] = {}
    for m in snap.models.values():  # type: ignore[attr-defined]
        k = len(m.columns)
        x = np.where(rng.random((1, k)) < 0.3, np.nan, rng.lognormal(1, 1, (1, k)))

        def us(f: object, reps: int = n) -> float:
            for _ in range(20):
                f()  # type: ignore[operator]
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                f()  # type: ignore[operator]
                times.append(time.perf_counter() - t)
            return float(np.median(times) * 1e6)

        out[m.name] = {
            "array_path": fast_path_problem(m.model, m.explainer, m.columns) or "yes",
            "probabilities_us": us(
                lambda m=m, x=x: probabilities(m.model, m.explainer, x, m.columns)
            ),
            "explain_top_us": us(
                lambda m=m, x=x: explain_top(m.model, m.explainer, x[0], 5, m.columns)
            ),
        }
    return out


def in_process_breakdown(store_uri: str, raw: bytes, csv: bytes) -> dict[str, float]:
    """Seconds per stage for the same batch bodies, in process (what the route runs)."""
    import gc

    from serving.audit import open_audit
    from serving.batch import BatchInput, score_batch
    from serving.batch_csv import csv_frames
    from serving.batch_json import decode_batch
    from serving.loading import load_snapshot

    snap = load_snapshot(store_uri)
    audit = open_audit(Path(tempfile.mkdtemp()) / "audit.sqlite")
    gc.collect()
    gc.disable()  # as the route does (serving.batch_body.collector_paused)
    try:
        t0 = time.perf_counter()
        structs = decode_batch(raw)
        t1 = time.perf_counter()
        assert structs is not None
        scores = score_batch(snap, structs.patients)
        t2 = time.perf_counter()
        audit.append_encoded("bench", scores.refs, scores.versions, scores.digests, scores.outputs)
        t3 = time.perf_counter()
        scores.body("bench")
        t4 = time.perf_counter()
        fast = csv_frames(csv)
        t5 = time.perf_counter()
        assert fast is not None
        score_batch(snap, BatchInput(*fast))
        t6 = time.perf_counter()
    finally:
        gc.enable()
        audit.close()
    return {
        "json_decode_s": t1 - t0,
        "score_s": t2 - t1,  # tables, contract validation, features, predictions, texts, digests
        "audit_s": t3 - t2,
        "response_s": t4 - t3,
        "csv_read_s": t5 - t4,
        "csv_score_s": t6 - t5,
    }


FLOOR_APP = """
import asyncio, sys
import uvicorn
import uvloop
from fastapi import FastAPI
from fastapi.responses import Response
from serving.schemas import RiskRequest

app = FastAPI()

@app.get("/empty")
async def empty() -> Response:
    return Response(b"{}", media_type="application/json")

@app.post("/parse")
async def parse(body: RiskRequest) -> Response:
    return Response(b"{}", media_type="application/json")

config = uvicorn.Config(
    app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
    http="httptools",
)
uvloop.run(uvicorn.Server(config).serve())  # as serving/server.py runs the service
"""


def http_floor(body: dict, n: int) -> dict[str, dict[str, float]]:
    """p50/p99 of do-nothing FastAPI endpoints (same uvicorn, same client, same body): the
    round trip no scoring code can beat on this machine."""
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "python"), "-c", FLOOR_APP, str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc, "/empty", timeout=60)
        raw = json.dumps(body).encode()
        with httpx.Client(base_url=url, timeout=60) as c:
            empty, parse = (
                RawClient(url, "GET", "/empty", b"", {}),
                RawClient(url, "POST", "/parse", raw, {}),
            )
            return {
                "get_empty": percentiles(raw_timed(empty, n, 20)),
                "post_body_parsed": percentiles(raw_timed(parse, n, 20)),
                "post_body_parsed_http_client": percentiles(
                    lean_timed(url, n, 20, "POST", "/parse", raw, {})
                ),
                "post_body_parsed_httpx": percentiles(
                    timed(c, n, 20, lambda cl: cl.post("/parse", json=body))
                ),
            }
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, help="folder with mlflow.db (default: run quickstart)")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--replica-batch", type=int, default=5_000, help="patients per request")
    ap.add_argument("--replica-clients", type=int, default=4)
    ap.add_argument(
        "--replicas-only",
        action="store_true",
        help="only the deployment's batch throughput (phase 6, about a minute)",
    )
    ap.add_argument("--bin", type=Path, help="the venv bin folder to serve from (A/B a checkout)")
    ap.add_argument("--out", type=Path, help="results JSON (default benchmarks/results_*.json)")
    args = ap.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    global BIN
    if args.bin is not None:
        BIN = args.bin.resolve()
    kind = "replicas" if args.replicas_only else "serving"
    out = args.out or REPO / "benchmarks" / f"results_{kind}.json"

    tmp = Path(tempfile.mkdtemp(prefix="crs-bench-serving-"))
    store = args.store
    if store is None:
        store = tmp / "store"
        print("running the quickstart (minutes)…", flush=True)
        subprocess.run(
            [str(BIN / "crs-risk"), "demo", "--out", str(store)],
            check=True,
            capture_output=True,
        )
    store_uri = f"sqlite:///{Path(store).resolve() / 'mlflow.db'}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": store_uri,
        "CRS_RISK_TOKEN": TOKEN,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    }

    def deployment() -> dict[str, object]:
        """Phase 6: ``serve --workers 2``, one replica per core, 4 batches per client."""
        return replica_throughput(
            env, tmp, batch_bodies(args.replica_batch), 2, args.replica_clients, 4
        )

    if args.replicas_only:
        replicas: dict[str, object] = {
            "machine": os.uname().nodename,
            "cpu_model": cpu_model(),
            "speed_probe_s": speed_probe(),
            "numpy_probe_ms": numpy_probe(),
            "bin": str(BIN),
            "batch_replicas": deployment(),
        }
        print("batch, serve --workers 2:", replicas["batch_replicas"], flush=True)
        out.write_text(json.dumps(replicas, indent=2) + "\n", encoding="utf-8")
        print(f"written {out}")
        shutil.rmtree(tmp, ignore_errors=True)
        return
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = start_serve(env, tmp, port, tmp / "audit.sqlite", "--max-body-mb", "64")
    mlflow_proc = None
    results: dict[str, object] = {
        "machine": os.uname().nodename,
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],  # a shared machine: state the conditions
        "speed_probe_s": speed_probe(),
        "numpy_probe_ms": numpy_probe(),
        "cpu_model": cpu_model(),
    }
    try:
        wait_ready(url, serve, "/readyz")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=url, headers=headers, timeout=600) as c:
            examples = c.get("/v1/examples").json()["examples"]
            body = next(e["request"] for e in examples if e["request"]["as_of_hours"] >= 48)
            data = c.post("/v1/risk", json=body).json()
            severe = next(r for r in data["results"] if r["task"] == "severe_crs")
            name = severe["model"]

            raw_single = json.dumps(body).encode()
            # mlflow models serve on the same registered version, feature row prebuilt
            payload, version = feature_row(store_uri, body, name)
            mport = free_port()
            mlflow_proc = subprocess.Popen(
                [
                    str(BIN / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    f"models:/{name}/{version}",
                    "--env-manager",
                    "local",
                    "--host",
                    "127.0.0.1",
                    "-p",
                    str(mport),
                ],
                env=env,
                cwd=tmp,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            murl = f"http://127.0.0.1:{mport}"
            wait_ready(murl, mlflow_proc, "/ping")
            raw_payload = json.dumps(payload).encode()
            ours = RawClient(url, "POST", "/v1/risk", raw_single, headers)
            theirs = RawClient(murl, "POST", "/invocations", raw_payload, {})
            single: list[float] = []
            mlf: list[float] = []
            for _ in range(3):  # alternating blocks: the machine's speed falls on both
                single += raw_timed(ours, args.requests, 20)
                mlf += raw_timed(theirs, args.requests, 20)
            ours.close()
            theirs.close()
            n = args.requests
            single_stdlib = lean_timed(url, n, 20, "POST", "/v1/risk", raw_single, headers)
            mlf_stdlib = lean_timed(murl, n, 20, "POST", "/invocations", raw_payload, {})
            single_httpx = timed(c, args.requests, 20, lambda cl: cl.post("/v1/risk", json=body))
            results["single_with_explanations"] = {
                **percentiles(single),
                "client": "raw socket keep-alive (RawClient), 3 blocks alternating with mlflow",
                "http_client": percentiles(single_stdlib),
                "httpx": percentiles(single_httpx),
                "model": name,
                "landmark": severe["landmark"],
                "n_measurements": len(body["measurements"]),
                "requests": 3 * args.requests,
                "load_average": os.getloadavg()[0],
                "speed_probe_s": speed_probe(),
                "in_process": single_breakdown(store_uri, body, args.requests),
            }
            print(
                "single /v1/risk with explanations:",
                results["single_with_explanations"],
                flush=True,
            )
            results["mlflow_models_serve"] = {
                **percentiles(mlf),
                "http_client": percentiles(mlf_stdlib),
                "model": f"{name}/{version}",
                "load_average": os.getloadavg()[0],
                "speed_probe_s": speed_probe(),
            }
            ratio = float(np.median(mlf) / np.median(single))
            results["speedup_p50_vs_mlflow"] = ratio
            results["speedup_p50_vs_mlflow_http_client"] = float(
                np.median(mlf_stdlib) / np.median(single_stdlib)
            )
            print(
                "mlflow models serve (no explanations):",
                results["mlflow_models_serve"],
                f"→ crs-risk is {ratio:.1f}× faster at p50",
                flush=True,
            )

            # batch of synthetic patients without explanations
            bodies = batch_bodies(args.batch)
            raw = json.dumps({"patients": bodies}).encode()
            csv = csv_body(bodies)
            for content, ctype in ((raw, "application/json"), (csv, "text/csv")):
                c.post("/v1/risk/batch", content=content, headers={"Content-Type": ctype})  # warm
            batch: dict[str, object] = {"patients": args.batch}
            for kind, content, ctype in (
                ("json", raw, "application/json"),
                ("csv", csv, "text/csv"),
            ):
                runs = []
                for _ in range(5):  # one batch is ≈0.5 s: the median of five
                    t = time.perf_counter()
                    r = c.post("/v1/risk/batch", content=content, headers={"Content-Type": ctype})
                    runs.append(time.perf_counter() - t)
                    if r.status_code != 200 or r.json()["n"] != args.batch:
                        raise RuntimeError(f"batch {kind} HTTP {r.status_code}: {r.text[:500]}")
                dt = float(np.median(runs))
                batch[kind] = {
                    "seconds": dt,
                    "patients_per_s": args.batch / dt,
                    "runs_s": runs,
                    "body_mb": len(content) / 1e6,
                    "response_mb": len(r.content) / 1e6,
                }
            batch["patients_per_s"] = batch["json"]["patients_per_s"]  # type: ignore[index]
            batch["in_process"] = in_process_breakdown(store_uri, raw, csv)
            batch["load_average"] = os.getloadavg()[0]
            batch["speed_probe_s"] = speed_probe()
            results["batch_no_explanations"] = batch
            print("batch:", results["batch_no_explanations"], flush=True)

        results["http_floor"] = {
            **http_floor(body, args.requests),
            "load_average": os.getloadavg()[0],
            "speed_probe_s": speed_probe(),
        }
        print("HTTP floor (do-nothing FastAPI endpoints):", results["http_floor"], flush=True)

        # concurrency
        def client_work(i: int) -> int:
            errors = 0
            with httpx.Client(base_url=url, headers=headers, timeout=300) as cc:
                for _ in range(5):
                    if cc.post("/v1/risk", json=body).status_code != 200:
                        errors += 1
            return errors

        t = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            errors = sum(pool.map(client_work, range(args.concurrency)))
        results["concurrency"] = {
            "clients": args.concurrency,
            "requests": 5 * args.concurrency,
            "errors": errors,
            "seconds": time.perf_counter() - t,
        }
        print("concurrency:", results["concurrency"], flush=True)
        stop(serve, mlflow_proc)  # the replicas get the machine to themselves
        if args.batch:
            # the deployment: one replica per core, the default body limit
            results["batch_replicas"] = deployment()
            print("batch, serve --workers 2:", results["batch_replicas"], flush=True)
    finally:
        stop(serve, mlflow_proc)
        shutil.rmtree(tmp, ignore_errors=True)
    results["load_average_at_end"] = os.getloadavg()[0]
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written {out}")
    sys.exit(0)


if __name__ == "__main__":
    main()
