"""Registered model names ↔ (task, landmark), and the landmarks the registry holds.

``crs-severe-<L>h`` is severe CRS at L hours (0–336); ``crs-toci-refractory-decision`` and
``-first-toci`` the tocilizumab-refractory task at its two landmarks (``crs-toci-refractory``
is the first-dose model's name before there were two). The service serves what the registry
holds under these names, through their ``champion`` alias.
"""

from __future__ import annotations

from typing import Any

from features.tasks import TASKS

ALIAS = "champion"
MAX_LANDMARK_HOURS = 336
_SEVERE_PREFIX = "crs-severe-"
_TOCI_NAMES = {
    "crs-toci-refractory-decision": "decision",
    "crs-toci-refractory-first-toci": "first_toci",
    "crs-toci-refractory": "first_toci",  # the name before the two toci landmarks
}


def parse_registered_name(name: str) -> tuple[str, str] | None:
    """``crs-severe-48h`` → ("severe_crs", "48h"); ``crs-toci-refractory-decision`` →
    ("toci_refractory", "decision"); None for a name the service does not serve."""
    if name in _TOCI_NAMES:
        return "toci_refractory", _TOCI_NAMES[name]
    if name.startswith(_SEVERE_PREFIX) and name.endswith("h"):
        digits = name[len(_SEVERE_PREFIX) : -1]
        if digits.isdigit() and int(digits) <= MAX_LANDMARK_HOURS and str(int(digits)) == digits:
            return "severe_crs", f"{int(digits)}h"
    return None


def landmark_hours(landmark: str) -> float | None:
    """``"48h"`` → 48.0; toci landmarks (per patient) → None."""
    return float(landmark[:-1]) if landmark.endswith("h") and landmark[:-1].isdigit() else None


def landmarks(client: Any = None) -> list[tuple[str, str]]:
    """Every (task, landmark) with a registered model name, in display order (severe by hours,
    then toci); without a client (or when the registry cannot be listed) the tasks' defaults."""
    found: set[tuple[str, str]] = set()
    if client is not None:
        try:
            for rm in client.search_registered_models(max_results=1000):
                parsed = parse_registered_name(rm.name)
                if parsed is not None:
                    found.add(parsed)
        except Exception:  # a registry that cannot list: the defaults below
            found = set()
    if not found:
        for task in ("severe_crs", "toci_refractory"):
            found.update((task, lm) for lm in TASKS[task].landmarks)
    toci_order = {"decision": 0, "first_toci": 1}
    return sorted(
        found,
        key=lambda t: (t[0] != "severe_crs", landmark_hours(t[1]) or 0, toci_order.get(t[1], 2)),
    )


def model_names(task: str, landmark: str) -> list[str]:
    """Registered names of (task, landmark), preferred first (see
    :func:`parse_registered_name`; the first-dose toci model may carry its older name)."""
    if task == "severe_crs":
        return [f"{_SEVERE_PREFIX}{landmark}"]
    return [n for n, lm in _TOCI_NAMES.items() if lm == landmark]


def model_name(task: str, landmark: str) -> str:
    """The preferred registered name of (task, landmark)."""
    return model_names(task, landmark)[0]
