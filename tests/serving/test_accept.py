"""``serving.accept.Acceptor``: replicas on one socket take connections least loaded first.

Two acceptors share one listening socket (two descriptors of it, as two forked replicas have)
on a real event loop; each connection is made by a real TCP client. Without the load-aware
wait, an idle and a busy replica take connections alike (the old behaviour: one replica took
twice the batches of the other).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest

from serving.accept import GRACE_S, MAX_WAIT_S, Acceptor, Board, Load


class _Who(asyncio.Protocol):
    def __init__(self, who: int, taken: list[int]) -> None:
        self.who, self.taken = who, taken

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.taken.append(self.who)
        transport.close()


async def _connections(heavy: tuple[int, int], n: int, close_first: bool = False) -> list[int]:
    """Which replica (0 or 1) took each of ``n`` connections made one after another."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    sibling = socket.socket(fileno=os.dup(listener.fileno()))  # the other replica's descriptor
    taken: list[int] = []
    board = Board(2)
    for i, k in enumerate(heavy):
        load = Load()
        load.attach(board, i)
        load.heavy = k  # as the Gate counts heavy requests
    acceptors = [
        Acceptor(s, lambda who=who: _Who(who, taken), board, who)
        for who, s in enumerate((listener, sibling))
    ]
    if close_first:
        acceptors[0].close()
        await acceptors[0].wait_closed()
    try:
        for k in range(n):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            deadline = time.monotonic() + 5
            while len(taken) <= k:
                assert time.monotonic() < deadline, "a connection was never taken"
                await asyncio.sleep(0.001)
            writer.close()
            await asyncio.sleep(2 * GRACE_S)  # the next client comes later (a burst may tie)
    finally:
        for a in acceptors:
            a.close()
            await a.wait_closed()
        listener.close()
        sibling.close()
    return taken


@pytest.mark.parametrize(("heavy", "expected"), [((1, 0), 1), ((0, 1), 0), ((3, 1), 1)])
def test_the_less_loaded_replica_takes_every_connection(heavy, expected):
    assert asyncio.run(_connections(heavy, 12)) == [expected] * 12


def test_idle_replicas_both_serve_and_busy_ones_still_answer_within_their_turns():
    assert set(asyncio.run(_connections((0, 0), 12))) <= {0, 1}
    t = time.perf_counter()
    taken = asyncio.run(_connections((2, 2), 5))
    # every replica busy: each connection waits its turns, never longer
    assert len(taken) == 5
    assert (time.perf_counter() - t) / 5 < MAX_WAIT_S + 0.2


def test_a_closed_acceptor_takes_nothing():
    assert asyncio.run(_connections((0, 1), 6, close_first=True)) == [1] * 6
