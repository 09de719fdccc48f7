"""Reading an extract's files: CSV/TSV or Excel as raw cells, header paths across several header
rows, and finding the column a :class:`~features.mapping.ColumnSpec` addresses."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import CrsRiskError
from features.importer.cells import column_letter, letter_index, norm_header
from features.mapping import ColumnSpec

EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls")


@dataclass
class SourceTable:
    """The cells of one source below its header rows, with each column's header path."""

    file: str
    cells: np.ndarray  # object array (rows x columns), data rows only
    paths: list[tuple[str, ...]]
    header_rows: int

    @property
    def n_columns(self) -> int:
        return self.cells.shape[1]

    def row_number(self, i: int) -> int:
        """1-based row number as a spreadsheet or text editor shows it."""
        return self.header_rows + i + 1

    def path_text(self, j: int) -> str:
        return " / ".join(self.paths[j])

    def column_label(self, j: int) -> str:
        text = self.path_text(j)
        return f"column {column_letter(j)}" + (f" ({text!r})" if text else "")

    def find(self, spec: ColumnSpec) -> tuple[int | None, str | None]:
        """Index of the column ``spec`` addresses, or ``(None, why not)``."""
        j: int | None = None
        if spec.letter is not None:
            j = letter_index(spec.letter)
        elif spec.position is not None:
            j = spec.position - 1
        if j is not None:
            if j >= self.n_columns:
                return None, (
                    f"column {spec.describe()} is beyond the last column "
                    f"({column_letter(self.n_columns - 1)}) of {self.file}"
                )
            return j, None
        if self.header_rows == 0:
            return None, f"{self.file} has no header rows: address columns by letter or position"
        wanted = norm_header(spec.header).casefold()
        hits = [j for j in range(self.n_columns) if wanted in self._suffixes(j)]
        if len(hits) == 1:
            return hits[0], None
        if not hits:
            names = sorted({p[-1] for p in self.paths if p})
            close = difflib.get_close_matches(norm_header(spec.header), names, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            return None, f"column {spec.describe()} not found in {self.file}{hint}"
        letters = ", ".join(column_letter(j) for j in hits[:6]) + (", …" if len(hits) > 6 else "")
        return None, (
            f"column {spec.describe()} matches {len(hits)} columns of {self.file} ({letters}); "
            f"give more of its header path (e.g. {self.path_text(hits[0])!r}) or its letter"
        )

    def _suffixes(self, j: int) -> set[str]:
        parts = [p.casefold() for p in self.paths[j]]
        return {" / ".join(parts[k:]) for k in range(len(parts))}


def _header_paths(header: pd.DataFrame) -> list[tuple[str, ...]]:
    """Header path per column. Upper header rows are merged cells in a spreadsheet: a blank cell
    inherits its left neighbour's text while every row above it also continues the same group."""
    rows, cols = header.shape
    filled = [[norm_header(header.iat[r, j]) for j in range(cols)] for r in range(rows)]
    for r in range(rows - 1):
        for j in range(1, cols):
            if not filled[r][j] and all(filled[q][j] == filled[q][j - 1] for q in range(r)):
                filled[r][j] = filled[r][j - 1]
    return [tuple(filled[r][j] for r in range(rows) if filled[r][j]) for j in range(cols)]


def read_source(
    path: Path, sheet: str | int | None, header_rows: int, delimiter: str | None
) -> SourceTable:
    """Read a CSV/TSV or Excel source as raw cells (no type guessing, no default NA strings)."""
    try:
        if path.suffix.lower() in EXCEL_SUFFIXES:
            raw = pd.read_excel(
                path,
                sheet_name=0 if sheet is None else sheet,
                header=None,
                dtype=object,
                keep_default_na=False,
                na_values=[],
            )
        else:
            sep = delimiter or ("\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
            raw = pd.read_csv(
                path,
                sep=sep,
                header=None,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                skip_blank_lines=False,
                encoding="utf-8-sig",
            )
    except ValueError as exc:  # unknown sheet, malformed file
        raise CrsRiskError(f"{path.name}: cannot be read ({exc})") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise CrsRiskError(f"{path.name}: cannot be read ({type(exc).__name__}: {exc})") from None
    raw = raw.astype(object)
    raw.columns = range(raw.shape[1])
    if raw.shape[0] < header_rows:
        raise CrsRiskError(f"{path.name}: fewer rows than the {header_rows} header rows declared")
    paths: list[tuple[str, ...]] = (
        _header_paths(raw.iloc[:header_rows]) if header_rows else [()] * raw.shape[1]
    )
    cells = raw.iloc[header_rows:].to_numpy(dtype=object)
    return SourceTable(path.name, cells, paths, header_rows)


def collect_files(sources: list[Path]) -> dict[str, list[Path]]:
    """Files of the extract by lower-case file name (folders are searched recursively)."""
    files: dict[str, list[Path]] = {}
    for src in sources:
        src = Path(src)
        if src.is_dir():
            found = [p for p in sorted(src.rglob("*")) if p.is_file()]
        elif src.is_file():
            found = [src]
        else:
            raise CrsRiskError(f"source {src}: no such file or folder")
        for p in found:
            same = files.setdefault(p.name.casefold(), [])
            if not any(p.resolve() == q.resolve() for q in same):  # given twice: one file
                same.append(p)
    return files
