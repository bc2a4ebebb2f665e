"""``slotfacts.slot_candidates`` resolves many slots with one join against ``Nomenclature.plain_names``: the
same rows, in the same order, as resolving every name with ``resolve_one`` (every name of the release, lists,
names that do not resolve, few slots)."""

from __future__ import annotations

import random

import polars as pl

from haplomatch.nomenclature import Nomenclature
from haplomatch.slotfacts import _JOIN_FROM, _resolve_each, slot_candidates

_ODD = ["A*01:01/A*01:02", "A*02", "A*02:01:01", "A*01:01:01:02N", "A2", "A*99:99", "A*02:XX", "garbage", "", "/",
        "A*01:01/", "A*01:01/A*99:99", "A*99:99/A*01:01", "B5", "DPB1*1575", "A*0201", "DR15", "A*24:02", "A*24:02L",
        "A*01:01:01G", "A*01:01P", "C*07", "Q*01:01", "A*01:01:01:01:01", "a*01:01", "A*01:01 ", "é*01:01",
        "A*01:04", "A*02:AB"]


def _fresh(ref) -> Nomenclature:
    return Nomenclature(ref.alleles, ref.deleted, ref.ser_ser)


def _each(ref, slots) -> tuple[pl.DataFrame, pl.DataFrame]:
    return _resolve_each(_fresh(ref), sorted({s for s in slots if s}))


def test_plain_names_are_what_resolve_one_gives(ref):
    nom = _fresh(ref)
    by = nom.plain_names.group_by("name").agg(pl.col("allele").sort())
    assert by.height > 30_000
    _ = nom._prefix_index
    for name, alleles in by.iter_rows():
        assert nom._resolve_plain(name) == nom._resolve_full(name, None), name
        assert tuple(alleles) == nom.resolve_one(name).alleles, name


def test_joined_slots_equal_the_names_resolved_one_by_one(ref):
    a = ref.alleles
    names = set()
    for k in (1, 2, 3, 4):
        names |= set(a[f"name{k}"].drop_nulls()) | set((a[f"name{k}"] + a["suffix"]).drop_nulls())
    rng = random.Random(3)
    plain = sorted(n for n in names if ":" in n)
    lists = ["/".join(rng.sample(plain, rng.randint(2, 4))) for _ in range(1500)]
    mixed = ["/".join(rng.sample(plain, 2) + [rng.choice(_ODD)]) for _ in range(300)]
    for slots in (sorted(names) + _ODD, lists + mixed + _ODD + [None]):
        got, want = slot_candidates(_fresh(ref), slots), _each(ref, slots)
        for g, w in zip(got, want):
            assert g.schema == w.schema and g.equals(w)
        assert got[1].height > 0


def test_few_slots_once_the_plain_names_are_built(ref):
    nom = _fresh(ref)
    _ = nom.plain_names
    rng = random.Random(4)
    plain = nom.plain_names["name"].unique().sort().to_list()
    for i in range(60):
        slots = [*rng.sample(plain, 3), rng.choice(_ODD), None][: 1 + i % 5]
        assert len(slots) < _JOIN_FROM
        got, want = slot_candidates(nom, slots), _each(ref, slots)
        for g, w in zip(got, want):
            assert g.schema == w.schema and g.equals(w), slots
    for g, w in zip(slot_candidates(nom, []), _each(ref, [])):
        assert g.schema == w.schema and g.equals(w)


def test_tce_facts_are_those_of_slot_facts(ref):
    from haplomatch.slotfacts import slot_facts, slot_tce_facts

    rng = random.Random(5)
    dpb1 = ref.alleles.filter(pl.col("locus") == "DPB1")["name2"].unique().sort().to_list()
    slots = dpb1 + ["/".join(rng.sample(dpb1, 3)) for _ in range(200)] + _ODD + ["DPB1*04", "DPB1*02:XX", None]
    want = slot_facts(ref, slots).select("slot", "expressed", "tce_v1", "tce_v1_possible", "tce_v2",
                                         "tce_v2_possible", "error")
    got = slot_tce_facts(ref, slots).select(want.columns)
    assert got.schema == want.schema and got.equals(want)
    assert got["error"].null_count() < got.height
    empty = slot_tce_facts(ref, [])
    assert empty.height == 0 and {"slot", "expressed", "tce_v1", "tce_v2"} <= set(empty.columns)
