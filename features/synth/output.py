"""Write a synthetic cohort folder: the three contract tables plus ``truth.csv`` beside them.

Files go through ``features.io.write_cohort`` (validation + deterministic bytes), so the output
always passes ``crs-risk cohort validate`` and the same seed and parameters give byte-identical
files. ``truth.csv`` holds the generator's latent variables and true probabilities; the
pipeline never reads it as a feature (``features.io`` ignores files outside the contract).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from features.errors import CrsRiskError
from features.synth.params import load_params
from features.synth.simulate import simulate

TRUTH_FILE = "truth.csv"


@dataclass(frozen=True)
class SynthReport:
    """What was written, for the CLI."""

    out: Path
    fmt: str
    n_patients: int
    n_measurements: int
    n_events: int
    seed: int
    centres: tuple[str, ...]
    config: str
    severe_share: float
    expected_severe: float

    def render(self) -> str:
        return "\n".join(
            [
                f"wrote a synthetic cohort to {self.out} ({self.fmt}) and {TRUTH_FILE} beside it",
                f"patients: {self.n_patients:,} in centre(s) {', '.join(self.centres)}; "
                f"measurements: {self.n_measurements:,} rows; events: {self.n_events:,} rows",
                f"seed {self.seed}; calibration: {self.config}",
                f"ASTCT grade ≥3: {self.severe_share:.1%} (expected from truth: "
                f"{self.expected_severe:.1%}); compare every target with "
                f"`crs-risk cohort describe {self.out}`",
            ]
        )


def synth_to_folder(
    out: str | os.PathLike[str],
    n: int = 118,
    seed: int = 7,
    centers: int = 4,
    ari_fraction: float | None = None,
    center_shift: float = 1.0,
    new_center: bool = False,
    config: str | os.PathLike[str] | None = None,
    fmt: str = "csv",
) -> SynthReport:
    """Simulate ``n`` infusions and write them as a cohort folder with ``truth.csv``."""
    from features.io import write_cohort

    if n < 1:
        raise CrsRiskError(f"--n must be at least 1, got {n}")
    if centers < 1:
        raise CrsRiskError(f"--centers must be at least 1, got {centers}")
    if not center_shift >= 0:
        raise CrsRiskError(f"--center-shift must be ≥ 0, got {center_shift}")
    if ari_fraction is not None and not 0.0 <= ari_fraction <= 1.0:
        raise CrsRiskError(f"--ari-fraction must be between 0 and 1, got {ari_fraction}")
    if fmt not in ("csv", "parquet"):
        raise CrsRiskError(f"--format must be csv or parquet, got {fmt!r}")
    params = load_params(config)
    cohort = simulate(
        n,
        seed,
        params,
        centers=centers,
        center_shift=center_shift,
        new_center=new_center,
        ari_fraction=ari_fraction,
    )
    folder = Path(out)
    write_cohort(
        folder,
        cohort.patients,
        cohort.measurements,
        cohort.events,
        fmt=fmt,
        extra={TRUTH_FILE: cohort.truth},
    )
    truth = cohort.truth
    return SynthReport(
        out=folder,
        fmt=fmt,
        n_patients=len(cohort.patients),
        n_measurements=len(cohort.measurements),
        n_events=len(cohort.events),
        seed=seed,
        centres=tuple(sorted(cohort.patients["center"].unique())),
        config="default" if config is None else str(config),
        severe_share=float(truth["severe_crs"].mean()),
        expected_severe=float(truth["p_severe_crs"].mean()),
    )
