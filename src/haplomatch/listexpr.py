"""List-valued polars expressions built cheaply over large tables."""

from __future__ import annotations

import functools
import operator
from typing import Iterable

import polars as pl

_MAX_BITS = 12  # 4,096 possible lists at most; more labels are listed per row


def label_list(pairs: Iterable[tuple[pl.Expr, str]]) -> pl.Expr:
    """The labels whose condition is true (null counts as false), in the given order: an empty list, never null.

    The conditions make a bit code per row, and the code picks its list from the 2^k possible lists:
    building a list per row (``concat_list`` + ``drop_nulls``) costs ~40x more on a batch."""
    pairs = list(pairs)
    if not pairs:
        return pl.lit([], pl.List(pl.String))
    if len(pairs) > _MAX_BITS:
        items = [pl.when(c).then(pl.lit(lbl)).otherwise(pl.lit(None, pl.String)) for c, lbl in pairs]
        return pl.concat_list(items).list.drop_nulls()
    code = functools.reduce(operator.or_, [
        pl.when(c).then(pl.lit(1 << j, pl.UInt32)).otherwise(pl.lit(0, pl.UInt32)) for j, (c, _) in enumerate(pairs)])
    return pl.lit(_lists(tuple(lbl for _, lbl in pairs))).gather(code)


@functools.lru_cache(maxsize=256)
def _lists(labels: tuple[str, ...]) -> pl.Series:
    """The 2^k lists of ``labels`` by bit code (made once per label tuple: a pair-facts pass asks for the same
    few dozen, and 4,096 lists cost more to build than the pass over a small batch)."""
    return pl.Series([[lbl for j, lbl in enumerate(labels) if k >> j & 1] for k in range(1 << len(labels))],
                     dtype=pl.List(pl.String))
