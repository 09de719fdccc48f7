"""The ``crs-risk`` command: one Typer app, its sub-commands registered from one table.

The entry point lives in ``serving`` because serving is the outermost layer (it may import
``features`` and ``training``; they never import it). Every sub-command — a single command
(a function) or a group (a ``typer.Typer``) — is one row of :data:`SUBCOMMANDS`, in data-flow
order, which is also the order ``crs-risk --help`` lists them in. Sub-command modules import
their heavy dependencies inside the commands so that ``crs-risk --help`` stays fast. Every
:class:`features.errors.CrsRiskError` becomes one message on stderr and exit code 2.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperGroup

from features.cli import cohort_app, features_app
from features.errors import CrsRiskError
from serving.command import audit_app, serve_command, token_app
from training.cli import (
    card_command,
    compare_command,
    demo_command,
    evaluate_command,
    explain_command,
    train_command,
)

SubCommand = Callable[..., None] | typer.Typer

SUBCOMMANDS: tuple[tuple[str, SubCommand], ...] = (
    ("cohort", cohort_app),  # validate, import, synth, describe, profile (features)
    ("features", features_app),  # build (features)
    ("train", train_command),  # training.train
    ("compare", compare_command),
    ("evaluate", evaluate_command),
    ("explain", explain_command),
    ("card", card_command),
    ("serve", serve_command),  # the risk service (serving.server)
    ("audit", audit_app),  # verify
    ("token", token_app),  # add
    ("demo", demo_command),  # what `make demo` runs
)
"""Every sub-command of ``crs-risk``, in data-flow order (the order of ``--help``)."""

HIDDEN_ALIASES: dict[str, str] = {"quickstart": "demo"}
"""Older names still accepted, not listed: alias → sub-command."""


class _DataFlowOrder(TyperGroup):
    """Lists the sub-commands in :data:`SUBCOMMANDS` order (Typer lists groups last)."""

    def list_commands(self, ctx: Any) -> list[str]:  # Any: typer's vendored click is private
        order = [name for name, _ in SUBCOMMANDS if name in self.commands]
        return [*order, *(name for name in self.commands if name not in order)]


def _register(app: typer.Typer, name: str, target: SubCommand, hidden: bool = False) -> None:
    """Add one sub-command: a group (``typer.Typer``) or a single command (a function)."""
    if isinstance(target, typer.Typer):
        app.add_typer(target, name=name, hidden=hidden)
    else:
        app.command(name, hidden=hidden)(target)


app = typer.Typer(
    name="crs-risk",
    cls=_DataFlowOrder,
    help="Risk scores for severe and tocilizumab-refractory CRS after CD19 CAR T-cell therapy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version  # noqa: PLC0415 - keeps crs-risk --help fast

        typer.echo(f"crs-risk {version('crs-risk')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Risk scores for severe and tocilizumab-refractory CRS after CD19 CAR T-cell therapy."""


_TARGETS: dict[str, Any] = dict(SUBCOMMANDS)
for _name, _target in SUBCOMMANDS:
    _register(app, _name, _target)
for _alias, _name in HIDDEN_ALIASES.items():
    _register(app, _alias, _TARGETS[_name], hidden=True)


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
