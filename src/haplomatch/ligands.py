"""KIR ligands of HLA class I typings: what each typing's candidate alleles present to KIR.

A typing that can be several alleles yields one ligand only when every candidate with a surface protein
agrees; otherwise ``ligand`` is null and ``possible_ligands`` lists the options, with a note saying which
typing would settle it. Facts and their sources: ``haplomatch.reference.facts``.
"""

from __future__ import annotations

from typing import Iterable

import polars as pl

from haplomatch.reference import Reference
from haplomatch.reference.views import agreed

#: Columns of the ``ligands`` result, in order (JSON objects carry exactly these keys, plus extras).
COLUMNS = (
    "input", "locus", "alleles", "ligand", "possible_ligands", "leader", "c1_epitope",
    "kir3dl2_ligand", "expressed", "release",
)


def _all_or_null(col: str, among: pl.Expr) -> pl.Expr:
    """True/False when all candidates agree, null when they differ (never a guessed value)."""
    c = pl.col(col).filter(among)
    return pl.when(c.len() == 0).then(pl.lit(False)).when(c.all()).then(pl.lit(True)).when(~c.any()).then(pl.lit(False)).alias(col)


def ligands(ref: Reference, typings: Iterable[str], locus: str | None = None) -> pl.DataFrame:
    """One row per typing (input order kept). Raises UnknownAlleleError on a name the release lacks."""
    resolved = ref.nomenclature.resolve(list(typings), locus)
    per_input = summarise_typings(ref, resolved.candidates)
    out = resolved.rows.join(per_input, on="input", how="left", maintain_order="left").rename({"n_alleles": "alleles"})
    return out.select(*COLUMNS, "weak_kir3dl1_ligand", "leader_inferred", "settle", "warning")


def summarise_typings(ref: Reference, candidates: pl.DataFrame) -> pl.DataFrame:
    """Ligand facts per distinct typing (``input``) from its candidate alleles."""
    facts = ref.alleles.select(
        "allele", "locus", "surface", "expressed", "kir_ligand", "leader", "leader_inferred",
        "c1_epitope", "kir3dl2_ligand", "weak_kir3dl1_ligand",
    )
    surface = pl.col("surface")
    out = (
        candidates.join(facts, on="allele", how="left")
        .group_by("input", maintain_order=True)
        .agg(
            pl.col("locus").first(),
            *agreed("kir_ligand", surface, "ligand"),
            *agreed("leader", pl.col("expressed")),
            _all_or_null("c1_epitope", surface),
            _all_or_null("kir3dl2_ligand", surface),
            _all_or_null("weak_kir3dl1_ligand", surface),
            pl.when(pl.col("expressed").all()).then(pl.lit(True))
            .when(~pl.col("expressed").any()).then(pl.lit(False)).alias("expressed"),
            pl.col("leader_inferred").filter(pl.col("expressed")).any().alias("leader_inferred"),
        )
        .rename({"ligand_possible": "possible_ligands"})
    )
    no_surface = pl.col("possible_ligands").list.len() == 0
    out = out.with_columns(
        # a typing that can only be alleles without a surface protein (null, secreted) presents no ligand
        pl.when(no_surface).then(pl.lit("none")).otherwise(pl.col("ligand")).alias("ligand"),
        pl.when(no_surface).then(pl.lit(["none"])).otherwise(pl.col("possible_ligands")).alias("possible_ligands"),
    )
    is_b = pl.col("locus") == "B"
    out = out.with_columns(
        pl.when(is_b).then(pl.col("leader")).alias("leader"),
        pl.when(is_b).then(pl.col("leader_inferred")).alias("leader_inferred"),
        pl.lit(ref.label).alias("release"),
        _settle().alias("settle"),
    )
    return out.drop("leader_possible")


def _settle() -> pl.Expr:
    """What typing would settle an ambiguous fact (None when nothing is ambiguous)."""
    lig = pl.when(pl.col("ligand").is_null() & (pl.col("possible_ligands").list.len() > 1)).then(
        pl.lit("ligand ambiguous (") + pl.col("possible_ligands").list.join(", ")
        + pl.lit("): type at two fields (protein) or at least residues 77-83 of exon 2")
    )
    lead = pl.when((pl.col("locus") == "B") & pl.col("leader").is_null() & (pl.col("leader_possible").list.len() > 1)).then(
        pl.lit("leader -21 ambiguous (M/T): type exon 1 (the leader is outside the G/P-group region)")
    )
    return pl.concat_str([lig, lead], separator="; ", ignore_nulls=True).replace("", None)
