"""``crs-risk serve --workers N``: N service processes (replicas) behind one port.

The parent binds the listening socket once, then forks N children; each builds its own app
(audit log, models) and takes connections on the shared socket least loaded first
(``serving.accept``: under uvicorn's own accepting a busy replica kept taking them). Each
replica polls the registry itself (``serving.store``), so all of them move to a new promotion
within one poll interval and none ever mixes versions. Each replica sizes its native thread
pools (Arrow's, which parses CSV batches; BLAS/OpenMP) to its share of the cores
(:func:`share_cores`). The parent forwards SIGTERM/SIGINT to
the replicas and, when one of them exits, stops the others and reports it (a supervisor —
systemd, Kubernetes — restarts the whole service).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable

import pyarrow as pa
from mlflow.utils.request_utils import _cached_get_request_session
from threadpoolctl import threadpool_limits

from features.errors import CrsRiskError


def bind(host: str, port: int) -> socket.socket:
    """The shared listening socket (CrsRiskError with one line when the port is taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CrsRiskError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def share_cores(n: int) -> int:
    """Size this process's native thread pools to its share of the cores when ``n`` replicas
    share the machine (at least one thread each); returns the threads per pool.

    Arrow parses a CSV batch on a pool of ``cpu_count`` threads and BLAS/OpenMP size theirs the
    same way: with one replica per core every such pool competes with the sibling replicas for
    cores they already use. Measured under ``serve --workers 2`` (4 clients, 5,000-patient
    batches, ``bench_serving.py --replicas-only``, alternated pairs on a drifting machine): CSV
    parsed on one thread 15.3 / 15.0 k patients/s against 13.2 / 14.3 with Arrow's pool; this
    function against none, CSV 15.4 / 13.7 against 14.5 / 13.7 and JSON 16.3 / 13.2 against
    14.5 / 13.7 k/s: a gain for CSV in three pairs of four, never a loss beyond the drift."""
    k = max(1, (os.cpu_count() or 1) // max(1, n))
    pa.set_cpu_count(k)
    threadpool_limits(limits=k)
    return k


def _after_fork_in_child() -> None:
    """Forget HTTP connections inherited from the parent (MLflow's pooled sessions)."""
    _cached_get_request_session.cache_clear()


def serve_replicas(
    n: int, sock: socket.socket, run_one: Callable[[socket.socket, int], None]
) -> None:
    """Fork ``n`` replicas running ``run_one(sock, i)`` (``i``: 0…n−1); return when they have
    all stopped."""
    pids: list[int] = []
    for i in range(n):
        pid = os.fork()
        if pid == 0:  # the replica
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _after_fork_in_child()
            share_cores(n)
            code = 0
            try:
                run_one(sock, i)
            except CrsRiskError as exc:
                print(f"error: {exc}", file=sys.stderr)
                code = 2
            except KeyboardInterrupt:
                code = 0
            except BaseException as exc:  # never a traceback from a replica
                print(f"error: replica {os.getpid()} failed: {type(exc).__name__}", file=sys.stderr)
                code = 1
            sys.stderr.flush()
            os._exit(code)
        pids.append(pid)
    sock.close()  # the replicas hold it

    def stop_all(signum: int = signal.SIGTERM, _frame: object = None) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    failed: list[tuple[int, int]] = []
    alive = set(pids)
    while alive:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        alive.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, -signal.SIGTERM):
            failed.append((pid, code))
        stop_all()  # one replica gone: stop the rest (the service is all or nothing)
    if failed:
        codes = ", ".join(f"pid {p} exit {c}" for p, c in failed)
        raise CrsRiskError(f"{len(failed)} of {n} replicas stopped with an error ({codes})")
