"""Splitting release allele names into their WHO fields, as polars expressions (vectorised).

A WHO v3 name is ``LOCUS*f1[:f2[:f3[:f4]]][suffix]`` (Marsh et al., Tissue Antigens 2010). The suffix
(N null, L low, S secreted, C cytoplasm, A aberrant, Q questionable) belongs to the allele at every
resolution: A*24:02:01:02L reads A*24:02L at two fields.
"""

from __future__ import annotations

import polars as pl

NAME_PATTERN = r"^([A-Z][A-Z0-9]*)\*(\d+)(?::(\d+))?(?::(\d+))?(?::(\d+))?([NLSCAQ])?$"

#: Suffixes whose allele puts no protein on the cell surface (WHO nomenclature: N not expressed,
#: S secreted only, C cytoplasmic only) -- such an allele presents no KIR ligand and no antigen.
NOT_ON_SURFACE = ("N", "S", "C")
#: Suffixes whose expression is uncertain or low: kept, but flagged.
EXPRESSION_UNCERTAIN = ("L", "Q", "A")


def split_name(col: str = "allele") -> list[pl.Expr]:
    """Columns ``locus``, ``f1``…``f4``, ``suffix`` ('' when none), ``nfields`` and the prefixes
    ``name1``…``name4`` (``A*02``, ``A*02:01``, …; null beyond the allele's own resolution)."""
    c = pl.col(col)
    parts = [c.str.extract(NAME_PATTERN, i).alias(n) for i, n in enumerate(("locus", "f1", "f2", "f3", "f4"), 1)]
    return parts + [c.str.extract(NAME_PATTERN, 6).fill_null("").alias("suffix")]


def prefix_names() -> list[pl.Expr]:
    """``name1``…``name4`` and ``nfields`` from already-split fields (see :func:`split_name`)."""
    f = [pl.col(f"f{i}") for i in range(1, 5)]
    out: list[pl.Expr] = []
    acc = pl.col("locus") + pl.lit("*") + f[0]
    out.append(acc.alias("name1"))
    for i in range(1, 4):
        acc = acc + pl.lit(":") + f[i]
        out.append(acc.alias(f"name{i + 1}"))
    nfields = pl.sum_horizontal([x.is_not_null().cast(pl.Int8) for x in f]).alias("nfields")
    return out + [nfields]
