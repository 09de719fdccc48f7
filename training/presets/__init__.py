"""Experiment presets shipped inside the package (package data), so an installed wheel runs them.

``quickstart`` is what ``crs-risk demo`` trains (the seed-sized synthetic cohort, minutes);
``full`` the thorough synthetic experiment. ``crs-risk train`` takes a preset's name or the
path of an experiment file of one's own (``experiments/`` in the repository holds those that
need local data, e.g. ``car22.yaml``).
"""

from __future__ import annotations

from pathlib import Path

PRESETS_DIR = Path(__file__).resolve().parent


def preset_names() -> list[str]:
    """The names of the shipped presets (``quickstart``, ``full``)."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path | None:
    """The file of preset ``name`` (None when there is no such preset)."""
    path = PRESETS_DIR / f"{name}.yaml"
    return path if name and "/" not in name and path.is_file() else None


def experiment_path(given: Path) -> Path:
    """``given`` when it is a file; else the preset of that name (``quickstart``,
    ``quickstart.yaml``); else ``given`` unchanged (the experiment loader names the problem)."""
    if given.exists() or given.parent != Path("."):
        return given
    return preset_path(given.name.removesuffix(".yaml")) or given
