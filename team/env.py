"""Read ``team.env`` (written by ``team/up.sh``) into a dict: tests and benchmarks use it."""

from __future__ import annotations

import re
from pathlib import Path


def read_env_file(path: Path) -> dict[str, str]:
    """``export KEY=VALUE`` lines of ``team.env`` as ``{KEY: VALUE}``."""
    out = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"\s*(?:export\s+)?([A-Z_]+)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out
