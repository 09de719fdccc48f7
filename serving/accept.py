"""Least-loaded accepting for the replicas of ``crs-risk serve --workers N``.

Every replica listens on one shared socket. Under uvicorn (as under asyncio) a replica's event
loop accepts each connection it sees, and a replica scoring a batch has a free loop (the batch
runs in a worker thread), so it accepts as eagerly as an idle sibling. Measured: in one run 40
connections made one after another to 2 idle replicas all went to one of them; with 8 clients
posting 5,000-patient batches, one replica used 5.0 CPU-s and the other 2.4 in the same 4.7 s,
a core idle a third of the time (``benchmarks/bench_serving.py``, replica phase).

Here each replica publishes its load on a :class:`Board` in memory shared by the replicas (an
anonymous shared mapping made before they fork): the heavy requests it has in flight (a
declared body of at least :data:`HEAVY_BYTES`, counted by the ``serving.gate.Gate``
middleware), plus one for a moment after it takes a connection (whose request has not reached
the Gate yet). A replica's :class:`Acceptor` takes a waiting connection only while no sibling
is less loaded, or once the connection has waited :data:`MAX_WAIT_S` (a sibling that cannot
take it, e.g. its loop is starved). This is the discipline of gunicorn's sync workers (a worker
accepts only when free), generalised to least-loaded-first; uvicorn has no such option.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import select
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("crs_risk.serving")

HEAVY_BYTES = 256 * 1024
"""A request whose declared body is at least this large (a batch of ≈100 patients or more)
loads its replica until its response is sent."""
PATIENCE_S = 0.005
"""How often a replica that left a connection to a less loaded sibling looks again."""
MAX_WAIT_S = 0.1
"""After this long waiting, a connection is taken by any replica (the longest extra wait)."""
GRACE_S = 0.002
"""How long a connection a replica took counts as its load before its request reaches the
Gate (on loopback the request follows the connection within microseconds)."""
_CLOSED = 1 << 40
"""The load of a replica that does not accept (not started yet, or stopped)."""


class Board:
    """Each replica's load, in an anonymous shared mapping (made before fork; every process
    sees every slot). Slot ``i``: heavy requests in flight, when it last took a connection
    (``time.monotonic``, the same clock in every process) and whether it accepts."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._map = mmap.mmap(-1, 17 * n)  # MAP_SHARED | MAP_ANONYMOUS, zeroed
        view = memoryview(self._map)
        self.heavy = view[: 8 * n].cast("q")
        self.took = view[8 * n : 16 * n].cast("d")
        self.open = view[16 * n :]

    def load(self, i: int) -> int:
        if not self.open[i]:
            return _CLOSED
        return self.heavy[i] + (time.monotonic() - self.took[i] < GRACE_S)

    def least(self, i: int) -> bool:
        """Whether no other replica is less loaded than replica ``i``."""
        mine = self.load(i)
        return all(self.load(j) >= mine for j in range(self.n) if j != i)


class Load:
    """Heavy requests in flight in this process (changed on the event loop by the Gate): a
    plain count, or replica ``i``'s slot on a :class:`Board` once attached."""

    def __init__(self) -> None:
        self._slots: Any = [0]
        self._i = 0

    def attach(self, board: Board, i: int) -> None:
        board.heavy[i] = self._slots[self._i]
        self._slots, self._i = board.heavy, i

    @property
    def heavy(self) -> int:
        return int(self._slots[self._i])

    @heavy.setter
    def heavy(self, value: int) -> None:
        self._slots[self._i] = value


class Acceptor:
    """Takes replica ``i``'s connections on the shared ``sock`` for ``protocol`` (uvicorn's HTTP
    protocol), least loaded first (module docstring).

    Quacks like the ``asyncio.Server`` uvicorn keeps: ``close()`` and ``wait_closed()``."""

    def __init__(
        self,
        sock: socket.socket,
        protocol: Callable[[], asyncio.Protocol],
        board: Board,
        i: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.sock, self.protocol, self.board, self.i = sock, protocol, board, i
        self.ssl = ssl_context
        sock.setblocking(False)  # one open file shared by the replicas: every one sets it
        self._starting: set[asyncio.Task[Any]] = set()
        board.open[i] = 1
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        fd = self.sock.fileno()
        while True:
            await self._readable(loop, fd)  # a connection waits: every listening replica wakes
            since = loop.time()
            while not self.board.least(self.i) and loop.time() - since < MAX_WAIT_S:
                await asyncio.sleep(PATIENCE_S)  # a less loaded sibling should take it
                if not select.select([fd], [], [], 0)[0]:
                    break  # it did
            else:
                self._take(loop)

    @staticmethod
    async def _readable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
        ready = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, wake)
        try:
            await ready
        finally:
            loop.remove_reader(fd)

    def _take(self, loop: asyncio.AbstractEventLoop) -> None:
        """Accept one waiting connection, unless a sibling took it first."""
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # e.g. EMFILE: it stays queued; the next wake-up tries again
            log.warning("accept failed: %s", exc.strerror)
            return
        self.board.took[self.i] = time.monotonic()
        conn.setblocking(False)
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # a task: a TLS handshake must not hold up the next accept
        task = loop.create_task(loop.connect_accepted_socket(self.protocol, conn, ssl=self.ssl))
        self._starting.add(task)
        task.add_done_callback(self._started)

    def _started(self, task: asyncio.Task[Any]) -> None:
        """A connection's protocol started, or its TLS handshake failed (the client's loss)."""
        self._starting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("connection not started: %s", type(task.exception()).__name__)

    def close(self) -> None:
        """Stop accepting; connections already taken finish under uvicorn's shutdown."""
        self.board.open[self.i] = 0
        self._task.cancel()
        for task in self._starting:
            task.cancel()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
