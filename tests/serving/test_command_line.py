"""The ``crs-risk`` command line as a whole: version, the sub-commands in data-flow order."""

from __future__ import annotations

from importlib.metadata import version

from tests.conftest import run_cli


def test_version_prints_the_installed_version():
    res = run_cli("--version")
    assert res.exit_code == 0
    assert res.stdout.strip() == f"crs-risk {version('crs-risk')}"


DATA_FLOW = (
    "cohort",
    "features",
    "train",
    "compare",
    "evaluate",
    "explain",
    "card",
    "serve",
    "audit",
    "token",
    "demo",
)


def test_help_lists_every_stage_in_data_flow_order():
    res = run_cli("--help")
    assert res.exit_code == 0
    listed = [
        line.strip("│ ").split()[0]
        for line in res.stdout.splitlines()
        if line.startswith("│ ")
        and line.strip("│ ").split()
        and line.strip("│ ").split()[0] in (*DATA_FLOW, "quickstart")
    ]
    assert tuple(listed) == DATA_FLOW  # quickstart: a hidden alias of demo


def test_quickstart_is_a_hidden_alias_of_demo():
    alias, demo = run_cli("quickstart", "--help"), run_cli("demo", "--help")
    assert alias.exit_code == demo.exit_code == 0
    assert "crs-risk quickstart" in alias.stdout and "--out" in alias.stdout
    assert (
        alias.stdout.split("Usage:")[1].split("\n", 2)[2]
        == demo.stdout.split("Usage:")[1].split("\n", 2)[2]
    )  # the same help below the usage line
