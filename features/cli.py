"""``crs-risk cohort …`` and ``crs-risk features …``: thin wiring over the features package.

Each command only parses options, calls one library function and prints its report; the logic
lives in the module named for its step. Heavy imports happen inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

cohort_app = typer.Typer(help="Validate, import, synthesise and describe cohorts.", no_args_is_help=True)
features_app = typer.Typer(help="Build model-ready feature tables.", no_args_is_help=True)
