"""A profile's suggested ``analyte_values`` fix, pasted into the mapping, fixes the import (issue
17 §4): the profile reports values in the analyte's canonical unit, so the import compares the
declared value with each cell after unit conversion, whatever the source's unit."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import yaml

from features.importer import import_cohort
from features.io import load_cohort
from features.profile import quality_flags

CEILING_PMOL = 2300.0  # ferritin in pmol/L: 1023.587… ng/mL, which 6 digits do not give exactly


def _extract(folder: Path) -> None:
    """20 patients × 6 days of ferritin in pmol/L (distinct values), the top of 6 patients
    written as the assay ceiling 2300 without a qualifier."""
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True)
    (folder / "p.csv").write_text(
        "id,site\n" + "".join(f"P{p},A\n" for p in range(20)), encoding="utf-8"
    )
    rows = ["id,day,ferritin"]
    values = rng.permutation(np.linspace(200.0, 2200.0, 120).round(1))
    for n, v in enumerate(values):
        p, day = divmod(n, 6)
        rows.append(f"P{p},{day},{CEILING_PMOL if p < 6 and day == 3 else v}")
    (folder / "labs.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def _mapping(path: Path, analyte_values: dict | None = None) -> Path:
    labs: dict = {
        "file": "labs.csv",
        "kind": "wide_measurements",
        "id_column": "id",
        "time": {"column": "day", "unit": "days"},
        "measurements": [{"column": "ferritin", "analyte": "ferritin", "unit": "pmol/L"}],
    }
    if analyte_values:
        labs["analyte_values"] = analyte_values
    mapping = {
        "sources": [
            {"file": "p.csv", "kind": "patients", "id_column": "id", "columns": {"center": "site"}},
            labs,
        ]
    }
    path.write_text(yaml.safe_dump(mapping, sort_keys=False), encoding="utf-8")
    return path


def test_the_suggested_ceiling_in_the_canonical_unit_qualifies_the_source_rows(tmp_path):
    _extract(tmp_path / "x")
    import_cohort(_mapping(tmp_path / "m.yaml"), [tmp_path / "x"], tmp_path / "raw")
    flags = [f for f in quality_flags(load_cohort(tmp_path / "raw")) if f.kind == "assay_limit"]
    assert [f.subject for f in flags] == ["ferritin"]
    fix = flags[0].fix
    assert "in ng/mL whatever the source's unit" in fix
    found = re.search(r"analyte_values: \{ferritin: \{ceiling: ([-+0-9.e]+)\}\}", fix)
    assert found is not None, fix
    ceiling = float(found.group(1))  # canonical: 2300 pmol/L → 1023.587… ng/mL

    fixed = _mapping(tmp_path / "fixed.yaml", {"ferritin": {"ceiling": ceiling}})
    report = import_cohort(fixed, [tmp_path / "x"], tmp_path / "fixed")
    m = load_cohort(tmp_path / "fixed").measurements
    assert (m["qualifier"] == ">").sum() == 6
    assert "matched no value" not in report.render()
    assert not [
        f for f in quality_flags(load_cohort(tmp_path / "fixed")) if f.kind == "assay_limit"
    ]
