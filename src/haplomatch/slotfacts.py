"""Facts per typing *slot* (one allele position of a person at a locus, possibly ambiguous), as one table.

A slot is a typing name or an allele list (``A*01:01/A*01:02``). Each distinct slot string is resolved once
to its candidate release alleles, and every per-allele fact is summarised over them: a value when all
candidates agree, else null plus the list of possibilities. Booleans are three-valued (true, false, null =
"depends on which candidate"), so downstream polars logic (Kleene ``&``/``|``) carries ambiguity without
guessing. Pair facts (NK models, mismatches, DSA) are joins of person slots against this table.
"""

from __future__ import annotations

from typing import Iterable

import polars as pl

from haplomatch.errors import UnknownAlleleError
from haplomatch.nomenclature import Nomenclature
from haplomatch.reference import Reference
from haplomatch.reference.views import agreed

SLOT_SCHEMA = {"slot": pl.String, "allele": pl.String}


def tri(col: str, among: pl.Expr | None = None, name: str | None = None) -> pl.Expr:
    """True when all (considered) candidates are true, False when none is, else null. No candidate → False."""
    c = pl.col(col) if among is None else pl.col(col).filter(among)
    return (
        pl.when(c.len() == 0).then(pl.lit(False))
        .when(c.all()).then(pl.lit(True))
        .when(~c.any()).then(pl.lit(False))
        .alias(name or col)
    )


def slot_candidates(nomenclature: Nomenclature, slots: Iterable[str | None]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(candidates: slot → allele, errors: slot → message) for the distinct non-null slot strings.

    Many slots (a registry batch names thousands of alleles), or any once the table of plain names is built:
    the slots whose every name is a plain allele name (``Nomenclature.plain_names``) resolve with one join;
    the others, and a few slots of a command-line call, one name at a time by ``resolve_one``. Both give the
    same rows (in slot, then allele order)."""
    distinct = sorted({s for s in slots if s})
    if len(distinct) < _JOIN_FROM and "plain_names" not in nomenclature.__dict__:
        return _resolve_each(nomenclature, distinct)
    parts = (
        pl.DataFrame({"slot": distinct}, schema={"slot": pl.String})
        .with_columns(pl.col("slot").str.split("/").alias("name"))
        .explode("name")
        .join(nomenclature.plain_names, on="name", how="left")
    )
    whole = parts.group_by("slot").agg(pl.col("allele").is_not_null().all().alias("ok"))
    done = set(whole.filter("ok")["slot"].to_list())
    joined = parts.filter(pl.col("slot").is_in(list(done))).select("slot", "allele").unique()
    rest = [s for s in distinct if s not in done]
    if len(rest) >= _JOIN_FROM:
        # many other names: the nomenclature's name index, built once, answers them (without it the first 64
        # lookups each filter the allele table, as suits a few names on the command line)
        _ = nomenclature._prefix_index
    cands, errors = _resolve_each(nomenclature, rest)
    return pl.concat([joined, cands]).sort("slot", "allele"), errors


#: From this many distinct slots on, :func:`slot_candidates` joins the plain names.
_JOIN_FROM = 64


def _resolve_each(nomenclature: Nomenclature, distinct: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """:func:`slot_candidates` for sorted distinct slots, one name at a time."""
    cand_slot: list[str] = []
    cand_allele: list[str] = []
    err_slot: list[str] = []
    err_msg: list[str] = []
    for slot in distinct:
        found: set[str] = set()
        try:
            for name in slot.split("/"):
                found.update(nomenclature.resolve_one(name).alleles)
        except UnknownAlleleError as e:
            err_slot.append(slot)
            err_msg.append(str(e))
            continue
        cand_slot += [slot] * len(found)
        cand_allele += sorted(found)
    return (
        pl.DataFrame({"slot": cand_slot, "allele": cand_allele}, schema=SLOT_SCHEMA),
        pl.DataFrame({"slot": err_slot, "error": err_msg}, schema={"slot": pl.String, "error": pl.String}),
    )


def summarise(ref: Reference, candidates: pl.DataFrame, key: str = "slot") -> pl.DataFrame:
    """Every per-allele fact summarised per ``key`` over its candidate alleles (see module docstring)."""
    a = ref.alleles.with_columns(
        (pl.col("name2") + pl.col("suffix")).alias("two_field"),
        # antigen-recognition-domain key: the P group, or the 2-field name for alleles in none (nulls)
        pl.coalesce(pl.col("p_group"), pl.col("name2") + pl.col("suffix")).alias("ard"),
    )
    surface = pl.col("surface")
    expressed = pl.col("expressed")
    return (
        candidates.join(a, on="allele", how="left")
        .group_by(key, maintain_order=True)
        .agg(
            pl.col("locus").first(),
            pl.len().alias("n_alleles"),
            *agreed("kir_ligand", surface, "ligand"),
            tri("weak_kir3dl1_ligand", surface),
            tri("c1_epitope", surface),
            tri("kir3dl2_ligand", surface),
            *agreed("leader", expressed),
            pl.col("leader_inferred").filter(expressed).any().alias("leader_inferred"),
            tri("expressed"),
            tri("surface"),
            *agreed("two_field"),
            *agreed("ard"),
            *agreed("g_group"),
            *agreed("antigen", expressed),
            *agreed("broad_antigen", expressed),
            *agreed("tce_v1", expressed),
            *agreed("tce_v2", expressed),
            pl.col("tce_v2_dollar").filter(expressed).any().alias("tce_v2_dollar"),
        )
        .rename({"ligand_possible": "possible_ligands"})
        .with_columns(
            # a class I slot whose candidates have no surface protein (null, secreted) presents no ligand
            pl.when(pl.col("locus").is_in(["A", "B", "C"]) & (pl.col("possible_ligands").list.len() == 0))
            .then(pl.lit("none")).otherwise(pl.col("ligand")).alias("ligand"),
            pl.when(pl.col("locus").is_in(["A", "B", "C"]) & (pl.col("possible_ligands").list.len() == 0))
            .then(pl.lit(["none"])).otherwise(pl.col("possible_ligands")).alias("possible_ligands"),
        )
    )


def slot_facts(ref: Reference, slots: Iterable[str | None], nomenclature: Nomenclature | None = None) -> pl.DataFrame:
    """One row per distinct slot string: its facts, or ``error`` (other columns null) when it cannot resolve."""
    cands, errors = slot_candidates(nomenclature or ref.nomenclature, slots)
    facts = summarise(ref, cands)
    return pl.concat([facts, errors], how="diagonal_relaxed")


def slot_tce_facts(ref: Reference, slots: Iterable[str | None],
                   nomenclature: Nomenclature | None = None) -> pl.DataFrame:
    """``slot_facts``'s ``tce_v1``, ``tce_v2`` (with their ``_possible`` lists) and ``expressed`` alone, by the
    same expressions over the same candidates: registry search reads only these (DPB1 TCE groups), and the
    twenty other summaries cost most of the time."""
    cands, errors = slot_candidates(nomenclature or ref.nomenclature, slots)
    expressed = pl.col("expressed")
    facts = (
        cands.join(ref.alleles.select("allele", "expressed", "tce_v1", "tce_v2"), on="allele", how="left")
        .group_by("slot", maintain_order=True)
        .agg(tri("expressed"), *agreed("tce_v1", expressed), *agreed("tce_v2", expressed))
    )
    return pl.concat([facts, errors], how="diagonal_relaxed")
