"""Shared fixtures: the CLI run in process, the real car22 folder, small synthetic cohorts."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


CHROMIUM = Path("/usr/bin/chromium")


@contextlib.contextmanager
def offline_page(file: Path) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A page of Debian's headless Chromium on the local ``file``: every other request is
    blocked. Yields ``(page, requested, blocked)`` (URLs); the browser closes on exit."""
    from playwright.sync_api import sync_playwright

    own = file.resolve().as_uri()
    requested: list[str] = []
    blocked: list[str] = []

    def route(r: Any) -> None:
        requested.append(r.request.url)
        if r.request.url == own:
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            page.route("**/*", route)
            page.goto(own, wait_until="load")
            yield page, requested, blocked
        finally:
            browser.close()
