"""Shared fixtures: the CLI run in process, the real car22 folder, small synthetic cohorts."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CAR22 = REPO.parent / "shared" / "data" / "car22"


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    """Run ``crs-risk ARGS`` in process through the real entry point (exit code, stdout, stderr)."""
    from serving.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def car22_dir() -> Path:
    if not (CAR22 / "outcomes_id_key.csv").exists():
        pytest.skip(f"real car22 cohort not present at {CAR22}")
    return CAR22
