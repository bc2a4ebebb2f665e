"""Opening a registry file for a search: rows with a wrong number of cells are found (polars would pad a
short row with empty cells and refuse the file at a long one), a file with quotes is read as Python's csv
module reads it (as a family file with quotes is), and a file that cannot be read gets an error naming it.

The expected rows come from how each test file was written (the cells of each row), not from the code; the
byte-counting path is run with chunks of a few bytes so that rows straddle chunk boundaries.
"""

from __future__ import annotations

import csv

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import haplomatch.registryfile as rf
from haplomatch.errors import InputError
from haplomatch.registryfile import open_registry

_PLAIN = st.text(alphabet="ABC*:0123456789 ", min_size=0, max_size=6)
_QUOTED = st.text(alphabet='AB ,\n"', min_size=0, max_size=5).map(lambda t: '"' + t.replace('"', '""') + '"')
_CELL = st.one_of(_PLAIN, _QUOTED)


def _read(path, batch_size: int) -> tuple[list[tuple], dict[int, int], int]:
    """Every row read, the rows with a wrong number of cells, the number of batches."""
    rows: list[tuple] = []
    ragged: dict[int, int] = {}
    n = 0
    for batch, bad in open_registry(path).batches(batch_size):
        assert all(len(rows) < r <= len(rows) + batch.height for r in bad)  # each batch names its own rows
        rows += batch.rows()
        ragged.update(bad)
        n += 1
    return rows, ragged, n


@settings(max_examples=150, deadline=None)
@given(
    ncols=st.integers(1, 5),
    rows=st.lists(st.one_of(st.none(), st.lists(_CELL, min_size=1, max_size=7)), min_size=1, max_size=12),
    newline=st.sampled_from(["\n", "\r\n"]),
    last_newline=st.booleans(),
    chunk=st.sampled_from([1, 2, 3, 7, 1 << 24]),
    quoted=st.booleans(),
    batch=st.integers(1, 5),
    stray=st.sampled_from([None, None, 'A*0"1', 'A"', '"A"B', '"unclosed']),  # a quote out of place
)
def test_rows_with_another_number_of_cells_are_the_rows_read_so(tmp_path_factory, ncols, rows, newline,
                                                                last_newline, chunk, quoted, batch, stray):
    """``None`` rows are blank lines; cells may be quoted (holding separators, line feeds, doubled quotes),
    and the last row may end with a cell whose quote is out of place (Python's csv module then reads)."""
    if stray is not None:
        rows = [*rows[:-1], (rows[-1] or []) + [stray]]
    blank = [r is None or r == [""] for r in rows]  # a line of nothing: no cell at all
    if rows and blank[-1]:
        last_newline = True  # a blank last line without a line feed is no line at all
    header = [f"c{i}" for i in range(ncols)]
    if quoted:
        header[0] = '"c0"'
    lines = [",".join(header)] + ["" if b else ",".join(r) for r, b in zip(rows, blank)]
    path = tmp_path_factory.mktemp("reg") / "r.csv"
    path.write_bytes((newline.join(lines) + (newline if last_newline else "")).encode())
    # what Python's csv module reads (the family-file reader's reading of a file with quotes) is the oracle;
    # a blank line (a record of no cell) is no row
    with open(path, newline="", encoding="utf-8") as f:
        records = [rec for rec in list(csv.reader(f))[1:] if rec]
    expected = {i: len(rec) for i, rec in enumerate(records, start=1) if len(rec) != ncols}
    old = rf._CHUNK
    rf._CHUNK = chunk
    try:
        got, ragged, _ = _read(path, batch)
    finally:
        rf._CHUNK = old
    assert len(got) == len(records)
    assert ragged == expected
    # the rows of the right length hold the cells read (an empty cell: empty or null)
    for rec, g in zip(records, got):
        if len(rec) == ncols:
            assert [x or "" for x in g] == rec
    if not any('"' in x for r in rows if r for x in r):
        assert len(records) == blank.count(False)  # without quotes, one row per line written, blank ones skipped


def test_quoted_cells_holding_the_separator_or_a_line_feed_are_one_cell(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('id,A,B\nD1,"A*01:01,x",B*07:02\nD2,"two\nlines",B*08:01\nD3,A*02:01\nD4,A*0"1,B\n')
    rows, ragged, _ = _read(path, 2)
    assert open_registry(path).quoted and open_registry(path).columns == ("id", "A", "B")
    assert ragged == {3: 2}
    assert rows[0] == ("D1", "A*01:01,x", "B*07:02") and rows[1] == ("D2", "two\nlines", "B*08:01")
    assert rows[3] == ("D4", 'A*0"1', "B")  # a quote inside an unquoted cell is kept (polars refused the file)


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


def test_blank_lines_are_skipped_and_rows_numbered_without_them(tmp_path):
    """As the family-file reader does: a blank line (or a lone carriage return) is no row, anywhere in the
    file, and the row numbers count the rows that are not blank."""
    text = "id,A,B\n\nD1,A*01:01,B*07:02\r\n\r\nD2,A*02:01\n\n\nD3,A*03:01,B*08:01\nD4,x,y,z\n\n"
    for quote in ("", 'D5,A*0"1,B\n'):  # polars reads the first; Python's csv module the second
        path = tmp_path / "r.csv"
        path.write_bytes((text + quote).encode())
        assert open_registry(path).quoted == bool(quote)
        for batch in (1, 2, 3, 10):
            rows, ragged, _ = _read(path, batch)
            assert [r[0] for r in rows] == ["D1", "D2", "D3", "D4"] + (["D5"] if quote else [])
            assert ragged == {2: 2, 4: 4}, (quote, batch)
    path.write_text("id,A\n\n\n")
    assert _read(path, 2) == ([], {}, 0)


def test_parquet_batches_have_no_ragged_rows(tmp_path):
    path = tmp_path / "r.parquet"
    pl.DataFrame({"id": [f"D{i}" for i in range(7)], "A": ["A*01:01"] * 7}).write_parquet(path)
    rows, ragged, n = _read(path, 3)
    assert (len(rows), ragged, n) == (7, {}, 3)


def test_a_cell_longer_than_the_csv_module_reads_is_a_clear_error(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('id,A\nD1,"' + "A" * 200_000 + '"x\n')  # a quote out of place: the csv module reads
    src = open_registry(path)
    assert src.quoted
    with pytest.raises(InputError, match="field larger than field limit") as e:
        list(src.batches(10))
    assert e.value.problems[0].file == str(path)
