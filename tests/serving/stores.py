"""The registered MLflow store of the serving tests, built by the real `crs-risk train` command."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CRS_RISK = REPO / ".venv" / "bin" / "crs-risk"
STORE_EXPERIMENT = Path(__file__).with_name("store.yaml")


def quickstart_store(directory: Path) -> str:
    """``crs-risk train tests/serving/store.yaml`` into ``DIR/mlflow.db`` as a real process;
    return the tracking URI.

    The quickstart's cohort, tasks and landmarks with three candidates per landmark and no
    null check (``store.yaml`` says why): about a third of ``crs-risk demo``'s time, which the
    slow wheel test runs as ``make demo`` does.
    """
    directory.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    subprocess.run(
        [str(CRS_RISK), "train", str(STORE_EXPERIMENT), "--tracking-uri", uri],
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=directory,
    )
    return uri
