"""Provenance manifest of cohort folders (``features.manifest``)."""

from __future__ import annotations

import json

import pytest

from features.errors import CrsRiskError
from features.io import load_cohort
from features.manifest import (
    MANIFEST_FILE,
    SCHEMA_VERSION,
    import_manifest,
    is_synthetic,
    read_manifest,
    write_manifest,
)
from features.synth import synth_to_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "cohort"
    synth_to_folder(out, n=40, seed=5, centers=2, new_center=True)
    return out


def test_synthetic_folder_carries_its_provenance(folder):
    m = read_manifest(folder)
    assert m is not None and m.source == "synthetic" and m.schema_version == SCHEMA_VERSION
    assert m.created_by.startswith("crs-risk ")
    assert m.synthetic["seed"] == 5 and m.synthetic["n_patients"] == 40
    assert m.synthetic["options"]["new_center"] is True and m.synthetic["parameters"] == {}
    assert m.synthetic["options"]["preempt_blasts"] is None
    assert len(m.synthetic["digest"]) == 64
    assert is_synthetic(folder) and is_synthetic(m)
    # shared without truth.csv it is still recognised as synthetic
    (folder / "truth.csv").rename(folder / "truth.keep")
    try:
        assert is_synthetic(folder)
    finally:
        (folder / "truth.keep").rename(folder / "truth.csv")
    # the loader reads the three tables and ignores the manifest
    assert load_cohort(folder).n_patients == 40


def test_overrides_and_chunked_path_write_the_same_manifest(tmp_path):
    cfg = tmp_path / "cal.yaml"
    cfg.write_text("cohort:\n  p_ari: 0.5\n", encoding="utf-8")
    one = synth_to_folder(tmp_path / "one", n=30, seed=2, config=cfg).out
    two = synth_to_folder(tmp_path / "two", n=30, seed=2, config=cfg, chunked_above=0).out
    a = (one / MANIFEST_FILE).read_bytes()
    assert a == (two / MANIFEST_FILE).read_bytes()
    assert json.loads(a)["synthetic"]["parameters"] == {"cohort": {"p_ari": 0.5}}


def test_import_manifest_and_unknown_folders(tmp_path):
    write_manifest(tmp_path, import_manifest("ab" * 32, "site-a.yaml"))
    m = read_manifest(tmp_path)
    assert m is not None and m.source == "import" and m.mapping_digest == "ab" * 32
    assert not is_synthetic(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert read_manifest(empty) is None and not is_synthetic(empty) and not is_synthetic(None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"schema_version": 1}', "'source' is missing"),
        ('{"source": "scraped"}', "source must be one of"),
        ('{"source": "import", "schema_version": 99}', "'schema_version'"),
        ('{"source": "import", "secret": 1}', "unknown field(s) secret"),
    ],
)
def test_malformed_manifest_is_a_clear_error(tmp_path, text, message):
    (tmp_path / MANIFEST_FILE).write_text(text, encoding="utf-8")
    with pytest.raises(CrsRiskError, match=r"manifest\.json") as err:
        read_manifest(tmp_path)
    assert message in str(err.value)


def test_explanation_report_carries_the_synthetic_banner():
    from training.explain_attribution import PatientExplanation
    from training.explain_report import SYNTHETIC_BANNER, PatientReport

    e = PatientExplanation(0.3, -0.8, -1.5, (), 0.7, 0, "logreg", False)
    args = ("models:/m@champion", "m", "1", "severe_crs", "48h", "logreg", e)
    assert PatientReport(*args, synthetic=True).render().startswith(SYNTHETIC_BANNER)
    assert "SYNTHETIC" not in PatientReport(*args).render()
