"""``crs-risk cohort …`` and ``crs-risk features …``: thin wiring over the features package.

Each command only parses options, calls one library function and prints its report; the logic
lives in the module named for its step. The two groups are registered on the root app by the
one table of ``serving.cli``. Heavy imports happen inside the commands so that
``crs-risk --help`` stays fast. Problems a user can fix raise ``CrsRiskError`` (exit code 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

cohort_app = typer.Typer(
    help="Validate, import, synthesise and describe cohorts.", no_args_is_help=True
)
features_app = typer.Typer(help="Build model-ready feature tables.", no_args_is_help=True)


# --- cohort validate (features.validation / features.io) ---------------------------------------
@cohort_app.command("validate")
def validate_command(
    directory: Annotated[
        Path, typer.Argument(help="Cohort folder (patients, measurements, events).")
    ],
) -> None:
    """Validate a cohort folder: exit 0 with a summary, or exit 2 listing every problem."""
    from features.io import validate_folder  # noqa: PLC0415 - keeps crs-risk --help fast

    report = validate_folder(directory)
    typer.echo(report.render())
    if not report.ok:
        raise typer.Exit(2)


# --- cohort import (features.importer) -------------------------------------------------------
@cohort_app.command("import")
def import_command(
    sources: Annotated[list[Path], typer.Argument(help="Source files or folders of the extract.")],
    mapping: Annotated[Path, typer.Option(help="Import mapping (YAML).")],
    out: Annotated[Path, typer.Option(help="Output cohort folder.")],
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
) -> None:
    """Convert a real extract into the cohort contract through a declarative mapping."""
    from features.importer import import_cohort  # noqa: PLC0415 - keeps crs-risk --help fast

    report = import_cohort(mapping, sources, out, fmt=fmt)
    typer.echo(report.render())


# --- cohort synth / describe (features.synth) ------------------------------------------------
@cohort_app.command("synth")
def synth_command(
    out: Annotated[Path, typer.Option(help="Output cohort folder.")],
    n: Annotated[int, typer.Option(help="Number of patients.", min=1)] = 118,
    seed: Annotated[int, typer.Option(help="Random seed (same seed → identical files).")] = 7,
    centers: Annotated[int, typer.Option(help="Number of centres.", min=1)] = 4,
    ari_fraction: Annotated[
        float | None, typer.Option(help="Share of ARI-0001 infusions (default from calibration).")
    ] = None,
    center_shift: Annotated[
        float, typer.Option(help="Scale of centre-to-centre differences (0 = none).")
    ] = 1.0,
    new_center: Annotated[
        bool,
        typer.Option(
            help="Simulate one unseen centre with pre-emptive tocilizumab practice (for external "
            "validation)."
        ),
    ] = False,
    config: Annotated[
        Path | None, typer.Option(help="YAML file overriding calibration parameters.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    preempt_blasts: Annotated[
        float | None,
        typer.Option(
            help="Replace every centre's practice: pre-emptive tocilizumab at grade 1 for "
            "patients with at least this % marrow blasts (0 = everyone, 40 = high burden)."
        ),
    ] = None,
) -> None:
    """Write a synthetic cohort (with truth.csv and manifest.json) calibrated to published
    figures."""
    from features.synth import synth_to_folder  # noqa: PLC0415 - keeps crs-risk --help fast

    report = synth_to_folder(
        out,
        n=n,
        seed=seed,
        centers=centers,
        ari_fraction=ari_fraction,
        center_shift=center_shift,
        new_center=new_center,
        config=config,
        fmt=fmt,
        preempt_blasts=preempt_blasts,
    )
    typer.echo(report.render())


@cohort_app.command("describe")
def describe_command(
    directory: Annotated[Path, typer.Argument(help="Cohort folder.")],
) -> None:
    """Print the cohort's marginals next to the calibration targets and flag misses."""
    from features.synth import describe_folder  # noqa: PLC0415 - keeps crs-risk --help fast

    typer.echo(describe_folder(directory).render())


# --- cohort profile (features.profile) -------------------------------------------------------
@cohort_app.command("profile")
def profile_command(
    directory: Annotated[Path, typer.Argument(help="Cohort folder.")],
    out: Annotated[Path, typer.Option(help="Report file to write (.html, self-contained).")],
    rules: Annotated[
        Path | None, typer.Option(help="YAML overriding flag thresholds (features.profile).")
    ] = None,
) -> None:
    """Profile a cohort (analytes, events, tasks) with data-quality flags; write an HTML report."""
    from features.profile import profile_folder  # noqa: PLC0415 - keeps crs-risk --help fast

    typer.echo(profile_folder(directory, out, rules).render())
    typer.echo(f"report written: {out}")


# --- features build (features.build) ---------------------------------------------------------
@features_app.command("build")
def build_command(
    directory: Annotated[Path, typer.Argument(help="Cohort folder.")],
    task: Annotated[str, typer.Option(help="severe_crs or toci_refractory.")] = "severe_crs",
    landmark: Annotated[
        str,
        typer.Option(
            help="severe_crs: whole hours 0–336 (e.g. 48); toci_refractory: decision or first_toci."
        ),
    ] = "48",
    out: Annotated[Path | None, typer.Option(help="Output table (.parquet or .csv).")] = None,
) -> None:
    """Build the per-patient feature table of one task at one landmark."""
    from features.build import build_to_file  # noqa: PLC0415 - keeps crs-risk --help fast

    report = build_to_file(directory, task=task, landmark=landmark, out=out)
    typer.echo(report.render())
