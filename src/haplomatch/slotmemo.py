"""Per-slot tables remembered for the life of a process.

The slot tables (``compat.slot_keys``, ``nk.slot_ligand_table``, ``slotfacts.slot_facts``) have one row per
distinct slot string, and each row depends on that slot and the reference alone. A batch computes them
chunk after chunk (screen: every 5,000 families; search: every registry batch), and the chunks share most
of their allele names: each slot is computed once per process and reference, then read back.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import polars as pl

_MAX_ROWS = 1_000_000  # a process that has seen more slots than this starts afresh (memory stays bounded)
_MEMOS: dict[tuple, "_Memo"] = {}


_FEW = 256  # a request of at most this many slots is looked up by name (no pass over the whole table)


class _Memo:
    def __init__(self, ref: Any) -> None:
        self.ref, self.nomenclature = ref, ref.nomenclature  # kept alive, so their ids are not reused
        self.table: pl.DataFrame | None = None
        self.known = pl.Series("slot", [], dtype=pl.String)  # every slot computed (some have no row)
        self.seen: set[str] = set()  # the same, by name
        self.row: dict[str, int] = {}  # slot -> its row in ``table``

    def add(self, new: pl.Series, part: pl.DataFrame) -> None:
        first = 0 if self.table is None else self.table.height
        self.table = part if self.table is None else pl.concat([self.table, part], how="vertical_relaxed")
        # one chunk: polars' list set operations mis-index list columns made of several chunks
        self.table = self.table.rechunk()
        self.known = pl.concat([self.known, new]).rechunk()
        self.seen.update(new.to_list())
        self.row.update(zip(part["slot"].to_list(), range(first, first + part.height)))


def distinct_slots(slots: Iterable[str | None] | pl.Series) -> pl.Series:
    """The distinct non-empty slot strings, in order of first appearance (what :func:`per_slot` looks up: a
    caller asking for several tables of the same slots computes it once)."""
    if isinstance(slots, pl.Series):
        s = slots.cast(pl.String).alias("slot")
        return s.filter(s.is_not_null() & (s != "")).unique(maintain_order=True)
    return pl.Series("slot", list(dict.fromkeys(s for s in slots if s)), dtype=pl.String)


def per_slot(name: str, ref: Any, slots: Iterable[str | None] | pl.Series,
             compute: Callable[[list[str]], pl.DataFrame], *settings: Any) -> pl.DataFrame:
    """The rows of ``compute(slots)`` (a table with a ``slot`` column, one row per slot at most, each row a
    function of its slot, ``ref`` and ``settings``), computing only the slots this process has not seen.
    ``slots`` may be a polars Series (a batch's slot columns: tens of thousands of strings, never made into
    Python objects unless new)."""
    want = distinct_slots(slots)
    key = (name, id(ref), id(ref.nomenclature), settings)
    memo = _MEMOS.get(key)
    if memo is None or memo.ref is not ref or memo.nomenclature is not ref.nomenclature:
        memo = _MEMOS[key] = _Memo(ref)
    few = want.to_list() if want.len() <= _FEW else None
    if few is not None:
        new = pl.Series("slot", [x for x in few if x not in memo.seen], dtype=pl.String)
    else:
        new = want.filter(~want.is_in(memo.known.implode())) if memo.known.len() else want
    if new.len() and memo.table is not None and memo.table.height + new.len() > _MAX_ROWS:
        _MEMOS[key] = memo = _Memo(ref)
        new = want
    if new.len():
        memo.add(new, compute(new.to_list()))
    if memo.table is None:
        return compute([])
    if few is not None:  # the rows in table order, as the filter below gives them
        return memo.table[sorted(memo.row[x] for x in few if x in memo.row)]
    return memo.table.filter(pl.col("slot").is_in(want.implode())).rechunk()


def looked_up(columns: list[pl.Series], table: pl.DataFrame, fields: Iterable[str]) -> list[dict[str, pl.Series]]:
    """For each column of slot strings (all of one length), ``table``'s ``fields`` of the row whose ``slot`` is
    the column's value (null where none). The columns are put end to end and joined once, then cut back: one
    hash table of the table's slots, not one per column (a pair table has up to 24 slot columns). Every Series
    returned has one chunk (polars' list set operations mis-index list columns of several)."""
    if not columns:
        return []
    table = table.rechunk()
    n = len(columns[0])
    at = pl.concat([c.cast(pl.String) for c in columns]).to_frame("slot").join(
        table.select("slot").with_row_index("_row"), on="slot", how="left", maintain_order="left")["_row"]
    if at.len() != n * len(columns):  # a slot twice in the table (never: its rows are one per distinct slot)
        raise AssertionError("slotmemo.looked_up: a slot has more than one row")
    sub = table.select(fields)
    return [sub.select(pl.all().gather(at.slice(j * n, n))).to_dict() for j in range(len(columns))]
