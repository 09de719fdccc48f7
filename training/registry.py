"""Model registry: one registered model per task and landmark, alias ``champion`` by a rule.

Names: ``crs-severe-<L>h`` (``crs-severe-48h``) for severe CRS at landmark L (whole hours
0–336), and ``crs-toci-refractory-decision`` / ``crs-toci-refractory-first-toci`` for
tocilizumab failure scored at the anti-IL-6 decision and at the first tocilizumab dose. The
``champion`` alias is set by the experiment's declared rule
(``training.experiment.ChampionSpec``: best metric among calibrated models whose calibration
slope lies in a declared band). Every alias change is
appended to the registered model's alias history — one tag per change,
``alias_history.0001``, ``alias_history.0002``, … holding JSON (alias, version, previous
version, reason, run, time) — so the history is never truncated and needs no other store.

Registration happens only after every run of a ``train`` call has finished; if any step of it
fails, the versions and registered models created by this call are deleted again, so a failure
never leaves a half-registered model behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from training.experiment import ChampionSpec

CHAMPION = "champion"
HISTORY_PREFIX = "alias_history."


def registered_name(task: str, landmark: str) -> str:
    """``crs-severe-48h``; ``crs-toci-refractory-decision`` / ``-first-toci``."""
    if task == "severe_crs":
        return f"crs-severe-{landmark}"
    if task == "toci_refractory":
        return "crs-toci-refractory-" + landmark.replace("_", "-")
    raise ValueError(f"unknown task {task!r}")


@dataclass
class Candidate:
    """One trained run eligible for registration."""

    task: str
    landmark: str
    model: str
    feature_set: str
    run_id: str
    model_id: str  # MLflow LoggedModel id (``m-…``) of the final refitted model
    calibrated: bool
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.model}/{self.feature_set}"


def choose_champion(
    candidates: list[Candidate], rule: ChampionSpec
) -> tuple[Candidate | None, str]:
    """Apply the declared rule; return the winner (or None) and the reason in words."""
    pool = [c for c in candidates if rule.models is None or c.model in rule.models]
    if rule.require_calibrated:
        pool = [c for c in pool if c.calibrated]
    pool = [c for c in pool if math.isfinite(c.metrics.get(rule.metric, float("nan")))]
    if not pool:
        return None, f"no candidate with a finite {rule.metric} (rule: {rule.describe()})"
    lo, hi = rule.slope_band

    def slope(c: Candidate) -> float:
        return c.metrics.get("calibration_slope", float("nan"))

    in_band = [c for c in pool if math.isfinite(slope(c)) and lo <= slope(c) <= hi]

    def metric_text(c: Candidate) -> str:
        m = rule.metric
        value = c.metrics[m]
        low, high = c.metrics.get(f"{m}_ci_low"), c.metrics.get(f"{m}_ci_high")
        ci = f" [{low:.3f}–{high:.3f}]" if low is not None and high is not None else ""
        return f"{m} {value:.3f}{ci}, calibration slope {slope(c):.2f}"

    if in_band:
        # ties broken by name so the choice is deterministic
        best = sorted(in_band, key=lambda c: (-c.metrics[rule.metric], c.label))[0]
        return best, f"{best.label}: {metric_text(best)} — {rule.describe()}"
    if rule.fallback == "closest_slope":
        finite = [c for c in pool if math.isfinite(slope(c))]
        if finite:
            best = sorted(
                finite, key=lambda c: (abs(math.log(slope(c))) if slope(c) > 0 else 1e9, c.label)
            )[0]
            return best, (
                f"{best.label}: {metric_text(best)} — no model had calibration slope in "
                f"[{lo}, {hi}]; fallback: slope closest to 1"
            )
    return None, f"no candidate had calibration slope in [{lo}, {hi}] (rule: {rule.describe()})"


def alias_history(client: Any, name: str) -> list[dict[str, Any]]:
    """Every recorded alias change of a registered model, oldest first."""
    rm = client.get_registered_model(name)
    entries = sorted((k, v) for k, v in rm.tags.items() if k.startswith(HISTORY_PREFIX))
    return [json.loads(v) for _, v in entries]


def _current_alias_version(client: Any, name: str, alias: str) -> str | None:
    rm = client.get_registered_model(name)
    version = rm.aliases.get(alias) if rm.aliases else None
    return None if version is None else str(version)


def set_alias_with_history(
    client: Any, name: str, alias: str, version: str, reason: str, run_id: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Point ``alias`` at ``version`` and append the change (with its reason) to the history."""
    previous = _current_alias_version(client, name, alias)
    client.set_registered_model_alias(name, alias, str(version))
    history = alias_history(client, name)
    entry = {
        "alias": alias,
        "version": str(version),
        "previous_version": previous,
        "reason": reason,
        "run_id": run_id,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    key = f"{HISTORY_PREFIX}{len(history) + 1:04d}"
    client.set_registered_model_tag(name, key, json.dumps(entry))
    return key, entry


@dataclass
class Registration:
    name: str
    version: str
    candidate: Candidate
    reason: str


class RegistrationBatch:
    """Registers champions; ``rollback`` deletes what this batch created (all-or-nothing)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.created_models: list[str] = []
        self.created_versions: list[tuple[str, str]] = []
        self.previous_aliases: list[tuple[str, str | None]] = []
        self.history_tags: list[tuple[str, str]] = []
        self.done: list[Registration] = []

    def register(
        self, name: str, candidate: Candidate, reason: str, description: str
    ) -> Registration:
        from mlflow.exceptions import MlflowException

        client = self.client
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(
                name,
                description=description,
                tags={"task": candidate.task, "landmark": candidate.landmark},
            )
            self.created_models.append(name)
        mv = client.create_model_version(
            name,
            source=f"models:/{candidate.model_id}",
            run_id=candidate.run_id,
            tags={
                "model": candidate.model,
                "feature_set": candidate.feature_set,
                "task": candidate.task,
                "landmark": candidate.landmark,
            },
            description=reason,
            model_id=candidate.model_id,
        )
        self.created_versions.append((name, str(mv.version)))
        self._await_ready(name, str(mv.version))
        self.previous_aliases.append((name, _current_alias_version(client, name, CHAMPION)))
        key, _ = set_alias_with_history(
            client, name, CHAMPION, str(mv.version), reason, candidate.run_id
        )
        self.history_tags.append((name, key))
        reg = Registration(name, str(mv.version), candidate, reason)
        self.done.append(reg)
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

    def rollback(self) -> None:
        """Undo this batch: restore aliases, delete created versions and registered models."""
        client = self.client
        for name, key in reversed(self.history_tags):
            with contextlib.suppress(Exception):
                client.delete_registered_model_tag(name, key)
        for name, previous in reversed(self.previous_aliases):
            try:
                if previous is None:
                    client.delete_registered_model_alias(name, CHAMPION)
                else:
                    client.set_registered_model_alias(name, CHAMPION, previous)
            except Exception:
                pass
        for name, version in reversed(self.created_versions):
            if name in self.created_models:
                continue
            with contextlib.suppress(Exception):
                client.delete_model_version(name, version)
        for name in reversed(self.created_models):
            with contextlib.suppress(Exception):
                client.delete_registered_model(name)
