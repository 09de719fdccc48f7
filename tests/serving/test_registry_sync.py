"""Replicas in step (issue 16 §3): which champion sets a replica may swap in, and what /readyz
says about the registry. The whole loop — two replicas, a promotion, load — runs in
tests/team/ against the team stack.
"""

from __future__ import annotations

import time

from serving.store import SETTLE_GRACE_S, ModelStore, registry_status, unsettled


def _promo(pid_ns: int, **the_set: str) -> dict:
    return {"id": f"{pid_ns:020d}-abc123", "set": the_set}


def test_a_half_moved_promotion_is_not_loaded():
    now = time.time()
    old = _promo(int((now - 3600) * 1e9), a="1", b="1")
    new = _promo(int(now * 1e9), a="2", b="2")
    # b's alias has not moved yet: the set is in flux
    assert "in progress (b not moved yet)" in unsettled({"a": ("2", new), "b": ("1", old)}, now)
    assert unsettled({"a": ("2", new), "b": ("2", new)}, now) == ""
    # a later promotion of b alone does not hold the earlier set back
    later = _promo(int((now + 1) * 1e9), b="3")
    assert unsettled({"a": ("2", new), "b": ("3", later)}, now + 2) == ""
    # untagged (registered before promotions were tagged) counts as older
    assert unsettled({"a": ("2", new), "b": ("1", {})}, now) != ""
    # after the grace period an incomplete promotion (or a hand-moved alias) no longer blocks
    assert unsettled({"a": ("2", new), "b": ("1", old)}, now + SETTLE_GRACE_S + 1) == ""


def test_registry_down_is_reported_and_nothing_is_swapped():
    store = ModelStore("http://127.0.0.1:9")  # nothing listens on the discard port
    assert registry_status(store)["registry"] == "unknown"
    t0 = time.monotonic()
    assert store.poll_once() is None
    assert time.monotonic() - t0 < 15
    status = registry_status(store)
    assert status["registry"] == "unreachable"
    assert "unreachable" in status["registry_detail"] and status["versions"] == {}
