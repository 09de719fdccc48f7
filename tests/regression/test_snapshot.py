"""The behaviour snapshot of issue 15: its comparison, and the pipeline against the record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.regression.snapshot import HERE, differences, snapshot


def test_differences_name_every_changed_path_and_respect_the_tolerance():
    old = {"a": [(1.0).hex(), "x"], "b": {"c": 2}, "gone": 1}
    new = {"a": [(1.0 + 1e-12).hex(), "y"], "b": {"c": 3}, "new": 1}
    exact = differences(old, new)
    assert sorted(exact) == sorted(
        [
            "$.gone: only before",
            "$.new: only after",
            f"$.a[0]: {(1.0).hex()!r} → {(1.0 + 1e-12).hex()!r}",
            "$.a[1]: 'x' → 'y'",
            "$.b.c: 2 → 3",
        ]
    )
    tolerant = differences(old, new, rtol=1e-9)
    assert not any(d.startswith("$.a[0]") for d in tolerant) and len(tolerant) == 4
    far = differences([(1.0).hex()], [(1.001).hex()], rtol=1e-9)
    assert far == [f"$[0]: {(1.0).hex()!r} → {(1.001).hex()!r}"]  # beyond rtol: still a difference
    assert differences([1, 2], [1]) == ["$: 2 items before, 1 after"]
    assert differences(old, old) == []


@pytest.mark.slow
def test_pipeline_outputs_match_the_recorded_snapshot(tmp_path: Path):
    """Feature tables, metrics, registered predictions and service responses as recorded
    (golden.json; re-recorded only when behaviour changes on purpose). Floats within 1e-9:
    CI may run on another CPU; `python -m tests.regression.snapshot --check` is exact."""
    golden = json.loads((HERE / "golden.json").read_text())
    now = json.loads(json.dumps(snapshot(tmp_path), sort_keys=True))
    diffs = differences(golden, now, rtol=1e-9)
    assert not diffs, "\n".join(diffs[:50])
