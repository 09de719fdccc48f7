"""Registration and promotion: versions first, then ``@champion`` moved by rule, all or nothing.

Promotion (issue 12 §4). ``train`` always registers a version of each (task, landmark) winner
chosen by the experiment's declared rule (:func:`choose_champion`), but ``@champion`` moves only
when (:func:`decide`)

- the name has no champion yet, or
- the challenger was validated on the same cohort digest and task definition as the champion
  and beats it by the same rule, or
- the user asked for it (``crs-risk train --promote``).

A synthetic-cohort run never replaces a real-cohort champion without ``--promote``; a refusal
is reported, never silent. Work is in two phases: all versions are registered first (with their
cards), then all aliases move. Anything that fails — an exception, the tracking server dying,
Ctrl-C — rolls the whole call back (aliases restored, history entries and created versions
deleted); if the store is unreachable during rollback the error lists exactly what was left.

Every alias change is appended to the registered model's history as its own tag
``alias_history.<time_ns>-<random>`` (JSON: alias, version, previous version, reason, run,
time, promotion id), so concurrent ``train`` runs never overwrite each other's entries. Each
promoted version carries a ``promotion`` tag naming the whole set moved together; the service
(``serving.store``) uses it to load a set only once every alias of it has moved.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from mlflow.exceptions import MlflowException

from features.errors import CrsRiskError
from training.champion import Candidate, decide
from training.experiment import ChampionSpec
from training.registry import (
    CHAMPION,
    HISTORY_PREFIX,
    PROMOTION_TAG,
    current_alias_version,
    current_champion,
    unreachable,
)
from training.tracking import WATCH_SIGNAL


def history_key() -> str:
    """A history tag key that sorts by time and never collides with a concurrent writer's."""
    return f"{HISTORY_PREFIX}{time.time_ns():020d}-{secrets.token_hex(3)}"


def set_alias_with_history(
    client: Any,
    name: str,
    alias: str,
    version: str,
    reason: str,
    run_id: str | None = None,
    promotion: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """Point ``alias`` at ``version`` and append the change (with its reason) to the history."""
    previous = current_alias_version(client, name, alias)
    entry = {
        "alias": alias,
        "version": str(version),
        "previous_version": previous,
        "reason": reason,
        "run_id": run_id,
        "promotion": promotion,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    key = history_key()
    client.set_registered_model_tag(name, key, json.dumps(entry))
    client.set_registered_model_alias(name, alias, str(version))
    return key, entry


# --- registration and promotion -----------------------------------------------------------------
@dataclass
class Registration:
    """One registered version; ``promoted`` when ``@champion`` now points at it."""

    name: str
    version: str
    candidate: Candidate
    reason: str
    promoted: bool = True
    decision: str = ""
    previous: str | None = None


@dataclass
class Entry:
    """What to register under ``name``: the rule's winner, why, and the version description."""

    name: str
    candidate: Candidate
    reason: str
    description: str


@contextlib.contextmanager
def _no_interrupt() -> Iterator[None]:
    """Hold Ctrl-C while rolling back (a second Ctrl-C must not leave a half-undone set)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_watch = signal.signal(WATCH_SIGNAL, signal.SIG_IGN)  # nor the tracking watch's
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        signal.signal(WATCH_SIGNAL, old_watch)


class RegistrationBatch:
    """Registers versions, then moves aliases; ``rollback`` undoes everything it did."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.created_models: list[str] = []
        self.created_versions: list[tuple[str, str]] = []
        self.previous_aliases: list[tuple[str, str | None]] = []
        self.history_tags: list[tuple[str, str]] = []
        self.done: list[Registration] = []

    def add_version(self, entry: Entry) -> Registration:
        """Phase 1: create the registered model if needed and a version (no alias moves)."""

        client, c, name = self.client, entry.candidate, entry.name
        try:
            client.get_registered_model(name)
        except MlflowException as exc:
            if unreachable(exc):
                raise
            client.create_registered_model(
                name,
                description=entry.description,
                tags={"task": c.task, "landmark": c.landmark},
            )
            self.created_models.append(name)
        mv = client.create_model_version(
            name,
            source=f"models:/{c.model_id}",
            run_id=c.run_id,
            tags={
                "model": c.model,
                "feature_set": c.feature_set,
                "task": c.task,
                "landmark": c.landmark,
                "cohort_digest": c.cohort_digest,
                "cohort_kind": c.cohort_kind,
                "task_definition": c.task_definition,
            },
            description=entry.reason,
            model_id=c.model_id,
        )
        self.created_versions.append((name, str(mv.version)))
        self._await_ready(name, str(mv.version))
        reg = Registration(name, str(mv.version), c, entry.reason, promoted=False)
        self.done.append(reg)
        return reg

    def move_alias(self, reg: Registration, promotion: str) -> None:
        """Phase 2: point ``@champion`` at a registered version (history entry first)."""
        previous = current_alias_version(self.client, reg.name, CHAMPION)
        self.previous_aliases.append((reg.name, previous))
        key = history_key()
        self.history_tags.append((reg.name, key))  # recorded before the write: undo covers it
        entry = {
            "alias": CHAMPION,
            "version": reg.version,
            "previous_version": previous,
            "reason": f"{reg.decision}; {reg.reason}" if reg.decision else reg.reason,
            "run_id": reg.candidate.run_id,
            "promotion": promotion,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self.client.set_registered_model_tag(reg.name, key, json.dumps(entry))
        self.client.set_registered_model_alias(reg.name, CHAMPION, reg.version)
        reg.promoted, reg.previous = True, previous

    def register(
        self, name: str, candidate: Candidate, reason: str, description: str
    ) -> Registration:
        """Register one version and promote it at once (kept for single-model callers)."""
        reg = self.add_version(Entry(name, candidate, reason, description))
        self.move_alias(reg, promotion_id())
        return reg

    def _await_ready(self, name: str, version: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            mv = self.client.get_model_version(name, version)
            if mv.status == "READY":
                return
            if mv.status == "FAILED_REGISTRATION" or time.monotonic() > deadline:
                raise RuntimeError(
                    f"registration of {name} v{version} did not complete ({mv.status})"
                )
            time.sleep(0.5)

    def rollback(self) -> list[str]:
        """Undo this batch; returns what could not be undone (empty when all was undone).

        Order: aliases back first (the part a reader sees), then history entries, versions and
        registered models. Once the store is unreachable nothing more is attempted (each try
        would wait for its timeout) and everything still pending is listed.
        """
        client = self.client
        steps: list[tuple[str, Callable[[], Any]]] = []
        for name, previous in reversed(self.previous_aliases):
            if previous is None:
                steps.append(
                    (
                        f"{name}: @{CHAMPION} set by this run (should be unset)",
                        partial(client.delete_registered_model_alias, name, CHAMPION),
                    )
                )
            else:
                steps.append(
                    (
                        f"{name}: @{CHAMPION} moved by this run (should be v{previous})",
                        partial(client.set_registered_model_alias, name, CHAMPION, previous),
                    )
                )
        for name, key in reversed(self.history_tags):
            steps.append(
                (
                    f"{name}: alias history entry {key}",
                    partial(client.delete_registered_model_tag, name, key),
                )
            )
        for name, version in reversed(self.created_versions):
            if name not in self.created_models:
                steps.append(
                    (
                        f"{name} v{version}",
                        partial(client.delete_model_version, name, version),
                    )
                )
        for name in reversed(self.created_models):
            steps.append(
                (f"{name} (registered model)", partial(client.delete_registered_model, name))
            )
        left: list[str] = []
        dead = False
        with _no_interrupt():
            for what, undo in steps:
                if dead:
                    left.append(what)
                    continue
                try:
                    undo()
                except Exception as exc:
                    if _missing(exc):
                        continue  # never written (the failure came first): nothing to undo
                    left.append(what)
                    dead = unreachable(exc)
        self.previous_aliases.clear()
        self.history_tags.clear()
        self.created_versions.clear()
        self.created_models.clear()
        return left


def _missing(exc: BaseException) -> bool:
    code = getattr(exc, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower()


def promotion_id() -> str:
    """Time-ordered id of one promotion (a set of aliases moved together)."""
    return f"{time.time_ns():020d}-{secrets.token_hex(3)}"


@dataclass
class PromotionResult:
    """Every version registered by one call and which of them now hold ``@champion``."""

    registrations: list[Registration] = field(default_factory=list)
    promotion: str = ""

    @property
    def promoted(self) -> list[Registration]:
        return [r for r in self.registrations if r.promoted]

    def notes(self) -> list[str]:
        """One line per version that was registered but not promoted."""
        return [
            f"{r.name} v{r.version} registered; @{CHAMPION} stays at v{r.previous}: {r.decision}"
            for r in self.registrations
            if not r.promoted
        ]


def register_and_promote(
    client: Any,
    entries: list[Entry],
    rule: ChampionSpec,
    *,
    force: bool = False,
    after_version: Callable[[Registration], object] | None = None,
    before_aliases: Callable[[], None] | None = None,
) -> PromotionResult:
    """Register every entry's version, decide each promotion, then move the aliases.

    ``after_version`` runs after each version is registered (the runner logs the model card
    there). All or nothing: on any exception or ``KeyboardInterrupt`` the batch is rolled back
    and the error re-raised; a rollback that could not finish raises :class:`CrsRiskError`
    listing what it left behind. ``before_aliases`` is a test seam between the two phases.
    """
    batch = RegistrationBatch(client)
    out = PromotionResult(promotion=promotion_id())
    try:
        for entry in entries:
            reg = batch.add_version(entry)
            out.registrations.append(reg)
            if after_version is not None:
                after_version(reg)
        moving: list[Registration] = []
        for reg in out.registrations:
            current = current_champion(client, reg.name)
            previous, champ = (None, None) if current is None else current
            ok, why = decide(champ, reg.candidate, rule, force)
            reg.decision, reg.previous = why, previous
            if ok:
                moving.append(reg)
        out.promotion = promotion_id()  # stamped now: the aliases move within seconds
        the_set = {r.name: r.version for r in moving}
        for reg in moving:  # the set each promoted version belongs to, before any alias moves
            client.set_model_version_tag(
                reg.name,
                reg.version,
                PROMOTION_TAG,
                json.dumps({"id": out.promotion, "set": the_set}, sort_keys=True),
            )
        if before_aliases is not None:
            before_aliases()
        for reg in moving:
            batch.move_alias(reg, out.promotion)
    except BaseException as exc:
        left = batch.rollback()
        for reg in out.registrations:
            reg.promoted = False
        out.registrations.clear()
        if left:
            what = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            raise CrsRiskError(
                f"registration {what} ({_first_line(exc)}) and the rollback could not finish; "
                f"left behind: {'; '.join(left)}"
            ) from exc
        raise
    return out


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", "") or exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
