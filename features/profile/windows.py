"""Time windows of the profile: pre-infusion (≤ 0 h), then each day (0, 24], (24, 48] … up to
the last landmark, then everything after it.

Windows follow the project's time rule (``../shared/DESIGN.md``, "Time"): ``hours_from_infusion``
is when a value became known, so a window is the set of values known in it, and a day-granular
source's day-0 value (known at 24 h) lands in (0, 24], never in the pre-infusion window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from features.tasks import SEVERE_CRS


@dataclass(frozen=True)
class Windows:
    """Right-closed window edges in hours: ``(-inf, 0], (0, 24], … (L-24, L], (L, inf)``."""

    last_landmark: float

    @property
    def edges(self) -> np.ndarray:
        days = max(1, math.ceil(self.last_landmark / 24.0))
        return np.array([-np.inf, *(24.0 * d for d in range(days + 1)), np.inf])

    @property
    def labels(self) -> list[str]:
        e = self.edges
        out = ["pre-infusion (≤0 h)"]
        out += [f"({e[i]:g}, {e[i + 1]:g}] h" for i in range(1, len(e) - 2)]
        out.append(f">{e[-2]:g} h")
        return out

    def index(self, hours: np.ndarray) -> np.ndarray:
        """Window index of every time (right-closed); NaN times get -1."""
        idx = np.searchsorted(self.edges, np.asarray(hours, dtype=float), side="left") - 1
        idx = np.clip(idx, 0, len(self.edges) - 2)
        return np.where(np.isnan(hours), -1, idx)


def default_windows(landmark_hours: tuple[float, ...] | None = None) -> Windows:
    """Windows up to the last ``severe_crs`` landmark (the task default unless given)."""
    hours = landmark_hours or SEVERE_CRS.landmark_hours
    return Windows(float(max(hours)))
