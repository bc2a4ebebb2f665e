"""The cached comparison keys of the release's plain names (``slotcache``): the rows ``compat.slot_keys`` gives,
read back from disk alike, under a name that changes with the deriving code; registry search's slot table
takes them for a large first batch and gives the same keys as ``slot_keys``."""

from __future__ import annotations

import random

import polars as pl
import pytest

from haplomatch import slotcache
from haplomatch.compat import CompatSettings, slot_keys
from haplomatch.search import _CACHED_KEYS_FROM, _SlotTable


def _by_slot(df: pl.DataFrame) -> pl.DataFrame:
    return df.select("slot", "keys", "absent", "error").sort("slot")


@pytest.mark.parametrize("level,null", [("two_field", "wmda"), ("antigen", "allele")])
def test_slot_table_keys_from_the_cache_equal_slot_keys(ref, level, null):
    names = ref.nomenclature.plain_names["name"].unique().sort().to_list()
    rng = random.Random(7)
    some = rng.sample(names, 2500) + ["A*02", "A*99:99", "A*01:01/A*02:01", "B5", "A*24:02L", "DPB1*04:XX"]
    assert len(some) >= _CACHED_KEYS_FROM
    table = _SlotTable(ref, CompatSettings(level=level, null_alleles=null))
    got = table._keys(some)
    assert got.height == len(some)
    assert _by_slot(got).equals(_by_slot(slot_keys(ref, some, level, null)))
    path = slotcache.table_path(ref, level, null)
    assert path.is_file() and slotcache.CODE_DIGEST in path.name
    # read back from the file (not the memo): the same table
    slotcache._MEMO.clear()
    again = slotcache.plain_slot_keys(ref, level, null)
    assert again.height == len(names)
    assert _by_slot(again.filter(pl.col("slot").is_in(some))).equals(_by_slot(got.filter(pl.col("slot").is_in(names))))


def test_the_file_name_follows_the_deriving_code(ref, monkeypatch):
    assert {"compat.py", "slotfacts.py", "nomenclature.py", "slotcache.py"} <= set(slotcache.DERIVING_MODULES)
    before = slotcache.table_path(ref, "two_field", "wmda")
    monkeypatch.setattr(slotcache, "CODE_DIGEST", "0000000000")
    assert slotcache.table_path(ref, "two_field", "wmda") != before
