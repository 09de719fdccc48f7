"""The ``crs-risk`` command line as a whole: version, the sub-commands in data-flow order."""

from __future__ import annotations

from importlib.metadata import version

from tests.conftest import run_cli


def test_version_prints_the_installed_version():
    res = run_cli("--version")
    assert res.exit_code == 0
    assert res.stdout.strip() == f"crs-risk {version('crs-risk')}"


def test_help_lists_every_stage():
    res = run_cli("--help")
    assert res.exit_code == 0
    for command in ("cohort", "features", "train", "compare", "evaluate", "explain", "card"):
        assert command in res.stdout
    assert "serve" in res.stdout and "audit" in res.stdout
