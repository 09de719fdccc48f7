"""Each replica of ``serve --workers N`` sizes its native thread pools to its share of the cores.

The real fork of ``serving.replicas.serve_replicas`` on a real socket: every replica reports
Arrow's CPU pool and the BLAS/OpenMP limits it runs with. A replica keeping pools of
``cpu_count`` threads would compete with its siblings for the cores they already use.
"""

from __future__ import annotations

import json
import os
import socket
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

    def run_one(_sock: socket.socket, i: int) -> None:
        pools = [p["num_threads"] for p in threadpool_info()]
        seen = {"arrow": pa.cpu_count(), "native": pools}
        (tmp_path / f"{i}.json").write_text(json.dumps(seen))

    serve_replicas(n, sock, run_one)
    share = max(1, (os.cpu_count() or 1) // n)
    reports = [json.loads((tmp_path / f"{i}.json").read_text()) for i in range(n)]
    assert len(reports) == n
    for seen in reports:
        assert seen["arrow"] == share
        assert all(t <= share for t in seen["native"]), seen
