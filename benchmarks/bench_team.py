"""Benchmark: the team stack vs the embedded default, and two service replicas vs one.

1. ``crs-risk demo`` (synthesise n=118, train the ``quickstart`` preset, register)
   into a fresh SQLite store and against the team stack (PostgreSQL + ``mlflow server`` with
   basic-auth, from ``make team-up``; ``$CRS_RISK_TEAM_ENV`` or ``team-stack/team.env``):
   wall time of each and the ratio team / embedded.
2. Scoring throughput of ``crs-risk serve --workers 1`` vs ``--workers 2`` on the embedded
   store's champions: ``POST /v1/risk`` (one patient with explanations) from 8 concurrent
   loopback clients for a fixed time; requests per second and the ratio.

The machine is shared: the load average before each part is recorded with the figures.
Without a team stack part 1 is skipped (the script says so). Usage:
``python benchmarks/bench_team.py [--seconds 20] [--out benchmarks/results_team.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))
from team.env import read_env_file  # noqa: E402


def team_env() -> dict[str, str] | None:
    path = Path(os.environ.get("CRS_RISK_TEAM_ENV") or REPO / "team-stack" / "team.env")
    return read_env_file(path) if path.is_file() else None


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CRS_RISK_"))}
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    return env


def quickstart(out: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "crs-risk"), "demo", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit("crs-risk demo failed")
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def throughput(store: str, workers: int, seconds: float, clients: int, tmp: Path) -> dict:
    port = free_port()
    env = {**clean_env(), "MLFLOW_TRACKING_URI": store, "CRS_RISK_REGISTRY_POLL_S": "0"}
    proc = subprocess.Popen(
        [
            *(str(BIN / "crs-risk"), "serve", "--port", str(port), "--workers", str(workers)),
            *("--audit-db", str(tmp / f"audit-{workers}.sqlite"), "--log-level", "warning"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        seen: set[int] = set()
        deadline = time.monotonic() + 300
        while len(seen) < workers and time.monotonic() < deadline:
            try:
                r = httpx.get(url + "/readyz", headers={"Connection": "close"}, timeout=5)
                if r.status_code == 200:
                    seen.add(r.json()["replica"])
            except httpx.HTTPError:
                time.sleep(0.5)
        body = httpx.get(url + "/v1/examples", timeout=30).json()["examples"][0]["request"]
        counts = [0] * clients
        errors = [0] * clients
        stop = time.monotonic() + seconds

        def client(i: int) -> None:
            with httpx.Client(timeout=30) as c:
                while time.monotonic() < stop:
                    r = c.post(url + "/v1/risk", json=body)
                    counts[i] += 1
                    errors[i] += r.status_code != 200

        load = os.getloadavg()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        return {
            "workers": workers,
            "requests": sum(counts),
            "errors": sum(errors),
            "requests_per_s": round(sum(counts) / wall, 1),
            "load_average_before": [round(x, 2) for x in load],
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results_team.json")
    args = ap.parse_args(argv)
    result: dict = {"cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="crs-bench-team-") as tmp:
        tmp_path = Path(tmp)
        load = os.getloadavg()
        embedded = quickstart(tmp_path / "embedded", clean_env())
        result["quickstart_embedded_s"] = round(embedded, 1)
        result["load_average_before_embedded"] = [round(x, 2) for x in load]
        team = team_env()
        if team is None:
            print("team stack not found (make team-up): team quickstart skipped")
        else:
            load = os.getloadavg()
            remote = quickstart(tmp_path / "team", {**clean_env(), **team})
            result["quickstart_team_s"] = round(remote, 1)
            result["team_over_embedded"] = round(remote / embedded, 2)
            result["load_average_before_team"] = [round(x, 2) for x in load]
        store = f"sqlite:///{tmp_path / 'embedded' / 'mlflow.db'}"
        one = throughput(store, 1, args.seconds, args.clients, tmp_path)
        two = throughput(store, 2, args.seconds, args.clients, tmp_path)
        result["serve"] = [one, two]
        result["two_over_one"] = round(two["requests_per_s"] / one["requests_per_s"], 2)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
