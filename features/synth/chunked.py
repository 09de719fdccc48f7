"""Large synthetic cohort folders, one patient block at a time: simulate → validate → append.

``simulate`` keeps every measurement row in memory and ``features.io.write_cohort`` validates
the whole frames (≈2.7 GB per 100,000 patients on top of the ≈1.9 GB of the frames), so the
one-shot folder path cannot reach the issue's n = 1,000,000 on a 24 GB machine. Here:

- **simulate**: the patient-level stages (characteristics, latent state, CRS course, treatment,
  toxicity) run once over all n exactly as in :func:`features.synth.simulate` (a few hundred MB
  at n = 10⁶). Blocks of ``block`` patients are then turned into frames; a block's measurement
  rows come from the same ``SeedSequence([seed, 1])`` child that ``simulate`` uses for those
  patients (one stream per :data:`~features.synth.simulate.CHUNK` patients). With the default
  ``block = CHUNK`` the rows are therefore exactly those of ``simulate(n, seed)``, and the files
  are byte-identical to the one-shot path: CSV rows are appended with the same Arrow options,
  and Parquet row groups are cut at the same multiples of pyarrow's default row-group length
  (:data:`ROW_GROUP`) as ``pq.write_table`` cuts them. Blocking depends only on n, never on
  memory. (One exception: should a block ever need quoted CSV cells while others did not, only
  that block's cells are quoted; the file stays valid CSV. Synthetic values come from fixed
  vocabularies and never need quoting.)
- **validate**: every block goes through :func:`features.validation.validate_tables`. Patient
  identifiers are disjoint across blocks, so the cross-table rules (every measurement and event
  names a patient of its own block) hold per block; one global check adds that no identifier
  repeats across blocks. Problem rows are shifted to rows of the whole table.
- **write**: files are appended in a hidden temporary folder beside the output and moved into
  place only after the last block has validated and been written, so a failure in any block
  leaves no output (and no partial files).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.errors import CohortError, CrsRiskError
from features.io import FORMATS, _arrow_table, _csv_header, _write_csv_rows, refuse_mixed_formats
from features.schema import TABLES
from features.synth.events import events_frame
from features.synth.params import SynthParams
from features.synth.simulate import (
    CHUNK,
    SyntheticCohort,
    _assemble_measurements,
    _patient_frame,
    _truth,
    measurement_chunks,
    patient_stages,
)
from features.validation import (
    FOR_WRITER,
    MAX_LISTED,
    Problem,
    ValidationReport,
    validate_tables,
)

__all__ = [
    "ROW_GROUP",
    "WRITE_BLOCK",
    "BlockTotals",
    "CohortBlock",
    "simulate_blocks",
    "split_cohort",
    "write_cohort_blocks",
]

WRITE_BLOCK = 25_000
"""Patients validated and written at a time (≈1 GB of validation at the default rates)."""

ROW_GROUP = 1024 * 1024
"""Rows per Parquet row group: pyarrow's default ``max_row_group_length`` (``pq.write_table``)."""


# --- simulate -----------------------------------------------------------------------------------
def _take(state: Mapping[str, Any], sl: slice, n: int) -> dict[str, Any]:
    """The per-patient arrays of one stage (nested dicts too) restricted to the patients ``sl``."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, Mapping):
            out[key] = _take(value, sl, n)
        else:
            arr = np.asarray(value)
            if arr.ndim == 0 or arr.shape[0] != n:  # a new stage output that is not per patient
                raise AssertionError(f"stage output {key!r} is not one value per patient")
            out[key] = arr[sl]
    return out


def simulate_blocks(
    n: int,
    seed: int = 7,
    params: SynthParams | None = None,
    *,
    centers: int = 4,
    center_shift: float = 1.0,
    new_center: bool = False,
    ari_fraction: float | None = None,
    preempt_blasts: float | None = None,
    block: int = CHUNK,
) -> Iterator[SyntheticCohort]:
    """``simulate(n, seed, …)`` as consecutive blocks of ``block`` patients (the last one shorter).

    Same arguments as :func:`features.synth.simulate`. With ``block == CHUNK`` (the default) the
    blocks concatenated are exactly ``simulate``'s frames (categorical ``patient_id`` categories
    are the block's own identifiers); another ``block`` also changes the measurement streams
    (one per block), i.e. it equals ``simulate`` run with ``CHUNK = block``.
    """
    if block < 1:
        raise CrsRiskError(f"block size must be at least 1, got {block}")
    st = patient_stages(
        n,
        seed,
        params,
        centers=centers,
        center_shift=center_shift,
        new_center=new_center,
        ari_fraction=ari_fraction,
        preempt_blasts=preempt_blasts,
    )
    p, cen, ids = st.params, st.centres, st.ids
    pt, lat, crs, tr, tox = st.patients, st.latent, st.course, st.treatment, st.toxicity
    for sl, chunk in measurement_chunks(st, block):
        chunk["pid"] -= np.int32(sl.start)  # codes into this block's identifiers
        block_ids = ids[sl]
        measurements = _assemble_measurements([chunk], block_ids)
        bpt, blat = _take(pt, sl, n), _take(lat, sl, n)
        bcrs, btr, btox = _take(crs, sl, n), _take(tr, sl, n), _take(tox, sl, n)
        cohort = SyntheticCohort(
            patients=_patient_frame(bpt, cen, block_ids),
            measurements=measurements,
            events=events_frame(bpt, bcrs, btr, btox, p, block_ids),
            truth=_truth(
                dataclasses.replace(
                    st,
                    patients=bpt,
                    latent=blat,
                    course=bcrs,
                    treatment=btr,
                    toxicity=btox,
                    ids=block_ids,
                )
            ),
            params=p,
        )
        del chunk, measurements, bpt, blat, bcrs, btr, btox
        yield cohort
        del cohort  # hold no block while the next one is simulated


def split_cohort(part: SyntheticCohort, size: int) -> Iterator[SyntheticCohort]:
    """Consecutive pieces of ``size`` patients of a block, each with all its rows (views).

    Validation needs ≈30× the memory of a block's frames, so blocks are validated and written
    in pieces smaller than the simulated block; rows stay in order, so the files do not change.
    Relies on the simulator's row order: measurements and events sorted by patient.
    """
    if size < 1:
        raise CrsRiskError(f"write block size must be at least 1, got {size}")
    n = len(part.patients)
    cuts = np.arange(0, n + size, size).clip(max=n)
    rows = {}
    for name in ("measurements", "events"):
        codes = np.asarray(getattr(part, name)["patient_id"].cat.codes)
        if codes.size > 1 and (np.diff(codes) < 0).any():  # pragma: no cover - simulator order
            raise AssertionError(f"simulated {name} are not sorted by patient")
        rows[name] = np.searchsorted(codes, cuts, side="left")
    for i in range(len(cuts) - 1):
        a, b = int(cuts[i]), int(cuts[i + 1])
        if a == b:
            continue
        ma, mb = int(rows["measurements"][i]), int(rows["measurements"][i + 1])
        ea, eb = int(rows["events"][i]), int(rows["events"][i + 1])
        yield SyntheticCohort(
            patients=part.patients.iloc[a:b],
            measurements=part.measurements.iloc[ma:mb],
            events=part.events.iloc[ea:eb],
            truth=part.truth.iloc[a:b],
            params=part.params,
        )


# --- appending writers --------------------------------------------------------------------------
class _CsvAppender:
    """One CSV written block by block: the header once, then rows as ``features.io`` writes them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh: BinaryIO | None = None

    def append(self, frame: pd.DataFrame) -> None:
        table = _arrow_table(frame, parquet=False)
        if self.fh is None:
            self.fh = self.path.open("wb")
            self.fh.write(_csv_header(table.column_names))
        _write_csv_rows(table, self.fh)

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


class _ParquetAppender:
    """One Parquet file written block by block, with the row groups ``pq.write_table`` makes.

    Rows are carried over between blocks so that every row group but the last holds exactly
    ``group`` rows, each written from one contiguous Arrow chunk (as a one-shot write slices
    its single-chunk columns); hence the bytes equal those of writing the concatenated table.
    """

    def __init__(self, path: Path, group: int = ROW_GROUP) -> None:
        self.path = path
        self.group = group
        self.writer: pq.ParquetWriter | None = None
        self.pending: pa.Table | None = None
        self.groups = 0

    def append(self, frame: pd.DataFrame) -> None:
        table = _arrow_table(frame, parquet=True)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        elif not table.schema.equals(self.writer.schema, check_metadata=False):
            table = table.cast(self.writer.schema)
        if self.pending is not None:
            table = pa.concat_tables([self.pending, table])
        start = 0
        while table.num_rows - start >= self.group:
            self._write(table.slice(start, self.group))
            start += self.group
        # a copy of the remainder, so that the block's own buffers are released now
        self.pending = table.slice(start).combine_chunks()

    def _write(self, rows: pa.Table) -> None:
        assert self.writer is not None
        self.writer.write_table(rows.combine_chunks(), row_group_size=self.group)
        self.groups += 1

    def close(self) -> None:
        if self.writer is None:
            return
        if self.pending is not None and (self.pending.num_rows or not self.groups):
            self._write(self.pending)
        self.pending = None
        self.writer.close()
        self.writer = None


# --- validate and write -------------------------------------------------------------------------
@dataclass(frozen=True)
class CohortBlock:
    """One block of patients with all their rows; ``side`` = CSV files written beside the tables."""

    patients: pd.DataFrame
    measurements: pd.DataFrame
    events: pd.DataFrame
    side: Mapping[str, pd.DataFrame] = field(default_factory=dict)


@dataclass(frozen=True)
class BlockTotals:
    """Rows written per table over all blocks."""

    blocks: int
    patients: int
    measurements: int
    events: int


def _shift(problems: Iterable[Problem], offsets: Mapping[str, int]) -> list[Problem]:
    """Problems with block rows turned into rows of the whole file."""
    out = []
    for p in problems:
        row = p.row if p.row is None else p.row + offsets.get(p.file, 0)
        out.append(Problem(p.file, row, p.column, p.kind, p.rule, p.severity, p.more))
    return out


def _block_error(
    source: str, k: int, problems: list[Problem], first: int, last: int
) -> CohortError:
    report = ValidationReport(source, problems)
    note = (
        f"(found in patient block {k + 1}, patients {first:,}–{last:,}; rows are rows of the "
        "whole table; row numbers inside a rule's parentheses count from the block's first row)"
    )
    return CohortError(f"{report.render()}\n{note}", report.errors)


def _repeated(file: str, rows: np.ndarray, base: int) -> list[Problem]:
    """Problems for block rows whose identifier an earlier block already used (never shown)."""
    rule = "duplicate patient_id: the same identifier is in an earlier block"
    problems = [
        Problem(file, base + int(i) + 1, "patient_id", None, rule) for i in rows[:MAX_LISTED]
    ]
    if rows.size > MAX_LISTED:
        problems.append(
            Problem(file, None, "patient_id", None, rule, more=int(rows.size - MAX_LISTED))
        )
    return problems


def _append(writer: _CsvAppender | _ParquetAppender, frame: pd.DataFrame, out: Path) -> None:
    try:
        writer.append(frame)
    except pa.ArrowException as exc:  # e.g. a block whose column types differ from the first
        raise CrsRiskError(f"cannot write the cohort to {out}: {type(exc).__name__}") from exc


def _close(writer: _CsvAppender | _ParquetAppender, out: Path) -> None:
    try:
        writer.close()
    except pa.ArrowException as exc:
        raise CrsRiskError(f"cannot write the cohort to {out}: {type(exc).__name__}") from exc


def _created_dirs(path: Path) -> list[Path]:
    """Folders that creating ``path`` (and parents) would add, outermost first."""
    missing = []
    for p in (path, *path.parents):
        if p.exists():
            break
        missing.append(p)
    return missing[::-1]


def write_cohort_blocks(
    out_dir: str | os.PathLike[str],
    blocks: Iterable[CohortBlock],
    fmt: str = "csv",
    *,
    row_group: int = ROW_GROUP,
) -> BlockTotals:
    """Validate each block and append it to the cohort folder; all or nothing.

    Each block is checked by :func:`~features.validation.validate_tables` (blocks must hold
    disjoint patients with all their rows) plus a check that no ``patient_id`` repeats an
    earlier block's. Files go to a hidden temporary folder beside ``out_dir`` and are moved into
    place after the last block; on any problem (:class:`CohortError` for invalid data,
    :class:`CrsRiskError` otherwise) nothing is written. Table bytes equal those of
    :func:`features.io.write_cohort` on the concatenated blocks (see the module docstring).
    """
    if fmt not in FORMATS:
        raise CrsRiskError(f"unknown format {fmt!r}: use csv or parquet")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CrsRiskError(f"{out} exists and is not a folder")
    refuse_mixed_formats(out, fmt)
    files = {name: f"{name}.{fmt}" for name in TABLES}
    created = _created_dirs(out.parent)
    tmp = out.parent / f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.partial"
    writers: dict[str, _CsvAppender | _ParquetAppender] = {}
    offsets: dict[str, int] = {}  # file -> input rows of the earlier blocks (problem rows)
    written: dict[str, int] = {}  # table -> rows written
    seen: set[str] = set()
    n_blocks = 0
    done = False
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        for k, blk in enumerate(blocks):
            n_blocks += 1
            tables = {"patients": blk.patients, "measurements": blk.measurements}
            tables["events"] = blk.events
            report = validate_tables(tables, out.name, files=files, outputs=FOR_WRITER)
            first = offsets.get(files["patients"], 0) + 1
            last = first + len(blk.patients) - 1
            if not report.ok or report.frames is None:
                raise _block_error(out.name, k, _shift(report.problems, offsets), first, last)
            frames = report.frames
            del report  # the canonical cohort is not needed here: free it before writing
            ids = frames["patients"]["patient_id"].to_numpy(dtype=object)
            again = np.flatnonzero([i in seen for i in ids])
            if again.size:
                raise _block_error(
                    out.name, k, _repeated(files["patients"], again, first - 1), first, last
                )
            seen.update(ids.tolist())
            for name in TABLES:
                file = files[name]
                if file not in writers:
                    writers[file] = (
                        _ParquetAppender(tmp / file, row_group)
                        if fmt == "parquet"
                        else _CsvAppender(tmp / file)
                    )
                _append(writers[file], frames[name], out)
                offsets[file] = offsets.get(file, 0) + len(tables[name])
                written[name] = written.get(name, 0) + len(frames[name])
            for file, frame in blk.side.items():
                if Path(file).suffix != ".csv" or Path(file).stem in TABLES or "/" in file:
                    raise CrsRiskError(f"side file name {file!r} must be a CSV beside the tables")
                if file not in writers:
                    writers[file] = _CsvAppender(tmp / file)
                _append(writers[file], frame, out)
            del frames, tables, blk
        if n_blocks == 0:
            raise CrsRiskError("no patient blocks to write")
        for w in writers.values():
            _close(w, out)
        if not out.exists():
            os.replace(tmp, out)  # one rename: the folder appears complete
        else:
            for file in writers:
                os.replace(tmp / file, out / file)
        done = True
    except OSError as exc:
        raise CrsRiskError(f"cannot write the cohort to {out}: {exc.strerror or exc}") from exc
    finally:
        for w in writers.values():
            with contextlib.suppress(Exception):
                w.close()
        shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            for d in reversed(created):
                with contextlib.suppress(OSError):
                    d.rmdir()
    return BlockTotals(
        blocks=n_blocks,
        patients=written.get("patients", 0),
        measurements=written.get("measurements", 0),
        events=written.get("events", 0),
    )
