"""``benchmarks/bench_features.py`` measures the project's simulator unless told otherwise: its
cohort import must work (it once pointed at a moved function and silently fell back to its own
NumPy generator, so the README figure was not what it said), and ``--numpy`` is the only way to
the NumPy generator, named in the output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_features.py"


def _first_line(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--n", "40", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return done.stdout.splitlines()[0]


def test_the_bench_uses_the_simulator_by_default():
    assert _first_line().startswith("cohort: features.synth, 40 patients")


def test_the_numpy_generator_only_when_asked_and_named():
    line = _first_line("--numpy")
    assert "NumPy generator" in line and "--numpy" in line
