"""Opening a registry file for a search: rows with a wrong number of cells are found before any is read
(polars would pad a short row with empty cells and refuse the file at a long one), and a file that cannot be
read gets an error naming it.

The expected rows come from how each test file was written (the cells of each row), not from the code; the
byte-counting path is run with chunks of a few bytes so that rows straddle chunk boundaries.
"""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import haplomatch.registryfile as rf
from haplomatch.errors import InputError
from haplomatch.registryfile import open_registry, ragged_rows

_CELL = st.text(alphabet="ABC*:0123456789 ", min_size=0, max_size=6)


def _write(path, header: list[str], rows: list[list[str] | None], newline: str, last_newline: bool) -> None:
    """``None`` rows are blank lines."""
    lines = [",".join(header)] + ["" if r is None else ",".join(r) for r in rows]
    text = newline.join(lines) + (newline if last_newline else "")
    path.write_bytes(text.encode())


@settings(max_examples=150, deadline=None)
@given(
    ncols=st.integers(1, 5),
    rows=st.lists(st.one_of(st.none(), st.lists(_CELL, min_size=1, max_size=7)), max_size=12),
    newline=st.sampled_from(["\n", "\r\n"]),
    last_newline=st.booleans(),
    chunk=st.sampled_from([1, 2, 3, 7, 1 << 24]),
    quoted=st.booleans(),
)
def test_ragged_rows_are_the_rows_written_with_another_number_of_cells(tmp_path_factory, ncols, rows, newline,
                                                                       last_newline, chunk, quoted):
    blank = [r is None or r == [""] for r in rows]  # a line of nothing: no cell at all
    if rows and blank[-1]:
        last_newline = True  # a blank last line without a line feed is no line at all
    header = [f"c{i}" for i in range(ncols)]
    if quoted:  # a quoted header cell sends the file to Python's csv module
        header[0] = '"c0"'
    path = tmp_path_factory.mktemp("reg") / "r.csv"
    _write(path, header, rows, newline, last_newline)
    cells = [0 if b else len(r) for r, b in zip(rows, blank)]
    expected = {i: c for i, c in enumerate(cells, start=1) if c != ncols}
    old = rf._CHUNK
    rf._CHUNK = chunk
    try:
        bad, n = ragged_rows(path, ",", ncols)
    finally:
        rf._CHUNK = old
    assert n == len(rows)
    assert bad == expected
    # and polars reads as many rows as were counted (the search checks this too)
    got = pl.scan_csv(path, infer_schema=False, truncate_ragged_lines=True).collect()
    assert got.height == len(rows)


def test_a_quoted_cell_with_the_separator_or_a_line_feed_is_one_cell(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('id,A,B\nD1,"A*01:01,x",B*07:02\nD2,"two\nlines",B*08:01\nD3,A*02:01\n')
    assert ragged_rows(path, ",", 3) == ({3: 2}, 3)


def test_open_registry_names_the_file_that_cannot_be_read(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="the registry file is empty") as e:
        open_registry(empty)
    assert e.value.problems[0].file == str(empty)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not a parquet file")
    with pytest.raises(InputError, match="cannot read the registry") as e:
        open_registry(broken)
    assert e.value.problems[0].file == str(broken)
    with pytest.raises(InputError, match="registry file not found"):
        open_registry(tmp_path / "missing.parquet")


def test_batches_refuse_a_file_polars_reads_otherwise(tmp_path):
    """A quote inside an unquoted cell: Python's csv module keeps it, polars refuses the chunk; the search
    gets an error naming the file, not a traceback."""
    path = tmp_path / "r.csv"
    path.write_text('id,A,B\nD1,A*01"01,B*07:02\n')
    src = open_registry(path)
    assert src.ragged == {} and src.rows == 1
    with pytest.raises(InputError) as e:
        list(src.batches(10))
    assert e.value.problems[0].file == str(path)
