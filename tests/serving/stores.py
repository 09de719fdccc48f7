"""The registered MLflow store of the serving tests, built by the real `crs-risk demo` command."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CRS_RISK = REPO / ".venv" / "bin" / "crs-risk"


def quickstart_store(directory: Path) -> str:
    """``crs-risk demo --out DIR --null-check 0`` as a real process; return the tracking URI.

    Without the null check (20 refits of the whole procedure at the two tocilizumab landmarks,
    about 40% of the demo's time): no serving test reads its result. The slow wheel test runs
    the demo as ``make demo`` does."""
    subprocess.run(
        [str(CRS_RISK), "demo", "--out", str(directory), "--null-check", "0"],
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    return f"sqlite:///{directory / 'mlflow.db'}"
