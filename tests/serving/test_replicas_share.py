"""Each replica of ``serve --workers N`` sizes its native thread pools to its share of the cores.

The real fork of ``serving.replicas.serve_replicas`` on a real socket: every replica reports
Arrow's CPU pool and the BLAS/OpenMP limits it runs with. A replica keeping pools of
``cpu_count`` threads would compete with its siblings for the cores they already use.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pyarrow as pa
import pytest
from threadpoolctl import threadpool_info

from serving.replicas import serve_replicas


@pytest.mark.parametrize("n", [1, 2])
def test_each_replica_gets_its_share_of_the_cores(n: int, tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)

    reports_of = [tmp_path / f"{i}.json" for i in range(n)]

    def run_one(_sock: socket.socket, i: int) -> None:
        pools = [p["num_threads"] for p in threadpool_info()]
        seen = {"arrow": pa.cpu_count(), "native": pools}
        part = tmp_path / f"{i}.part"
        part.write_text(json.dumps(seen))
        part.rename(reports_of[i])  # whole or absent
        # stay until every sibling has reported: the first replica to exit stops the others
        deadline = time.monotonic() + 60
        while not all(p.exists() for p in reports_of) and time.monotonic() < deadline:
            time.sleep(0.01)

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        serve_replicas(n, sock, run_one)
    finally:  # the supervisor's handlers stay with the supervisor, not this test process
        for s, h in handlers.items():
            signal.signal(s, h)
    share = max(1, (os.cpu_count() or 1) // n)
    reports = [json.loads(p.read_text()) for p in reports_of]
    assert len(reports) == n
    for seen in reports:
        assert seen["arrow"] == share
        assert all(t <= share for t in seen["native"]), seen
