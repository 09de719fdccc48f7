"""Fast tests of the block-by-block synthetic folder path (``features.synth.chunked``).

The chunked path is forced at n = 600 with blocks of 200 patients (``chunked_above=0``). To
compare it with the one-shot path, ``simulate``'s measurement-stream size ``CHUNK`` is set to
the same 200 (a size, not a behaviour: both paths run unchanged); with the defaults both use
100,000, which only large n exercises (``bench_synth.py --million``).
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.errors import CohortError, CrsRiskError
from features.io import load_cohort, validate_folder, validate_tables
from features.synth import simulate, synth_to_folder
from features.synth.chunked import CohortBlock, simulate_blocks, write_cohort_blocks
from features.validation import FOR_WRITER

SIM = importlib.import_module("features.synth.simulate")  # the module (the package re-exports
# a function of the same name)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _blocks(n: int = 600, seed: int = 3, block: int = 200) -> Iterator[CohortBlock]:
    for part in simulate_blocks(n, seed, block=block):
        yield CohortBlock(part.patients, part.measurements, part.events, {"truth.csv": part.truth})


@pytest.fixture
def chunk_200(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SIM, "CHUNK", 200)


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Categorical patient ids (whose categories differ per block) as text, for comparison."""
    out = frame.copy()
    out["patient_id"] = out["patient_id"].astype(str)
    return out.reset_index(drop=True)


# --- same rows, same bytes ----------------------------------------------------------------------
def test_blocks_are_simulate_row_for_row(chunk_200):
    whole = simulate(600, seed=3)
    parts = list(simulate_blocks(600, seed=3, block=200))
    assert [len(p.patients) for p in parts] == [200, 200, 200]
    for name in ("patients", "measurements", "events", "truth"):
        joined = pd.concat([_plain(getattr(p, name)) for p in parts], ignore_index=True)
        pd.testing.assert_frame_equal(joined, _plain(getattr(whole, name)))


@pytest.mark.parametrize(("fmt", "write_block"), [("csv", 200), ("parquet", 200), ("csv", 70)])
def test_chunked_folder_is_byte_identical_to_one_shot(tmp_path, chunk_200, fmt, write_block):
    one = synth_to_folder(tmp_path / "one", n=600, seed=3, fmt=fmt)
    chunked = synth_to_folder(
        tmp_path / "chunked",
        n=600,
        seed=3,
        fmt=fmt,
        chunked_above=0,
        block=200,
        write_block=write_block,  # 70: pieces of 70, 70 and 60 patients per simulated block
    )
    assert _digest(tmp_path / "one") == _digest(tmp_path / "chunked")
    assert set(_digest(tmp_path / "one")) == {
        f"patients.{fmt}",
        f"measurements.{fmt}",
        f"events.{fmt}",
        "truth.csv",
        "manifest.json",
    }
    assert one.render().replace(str(one.out), "X") == chunked.render().replace(
        str(chunked.out), "X"
    )


def test_parquet_row_groups_are_cut_like_a_one_shot_write(tmp_path, chunk_200):
    # ~99,000 measurement rows in row groups of 7,000: groups straddle the block borders
    whole = simulate(600, seed=3)
    tables = {"patients": whole.patients, "measurements": whole.measurements}
    tables["events"] = whole.events
    report = validate_tables(tables, "ref", outputs=FOR_WRITER)
    assert report.frames is not None
    ref = tmp_path / "ref.parquet"
    table = pa.Table.from_pandas(report.frames["measurements"], preserve_index=False)
    pq.write_table(table, ref, compression="zstd", row_group_size=7_000)
    write_cohort_blocks(tmp_path / "c", _blocks(), fmt="parquet", row_group=7_000)
    written = tmp_path / "c" / "measurements.parquet"
    assert pq.ParquetFile(written).metadata.num_row_groups == -(-len(table) // 7_000)
    assert written.read_bytes() == ref.read_bytes()


# --- validity and determinism of the forced chunked path ----------------------------------------
def test_forced_chunked_path_validates_and_is_deterministic(tmp_path):
    for name in ("a", "b"):
        report = synth_to_folder(
            tmp_path / name, n=600, seed=5, fmt="csv", chunked_above=0, block=200
        )
        assert report.n_patients == 600 and report.n_measurements > 600 * 50
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert validate_folder(tmp_path / "a").ok
    cohort = load_cohort(tmp_path / "a")
    assert len(cohort.patients) == 600 and cohort.patients["patient_id"].is_unique
    assert set(cohort.measurements["patient_id"]) == set(cohort.patients["patient_id"])
    truth = pd.read_csv(tmp_path / "a" / "truth.csv", dtype={"patient_id": str})
    assert list(truth["patient_id"]) == list(cohort.patients["patient_id"])
    # another seed gives another cohort; blocks of another size another one (streams per block)
    synth_to_folder(tmp_path / "c", n=600, seed=5, chunked_above=0, block=300)
    assert (
        _digest(tmp_path / "c")["measurements.csv"] != _digest(tmp_path / "a")["measurements.csv"]
    )
    assert _digest(tmp_path / "c")["patients.csv"] == _digest(tmp_path / "a")["patients.csv"]


# --- all or nothing -----------------------------------------------------------------------------
def test_invalid_late_block_leaves_no_output(tmp_path):
    def bad() -> Iterator[CohortBlock]:
        for k, blk in enumerate(_blocks()):
            if k == 2:  # the last block: one impossible age (row 11 of the block)
                patients = blk.patients.copy()
                patients.loc[10, "age_years"] = 250.0
                blk = CohortBlock(patients, blk.measurements, blk.events, blk.side)
            yield blk

    out = tmp_path / "new" / "cohort"
    with pytest.raises(CohortError) as err:
        write_cohort_blocks(out, bad(), fmt="parquet")
    text = str(err.value)
    assert "patients.parquet:411" in text and "age_years" in text and "block 3" in text
    assert list(tmp_path.iterdir()) == []  # no folder, no temporary folder, no created parent


def test_identifier_repeated_across_blocks_is_rejected(tmp_path):
    parts = list(_blocks())
    out = tmp_path / "cohort"
    with pytest.raises(CohortError) as err:
        write_cohort_blocks(out, [parts[0], parts[1], parts[0]], fmt="csv")
    text = str(err.value)
    assert "duplicate patient_id" in text and "patients.csv:401" in text
    assert "S3-" not in text  # identifiers are never shown
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_keeps_other_files_and_refuses_mixed_formats(tmp_path):
    out = tmp_path / "cohort"
    out.mkdir()
    (out / "README.txt").write_text("mine", encoding="utf-8")
    totals = write_cohort_blocks(out, _blocks(), fmt="csv")
    assert totals.blocks == 3 and totals.patients == 600
    assert (out / "README.txt").read_text(encoding="utf-8") == "mine"
    assert validate_folder(out).ok
    assert [p.name for p in tmp_path.iterdir()] == ["cohort"]  # temporary folder removed
    with pytest.raises(CrsRiskError, match="ambiguous"):
        write_cohort_blocks(out, _blocks(), fmt="parquet")
    assert not (out / "patients.parquet").exists()
