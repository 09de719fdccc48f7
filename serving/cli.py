"""The ``crs-risk`` command: one Typer app with a sub-command per stage.

The entry point lives in ``serving`` because serving is the outermost layer (it may import
``features`` and ``training``; they never import it). Sub-command modules import their heavy
dependencies inside the commands so that ``crs-risk --help`` stays fast. Every
:class:`features.errors.CrsRiskError` becomes one message on stderr and exit code 2.
"""

from __future__ import annotations

import os
import sys

import typer

from features.cli import cohort_app, features_app
from features.errors import CrsRiskError
from serving.command import audit_app, serve_command, token_app
from training.cli import register_commands as register_training_commands

app = typer.Typer(
    name="crs-risk",
    help="Risk scores for severe and tocilizumab-refractory CRS after CD19 CAR T-cell therapy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"crs-risk {version('crs-risk')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Risk scores for severe and tocilizumab-refractory CRS after CD19 CAR T-cell therapy."""


app.add_typer(cohort_app, name="cohort")
app.add_typer(features_app, name="features")
register_training_commands(app)  # train, compare, evaluate, quickstart, demo, explain, card
app.command("serve")(serve_command)  # the risk service (serving.server)
app.add_typer(audit_app, name="audit")  # crs-risk audit verify
app.add_typer(token_app, name="token")  # crs-risk token add


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, report user errors without a traceback (exit 2)."""
    # MLflow's "Downloading artifacts" progress bars would spill into command output; the
    # project's own progress bars (rich) are unaffected
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        app(args=argv, prog_name="crs-risk")
    except CrsRiskError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
