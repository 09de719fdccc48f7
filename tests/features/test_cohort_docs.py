"""``docs/cohort-format.md`` is generated from the declarations and must be up to date."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from features.docs import render_cohort_format
from features.schema import EVENTS, SCHEMA
from features.vocabulary import ANALYTES

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "cohort-format.md"


def test_committed_doc_matches_the_declarations():
    assert DOC.exists(), "run: python -m features.docs > docs/cohort-format.md"
    assert DOC.read_text(encoding="utf-8") == render_cohort_format(), (
        "docs/cohort-format.md is stale: run python -m features.docs > docs/cohort-format.md"
    )


def test_doc_lists_every_declaration():
    text = render_cohort_format()
    for table in SCHEMA.values():
        assert f"### `{table.name}`" in text
        for column in table.columns:
            assert f"| `{column.name}` | {column.dtype} |" in text
    for event in EVENTS:
        assert f"| `{event}` |" in text
    for a in ANALYTES.values():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{a.key}` |"))
        assert a.canonical_unit in row
        for unit in a.units:
            assert unit in row
        if a.loinc:
            assert a.loinc in row
    assert "°F × 0.555556 − 17.7778" in text
    for topic in ("qualifier", "limit of detection", "unknown", "Parquet", "row 1"):
        assert topic.lower() in text.lower()


def test_module_entry_point_prints_the_doc():
    out = subprocess.run(
        [sys.executable, "-m", "features.docs"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == render_cohort_format()
