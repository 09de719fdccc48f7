"""Write a synthetic cohort folder: the three contract tables plus ``truth.csv`` beside them.

Files go through ``features.io.write_cohort`` (validation + deterministic bytes), so the output
always passes ``crs-risk cohort validate`` and the same seed and parameters give byte-identical
files. ``truth.csv`` holds the generator's latent variables, true probabilities and potential
outcomes (columns: ``simulate._truth``; e.g. ``p_toci_refractory`` for every patient, with
``toci_given`` marking who had tocilizumab first); the pipeline never reads it as a feature
(``features.io`` ignores files outside the contract).

Above :data:`CHUNKED_ABOVE` patients the whole frames and their validation no longer fit in the
issue's memory budget, so the folder is written block by block (``features.synth.chunked``):
same rows, same bytes, validated per block, nothing written unless every block is valid.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from features.errors import CrsRiskError
from features.io import write_cohort
from features.manifest import MANIFEST_FILE, Manifest, synthetic_manifest, write_manifest
from features.synth.chunked import (
    WRITE_BLOCK,
    CohortBlock,
    simulate_blocks,
    split_cohort,
    write_cohort_blocks,
)
from features.synth.params import DEFAULT, SynthParams, load_params
from features.synth.simulate import CHUNK, simulate

TRUTH_FILE = "truth.csv"
CHUNKED_ABOVE = 100_000
"""Patients above which ``synth_to_folder`` writes block by block.

The one-shot path needs ≈4.9 GB at 100,000 patients and ≈6.6 GB at 150,000; block by block
gives the same bytes in ≈2.3 GB at 150,000 and ≈3.8 GB at 1,000,000 (``bench_synth.py``).
Up to 100,000 the one-shot path is kept as it was.
"""


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
                f"wrote a synthetic cohort to {self.out} ({self.fmt}) with {TRUTH_FILE} and "
                f"{MANIFEST_FILE} beside it",
                f"patients: {self.n_patients:,} in centre(s) {', '.join(self.centres)}; "
                f"measurements: {self.n_measurements:,} rows; events: {self.n_events:,} rows",
                f"seed {self.seed}; calibration: {self.config}",
                f"ASTCT grade ≥3: {self.severe_share:.1%} (expected from truth: "
                f"{self.expected_severe:.1%}); compare every target with "
                f"`crs-risk cohort describe {self.out}`",
            ]
        )


def _changed(value: Any, default: Any) -> Any:
    """The parts of a parameter dump that differ from the defaults (nested dicts kept nested)."""
    if isinstance(value, dict) and isinstance(default, dict):
        out = {k: _changed(v, default.get(k)) for k, v in value.items() if v != default.get(k)}
        return {k: v for k, v in out.items() if v != {}}
    return value


def synth_manifest(n: int, seed: int, params: SynthParams, options: dict[str, Any]) -> Manifest:
    """The provenance manifest of a simulated folder: seed, size, the simulator's keyword
    options (centres, shift, new centre, ARI share) and the parameters changed from the
    defaults."""
    changed = _changed(params.model_dump(mode="json"), DEFAULT.model_dump(mode="json"))
    return synthetic_manifest(seed, n, changed, options)


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
    *,
    preempt_blasts: float | None = None,
    chunked_above: int = CHUNKED_ABOVE,
    block: int = CHUNK,
    write_block: int | None = None,
) -> SynthReport:
    """Simulate ``n`` infusions and write them as a cohort folder with ``truth.csv``.

    ``n > chunked_above`` goes block by block (see ``features.synth.chunked``): ``block``
    patients simulated at a time (one measurement stream each), validated and written
    ``write_block`` at a time (default ``chunked.WRITE_BLOCK``). With the default ``block`` the
    files are the same either way. ``preempt_blasts`` replaces every centre's practice (see
    :func:`features.synth.simulate`).
    """
    if n < 1:
        raise CrsRiskError(f"--n must be at least 1, got {n}")
    if centers < 1:
        raise CrsRiskError(f"--centers must be at least 1, got {centers}")
    if not center_shift >= 0:
        raise CrsRiskError(f"--center-shift must be ≥ 0, got {center_shift}")
    if ari_fraction is not None and not 0.0 <= ari_fraction <= 1.0:
        raise CrsRiskError(f"--ari-fraction must be between 0 and 1, got {ari_fraction}")
    if preempt_blasts is not None and not preempt_blasts >= 0:
        raise CrsRiskError(f"--preempt-blasts must be a percentage ≥ 0, got {preempt_blasts}")
    if fmt not in ("csv", "parquet"):
        raise CrsRiskError(f"--format must be csv or parquet, got {fmt!r}")
    params = load_params(config)
    options: dict[str, Any] = {
        "centers": centers,
        "center_shift": center_shift,
        "new_center": new_center,
        "ari_fraction": ari_fraction,
        "preempt_blasts": preempt_blasts,
    }
    manifest = synth_manifest(n, seed, params, options)
    if n > chunked_above:
        report = _synth_chunked(
            Path(out),
            n,
            seed,
            params,
            options,
            fmt=fmt,
            block=block,
            write_block=write_block,
            config=config,
        )
        write_manifest(report.out, manifest)
        return report
    cohort = simulate(n, seed, params, **options)
    folder = Path(out)
    write_cohort(
        folder,
        cohort.patients,
        cohort.measurements,
        cohort.events,
        fmt=fmt,
        extra={TRUTH_FILE: cohort.truth},
    )
    write_manifest(folder, manifest)
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


def _synth_chunked(
    folder: Path,
    n: int,
    seed: int,
    params: SynthParams,
    options: dict[str, Any],
    *,
    fmt: str,
    block: int,
    write_block: int | None,
    config: str | os.PathLike[str] | None,
) -> SynthReport:
    """The block-by-block path of :func:`synth_to_folder` (same report)."""
    centres: set[str] = set()
    severe = [0.0, 0.0]  # grade ≥3 count, sum of the true probabilities

    def blocks() -> Iterator[CohortBlock]:
        simulated = simulate_blocks(n, seed, params, **options, block=block)
        for whole in simulated:
            for part in split_cohort(whole, write_block or WRITE_BLOCK):
                truth = part.truth
                centres.update(part.patients["center"].unique().tolist())
                severe[0] += float(np.sum(truth["severe_crs"].to_numpy()))
                severe[1] += float(np.sum(truth["p_severe_crs"].to_numpy()))
                yield CohortBlock(
                    part.patients, part.measurements, part.events, side={TRUTH_FILE: truth}
                )
                del part, truth  # views keep the whole block alive: let it go in time
            del whole

    totals = write_cohort_blocks(folder, blocks(), fmt=fmt)
    return SynthReport(
        out=folder,
        fmt=fmt,
        n_patients=totals.patients,
        n_measurements=totals.measurements,
        n_events=totals.events,
        seed=seed,
        centres=tuple(sorted(centres)),
        config="default" if config is None else str(config),
        severe_share=severe[0] / totals.patients,
        expected_severe=severe[1] / totals.patients,
    )
