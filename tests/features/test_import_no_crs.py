"""Issue 11 §3: a patient without any CRS information is "no CRS" unless the mapping declares
``no_crs_record: lost_to_follow_up``, so the import report always counts such patients, names the
key and what it did with them, and warns when the mapping left the key unset and some are read
as "no CRS" (the patient-day example: C03 has no CRS grade at all)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from features.importer import import_cohort

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "patient-day"


def _report(tmp_path: Path, **change: object) -> str:
    mapping = yaml.safe_load((EXAMPLE / "mapping.yaml").read_text(encoding="utf-8"))
    mapping.pop("no_crs_record")
    mapping.update(change)
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True), "utf-8")
    return import_cohort(path, [EXAMPLE], tmp_path / "cohort").render()


def test_unset_key_counts_the_patients_read_as_no_crs_and_warns(tmp_path):
    text = _report(tmp_path)
    assert (
        'no CRS information: 1 patients → read as "no CRS" (no_crs_record: nothing, the default)'
        in text
    )
    (warning,) = [line for line in text.splitlines() if line.startswith("warning:")]
    assert "1 patients" in warning and "`no_crs_record: lost_to_follow_up`" in warning
    assert "C03" not in text  # never a patient id


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("nothing", 'no CRS information: 1 patients → read as "no CRS" (no_crs_record: nothing)'),
        (
            "lost_to_follow_up",
            "no CRS information: 1 patients → lost_to_follow_up (no_crs_record: "
            "lost_to_follow_up): outcome unknown, excluded from training and counted",
        ),
    ],
)
def test_a_declared_key_is_named_and_not_warned_about(tmp_path, setting, expected):
    text = _report(tmp_path, no_crs_record=setting)
    assert expected in text
    assert not any(line.startswith("warning:") for line in text.splitlines())


def test_every_patient_with_crs_information_is_still_a_counted_zero(tmp_path):
    mapping = yaml.safe_load((EXAMPLE / "mapping.yaml").read_text(encoding="utf-8"))
    (patients_csv,) = {s["file"] for s in mapping["sources"]}
    rows = (EXAMPLE / patients_csv).read_text(encoding="utf-8").splitlines()
    folder = tmp_path / "extract"
    folder.mkdir()
    (folder / patients_csv).write_text(
        "\n".join(r for r in rows if ",C03," not in f",{r},") + "\n", encoding="utf-8"
    )
    mapping.pop("no_crs_record")
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True), "utf-8")
    text = import_cohort(path, [folder], tmp_path / "cohort").render()
    assert "no CRS information: 0 patients → read as" in text and "warning:" not in text


def test_cohort_validate_counts_patients_without_any_crs_event(tmp_path, cli):
    _report(tmp_path)  # C03 read as "no CRS": no event says anything about its CRS
    result = cli("cohort", "validate", tmp_path / "cohort")
    assert result.exit_code == 0, result.stderr
    assert "patients without any CRS event: 1 (" in result.stdout
    assert "lost to follow-up with no time: 0)" in result.stdout
