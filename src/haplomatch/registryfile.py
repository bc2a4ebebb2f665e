"""A registry file (Parquet, CSV or TSV) opened for a search: its columns first, then its rows in batches.

Polars reads a CSV row with too few cells as if the missing ones were empty (a donor would silently lose
its last columns, its KIR genes say) and refuses the whole file at a row with too many. A registry of 10^6
rows must be neither read wrongly nor refused for one row, so before any row is read the rows with the
wrong number of cells are found (:func:`ragged_rows`) and the search rejects them, each with its reason, as
the family-file reader does; the others are read by polars (``truncate_ragged_lines``, so that a long row
does not stop the stream). A file that cannot be read at all gets an error naming it, never a traceback.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import polars as pl

from haplomatch.errors import InputError

__all__ = ["RegistryFile", "open_registry", "ragged_rows"]

_CHUNK = 1 << 24  # bytes read at a time when counting cells
_PARQUET = (".parquet", ".pq")


@dataclass(frozen=True)
class RegistryFile:
    """An opened registry: where it is, its columns, and (CSV) its data rows with a wrong number of cells."""

    path: Path
    columns: tuple[str, ...]
    separator: str | None  # None: Parquet
    ragged: dict[int, int] = field(default_factory=dict)  # 1-based data row -> its number of cells
    rows: int | None = None  # data rows (CSV: lines after the header, as counted before reading)

    def batches(self, batch_size: int) -> Iterator[pl.DataFrame]:
        """The rows in order, ``batch_size`` at a time (see :func:`_parquet_batches`)."""
        try:
            if self.separator is None:
                yield from _parquet_batches(self.path, batch_size)
                return
            n = 0
            lf = pl.scan_csv(self.path, separator=self.separator, infer_schema=False, truncate_ragged_lines=True)
            for batch in lf.collect_batches(chunk_size=batch_size):
                n += batch.height
                yield batch
        except pl.exceptions.PolarsError as e:
            raise _unreadable(self.path, e) from None
        if self.rows is not None and n != self.rows:  # the two readings disagree on where rows end
            raise InputError.one(f"the CSV has {self.rows:,} data lines but {n:,} rows were read (a quoted cell "
                                 "spanning lines, or quotes the two readers take differently)", file=str(self.path),
                                 fix="export the registry as Parquet, or without quotes")


def open_registry(path: str | Path) -> RegistryFile:
    """Open ``path``: its columns (read from the Parquet schema or the CSV header) and, for a CSV, its rows
    with a wrong number of cells. Raises InputError naming the file when it cannot be read."""
    path = Path(path)
    if not path.exists():
        raise InputError.one("registry file not found", file=str(path))
    suffix = path.suffix.lower()
    try:
        if suffix in _PARQUET:
            return RegistryFile(path, tuple(pl.scan_parquet(path).collect_schema().names()), None)
        sep = _separator(path, suffix)
        columns = tuple(pl.scan_csv(path, separator=sep, infer_schema=False).collect_schema().names())
    except pl.exceptions.PolarsError as e:
        raise _unreadable(path, e) from None
    except OSError as e:
        raise InputError.one(f"cannot read the registry: {e}", file=str(path)) from None
    ragged, rows = ragged_rows(path, sep, len(columns))
    return RegistryFile(path, columns, sep, ragged, rows)


def _separator(path: Path, suffix: str) -> str:
    """Tab, ';' or ',', sniffed from the header line as a family file's is (``familyfile._separator``)."""
    from haplomatch.familyfile import _separator as sniff

    with open(path, "rb") as f:
        first = f.readline(1 << 20).decode("utf-8-sig", errors="replace")
    return sniff(first, suffix)


def _unreadable(path: Path, e: Exception) -> InputError:
    if isinstance(e, pl.exceptions.NoDataError):
        return InputError.one("the registry file is empty", file=str(path))
    return InputError.one(f"cannot read the registry: {str(e).splitlines()[0]}", file=str(path),
                          fix="check that the file is a complete Parquet or CSV file")


def ragged_rows(path: Path, separator: str, cells: int) -> tuple[dict[int, int], int]:
    """The data rows (1-based, header not counted) that do not have ``cells`` cells, with their count, and
    the number of data rows. Rows are lines as polars reads them (every line feed ends one; a blank line is a
    row of no cell). A file with a quote is counted by Python's csv module (a quoted cell may hold the
    separator or a line feed); any other by counting bytes, a chunk at a time."""
    counted = _plain_counts(path, separator, cells)
    if counted is not None:
        return counted
    bad: dict[int, int] = {}
    n = 0
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f, delimiter=separator)
        next(reader, None)  # the header
        for n, rec in enumerate(reader, start=1):
            if len(rec) != cells:
                bad[n] = len(rec)
    return bad, n


def _plain_counts(path: Path, separator: str, cells: int) -> tuple[dict[int, int], int] | None:
    """:func:`ragged_rows` by counting separators and line feeds (None: the file has a quote)."""
    sep, lf, cr = ord(separator), 10, 13
    bad: dict[int, int] = {}
    line = -1  # the header is line 0
    carry_seps, carry_len, carry_cr = 0, 0, False  # the unfinished line at the end of the chunk before
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            if chunk.find(b'"') >= 0:
                return None
            a = np.frombuffer(chunk, dtype=np.uint8)
            ends = np.flatnonzero(a == lf)
            seps = np.flatnonzero(a == sep)
            at_end = np.searchsorted(seps, ends)  # separators before each line feed
            total = int(seps.size)
            per = np.diff(at_end, prepend=0)  # separators per line ended in this chunk
            length = np.diff(ends, prepend=-1) - 1  # bytes before each line feed
            if ends.size:
                per[0] += carry_seps
                length[0] += carry_len
            last_cr = np.zeros(ends.size, dtype=bool)
            has_before = ends > 0
            last_cr[has_before] = a[ends[has_before] - 1] == cr
            if ends.size and ends[0] == 0:
                last_cr[0] = carry_cr
            # a line of nothing (or of a lone carriage return) has no cell; any other, separators + 1
            n_cells = np.where((length == 0) | ((length == 1) & last_cr), 0, per + 1)
            wrong = np.flatnonzero(n_cells != cells)
            for k in wrong.tolist():
                if line + 1 + k > 0:  # not the header
                    bad[line + 1 + k] = int(n_cells[k])
            line += ends.size
            tail = a[ends[-1] + 1:] if ends.size else a
            if ends.size:
                carry_seps, carry_len = total - int(at_end[-1]), int(tail.size)
            else:
                carry_seps, carry_len = carry_seps + total, carry_len + int(tail.size)
            carry_cr = bool(a[-1] == cr)
    if carry_len:  # a last line without a line feed
        line += 1
        n_cells = 0 if (carry_len == 1 and carry_cr) else carry_seps + 1
        if n_cells != cells and line > 0:
            bad[line] = n_cells
    return bad, max(line, 0)


def _parquet_batches(path: Path, batch_size: int) -> Iterator[pl.DataFrame]:
    """A Parquet file's batches, in order; a batch is read while the one before is worked on (polars reads
    without holding Python's lock): two batches in memory at most."""
    from concurrent.futures import ThreadPoolExecutor

    lf = pl.scan_parquet(path)
    total = lf.select(pl.len()).collect().item()
    starts = range(0, total, batch_size)
    if len(starts) < 2:
        for start in starts:
            yield lf.slice(start, batch_size).collect()
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(lambda: lf.slice(0, batch_size).collect())
        for start in starts:
            batch = ahead.result()
            if start + batch_size < total:
                ahead = pool.submit(lambda s=start + batch_size: lf.slice(s, batch_size).collect())
            yield batch
            del batch
