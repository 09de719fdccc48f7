"""The model store: the champions in service, swapped whole; replicas kept in step by polling.

At start-up (and on ``POST /v1/models/reload``) :class:`ModelStore` loads every champion as one
immutable ``serving.loading.Snapshot``. Replicas stay in step by polling (:meth:`ModelStore.
start_polling`; interval ``$CRS_RISK_REGISTRY_POLL_S``, default 30 s): a replica swaps in a new
set only when every alias of the promotion that produced it has moved (``training.registry``
tags each promoted version with its whole set), and keeps serving what it holds while the
registry is down.

Reload builds a complete new snapshot off to the side and swaps one reference; a request takes
the snapshot once when it starts, so in-flight requests finish on the models they began with
and never see a half-loaded store.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow

from features.errors import CrsRiskError
from serving.loading import Snapshot, find_version, load_snapshot, registry_client
from serving.registry_names import ALIAS, landmarks, model_names
from training.registry import PROMOTION_TAG
from training.tracking import (
    describe_server_error,
    fail_fast_http,
    sqlite_path,
    use_fail_fast_http,
)

POLL_ENV = "CRS_RISK_REGISTRY_POLL_S"
DEFAULT_POLL_S = 30.0


def poll_interval() -> float:
    """Seconds between registry polls: ``$CRS_RISK_REGISTRY_POLL_S`` (0 = never), default 30."""
    text = os.environ.get(POLL_ENV, "").strip()
    if not text:
        return DEFAULT_POLL_S
    try:
        value = float(text)
    except ValueError:
        raise CrsRiskError(f"{POLL_ENV} must be a number of seconds, got {text!r}") from None
    if value < 0 or not math.isfinite(value):
        raise CrsRiskError(f"{POLL_ENV} must be ≥ 0 seconds (0 turns polling off)")
    return value


@dataclass(frozen=True)
class RegistryState:
    """What the last look at the registry found (``/readyz`` reports it)."""

    reachable: bool | None  # None: not checked yet / polling off
    checked_at: str | None = None
    detail: str = ""


def champion_set(client: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every ``@champion``: name → (version, its ``promotion`` tag as a dict, or {})."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for task, lm in landmarks(client):
        found = find_version(client, model_names(task, lm))
        if found is None:
            continue
        name, mv = found
        try:
            promo = json.loads((mv.tags or {}).get(PROMOTION_TAG) or "{}")
        except ValueError:
            promo = {}
        out[name] = (str(mv.version), promo if isinstance(promo, dict) else {})
    return out


#: A promotion moves its aliases within seconds; one whose aliases have not all moved after this
#: long was interrupted (or an alias was moved by hand since) and no longer holds a set back.
SETTLE_GRACE_S = 120.0


def unsettled(champions: dict[str, tuple[str, dict[str, Any]]], now: float | None = None) -> str:
    """Why this set of champions is mid-promotion ("" when every recent promotion is complete).

    A promotion P moved the set ``{name: version}`` together. It is incomplete while a name of
    P still points at a version from an earlier promotion (its alias has not moved yet); a
    name already moved again by a later promotion is fine. Promotions older than
    :data:`SETTLE_GRACE_S` never hold a set back, so an alias moved by hand (MLflow UI) is
    picked up too.
    """
    now_ns = int((time.time() if now is None else now) * 1e9)

    def order(promo: dict[str, Any]) -> str:
        return str(promo.get("id") or "")

    def started_ns(promo: dict[str, Any]) -> int:
        head = order(promo).split("-", 1)[0]
        return int(head) if head.isdigit() else 0

    for _name, (_, promo) in sorted(champions.items()):
        if now_ns - started_ns(promo) > SETTLE_GRACE_S * 1e9:
            continue
        for other, version in (promo.get("set") or {}).items():
            if other not in champions:
                continue
            now_version, now_promo = champions[other]
            if now_version != str(version) and order(now_promo) < order(promo):
                return f"promotion {order(promo)} in progress ({other} not moved yet)"
    return ""


class ModelStore:
    """Holds the current snapshot; ``reload`` swaps it atomically (one reload at a time).

    With polling on (:meth:`start_polling`), each replica re-resolves the aliases every
    :func:`poll_interval` seconds and swaps in the new set once a promotion has completed, so
    every replica serves the new versions within one interval plus the load time. A request
    takes one snapshot, so it never mixes versions across landmarks. When the registry cannot
    be reached the loaded models stay in service and :attr:`registry` says so.
    """

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        self.registry = RegistryState(None)
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    @property
    def ready(self) -> bool:
        snap = self._snapshot
        return snap is not None and bool(snap.models)

    def load(self, settle_s: float = 30.0) -> Snapshot:
        """First load; refuses (CrsRiskError) when no champion is registered at all.

        A promotion caught half-way waits (up to ``settle_s``) for its last alias to move, so a
        replica starting during a promotion does not load a mixed set.
        """
        deadline = time.monotonic() + settle_s
        while True:
            champions = champion_set(registry_client(self.tracking_uri))
            if not unsettled(champions) or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        wanted = {name: version for name, (version, _) in champions.items()}
        snap = load_snapshot(self.tracking_uri, versions=wanted)
        if not snap.models:
            raise CrsRiskError(
                f"no registered champion (models:/<name>@{ALIAS}) in {self.tracking_uri}: "
                f"looked for {', '.join(snap.missing)}; run `crs-risk demo` or "
                "`crs-risk train` first"
            )
        self._snapshot = snap
        self._seen(True)
        return snap

    def reload(self, versions: dict[str, str] | None = None) -> tuple[Snapshot, Snapshot | None]:
        """Re-resolve the aliases (or load ``versions``); the new snapshot replaces the old
        only if it loaded fully."""
        with self._lock:
            old = self._snapshot
            generation = (old.generation + 1) if old else 0
            try:
                snap = load_snapshot(self.tracking_uri, generation, versions)
            except Exception as exc:
                self._seen(False, exc)
                raise
            self._seen(True)
            if not snap.models:
                raise CrsRiskError("reload found no champion; the loaded models stay in service")
            self._snapshot = snap
            return snap, old

    def poll_once(self) -> tuple[Snapshot, Snapshot | None] | None:
        """Look at the registry once; reload when a completed promotion changed the set."""
        try:  # no separate probe: the alias look-ups are the check (fail-fast HTTP settings)
            uri = self.tracking_uri
            client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
            with fail_fast_http():
                champions = champion_set(client)
        except Exception as exc:
            self._seen(False, exc)
            return None
        self._seen(True)
        wanted = {name: version for name, (version, _) in champions.items()}
        snap = self._snapshot
        held = {m.name: m.version for m in snap.models.values()} if snap else {}
        if not wanted or wanted == held:
            return None
        why = unsettled(champions)
        if why:
            self.registry = RegistryState(True, _now(), why)
            return None
        return self.reload(wanted)

    def start_polling(
        self,
        interval: float | None = None,
        on_swap: Callable[[Snapshot, dict[str, str]], None] | None = None,
    ) -> bool:
        """Poll the registry in a daemon thread every ``interval`` s; False when polling is off."""
        every = poll_interval() if interval is None else interval
        if every <= 0 or self._poller is not None:
            return False
        use_fail_fast_http()  # a dead registry must not hold a poll for minutes

        def loop() -> None:
            while not self._stop.wait(every):
                try:
                    swapped = self.poll_once()
                except Exception as exc:  # a failed load keeps the old snapshot
                    self._seen(False, exc)
                    continue
                if swapped is not None:
                    snap, old = swapped
                    before = {m.name: m.version for m in old.models.values()} if old else {}
                    del swapped, old  # the caller may collect the old models now
                    if on_swap is not None:
                        on_swap(snap, before)
                    del snap

        self._poller = threading.Thread(target=loop, name="registry-poll", daemon=True)
        self._poller.start()
        return True

    def stop_polling(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=15)
            self._poller = None

    def _seen(self, ok: bool, exc: BaseException | None = None) -> None:
        detail = "" if ok else _one_line(exc)
        self.registry = RegistryState(ok, _now(), detail)


def registry_status(store: ModelStore | None) -> dict[str, Any]:
    """The registry part of ``/readyz``: reachable or not at the last look, and when; which
    replica (process id) answered and the versions it holds (to check replicas are in step)."""
    if store is None:
        return {"registry": "unknown"}
    state = store.registry
    if state.reachable is None:
        word = "unknown"
    elif state.reachable:
        word = "reachable"
    else:
        word = "unreachable"
    snap = store.snapshot
    out: dict[str, Any] = {
        "registry": word,
        "registry_checked_at": state.checked_at,
        "replica": os.getpid(),
        "versions": {m.name: m.version for m in snap.models.values()} if snap else {},
    }
    if state.detail:
        out["registry_detail"] = state.detail
    return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _one_line(exc: BaseException | None) -> str:
    if exc is None:
        return "unreachable"
    text = str(exc) if isinstance(exc, CrsRiskError) else describe_server_error("the registry", exc)
    return (text.strip().splitlines() or ["unreachable"])[0][:200]


def tracking_dir(uri: str) -> Path | None:
    """Folder of a SQLite tracking store (for messages)."""
    db = sqlite_path(uri)
    return None if db is None else db.parent
