"""A registry file (Parquet, CSV or TSV) opened for a search: its columns first, then its rows in batches,
each with the rows of the batch that have a wrong number of cells.

Polars reads a CSV row with too few cells as if the missing ones were empty (a donor would silently lose
its last columns, its KIR genes say) and refuses the whole file at a row with too many, or at a stray
quote. A registry of 10^6 rows must be neither read wrongly nor refused for one row. So:

- a CSV is read by polars (``truncate_ragged_lines``, so that a long row does not stop the stream), after
  its rows with a wrong number of cells were found by counting the separators and line feeds outside quoted
  cells (:func:`_counts`; polars reads each such line as one row);
- a CSV with a quote out of place (``A*0"1``) or never closed, which polars refuses, is read by Python's
  csv module, as a family file with quotes is: a row with a wrong number of cells is found as it is read.

The search rejects those rows, each with its reason, as the family-file reader does. A blank line is no
row: it is skipped, and rows are numbered without it (1-based, header not counted), as the family-file
reader numbers a file's rows. A file that cannot be read at all gets an error naming it, never a traceback.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import polars as pl

from haplomatch.errors import InputError

__all__ = ["RegistryFile", "open_registry"]

_CHUNK = 1 << 24  # bytes read at a time when looking at a CSV's bytes
_PARQUET = (".parquet", ".pq")

#: A batch and its rows with a wrong number of cells (1-based registry row -> number of cells; rows are
#: numbered without the blank lines, which no batch holds).
Batch = tuple[pl.DataFrame, dict[int, int]]


@dataclass(frozen=True)
class RegistryFile:
    """An opened registry: where it is, its columns, how it is read, and (a CSV read by polars) its data rows
    with a wrong number of cells and how many rows it has."""

    path: Path
    columns: tuple[str, ...]
    separator: str | None  # None: Parquet
    quoted: bool = False  # a CSV with a quote out of place: read by Python's csv module
    # 1-based line after the header -> its number of cells (0: a blank line, skipped)
    ragged: dict[int, int] = field(default_factory=dict)
    rows: int | None = None  # lines after the header of a CSV read by polars, blank ones included

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """The rows in order, up to ``batch_size`` at a time, each batch with its rows of a wrong number of
        cells (numbered without the blank lines, which are skipped)."""
        if self.separator is None:
            try:
                yield from ((b, {}) for b in _parquet_batches(self.path, batch_size))
            except pl.exceptions.PolarsError as e:
                raise _unreadable(self.path, e) from None
            return
        if self.quoted:
            try:
                yield from _module_batches(self.path, self.separator, self.columns, batch_size)
            except csv.Error as e:  # a cell longer than the csv module's limit (128 KiB)
                raise InputError.one(f"cannot read the registry: {e}", file=str(self.path)) from None
            return
        rows = np.array(sorted(self.ragged), dtype=np.int64)
        blank = np.array([r for r in rows.tolist() if self.ragged[r] == 0], dtype=np.int64)
        n = 0
        try:
            lf = pl.scan_csv(self.path, separator=self.separator, infer_schema=False, truncate_ragged_lines=True)
            for batch in lf.collect_batches(chunk_size=batch_size):
                h = batch.height
                lo, hi = np.searchsorted(rows, [n + 1, n + h + 1])
                bad = {r: self.ragged[r] for r in rows[lo:hi].tolist()}
                b_lo, b_hi = np.searchsorted(blank, [n + 1, n + h + 1])
                if b_hi > b_lo:  # polars reads a blank line as a row of empty cells: it goes
                    keep = np.ones(h, dtype=bool)
                    keep[blank[b_lo:b_hi] - n - 1] = False
                    batch = batch.filter(pl.Series(keep))
                if b_hi:  # numbered without the blank lines up to them
                    skipped = np.searchsorted(blank, list(bad), side="right").tolist()
                    bad = {r - k: c for (r, c), k in zip(bad.items(), skipped) if c}
                n += h
                if batch.height:
                    yield batch, bad
        except pl.exceptions.PolarsError as e:
            raise _unreadable(self.path, e) from None
        if self.rows is not None and n != self.rows:  # a safety net: both count the rows as polars reads them
            raise InputError.one(f"the CSV has {self.rows:,} rows by its line feeds but {n:,} were read",
                                 file=str(self.path), fix="export the registry as Parquet")


def open_registry(path: str | Path) -> RegistryFile:
    """Open ``path``: its columns (the Parquet schema or the CSV header) and, for a CSV read by polars, its
    rows with a wrong number of cells. Raises InputError naming the file when it cannot be read."""
    path = Path(path)
    if not path.exists():
        raise InputError.one("registry file not found", file=str(path))
    suffix = path.suffix.lower()
    try:
        if suffix in _PARQUET:
            return RegistryFile(path, tuple(pl.scan_parquet(path).collect_schema().names()), None)
        sep = _separator(path, suffix)
        try:
            columns = tuple(pl.scan_csv(path, separator=sep, infer_schema=False).collect_schema().names())
        except pl.exceptions.NoDataError:
            raise
        except pl.exceptions.PolarsError:  # a header polars cannot read: the csv module reads the file
            columns = None
        counted = _counts(path, sep, len(columns)) if columns is not None else None
        if counted is None:
            with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
                try:
                    header = next(csv.reader(f, delimiter=sep), None)
                except csv.Error as e:
                    raise InputError.one(f"cannot read the registry: {e}", file=str(path)) from None
            if not header:
                raise InputError.one("the registry file is empty", file=str(path))
            return RegistryFile(path, tuple(h.strip() for h in header), sep, quoted=True)
    except pl.exceptions.PolarsError as e:
        raise _unreadable(path, e) from None
    except OSError as e:
        raise InputError.one(f"cannot read the registry: {e}", file=str(path)) from None
    return RegistryFile(path, columns, sep, False, *counted)


def _module_batches(path: Path, sep: str, columns: tuple[str, ...], batch_size: int) -> Iterator[Batch]:
    """A CSV with quotes, read by Python's csv module: text cells, a short row padded and a long one cut (it
    is rejected for its number of cells anyway); a blank line skipped."""
    ncols = len(columns)
    schema = {c: pl.String for c in columns}
    rows: list[list[str]] = []
    ragged: dict[int, int] = {}
    n = 0
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f, delimiter=sep)
        next(reader, None)  # the header
        for rec in reader:
            if not rec:  # a blank line
                continue
            n += 1
            if len(rec) != ncols:
                ragged[n] = len(rec)
                rec = (rec + [""] * ncols)[:ncols]
            rows.append(rec)
            if len(rows) == batch_size:
                yield pl.DataFrame(rows, schema=schema, orient="row"), ragged
                rows, ragged = [], {}
    if rows:
        yield pl.DataFrame(rows, schema=schema, orient="row"), ragged


def _separator(path: Path, suffix: str) -> str:
    """Tab, ';' or ',', sniffed from the header line as a family file's is (``familyfile.sniff_separator``)."""
    from haplomatch.familyfile import sniff_separator

    with open(path, "rb") as f:
        first = f.readline(1 << 20).decode("utf-8-sig", errors="replace")
    return sniff_separator(first, suffix)


def _unreadable(path: Path, e: Exception) -> InputError:
    if isinstance(e, pl.exceptions.NoDataError):
        return InputError.one("the registry file is empty", file=str(path))
    return InputError.one(f"cannot read the registry: {str(e).splitlines()[0]}", file=str(path),
                          fix="check that the file is a complete Parquet or CSV file")


def _counts(path: Path, separator: str, cells: int) -> tuple[dict[int, int], int] | None:
    """The data rows (1-based, header not counted) that do not have ``cells`` cells, with their count, and
    the number of data rows, by counting the separators and line feeds outside quoted cells, a chunk at a
    time: every such line feed ends a row, a blank line is a row of no cell (as polars reads them; ``batches``
    skips it). None when a quote is out of place (not opening a cell, closing it, or doubled inside it) or
    never closed: Python's csv module reads such a file."""
    sep, lf, cr, quote = ord(separator), 10, 13, 34
    bad: dict[int, int] = {}
    line = -1  # the header is line 0
    carry_seps, carry_len, carry_cr = 0, 0, False  # the unfinished line at the end of the chunk before
    inside = 0  # 1 within a quoted cell at the end of the chunk before
    before = lf  # the byte before the chunk (the file starts as a line does)
    with open(path, "rb") as f:
        chunk = f.read(_CHUNK)
        while chunk:
            following = f.read(_CHUNK)
            a = np.frombuffer(chunk, dtype=np.uint8)
            is_quote = a == quote
            if inside or is_quote.any():
                # 1 within a quoted cell: an opening quote sets it, a closing one clears it ("" does both)
                within = np.bitwise_xor.accumulate(is_quote.view(np.uint8)) ^ np.uint8(inside)
                quotes = np.flatnonzero(is_quote)
                opening = within[quotes] == 1
                prev = np.where(quotes > 0, a[np.maximum(quotes - 1, 0)], before)
                after = following[0] if following else lf  # the end of the file ends a cell
                nxt = np.where(quotes + 1 < a.size, a[np.minimum(quotes + 1, a.size - 1)], after)
                ok = np.where(opening, (prev == sep) | (prev == lf) | (prev == quote),
                              (nxt == sep) | (nxt == lf) | (nxt == cr) | (nxt == quote))
                if not ok.all():
                    return None
                outside = within == 0
                ends = np.flatnonzero((a == lf) & outside)
                seps = np.flatnonzero((a == sep) & outside)
                inside = int(within[-1])
            else:
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
            tail = a.size - 1 - int(ends[-1]) if ends.size else a.size
            if ends.size:
                carry_seps, carry_len = total - int(at_end[-1]), tail
            else:
                carry_seps, carry_len = carry_seps + total, carry_len + tail
            carry_cr = bool(a[-1] == cr)
            before = int(a[-1])
            chunk = following
    if inside:
        return None
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
