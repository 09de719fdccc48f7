"""``crs-risk train | compare | evaluate | explain | card | demo``: thin wiring over ``training``.

Plain functions, registered on the root app by the one table of ``serving.cli``. Heavy imports
(MLflow, scikit-learn, XGBoost) happen inside the commands so ``crs-risk --help`` stays fast.
User-fixable problems raise ``CrsRiskError`` → one line on stderr, exit code 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from features.errors import CrsRiskError
from training.presets import experiment_path, preset_names, preset_path

DEMO_PRESET = "quickstart"  # package data (training/presets), so an installed wheel has it
QUICKSTART_N = 118  # the seed cohort's size (Galán-Gómez 2025)
QUICKSTART_SEED = 7
# compare, card and explain write under one output folder (never straight into the cwd)
OUTPUT_ROOT = Path(os.environ.get("CRS_RISK_OUTPUT", "crs-risk-output"))

TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db).",
    ),
]


def train_command(
    experiment: Annotated[
        Path,
        typer.Argument(
            help=f"Experiment file (YAML), or a preset's name ({', '.join(preset_names())})."
        ),
    ],
    cohort: Annotated[
        Path | None, typer.Option(help="Cohort folder (overrides the experiment's cohort).")
    ] = None,
    tracking_uri: TrackingUri = None,
    jobs: Annotated[int, typer.Option(help="Parallel outer folds (processes).", min=1)] = 1,
    register: Annotated[
        bool, typer.Option("--register/--no-register", help="Register champions.")
    ] = True,
    null_check: Annotated[
        int | None,
        typer.Option(
            "--null-check",
            help="Refit the whole procedure on K outcome permutations per landmark and log the "
            "null distribution of the champion AUROC (default: the experiment's, else 10 below "
            "100 eligible patients, 0 above).",
            min=0,
        ),
    ] = None,
    promote: Annotated[
        bool,
        typer.Option(
            "--promote",
            help="Move @champion to the new versions even when the promotion rule would not "
            "(another cohort, a synthetic run over a real-cohort champion).",
        ),
    ] = False,
) -> None:
    """Train and validate every model of an experiment, log to MLflow, register champions."""
    from training.train import train  # noqa: PLC0415 - keeps crs-risk --help fast

    result = train(
        experiment_path(experiment),
        cohort=cohort,
        tracking_uri=tracking_uri,
        n_jobs=jobs,
        register=None if register else False,
        null_check=null_check,
        promote=promote,
    )
    typer.echo(result.render())


def compare_command(
    experiment: Annotated[
        str, typer.Option(help="MLflow experiment: crs-severe or crs-toci-refractory.")
    ] = "crs-severe",
    metric: Annotated[str, typer.Option(help="Metric to rank by.")] = "auroc",
    out: Annotated[
        Path, typer.Option(help="Folder for the CSV and HTML leaderboard.")
    ] = OUTPUT_ROOT / "compare",
    experiment_file: Annotated[
        str | None,
        typer.Option(help="Only runs of this experiment file (default: the latest run's)."),
    ] = None,
    cohort_digest: Annotated[
        str | None, typer.Option(help="Only runs on this cohort (default: the latest run's).")
    ] = None,
    all_runs: Annotated[
        bool, typer.Option("--all", help="Every run, not only the latest per model/landmark.")
    ] = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Leaderboard: metric with CI per model and landmark, oracle gap, differing params."""
    from training.compare import format_leaderboard, leaderboard, write_leaderboard  # noqa: PLC0415 - keeps crs-risk --help fast

    board = leaderboard(
        experiment,
        tracking_uri=tracking_uri,
        metric=metric,
        include_all=all_runs,
        experiment_file=experiment_file,
        cohort_digest=cohort_digest,
    )
    typer.echo(format_leaderboard(board, metric))
    csv_path, html_path = write_leaderboard(board, out, experiment)
    typer.echo(f"written {csv_path} and {html_path}")


def evaluate_command(
    model: Annotated[
        str, typer.Option(help="Registered model, e.g. models:/crs-severe-48h@champion.")
    ],
    cohort: Annotated[Path, typer.Option(help="Cohort folder to validate on.")],
    tracking_uri: TrackingUri = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap replicates for CIs.", min=0)] = 500,
) -> None:
    """External validation of a registered model on a new cohort (logged as an evaluation run)."""
    from training.evaluate import evaluate  # noqa: PLC0415 - keeps crs-risk --help fast

    typer.echo(evaluate(model, cohort, tracking_uri=tracking_uri, n_boot=bootstrap).render())


def run_demo(
    out: Path, tracking_uri: str | None, jobs: int = 1, null_check: int | None = None
) -> str:
    """Synthesise the seed-sized cohort into OUT/cohort, train the quickstart preset, return
    the report. ``null_check``: permutations per landmark (None: the preset's rule)."""
    from features.synth import synth_to_folder  # noqa: PLC0415 - keeps crs-risk --help fast
    from training.train import train  # noqa: PLC0415 - keeps crs-risk --help fast

    preset = preset_path(DEMO_PRESET)
    if preset is None:  # package data: missing only from a broken installation
        raise CrsRiskError(f"the {DEMO_PRESET} preset is missing from training/presets")
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cohort_dir = out / "cohort"
    synth_to_folder(cohort_dir, n=QUICKSTART_N, seed=QUICKSTART_SEED)
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{out / 'mlflow.db'}"
    result = train(preset, cohort=cohort_dir, tracking_uri=uri, n_jobs=jobs, null_check=null_check)
    lines = [
        result.render(),
        "",
        f"Cohort: {cohort_dir} (synthetic, n={QUICKSTART_N}, seed={QUICKSTART_SEED})",
        f"MLflow store: {uri}",
        f"Open the MLflow UI:  MLFLOW_TRACKING_URI={uri} make ui   → http://127.0.0.1:5000",
        f"Start the service:   crs-risk serve --tracking-uri {uri}   → http://127.0.0.1:8000",
        f"Compare models:      crs-risk compare --experiment crs-severe --tracking-uri {uri}",
    ]
    return "\n".join(lines)


def demo_command(
    out: Annotated[Path, typer.Option(help="Output folder (cohort, MLflow store).")] = Path("demo"),
    tracking_uri: TrackingUri = None,
    jobs: Annotated[int, typer.Option(help="Parallel outer folds (processes).", min=1)] = 1,
    null_check: Annotated[
        int | None,
        typer.Option(
            "--null-check",
            help="Outcome permutations per landmark for the null check (default: the preset's "
            "rule, 10 below 100 eligible patients; 0 switches it off).",
            min=0,
        ),
    ] = None,
) -> None:
    """What `make demo` runs: synthesise n=118, train the quickstart preset, register champions.

    The cohort goes to OUT/cohort and the store to sqlite:///OUT/mlflow.db (unless given).
    """
    typer.echo(run_demo(out, tracking_uri, jobs, null_check))


def explain_command(
    model: Annotated[
        str, typer.Option(help="Registered model, e.g. models:/crs-severe-48h@champion.")
    ],
    cohort: Annotated[Path, typer.Option(help="Cohort folder holding the patient.")],
    patient: Annotated[str, typer.Option(help="The patient's identifier in the cohort.")],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write the report: FILE.html (page) or FILE.png (waterfall); a bare file name "
            "goes under crs-risk-output/explain/."
        ),
    ] = None,
    top: Annotated[int, typer.Option(help="Variables shown before 'other'.", min=1)] = 8,
    tracking_uri: TrackingUri = None,
) -> None:
    """One patient's risk and its reasons in clinical language (written locally, never logged)."""
    from training.explain_report import explain_patient  # noqa: PLC0415 - keeps crs-risk --help fast

    if out is not None and not out.is_absolute() and out.parent == Path("."):
        out = OUTPUT_ROOT / "explain" / out
        out.parent.mkdir(parents=True, exist_ok=True)
    report = explain_patient(model, cohort, patient, out=out, tracking_uri=tracking_uri, top=top)
    typer.echo(report.render())


def card_command(
    model: Annotated[
        str, typer.Argument(help="Registered model, e.g. models:/crs-severe-48h@champion.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for model_card.md/.html (default crs-risk-output/cards/NAME-vN)."
        ),
    ] = None,
    rebuild: Annotated[
        bool, typer.Option(help="Build from the run instead of the logged card.")
    ] = False,
    log: Annotated[bool, typer.Option(help="Log a card built now with the model version.")] = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """The model card (TRIPOD+AI) of a registered model version, as Markdown and HTML."""
    from training.card import fetch_model_card  # noqa: PLC0415 - keeps crs-risk --help fast

    result = fetch_model_card(
        model,
        out=out,
        tracking_uri=tracking_uri,
        rebuild=rebuild,
        log=log,
        default_root=OUTPUT_ROOT / "cards",
    )
    typer.echo(result.render())
