"""HLA compatibility of (patient, donor) pairs: directional mismatches, match grades, HLA-B leader, DPB1 TCE.

Everything is computed on a pair table (``persons.pair_frame``: ``patient_A_1``, ``patient_A_2``, …,
``donor_A_1``, …; a slot is a typing name or a ``/`` allele list, null = untyped) with polars joins and
expressions, never a Python loop over pairs: each distinct slot string is resolved once
(``slotfacts``), each distinct four-slot combination of a locus is counted once, and the result is
joined back. One patient against a million registry donors costs what its distinct donor typings cost.

Definitions (sources in :data:`SOURCES`, settings in :class:`CompatSettings`):

- **GvH** mismatches at a locus = the patient's alleles the donor lacks; **HvG** = the donor's alleles the
  patient lacks; **bidirectional** = the larger of the two. Alleles are compared by a key at the chosen
  level: 2-field protein (default), P group (antigen-recognition domain), serological antigen (split) or
  broad antigen. An allele without a serological equivalent takes its allele family (first field) as
  antigen; every DPB1 difference counts as an antigen difference (WMDA 2024).
- A **homozygous** mismatch counts once or twice (``homozygous_count``): patient a/a vs donor b/b is
  GvH 1 and HvG 1 counted once, GvH 2 and HvG 2 counted twice.
- **Null alleles** (WMDA, ``null_alleles="wmda"``): a slot whose candidates are all non-expressed is
  absent, and the locus counts as homozygous for the other slot; a person with two null alleles is compared
  by the null alleles' names (a mismatch against any expressed allele); null candidates inside an allele
  list with expressed ones are ignored. With ``null_alleles="allele"`` a null allele is compared by its
  name like any other allele.
- **Ambiguity**: a slot that can be several keys gives the range of possible counts (``*_min``,
  ``*_max``); the point value (``gvh_A``) is null unless the range is one value. An untyped slot can be any
  allele. The range is exact: every combination of the four slots' possible keys is accounted for, with
  the distinctness of keys respected (equality patterns of the four slots, checked by Hall's condition).
- **Match grades** X/8 (A, B, C, DRB1), X/10 (+DQB1), X/12 (+DPB1) = X minus the summed locus counts,
  per direction and bidirectional; loci are independent, so the grade range is the sum of locus ranges.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import combinations
from typing import Iterable

import polars as pl

from haplomatch.reference import Reference
from haplomatch.reference.facts import SEROLOGY_PREFIX, antigen_parents
from haplomatch.slotfacts import slot_candidates, slot_facts
from haplomatch.slotmemo import distinct_slots, looked_up, per_slot

#: Loci compared, in report order; the last five only when both people are typed there.
LOCI: tuple[str, ...] = ("A", "B", "C", "DRB1", "DQB1", "DPB1", "DRB3", "DRB4", "DRB5", "DQA1", "DPA1")
CORE_LOCI: tuple[str, ...] = ("A", "B", "C", "DRB1", "DQB1", "DPB1")
GRADE_LOCI: dict[int, tuple[str, ...]] = {
    8: ("A", "B", "C", "DRB1"),
    10: ("A", "B", "C", "DRB1", "DQB1"),
    12: ("A", "B", "C", "DRB1", "DQB1", "DPB1"),
}
LEVELS: tuple[str, ...] = ("two_field", "p_group", "antigen", "broad")
DIRECTIONS: tuple[str, ...] = ("gvh", "hvg", "bi")
TCE_CATEGORIES: tuple[str, ...] = ("Match", "Permissive", "NonPermissiveGvH", "NonPermissiveHvG", "Unknown")

#: The source of every rule applied here (authors, journal, year), printed with results.
SOURCES: dict[str, str] = {
    "direction": (
        "GvH = patient alleles absent from the donor, HvG = donor alleles absent from the patient, bidirectional = "
        "the larger (CIBMTR/WMDA usage; RULES 4.3); Bochtler W et al. World Marrow Donor Association framework for "
        "the implementation of HLA matching programs in hematopoietic stem cell donor registries and cord blood "
        "banks. Bone Marrow Transplant 2011;46:338-43"
    ),
    "homozygous_count": (
        "a homozygous mismatch counted once or twice is a setting: both conventions are in use (Bochtler W et al. "
        "Bone Marrow Transplant 2011;46:338-43; Bochtler W et al. HLA 2016;87:439-48; immunogenetr "
        "HLA_mismatch_number homozygous_count 1|2)"
    ),
    "null_alleles": (
        "a null allele is treated as absent: the locus is homozygous for the expressed typing; null alleles inside an "
        "allele list are not considered (WMDA Search & Match / Atlas matching engine, wmda.info 'Improved Null "
        "allele handling by the Atlas matching engine'; Bochtler W et al. Bone Marrow Transplant 2011;46:338-43)"
    ),
    "levels": (
        "2-field = same protein; P group = same antigen-recognition-domain protein (IPD-IMGT/HLA hla_nom_p.txt); "
        "antigen = WMDA serological equivalent (rel_dna_ser.txt), broad = its broad antigen (rel_ser_ser.txt); "
        "no serology -> allele family (first field); every DPB1 difference is an antigen difference "
        "(WMDA Bioinformatics & Innovation Committee, 2024-02-07)"
    ),
    "grades": (
        "X/8 = HLA-A, -B, -C, -DRB1; X/10 = + DQB1; X/12 = + DPB1 (standard usage, RULES 4.2; 8/8 and 10/10 as in "
        "Pidala J et al. Blood 2014;124:2596)"
    ),
    "b_leader": (
        "HLA-B leader -21 Met/Thr, genotypes MM/MT/TT: Petersdorf EW et al. Blood 2020;136:362-9; matched leader of "
        "the mismatched HLA-B alleles, single HLA-B mismatch only: Petersdorf EW et al. Lancet Haematol "
        "2020;7:e50-60; Sajulga R et al. Blood Adv 2022;6:270 (NMDP BLEAT)"
    ),
    "dpb1_tce": (
        "DPB1 T-cell-epitope groups 1-3 (IPD-IMGT/HLA tce/dpb_tce.csv, algorithm V2 by default): lowest group of "
        "patient vs donor, equal = permissive, patient lower = non-permissive GvH, donor lower = non-permissive HvG; "
        "a typing with one null allele counts as homozygous for the expressed one. Crivello P et al. Biol Blood "
        "Marrow Transplant 2016; Fleischhauer K et al. Lancet Oncol 2012;13:366-74; NMDP "
        "service-epitope; Atlas (Anthony Nolan/WMDA) Dpb1TceGroupMatchCalculator"
    ),
}


def sources() -> dict[str, str]:
    """The sources of the compatibility rules (a copy)."""
    return dict(SOURCES)


@dataclass(frozen=True)
class CompatSettings:
    """Named settings of the compatibility rules (see the module docstring)."""

    level: str = "two_field"  # two_field | p_group | antigen | broad
    homozygous_count: int = 1  # 1 = a homozygous mismatch counts once, 2 = twice
    null_alleles: str = "wmda"  # wmda | allele
    tce_version: str = "v2"  # v2 | v1
    loci: tuple[str, ...] = LOCI

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {self.level!r}")
        if self.homozygous_count not in (1, 2):
            raise ValueError("homozygous_count must be 1 or 2")
        if self.null_alleles not in ("wmda", "allele"):
            raise ValueError("null_alleles must be 'wmda' or 'allele'")
        if self.tce_version not in ("v1", "v2"):
            raise ValueError("tce_version must be 'v1' or 'v2'")
        unknown = set(self.loci) - set(LOCI)
        if unknown:
            raise ValueError(f"unknown loci {sorted(unknown)}; known: {', '.join(LOCI)}")

    def with_(self, **changes) -> "CompatSettings":
        return replace(self, **changes)


# --------------------------------------------------------------------------------------------------
# Slot keys: the comparison key(s) a slot can have at a level
# --------------------------------------------------------------------------------------------------

_SEROLOGY_FAMILY_LOCI = ("A", "B", "C", "DRB1", "DQB1")


def _broad_map(ref: Reference) -> dict[str, str]:
    """Antigen → its broad antigen, following split → broad and associated → antigen to the top."""
    parent = antigen_parents(ref.ser_ser)
    out: dict[str, str] = {}
    for child in parent:
        top, seen = child, set()
        while top in parent and top not in seen:
            seen.add(top)
            top = parent[top]
        out[child] = top
    return out


def _candidate_keys(ref: Reference, level: str) -> pl.Expr:
    """Per release allele: the list of keys it has at ``level`` (a null allele keeps its 2-field name)."""
    two_field = pl.col("name2") + pl.col("suffix")
    if level == "two_field":
        return pl.concat_list(two_field)
    if level == "p_group":
        return pl.concat_list(pl.coalesce(pl.col("p_group"), two_field))
    # antigen / broad: the serological equivalent; else the possible ones; else the allele family
    family = pl.col("name1")
    for locus in _SEROLOGY_FAMILY_LOCI:
        family = pl.when(pl.col("locus") == locus).then(
            pl.lit(SEROLOGY_PREFIX[locus]) + pl.col("f1").cast(pl.Int64, strict=False).cast(pl.String)
        ).otherwise(family)
    fallback = pl.when(pl.col("locus") == "DPB1").then(two_field).otherwise(family)
    keys = (
        pl.when(~pl.col("expressed")).then(pl.concat_list(two_field))
        .when(pl.col("antigen").is_not_null()).then(pl.concat_list(pl.col("antigen")))
        .when(pl.col("antigens_possible").list.len() > 0).then(pl.col("antigens_possible"))
        .otherwise(pl.concat_list(fallback))
    )
    if level == "broad":
        bmap = _broad_map(ref)
        keys = pl.when(pl.col("expressed")).then(
            keys.list.eval(pl.element().replace(bmap))
        ).otherwise(keys)
    return keys


def slot_keys(ref: Reference, slots: Iterable[str | None] | pl.Series, level: str = "two_field",
              null_alleles: str = "wmda") -> pl.DataFrame:
    """One row per distinct slot string: ``keys`` (the sorted possible keys at ``level``), ``absent`` (all
    candidates are null alleles and ``null_alleles='wmda'``), ``error`` (the slot does not resolve).
    (Each slot is computed once per process: ``slotmemo``.)"""
    return per_slot("slot_keys", ref, slots, lambda new: _slot_keys(ref, new, level, null_alleles), level, null_alleles)


def _slot_keys(ref: Reference, slots: list[str], level: str, null_alleles: str) -> pl.DataFrame:
    cands, errors = slot_candidates(ref.nomenclature, slots)
    a = ref.alleles.select("allele", "locus", "f1", "name1", "name2", "suffix", "p_group", "expressed",
                           "antigen", "antigens_possible")
    per = (
        cands.join(a, on="allele", how="left")
        .with_columns(_candidate_keys(ref, level).alias("ckeys"))
        .explode("ckeys")
        .group_by("slot", maintain_order=True)
        .agg(
            pl.col("ckeys").filter(pl.col("expressed")).unique().sort().alias("keys_expressed"),
            pl.col("ckeys").unique().sort().alias("keys_all"),
            pl.col("expressed").any().alias("any_expressed"),
        )
    )
    if null_alleles == "wmda":
        per = per.with_columns(
            pl.when(pl.col("any_expressed")).then(pl.col("keys_expressed")).otherwise(pl.col("keys_all")).alias("keys"),
            (~pl.col("any_expressed")).alias("absent"),
        )
    else:
        per = per.with_columns(pl.col("keys_all").alias("keys"), pl.lit(False).alias("absent"))
    out = per.select("slot", "keys", "absent", pl.lit(None, pl.String).alias("error"))
    err = errors.select("slot", pl.lit(None, pl.List(pl.String)).alias("keys"), pl.lit(False).alias("absent"), "error")
    return pl.concat([out, err], how="vertical_relaxed")


# --------------------------------------------------------------------------------------------------
# Exact count ranges over the equality patterns of four slots
# --------------------------------------------------------------------------------------------------

_SLOTS = ("p1", "p2", "d1", "d2")
_BIT = {"p1": 1, "p2": 2, "d1": 4, "d2": 8}
_PATIENT, _DONOR = 3, 12
_FRESH = ["\x00?1", "\x00?2", "\x00?3", "\x00?4"]  # stand-ins for "any other allele" (untyped slots)


def _set_partitions(items: list[int]) -> list[list[int]]:
    if not items:
        return [[]]
    first, rest = items[0], items[1:]
    out = []
    for p in _set_partitions(rest):
        out.append([first] + p)
        for i in range(len(p)):
            out.append(p[:i] + [first | p[i]] + p[i + 1:])
    return out


@lru_cache(maxsize=1)
def _patterns() -> list[dict]:
    """The 15 equality patterns of (p1, p2, d1, d2): blocks (bit masks) and the counts each implies."""
    out = []
    for blocks in _set_partitions([1, 2, 4, 8]):
        pat = {"blocks": tuple(sorted(blocks))}
        gvh_blocks = [b for b in blocks if b & _PATIENT and not b & _DONOR]
        hvg_blocks = [b for b in blocks if b & _DONOR and not b & _PATIENT]
        pat["gvh2"] = sum(bin(b & _PATIENT).count("1") for b in gvh_blocks)
        pat["hvg2"] = sum(bin(b & _DONOR).count("1") for b in hvg_blocks)
        pat["gvh1"] = len(gvh_blocks)
        pat["hvg1"] = len(hvg_blocks)
        pat["p_together"] = any(b & 3 == 3 for b in blocks)
        pat["d_together"] = any(b & 12 == 12 for b in blocks)
        out.append(pat)
    return out


def _mask_name(mask: int) -> str:
    return "_I" + "".join(s for s in _SLOTS if mask & _BIT[s])


def _count_ranges(q: pl.DataFrame, prefix: str, homozygous_count: int) -> pl.DataFrame:
    """Add ``{prefix}gvh_min`` … ``{prefix}bi_max`` to ``q``, which has list columns ``k_p1`` … ``k_d2``
    (possible keys, non-null) and booleans ``tie_p`` / ``tie_d`` (the two slots are one allele).

    Rows whose four slots each have exactly one possible key (an unambiguous typing: the usual case) have
    one equality pattern, counted directly; the others go through the exact range search."""
    one = pl.all_horizontal(pl.col(f"k_{s}").list.len() == 1 for s in _SLOTS)
    k = {s: pl.col(f"k_{s}").list.first() for s in _SLOTS}
    one = one & (~pl.col("tie_p") | (k["p1"] == k["p2"])) & (~pl.col("tie_d") | (k["d1"] == k["d2"]))
    is_one = q.select(one.fill_null(False)).to_series()
    if is_one.all():  # the usual batch: no row to search, nothing to split and put back in order
        return _count_single(q, prefix, homozygous_count).rechunk()
    q = q.with_row_index("_row")
    simple, hard = q.filter(is_one), q.filter(~is_one)
    parts = [_count_single(simple, prefix, homozygous_count)] if simple.height else []
    if hard.height or not parts:
        parts.append(_count_search(hard, prefix, homozygous_count))
    return pl.concat(parts, rechunk=True).sort("_row").drop("_row").rechunk()


def _count_single(q: pl.DataFrame, prefix: str, homozygous_count: int) -> pl.DataFrame:
    """Counts for rows of one key per slot: slots not found on the other side (once per distinct key when a
    homozygous mismatch counts once). (Each key and count is computed once, then copied.)"""
    q = q.with_columns(pl.col(f"k_{s}").list.first().alias(f"_one_{s}") for s in _SLOTS)
    k = {s: pl.col(f"_one_{s}") for s in _SLOTS}

    def missing(a: str, b: str, other: tuple[str, str]) -> pl.Expr:
        first = ((k[a] != k[other[0]]) & (k[a] != k[other[1]])).cast(pl.Int8)
        second = ((k[b] != k[other[0]]) & (k[b] != k[other[1]]))
        if homozygous_count != 2:
            second = second & (k[b] != k[a])
        return first + second.cast(pl.Int8)

    q = q.with_columns(missing("p1", "p2", ("d1", "d2")).alias("_one_gvh"), missing("d1", "d2", ("p1", "p2")).alias("_one_hvg"))
    q = q.with_columns(pl.max_horizontal("_one_gvh", "_one_hvg").alias("_one_bi"))
    return q.with_columns(
        pl.col(f"_one_{d}").alias(f"{prefix}{d}_{m}") for d in DIRECTIONS for m in ("min", "max")
    ).drop([f"_one_{x}" for x in (*_SLOTS, *DIRECTIONS)])


def _count_search(q: pl.DataFrame, prefix: str, homozygous_count: int) -> pl.DataFrame:
    """The exact ranges over every equality pattern the key sets allow (Hall's condition)."""
    for step in _search_steps(prefix, homozygous_count):
        q = q.with_columns(step)
    return q.drop([c for c in q.columns if c.startswith(("_I", "_U", "_F"))])


@lru_cache(maxsize=8)
def _search_steps(prefix: str, homozygous_count: int) -> tuple[tuple[pl.Expr, ...], ...]:
    """The expressions of :func:`_count_search`, in four steps (built once: every pair-facts call runs them,
    and building them costs more than running them on a small batch)."""
    # 1. the key sets shared by every subset of slots
    inter: dict[int, pl.Expr] = {}
    for mask in range(1, 16):
        members = [s for s in _SLOTS if mask & _BIT[s]]
        e = pl.col(f"k_{members[0]}")
        for s in members[1:]:
            e = e.list.set_intersection(pl.col(f"k_{s}"))
        inter[mask] = e
    step1 = tuple(e.alias(_mask_name(m)) for m, e in inter.items())
    # 2. Hall's condition for each pattern: every set of blocks has at least as many distinct keys as blocks
    union_len: dict[tuple[int, ...], str] = {}
    exprs = []
    for pat in _patterns():
        for r in range(2, len(pat["blocks"]) + 1):
            for sub in combinations(pat["blocks"], r):
                if sub in union_len:
                    continue
                e = pl.col(_mask_name(sub[0]))
                for b in sub[1:]:
                    e = e.list.set_union(pl.col(_mask_name(b)))
                name = "_U" + "_".join(str(b) for b in sub)
                union_len[sub] = name
                exprs.append(e.list.len().alias(name))
    feas = []
    for i, pat in enumerate(_patterns()):
        ok = pl.lit(True)
        for b in pat["blocks"]:
            ok = ok & (pl.col(_mask_name(b)).list.len() >= 1)
        for r in range(2, len(pat["blocks"]) + 1):
            for sub in combinations(pat["blocks"], r):
                ok = ok & (pl.col(union_len[sub]) >= r)
        if not pat["p_together"]:
            ok = ok & ~pl.col("tie_p")
        if not pat["d_together"]:
            ok = ok & ~pl.col("tie_d")
        feas.append(ok.alias(f"_F{i}"))
    k = "2" if homozygous_count == 2 else "1"
    out = []
    for d in DIRECTIONS:
        vals = []
        for i, pat in enumerate(_patterns()):
            v = max(pat["gvh" + k], pat["hvg" + k]) if d == "bi" else pat[d + k]
            vals.append(pl.when(pl.col(f"_F{i}")).then(pl.lit(v, pl.Int8)))
        out.append(pl.min_horizontal(vals).alias(f"{prefix}{d}_min"))
        out.append(pl.max_horizontal(vals).alias(f"{prefix}{d}_max"))
    return step1, tuple(exprs), tuple(feas), tuple(out)


def _prepare_slots(q: pl.DataFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """Join each of the four slot strings (``s_p1`` … ``s_d2``, '' = untyped) to its keys; untyped slots become
    wildcards (any key of the other slots, or a fresh one); a null-allele slot copies its partner (tied)."""
    q = q.rechunk()  # (one chunk, as every column looked up: polars' list set operations need it)
    cols = []
    for s, found in zip(_SLOTS, looked_up([q[f"s_{s}"] for s in _SLOTS], keys, ("keys", "absent", "error"))):
        cols += [found["keys"].alias(f"k_{s}"), found["absent"].fill_null(False).alias(f"a_{s}"),
                 found["error"].alias(f"e_{s}"),
                 # an unresolvable slot is reported and counted as a wildcard: never a guess
                 ((q[f"s_{s}"] == "") | found["keys"].is_null()).alias(f"w_{s}")]
    q = q.with_columns(cols)
    # Rows with no null allele and no wildcard (the usual case) are ready: their lists are not touched.
    plain = ~pl.any_horizontal(pl.col(f"{c}_{s}") for c in ("a", "w") for s in _SLOTS)
    mask = q.select(plain).to_series()
    if mask.all():  # (one chunk, as below: the range search may run list set operations on these rows)
        return q.with_columns(pl.lit(False).alias("tie_p"), pl.lit(False).alias("tie_d")).rechunk()
    q = q.with_row_index("_prep")
    ready = q.filter(mask).with_columns(pl.lit(False).alias("tie_p"), pl.lit(False).alias("tie_d"))
    rest = q.filter(~mask)
    if rest.height == 0:
        return ready.drop("_prep")
    # (one chunk: polars' list set operations mis-index list columns made of several chunks)
    return pl.concat([ready, _ties_and_wildcards(rest)], rechunk=True).sort("_prep").drop("_prep").rechunk()


def _ties_and_wildcards(q: pl.DataFrame) -> pl.DataFrame:
    """A null allele in one slot only: the person is homozygous for the other slot (tied); an untyped slot
    becomes a wildcard: any key of the other slots, or a fresh one."""
    for x, y, person in (("p1", "p2", "p"), ("d1", "d2", "d")):
        one = (pl.col(f"a_{x}") & ~pl.col(f"a_{y}")) | (pl.col(f"a_{y}") & ~pl.col(f"a_{x}"))
        q = q.with_columns(
            pl.when(pl.col(f"a_{x}") & ~pl.col(f"a_{y}")).then(pl.col(f"k_{y}")).otherwise(pl.col(f"k_{x}")).alias(f"k_{x}"),
            pl.when(pl.col(f"a_{y}") & ~pl.col(f"a_{x}")).then(pl.col(f"k_{x}")).otherwise(pl.col(f"k_{y}")).alias(f"k_{y}"),
            pl.when(pl.col(f"a_{x}") & ~pl.col(f"a_{y}")).then(pl.col(f"w_{y}")).otherwise(pl.col(f"w_{x}")).alias(f"w_{x}"),
            pl.when(pl.col(f"a_{y}") & ~pl.col(f"a_{x}")).then(pl.col(f"w_{x}")).otherwise(pl.col(f"w_{y}")).alias(f"w_{y}"),
            one.alias(f"tie_{person}"),
        )
    empty = pl.lit([], pl.List(pl.String))
    known = [pl.when(pl.col(f"w_{s}")).then(empty).otherwise(pl.col(f"k_{s}")) for s in _SLOTS]
    union = known[0]
    for e in known[1:]:
        union = union.list.set_union(e)
    q = q.with_columns(union.list.set_union(pl.lit(_FRESH)).alias("_wild"))
    q = q.with_columns(
        pl.when(pl.col(f"w_{s}")).then(pl.col("_wild")).otherwise(pl.col(f"k_{s}")).alias(f"k_{s}") for s in _SLOTS
    )
    return q.drop("_wild")


def _locus_table(q: pl.DataFrame, keys: pl.DataFrame, ag_keys: pl.DataFrame | None,
                 settings: CompatSettings) -> pl.DataFrame:
    """Counts for distinct four-slot rows ``s_p1`` … ``s_d2`` (of any loci: keys depend on the slot only)."""
    base = _prepare_slots(q, keys)
    base = _count_ranges(base, "", settings.homozygous_count)
    out = base.select(
        "s_p1", "s_p2", "s_d1", "s_d2", *_keep_q(base),
        *[pl.col(c) for c in base.columns if c.endswith(("_min", "_max"))],
        (~(pl.col("w_p1") & pl.col("w_p2")) & ~(pl.col("w_d1") & pl.col("w_d2"))
         & pl.all_horizontal(pl.col(f"e_{s}").is_null() for s in _SLOTS)).alias("typed"),
        pl.concat_str([pl.col(f"e_{s}") for s in _SLOTS], separator="; ", ignore_nulls=True).replace("", None).alias("error"),
        *[pl.col(f"k_{s}") for s in _SLOTS],
        pl.col("tie_p"), pl.col("tie_d"),
    )
    if ag_keys is not None:
        ag = _count_ranges(_prepare_slots(q, ag_keys), "ag_", settings.homozygous_count)
        on = _keep_q(q) or _S_COLS  # numbered rows (one per locus and distinct four slots) join on their number
        out = out.join(ag.select(*on, "ag_gvh_min", "ag_gvh_max", "ag_hvg_min", "ag_hvg_max"), on=on, how="left")
    return out


def _point(lo: str, hi: str) -> pl.Expr:
    return pl.when(pl.col(lo) == pl.col(hi)).then(pl.col(lo))


# --------------------------------------------------------------------------------------------------
# The pair table
# --------------------------------------------------------------------------------------------------

def _slot_col(pairs: pl.DataFrame, who: str, locus: str, i: int) -> pl.Expr:
    name = f"{who}_{locus}_{i}"
    if name in pairs.columns:
        return pl.col(name).cast(pl.String).fill_null("")
    return pl.lit("")


_S_COLS = ["s_p1", "s_p2", "s_d1", "s_d2"]


def _quad(loc: str) -> list[str]:
    """The working columns of one locus's four slots (patient 1, 2, donor 1, 2)."""
    return [f"_{loc}_p1", f"_{loc}_p2", f"_{loc}_d1", f"_{loc}_d2"]


def _placed(q: pl.Series, per: pl.DataFrame, offset: int) -> list[pl.Series]:
    """The columns of a per-distinct-row table (rows numbered ``_q`` = offset, offset + 1, …, in any order)
    for each pair row (``q``: the pair's ``_q``): a gather, not a join on four slot strings."""
    per = per.sort("_q")
    if per.height and (per["_q"][0] != offset or per["_q"][-1] != offset + per.height - 1):
        raise AssertionError("compat: the numbered four-slot rows are not contiguous")  # pragma: no cover
    return per.drop(*_S_COLS, "_q").gather(q - offset).get_columns()


def _keep_q(t: pl.DataFrame) -> list[str]:
    return ["_q"] if "_q" in t.columns else []


def _locus_columns(t: pl.DataFrame, loc: str, with_antigen: bool) -> pl.DataFrame:
    """The output columns of locus ``loc`` per distinct four-slot row of the counting table."""
    add = [
        *[pl.col(f"{d}_{m}").cast(pl.Int64).alias(f"{d}_{loc}_{m}") for d in DIRECTIONS for m in ("min", "max")],
        *[_point(f"{d}_min", f"{d}_max").cast(pl.Int64).alias(f"{d}_{loc}") for d in DIRECTIONS],
        pl.col("typed").alias(f"typed_{loc}"),
        pl.col("error").alias(f"error_{loc}"),
    ]
    for d in ("gvh", "hvg"):
        lvp = _point(f"{d}_min", f"{d}_max")
        agp = _point(f"ag_{d}_min", f"ag_{d}_max") if with_antigen else lvp  # antigen level: every mismatch is one
        add += [
            agp.cast(pl.Int64).alias(f"{d}_{loc}_antigen"),
            pl.when(lvp == 0).then(pl.lit("none"))
            .when(agp > 0).then(pl.lit("antigen"))
            .when((lvp > 0) & (agp == 0)).then(pl.lit("allele"))
            .alias(f"{d}_{loc}_kind"),
        ]
    per = t.select(*_S_COLS, *_keep_q(t), *add)
    if loc not in GRADE_LOCI[12]:  # optional loci count only when both people are typed there
        per = per.with_columns(
            pl.when(pl.col(f"typed_{loc}")).then(pl.col(c)).alias(c)
            for c in per.columns if c.startswith(("gvh_", "hvg_", "bi_"))
        )
    return per


def compat_pair_facts(ref: Reference, pairs: pl.DataFrame, settings: CompatSettings | None = None) -> pl.DataFrame:
    """``pairs`` with the compatibility columns added, in the same row order.

    Per locus L (``A``, ``B``, … without prefix): ``gvh_L``, ``hvg_L``, ``bi_L`` (point counts, null when
    ambiguous or untyped), ``gvh_L_min``/``_max`` … ``bi_L_max`` (the exact range), ``gvh_L_antigen`` /
    ``hvg_L_antigen`` (of which at antigen level), ``gvh_L_kind`` / ``hvg_L_kind`` (none / allele / antigen),
    ``typed_L``, ``error_L``. Grades ``grade8_gvh`` … ``grade12_bi`` (integers, null unless exact),
    ``*_min``/``*_max`` and ``*_text`` ("7/8", "6-7/8"). HLA-B leader: ``patient_b_leader``,
    ``donor_b_leader`` (MM/MT/TT), ``b_leader_genotype_match``, ``b_leader_mismatched_alleles_same_leader``,
    ``b_leader_code``, ``b_leader_reason``. DPB1: ``dpb1_tce``, ``dpb1_tce_possible``,
    ``patient_dpb1_tce_groups``, ``donor_dpb1_tce_groups``, ``dpb1_tce_reason``.
    """
    s = settings or CompatSettings()
    loci = tuple(loc for loc in LOCI if loc in s.loci or loc in GRADE_LOCI[12])
    pairs = pairs.with_row_index("_pair")
    # the four slot strings per locus, '' = untyped (joins on null never match)
    slot_cols = {
        loc: [_slot_col(pairs, w, loc, i).alias(f"_{loc}_{w[0]}{i}") for w in ("patient", "donor") for i in (1, 2)]
        for loc in loci
    }
    work = pairs.select("_pair", *[e for loc in loci for e in slot_cols[loc]])
    all_slots = distinct_slots(pl.concat([work.get_column(c) for c in work.columns if c != "_pair"]))
    keys = slot_keys(ref, all_slots, s.level, s.null_alleles)
    ag_keys = slot_keys(ref, all_slots, "antigen", s.null_alleles) if s.level in ("two_field", "p_group") else None
    # per-allele facts are read for the HLA-B leader and DPB1 TCE only
    bd = [work.get_column(c) for loc in ("B", "DPB1") if loc in loci for c in _quad(loc)]
    facts = _slot_facts(ref, pl.concat(bd) if bd else [])

    out = pairs
    # every distinct four-slot row of each locus, numbered (``_q``), counted in one pass (keys do not depend on
    # the locus); each pair's number per locus places the counts back
    uniq, qidx, span, offset = [], {}, {}, 0
    for loc in loci:
        quad = work.select(_quad(loc))
        u = quad.unique(maintain_order=True).with_row_index("_q", offset=offset)
        qidx[loc] = quad.join(u, on=_quad(loc), how="left", maintain_order="left")["_q"]
        span[loc] = (offset, u.height)
        offset += u.height
        uniq.append(u.rename(dict(zip(_quad(loc), _S_COLS))))
    table = _locus_table(pl.concat(uniq), keys, ag_keys, s).sort("_q")
    rows = {loc: table.slice(*span[loc]) for loc in loci}
    for loc in loci:
        out = out.hstack(_placed(qidx[loc], _locus_columns(rows[loc], loc, ag_keys is not None), span[loc][0]))
    out = out.with_columns(_grade_exprs())
    # leader and TCE depend on one locus's four slots only: computed per distinct row, placed back
    out = out.hstack(_placed(qidx["B"], _b_leader(rows["B"], facts), span["B"][0]))
    out = out.hstack(_placed(qidx["DPB1"], _dpb1_tce(rows["DPB1"], facts, s), span["DPB1"][0]))
    return out.drop("_pair")


def _slot_facts(ref: Reference, slots) -> pl.DataFrame:
    return per_slot("slot_facts", ref, slots, lambda new: slot_facts(ref, new))


def remember_slots(ref: Reference, slots: pl.Series, settings: CompatSettings | None = None) -> None:
    """Compute now, for this process, the per-slot tables :func:`compat_pair_facts` reads for ``slots``
    (comparison keys at the level and at antigen level, and the HLA-B and DPB1 slots' allele facts): a
    registry kept open computes them for all its slots once, not for each search's best donors."""
    s = settings or CompatSettings()
    slot_keys(ref, slots, s.level, s.null_alleles)
    if s.level in ("two_field", "p_group"):
        slot_keys(ref, slots, "antigen", s.null_alleles)
    _slot_facts(ref, slots.filter(slots.str.starts_with("B*") | slots.str.starts_with("DPB1*")))


def _grade_exprs() -> list[pl.Expr]:
    exprs = []
    for n, loci in GRADE_LOCI.items():
        for d in DIRECTIONS:
            lo = pl.lit(n) - pl.sum_horizontal(pl.col(f"{d}_{loc}_max") for loc in loci)
            hi = pl.lit(n) - pl.sum_horizontal(pl.col(f"{d}_{loc}_min") for loc in loci)
            base = f"grade{n}_{d}"
            exprs += [
                lo.cast(pl.Int64).alias(f"{base}_min"),
                hi.cast(pl.Int64).alias(f"{base}_max"),
                pl.when(lo == hi).then(lo).cast(pl.Int64).alias(base),
                pl.when(lo == hi).then(lo.cast(pl.String) + pl.lit(f"/{n}"))
                .otherwise(lo.cast(pl.String) + "-" + hi.cast(pl.String) + pl.lit(f"/{n}")).alias(f"{base}_text"),
            ]
    return exprs


# --------------------------------------------------------------------------------------------------
# HLA-B leader -21
# --------------------------------------------------------------------------------------------------

def _genotype(l1: pl.Expr, l2: pl.Expr) -> pl.Expr:
    return pl.when(l1.is_not_null() & l2.is_not_null()).then(pl.concat_list(l1, l2).list.sort().list.join(""))


_B_LEADER_COLUMNS = ("patient_b_leader", "donor_b_leader", "b_leader_genotype_match",
                     "b_leader_mismatched_alleles_same_leader", "b_leader_code", "b_leader_reason")


def _b_leader(t: pl.DataFrame, facts: pl.DataFrame) -> pl.DataFrame:
    """Leader facts per distinct HLA-B four-slot row of ``t`` (the counting table: ``s_*``, ``k_*``, ties)."""
    b = t.select("s_p1", "s_p2", "s_d1", "s_d2", *[f"k_{s}" for s in _SLOTS], "tie_p", "tie_d", "error", *_keep_q(t))
    b = b.with_columns(c for s, found in zip(_SLOTS, looked_up([b[f"s_{s}"] for s in _SLOTS], facts,
                                                                 ("leader", "expressed")))
                       for c in (found["leader"].alias(f"L_{s}"), found["expressed"].alias(f"X_{s}")))
    single = pl.all_horizontal(pl.col(f"k_{s}").list.len() == 1 for s in _SLOTS)
    k = {s: pl.col(f"k_{s}").list.first() for s in _SLOTS}
    # (read only where every slot has one key, so plain comparisons say "not on the other side")
    p1_out = (k["p1"] != k["d1"]) & (k["p1"] != k["d2"])
    p2_out = (k["p2"] != k["d1"]) & (k["p2"] != k["d2"])
    d1_out = (k["d1"] != k["p1"]) & (k["d1"] != k["p2"])
    d2_out = (k["d2"] != k["p1"]) & (k["d2"] != k["p2"])
    one_each = (
        single & ~pl.col("tie_p") & ~pl.col("tie_d") & (k["p1"] != k["p2"]) & (k["d1"] != k["d2"])
        & ((p1_out.cast(pl.Int8) + p2_out.cast(pl.Int8)) == 1) & ((d1_out.cast(pl.Int8) + d2_out.cast(pl.Int8)) == 1)
    )
    up = pl.when(p1_out).then(pl.col("L_p1")).otherwise(pl.col("L_p2"))
    ud = pl.when(d1_out).then(pl.col("L_d1")).otherwise(pl.col("L_d2"))
    shared = pl.when(p1_out).then(pl.col("L_p2")).otherwise(pl.col("L_p1"))
    any_null_allele = pl.any_horizontal(pl.col(f"X_{s}") == False for s in _SLOTS)  # noqa: E712
    typed = pl.all_horizontal(pl.col(f"s_{s}") != "" for s in _SLOTS)
    b = b.with_columns(
        _genotype(pl.col("L_p1"), pl.col("L_p2")).alias("patient_b_leader"),
        _genotype(pl.col("L_d1"), pl.col("L_d2")).alias("donor_b_leader"),
    ).with_columns(
        (pl.col("patient_b_leader") == pl.col("donor_b_leader")).alias("b_leader_genotype_match"),
        pl.when(one_each).then(up == ud).alias("b_leader_mismatched_alleles_same_leader"),
        pl.when(one_each).then(pl.concat_str([up, ud, shared])).alias("b_leader_code"),
        pl.when(~typed).then(pl.lit("HLA-B not typed in both people"))
        .when(pl.col("error").is_not_null()).then(pl.lit("an HLA-B typing does not resolve"))
        .when(any_null_allele).then(pl.lit("an HLA-B null allele: no leader peptide from it"))
        .when(~single).then(pl.lit("ambiguous HLA-B typing at the comparison level: the mismatched alleles are not known"))
        .when(~one_each).then(pl.lit(
            "defined for a single HLA-B mismatch only (one shared allele, one unshared allele in each person; "
            "Petersdorf 2020, BLEAT)"))
        .when(up.is_null() | ud.is_null()).then(pl.lit(
            "the leader -21 of an unshared HLA-B allele is not known (type exon 1 or at two fields)"))
        .alias("b_leader_reason"),
    )
    return b.select("s_p1", "s_p2", "s_d1", "s_d2", *_keep_q(b), *_B_LEADER_COLUMNS)


# --------------------------------------------------------------------------------------------------
# DPB1 T-cell epitopes
# --------------------------------------------------------------------------------------------------

def tce_category(patient_groups: pl.Expr, donor_groups: pl.Expr) -> pl.Expr:
    """Category of two TCE genotypes (lists of two group numbers 1-3, already with null alleles replaced by the
    expressed one), assuming the alleles differ: Permissive / NonPermissiveGvH / NonPermissiveHvG."""
    pmin, dmin = patient_groups.list.min(), donor_groups.list.min()
    return (
        pl.when(pmin.is_null() | dmin.is_null()).then(pl.lit(None, pl.String))
        .when(pmin == dmin).then(pl.lit("Permissive"))
        .when(pmin < dmin).then(pl.lit("NonPermissiveGvH"))
        .otherwise(pl.lit("NonPermissiveHvG"))
    )


_TCE_COLUMNS = ("dpb1_tce", "dpb1_tce_possible", "patient_dpb1_tce_groups", "donor_dpb1_tce_groups", "dpb1_tce_reason")


def _dpb1_tce(t: pl.DataFrame, facts: pl.DataFrame, s: CompatSettings) -> pl.DataFrame:
    """TCE facts per distinct DPB1 four-slot row of ``t`` (the counting table: ``s_*``, counts, ``typed``)."""
    col = "tce_v2" if s.tce_version == "v2" else "tce_v1"
    d = t.select("s_p1", "s_p2", "s_d1", "s_d2", pl.col("gvh_min").alias("gvh_DPB1_min"),
                 pl.col("gvh_max").alias("gvh_DPB1_max"), pl.col("hvg_min").alias("hvg_DPB1_min"),
                 pl.col("hvg_max").alias("hvg_DPB1_max"), pl.col("typed").alias("typed_DPB1"), *_keep_q(t))
    d = d.with_columns(c for sl, found in zip(_SLOTS, looked_up([d[f"s_{sl}"] for sl in _SLOTS], facts,
                                                                  (col, "expressed")))
                       for c in (found[col].alias(f"g_{sl}"), found["expressed"].alias(f"x_{sl}")))

    def groups(a: str, b: str) -> pl.Expr:
        ga, gb = pl.col(f"g_{a}"), pl.col(f"g_{b}")
        na, nb = pl.col(f"x_{a}") == False, pl.col(f"x_{b}") == False  # noqa: E712 (all candidates null)
        ga2 = pl.when(na & ~nb).then(gb).when(na & nb).then(None).otherwise(ga)
        gb2 = pl.when(nb & ~na).then(ga).when(na & nb).then(None).otherwise(gb)
        return pl.concat_list(ga2.cast(pl.Int64, strict=False), gb2.cast(pl.Int64, strict=False))

    d = d.with_columns(groups("p1", "p2").alias("pg"), groups("d1", "d2").alias("dg"))
    d = d.with_columns(
        pl.when(pl.col("pg").list.eval(pl.element().is_between(1, 3).fill_null(False)).list.all()).then(pl.col("pg")).alias("pg"),
        pl.when(pl.col("dg").list.eval(pl.element().is_between(1, 3).fill_null(False)).list.all()).then(pl.col("dg")).alias("dg"),
    )
    cat = tce_category(pl.col("pg"), pl.col("dg"))
    can_match = (pl.col("gvh_DPB1_min") == 0) & (pl.col("hvg_DPB1_min") == 0)
    must_match = (pl.col("gvh_DPB1_max") == 0) & (pl.col("hvg_DPB1_max") == 0)
    d = d.with_columns(cat.alias("_cat")).with_columns(
        pl.when(~pl.col("typed_DPB1")).then(pl.lit("Unknown"))
        .when(must_match).then(pl.lit("Match"))
        .when(can_match | pl.col("_cat").is_null()).then(pl.lit("Unknown"))
        .otherwise(pl.col("_cat")).alias("dpb1_tce"),
        pl.when(~pl.col("typed_DPB1")).then(pl.lit(list(TCE_CATEGORIES[:4])))
        .when(must_match).then(pl.lit(["Match"]))
        .when(pl.col("_cat").is_null()).then(
            pl.when(can_match).then(pl.lit(list(TCE_CATEGORIES[:4]))).otherwise(pl.lit(list(TCE_CATEGORIES[1:4]))))
        .when(can_match).then(pl.concat_list(pl.lit("Match"), pl.col("_cat")))
        .otherwise(pl.concat_list(pl.col("_cat"))).alias("dpb1_tce_possible"),
        pl.col("pg").list.sort().list.eval(pl.element().cast(pl.String)).list.join("+").alias("patient_dpb1_tce_groups"),
        pl.col("dg").list.sort().list.eval(pl.element().cast(pl.String)).list.join("+").alias("donor_dpb1_tce_groups"),
        pl.when(~pl.col("typed_DPB1")).then(pl.lit("DPB1 not typed in both people"))
        .when(must_match).then(None)
        .when(pl.col("_cat").is_null()).then(pl.lit(
            f"TCE group ({s.tce_version.upper()}) not assigned or ambiguous for a DPB1 typing"))
        .when(can_match).then(pl.lit("ambiguous DPB1 typing: the alleles may be identical"))
        .alias("dpb1_tce_reason"),
    )
    return d.select("s_p1", "s_p2", "s_d1", "s_d2", *_keep_q(d), *_TCE_COLUMNS)


# --------------------------------------------------------------------------------------------------
# One pair (the command line): a one-row pair table through the same code path
# --------------------------------------------------------------------------------------------------

def one_pair_frame(patient, donor) -> pl.DataFrame:
    """A one-row pair table from two :class:`haplomatch.family.Person` values."""
    from haplomatch.persons import pair_frame, people_frame

    return pair_frame(people_frame([patient]), people_frame([donor]))


def compat_one(ref: Reference, patient, donor, settings: CompatSettings | None = None) -> dict:
    """The compatibility facts of one pair, as a dict of the columns of :func:`compat_pair_facts`."""
    return compat_pair_facts(ref, one_pair_frame(patient, donor), settings).to_dicts()[0]


#: what one key of a level is called (singular, plural)
_LEVEL_UNITS = {"two_field": ("two-field allele", "two-field alleles"), "p_group": ("P group", "P groups"),
                "antigen": ("antigen", "antigens"), "broad": ("broad antigen", "broad antigens")}


def settle_unit(level: str) -> str:
    """What a typing must name one of per slot to give one count at ``level`` ("two-field allele", …)."""
    return _LEVEL_UNITS[level][0]


def ambiguous_slots(ref: Reference, person, loc: str, settings: CompatSettings | None = None) -> list[str]:
    """What makes a person's typing at ``loc`` more than one allele at the level compared, in words: an open
    second slot, or each slot that may be several (how many, and the first few). Empty when not typed."""
    from haplomatch.persons import slot_strings

    settings = settings or CompatSettings()
    t = person.hla.get(loc)
    if t is None or not t.typed:
        return []
    units = _LEVEL_UNITS[settings.level][1]
    out = []
    slots = slot_strings(t)
    if None in slots:
        out.append(f"second {loc} allele is open")
    keys = slot_keys(ref, [x for x in dict.fromkeys(slots) if x is not None], settings.level, settings.null_alleles)
    for slot, k in zip(keys["slot"].to_list(), keys["keys"].to_list()):
        if k is not None and len(k) > 1:
            shown = ", ".join(k[:4]) + (", …" if len(k) > 4 else "")
            out.append(f"{slot} may be any of {len(k):,} {units} ({shown})")
    return out


def range_notes(ref: Reference, patient, donor, row: dict, settings: CompatSettings | None = None,
                names: tuple[str, str] = ("the patient", "the donor"), untyped: bool = True,
                ask: tuple[bool, bool] = (True, True)) -> dict[str, str]:
    """Per locus whose mismatch count is a range in ``row`` (the pair's :func:`compat_pair_facts` row): why
    (the person not typed there, or what makes a typing more than one allele at the level compared,
    :func:`ambiguous_slots`) and what typing would settle it, naming the two people as ``names`` says.
    ``untyped=False``: a missing typing is not a reason given; ``ask``: whose typing is looked at (patient,
    donor). The brief's rule for ambiguity: say what is possible and what would settle it, never pick one."""
    settings = settings or CompatSettings()
    unit = settle_unit(settings.level)
    notes: dict[str, str] = {}
    for loc in settings.loci:
        if f"gvh_{loc}" not in row or row.get(f"gvh_{loc}_min") is None:
            continue  # not compared, or an error said elsewhere
        if row[f"gvh_{loc}"] is not None and row[f"hvg_{loc}"] is not None:
            continue  # one count in each direction
        pair = [(who, person) for (who, person), a in zip(zip(names, (patient, donor)), ask) if a]
        missing = [who for who, person in pair if person.hla.get(loc) is None or not person.hla[loc].typed]
        said = missing if untyped else []
        parts = [f"{loc} is not typed in {' or '.join(said)}"] if said else []
        whos = list(said)
        for who, person in pair:
            why = ambiguous_slots(ref, person, loc, settings)
            parts += [f"{who}'s {w}" for w in why]
            if why:
                whos.append(who)
        if not parts:
            if missing or not all(ask):
                continue  # nothing asked for explains it
            parts.append("the typings leave more than one count possible")
            whos = list(names)
        notes[loc] = (f"{'; '.join(parts)}: typing {' and '.join(whos)} at {loc} to one "
                      f"{unit} per slot would settle it")
    return notes
