"""The registered MLflow store of the serving tests, built by the real `crs-risk demo` command."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CRS_RISK = REPO / ".venv" / "bin" / "crs-risk"


def quickstart_store(directory: Path) -> str:
    """``crs-risk demo --out DIR`` as a real process; return the tracking URI."""
    subprocess.run(
        [str(CRS_RISK), "demo", "--out", str(directory)],
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    return f"sqlite:///{directory / 'mlflow.db'}"
