"""Summaries of the per-allele facts over a grouping (2-field protein, P group, or any typing).

A fact is reported as one value only when every member agrees; otherwise it is null and the possible
values are listed -- an ambiguous typing never collapses to a guessed value.
"""

from __future__ import annotations

import polars as pl


def agreed(col: str, among: pl.Expr | None = None, name: str | None = None) -> list[pl.Expr]:
    """``name`` = the single value of ``col`` over the group (null if members differ or none), and
    ``name_possible`` = the sorted distinct non-null values; ``among`` restricts the members considered."""
    c = pl.col(col) if among is None else pl.col(col).filter(among)
    name = name or col
    uniq = c.drop_nulls().unique().sort()
    return [
        pl.when((uniq.len() == 1) & (c.null_count() == 0)).then(uniq.first()).alias(name),
        uniq.alias(f"{name}_possible"),
    ]


def summarise(alleles: pl.DataFrame, by: str) -> pl.DataFrame:
    """One row per value of ``by``; ligand facts are taken over members with a surface protein."""
    surface = pl.col("surface")
    expressed = pl.col("expressed")
    return (
        alleles.group_by(by)
        .agg(
            pl.col("locus").first(),
            pl.len().alias("n_alleles"),
            pl.col("allele").sort().alias("members"),
            expressed.all().alias("all_expressed"),
            expressed.any().alias("any_expressed"),
            *agreed("kir_ligand", surface, "ligand"),
            *agreed("leader", expressed),
            pl.col("leader_inferred").filter(expressed).any().alias("leader_inferred"),
            *agreed("c1_epitope", surface),
            *agreed("kir3dl2_ligand", surface),
            *agreed("antigen", expressed),
            *agreed("g_group"),
            *agreed("p_group"),
            *agreed("tce_v2", expressed),
            *agreed("tce_v1", expressed),
        )
        .sort(by)
    )
