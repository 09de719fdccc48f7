"""The built wheel works on its own: ``crs-risk demo`` from an installed wheel, outside the repo.

Builds the sdist and, from it, the wheel (``uv build``: the wheel is built from the unpacked
sdist, so a stale ``build/`` folder in the working tree cannot leak into it), installs the wheel
into a fresh virtual environment (the package index only; the uv cache makes it fast) and runs
``crs-risk demo --out DIR`` from a folder outside the repository: the experiment preset must
come from the installed package (``training/presets``, package data), not the source tree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd[:3]} failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done.stdout


def test_wheel_runs_the_demo_outside_the_repository(tmp_path: Path):
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "VIRTUAL_ENV", "PYTHONPATH", "CRS_RISK_"))
    }
    dist = tmp_path / "dist"
    _run([uv, "build", "--out-dir", str(dist), str(REPO)], tmp_path, env, 600)
    wheels = list(dist.glob("crs_risk-*.whl"))
    assert len(wheels) == 1, wheels
    venv = tmp_path / "venv"
    _run([uv, "venv", "--quiet", "--python", "python3.11", str(venv)], tmp_path, env, 120)
    py = venv / "bin" / "python"
    _run([uv, "pip", "install", "--quiet", "--python", str(py), str(wheels[0])], tmp_path, env, 900)
    # the installed package, not the source tree, is what runs
    where = _run(
        [str(py), "-c", "import training.presets as p; print(p.PRESETS_DIR)"], tmp_path, env, 60
    )
    assert Path(where.strip()).is_relative_to(venv), where
    work = tmp_path / "elsewhere"
    work.mkdir()
    out = _run([str(venv / "bin" / "crs-risk"), "demo", "--out", "demo"], work, env, 1800)
    champions = re.findall(r"registered (\S+) v\d+ @champion", out)
    assert champions and all(name.startswith("crs-") for name in champions), out[-2000:]
    assert (work / "demo" / "mlflow.db").is_file()
    assert (work / "demo" / "cohort").is_dir()
