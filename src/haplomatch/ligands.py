"""KIR ligands of HLA class I typings: what each typing's candidate alleles present to KIR.

A typing that can be several alleles yields one ligand only when every candidate with a surface protein
agrees; otherwise ``ligand`` is null and ``possible_ligands`` lists the options, with a note saying which
typing would settle it. Facts and their sources: ``haplomatch.reference.facts``.
"""

from __future__ import annotations

from typing import Iterable

import polars as pl

from haplomatch.reference import Reference
from haplomatch.slotfacts import summarise

#: Columns of the ``ligands`` result, in order (JSON objects carry exactly these keys, plus extras).
COLUMNS = (
    "input", "locus", "alleles", "ligand", "possible_ligands", "leader", "c1_epitope",
    "kir3dl2_ligand", "expressed", "release",
)


def ligands(ref: Reference, typings: Iterable[str], locus: str | None = None) -> pl.DataFrame:
    """One row per typing (input order kept). Raises UnknownAlleleError on a name the release lacks."""
    resolved = ref.nomenclature.resolve(list(typings), locus)
    per_input = summarise_typings(ref, resolved.candidates)
    out = resolved.rows.join(per_input, on="input", how="left", maintain_order="left").rename({"n_alleles": "alleles"})
    return out.select(*COLUMNS, "weak_kir3dl1_ligand", "leader_inferred", "settle", "warning")


def summarise_typings(ref: Reference, candidates: pl.DataFrame) -> pl.DataFrame:
    """Ligand facts per distinct typing (``input``) from its candidate alleles (see ``slotfacts``)."""
    out = summarise(ref, candidates, key="input")
    is_b = pl.col("locus") == "B"
    return out.with_columns(
        pl.when(is_b).then(pl.col("leader")).alias("leader"),
        pl.when(is_b).then(pl.col("leader_inferred")).alias("leader_inferred"),
        pl.lit(ref.label).alias("release"),
        _settle().alias("settle"),
    ).drop("leader_possible")


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
