"""Cohort folders in and out: the only door from files into the pipeline.

A cohort folder holds ``patients``, ``measurements`` and ``events``, each as ``NAME.csv`` or
``NAME.parquet`` (formats may be mixed across tables). A table present in *both* formats is an
error, never a silent choice: one of the two copies is stale and we cannot know which. Other
files in the folder (``truth.csv``, a README …) are ignored.

CSV is read with the pyarrow engine with every column as text, so ``patient_id`` stays text
(``007`` is not ``7``) and a bad number becomes a reported cell instead of a failed read; the
validator then parses each column in its declared type. Parquet keeps its stored types, except
that an integer ``patient_id`` is turned into text. The contract's text columns (identifiers,
analytes, units, events, codes) are read dictionary-encoded, i.e. as pandas categoricals: a
handful of distinct values over millions of rows (≈15% less memory and time when loading).
``load_cohort`` reads, validates (``features.validation``), converts every measurement to its
analyte's canonical unit and returns the canonical :class:`~features.cohort.Cohort`; any problem
raises :class:`CohortError`.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq

from features.cohort import Cohort
from features.errors import CohortError, CrsRiskError
from features.schema import FILE_SUFFIXES, SCHEMA, TABLES
from features.validation import (
    FOR_WRITER,
    MAX_LISTED,
    NULL_TOKENS,
    Problem,
    ValidationReport,
    validate_tables,
)

__all__ = [
    "Problem",
    "ValidationReport",
    "load_cohort",
    "read_tables",
    "validate_folder",
    "validate_tables",
    "write_cohort",
]

FORMATS: tuple[str, ...] = ("csv", "parquet")
_MAX_COLUMNS = 4096  # a generous cap on columns typed as text when reading CSV


_TEXT_NAMES = frozenset(
    c.name for t in SCHEMA.values() for c in t.columns if c.dtype in ("string", "category")
)


def _is_text_column(name: str) -> bool:
    """A contract text column (ids, codes, analytes, units …), named as the validator reads it."""
    return str(name).lstrip("\ufeff").strip() in _TEXT_NAMES


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _is_utf8(path: Path) -> bool:
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _read_csv(path: Path) -> tuple[pd.DataFrame | None, list[Problem]]:
    """Read a CSV with every column as text; ragged rows are reported with their row number."""
    file = path.name
    ragged: list[tuple[int | None, int, int]] = []

    def on_invalid_row(row: pv.InvalidRow) -> str:
        ragged.append((row.number, row.expected_columns, row.actual_columns))
        return "skip"

    def read(ragged_rows: bool) -> pa.Table:
        # The header is read as the first data row so that its names never need guessing and
        # every column can be typed as text by position (f0, f1, …). Row numbers of ragged rows
        # are only known to the single-threaded parser, so that one runs only after a failure.
        return pv.read_csv(
            path,
            read_options=pv.ReadOptions(
                autogenerate_column_names=True, use_threads=not ragged_rows
            ),
            parse_options=pv.ParseOptions(
                invalid_row_handler=on_invalid_row if ragged_rows else None
            ),
            convert_options=pv.ConvertOptions(
                column_types={f"f{i}": pa.string() for i in range(_MAX_COLUMNS)},
                null_values=list(NULL_TOKENS),
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )

    def problem(rule: str) -> tuple[None, list[Problem]]:
        return None, [Problem(file, None, None, None, rule)]

    try:
        table = read(ragged_rows=False)
    except pa.ArrowInvalid as exc:
        # pyarrow messages may quote row content (patient identifiers): never pass them on.
        text = str(exc)
        if "Empty CSV file" in text:
            return problem("empty file: no header line")
        if "UTF8" in text or "UTF-8" in text or not _is_utf8(path):
            return problem("not UTF-8 text; save it as UTF-8 CSV")
        if "Expected" not in text or "columns" not in text:
            return problem("not a readable CSV file")
        try:
            read(ragged_rows=True)
        except (OSError, pa.ArrowException):
            return problem("not a readable CSV file")
        if not ragged:
            return problem("not a readable CSV file")
        problems = [
            Problem(
                file,
                None if number is None else number - 1,
                None,
                None,
                f"row has {actual} field(s), the header has {expected}",
            )
            for number, expected, actual in ragged[:MAX_LISTED]
        ]
        if len(ragged) > MAX_LISTED:
            rule = "row field count differs from the header"
            problems.append(
                Problem(file, None, None, None, rule, "error", len(ragged) - MAX_LISTED)
            )
        return None, problems
    except (OSError, pa.ArrowException):
        return problem("could not be read as CSV")
    if table.num_rows == 0:
        return None, [Problem(file, None, None, None, "empty file: no header line")]
    header = table.slice(0, 1).to_pylist()[0]
    names = [("" if v is None else v) for v in header.values()]
    body = table.slice(1)
    columns = {}
    for i, name in enumerate(names):
        column = body.column(i)
        if _is_text_column(name):  # few distinct values: categorical (less memory, fast factorize)
            columns[i] = column.dictionary_encode().to_pandas()
        else:
            columns[i] = column.to_pandas().astype("str")
    frame = pd.DataFrame(columns)
    frame.columns = names
    return frame, []


def _read_parquet(path: Path) -> tuple[pd.DataFrame | None, list[Problem]]:
    file = path.name
    try:
        schema = pq.read_schema(path)
        text = [f.name for f in schema if _is_text_column(f.name) and _is_text(f.type)]
        table = pq.read_table(path, read_dictionary=text)  # categorical, as in _read_csv
        if "patient_id" in table.column_names:
            i = table.column_names.index("patient_id")
            column = table.column(i)
            if pa.types.is_integer(column.type):
                table = table.set_column(i, "patient_id", column.cast(pa.string()))
        frame = table.to_pandas()
    except (OSError, pa.ArrowException, ValueError, TypeError):
        return None, [Problem(file, None, None, None, "not a readable Parquet file")]
    return frame, []


def _read_folder(path: Path) -> tuple[dict[str, pd.DataFrame], list[Problem], str]:
    """Read every table present; problems for a missing folder or missing/ambiguous tables."""
    source = path.name or str(path)
    if not path.exists():
        return {}, [Problem(str(path), None, None, None, "cohort folder not found")], source
    if not path.is_dir():
        return {}, [Problem(str(path), None, None, None, "not a folder")], source
    try:
        entries = sorted(p.name for p in path.iterdir())
    except OSError:
        return {}, [Problem(str(path), None, None, None, "cohort folder cannot be read")], source
    tables: dict[str, pd.DataFrame] = {}
    problems: list[Problem] = []
    for name in TABLES:
        found = [name + s for s in FILE_SUFFIXES if (name + s) in entries]
        if len(found) > 1:
            problems.append(
                Problem(
                    " and ".join(found),
                    None,
                    None,
                    None,
                    "table present in two formats; keep exactly one of them",
                )
            )
            continue
        if not found:
            near = difflib.get_close_matches(
                name, [e.split(".")[0].lower() for e in entries], n=1, cutoff=0.7
            )
            similar = [e for e in entries if near and e.split(".")[0].lower() == near[0]]
            hint = f" (found {similar[0]!r}; names are lower-case)" if similar else ""
            problems.append(
                Problem(
                    source,
                    None,
                    None,
                    None,
                    f"required table {name!r} missing: add {name}.csv or {name}.parquet{hint}",
                )
            )
            continue
        file = path / found[0]
        if file.is_dir():
            problems.append(Problem(file.name, None, None, None, "is a folder, not a file"))
            continue
        reader = _read_csv if file.suffix == ".csv" else _read_parquet
        frame, read_problems = reader(file)
        problems.extend(read_problems)
        if frame is not None:
            frame.attrs["file"] = file.name
            tables[name] = frame
    return tables, problems, source


def read_tables(path: str | os.PathLike[str]) -> dict[str, pd.DataFrame]:
    """The raw tables of a cohort folder (text CSV columns, stored Parquet types; the contract's
    text columns as categoricals).

    Raises :class:`CohortError` when the folder, a table or a readable file is missing, or a
    table is present both as CSV and as Parquet. Each frame's ``attrs["file"]`` names its file.
    """
    tables, problems, source = _read_folder(Path(path))
    if problems:
        report = ValidationReport(source, problems)
        raise CohortError(report.render(), problems)
    return tables


def validate_folder(path: str | os.PathLike[str]) -> ValidationReport:
    """Read and validate a cohort folder; never raises for bad input (the report says it all)."""
    tables, problems, source = _read_folder(Path(path))
    if not Path(path).is_dir():  # nothing else to say about a folder that is not there
        return ValidationReport(source, problems)
    return validate_tables(tables, source, prior=problems)


def load_cohort(path: str | os.PathLike[str]) -> Cohort:
    """Read, validate and normalise a cohort folder into the canonical :class:`Cohort`.

    Raises :class:`CohortError` listing every problem when the folder is not a valid cohort.
    """
    report = validate_folder(path)
    if not report.ok or report.cohort is None:
        raise CohortError(report.render(), report.errors)
    return report.cohort


def _extra_file(name: str, fmt: str) -> str:
    if name != Path(name).name or name.startswith(".") or not name:
        raise CrsRiskError(f"extra file name {name!r} must be a plain file name")
    file = name if Path(name).suffix in (".csv", ".parquet") else f"{name}.{fmt}"
    if Path(file).stem in TABLES:
        raise CrsRiskError(f"extra file name {name!r} collides with a cohort table")
    return file


def _arrow_table(frame: pd.DataFrame, parquet: bool) -> pa.Table:
    """The frame as the Arrow table that is written (dictionaries decoded for CSV)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if parquet:
        return table
    plain = pa.schema(
        [
            pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
            for f in table.schema
        ]
    )
    return table.cast(plain)


def _csv_header(names: list[str]) -> bytes:
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(names)  # Arrow would quote every name
    return header.getvalue().encode("utf-8")


def _write_csv_rows(table: pa.Table, fh: BinaryIO) -> None:
    """Write the rows (no header) at the file's position; cells are quoted only when needed.

    Also used to append blocks to one CSV (``features.synth.chunked``).
    """
    start = fh.tell()
    for style in ("none", "needed"):
        fh.seek(start)
        fh.truncate()
        try:
            options = pv.WriteOptions(include_header=False, quoting_style=style)
            pv.write_csv(table, fh, options)
            break
        except pa.ArrowInvalid:  # a value holds a comma, quote or line break: quote
            continue


def _write_frame(frame: pd.DataFrame, path: Path, parquet: bool) -> None:
    """Deterministic bytes: no index; CSV with '\\n' line ends and shortest round-trip floats.

    Both formats are written by Arrow (ten times faster than ``DataFrame.to_csv`` on millions
    of rows). CSV cells are quoted only when a value needs it.
    """
    table = _arrow_table(frame, parquet)
    if parquet:
        pq.write_table(table, path, compression="zstd")
        return
    with path.open("wb") as fh:
        fh.write(_csv_header(table.column_names))
        _write_csv_rows(table, fh)


def refuse_mixed_formats(out: Path, fmt: str) -> None:
    """CrsRiskError when ``out`` already holds a table in the other format (a folder with both
    ``measurements.csv`` and ``measurements.parquet`` would be ambiguous to read)."""
    other = "parquet" if fmt == "csv" else "csv"
    for name in TABLES:
        if (out / f"{name}.{other}").exists():
            raise CrsRiskError(
                f"{out / f'{name}.{other}'} exists: writing {name}.{fmt} beside it would make "
                "the cohort ambiguous; remove it or write the same format"
            )


def write_cohort(
    out_dir: str | os.PathLike[str],
    patients: pd.DataFrame,
    measurements: pd.DataFrame,
    events: pd.DataFrame,
    fmt: str = "csv",
    extra: Mapping[str, pd.DataFrame] | None = None,
) -> ValidationReport:
    """Validate the frames and write them as a cohort folder (plus side files in ``extra``).

    Nothing is written when the frames are invalid (:class:`CohortError`). Tables are written in
    their declared dtypes, columns in schema order, unknown columns dropped (with a warning) and
    units as given (conversion happens on load). The same frames always give byte-identical files.
    ``extra`` maps a file name (``"truth"`` or ``"truth.csv"``) to a frame written beside them.
    """
    if fmt not in FORMATS:
        raise CrsRiskError(f"unknown format {fmt!r}: use csv or parquet")
    out = Path(out_dir)
    extra_files = {_extra_file(name, fmt): frame for name, frame in (extra or {}).items()}
    files = {name: f"{name}.{fmt}" for name in TABLES}
    tables = {"patients": patients, "measurements": measurements, "events": events}
    report = validate_tables(tables, out.name, files=files, outputs=FOR_WRITER)
    if not report.ok or report.frames is None:
        raise CohortError(report.render(), report.errors)
    refuse_mixed_formats(out, fmt)
    targets = {out / files[name]: report.frames[name] for name in TABLES}
    targets.update({out / file: frame for file, frame in extra_files.items()})
    temporary: list[Path] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for path, frame in targets.items():
            tmp = path.with_name(f".{path.name}.tmp")
            temporary.append(tmp)
            _write_frame(frame, tmp, parquet=path.suffix == ".parquet")
        for path in targets:  # all files complete: move them into place
            os.replace(path.with_name(f".{path.name}.tmp"), path)
    except OSError as exc:
        raise CrsRiskError(f"cannot write the cohort to {out}: {exc.strerror or exc}") from exc
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise CrsRiskError(f"cannot write a side file to {out}: {type(exc).__name__}") from exc
    finally:
        for tmp in temporary:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
    return report
