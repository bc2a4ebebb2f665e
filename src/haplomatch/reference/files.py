"""Readers for the unmodified release files, each into a polars table. Formats: reference/PROVENANCE.md.

These do no interpretation beyond splitting fields: the meaning is given in ``facts.py``.
Locus-prefixed allele names (``A*01:01:01:01``) are used everywhere, as in Allelelist.txt.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl


def _data_lines(path: Path) -> list[str]:
    """Lines of a file without its '#' comment header and without blank lines."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        return [ln.rstrip("\r\n") for ln in fh if ln.strip() and not ln.startswith("#")]


def _csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO("\n".join(_data_lines(path)))))


def read_allele_list(path: Path) -> pl.DataFrame:
    """Allelelist.txt (IPD-IMGT/HLA or IPD-KIR): columns ``accession``, ``allele``."""
    rows = _csv(path)
    header, body = rows[0], rows[1:]
    if header[:2] != ["AlleleID", "Allele"]:
        raise ValueError(f"{path}: expected header AlleleID,Allele, found {','.join(header)}")
    return pl.DataFrame(
        {"accession": [r[0] for r in body], "allele": [r[1] for r in body]},
        schema={"accession": pl.String, "allele": pl.String},
    )


def read_deleted(path: Path) -> pl.DataFrame:
    """Deleted_alleles.txt: ``accession``, ``allele`` (the old name), ``description`` (why)."""
    rows = _csv(path)
    body = [r for r in rows[1:] if len(r) >= 2]
    return pl.DataFrame(
        {
            "accession": [r[0] for r in body],
            "allele": [r[1] for r in body],
            "description": [",".join(r[2:]) for r in body],
        },
        schema={"accession": pl.String, "allele": pl.String, "description": pl.String},
    )


def read_rel_dna_ser(path: Path) -> pl.DataFrame:
    """wmda/rel_dna_ser.txt: allele → serology (``unambiguous``, ``possible``, ``assumed``, ``expert``).

    Empty fields become null; '0' means a null allele and '?' no known antigen (kept as they are).
    """
    out: dict[str, list[str | None]] = {k: [] for k in ("allele", "unambiguous", "possible", "assumed", "expert")}
    for ln in _data_lines(path):
        f = (ln.split(";") + [""] * 6)[:6]
        out["allele"].append(f[0] + f[1])
        for key, val in zip(("unambiguous", "possible", "assumed", "expert"), f[2:6]):
            out[key].append(val.strip() or None)
    return pl.DataFrame(out, schema={k: pl.String for k in out})


def read_rel_ser_ser(path: Path) -> pl.DataFrame:
    """wmda/rel_ser_ser.txt: ``locus`` (A, B, Cw, DR, DQ, Dw), ``broad``, ``splits``, ``associated`` (lists)."""
    rows: dict[str, list] = {"locus": [], "broad": [], "splits": [], "associated": []}
    for ln in _data_lines(path):
        f = (ln.split(";") + [""] * 4)[:4]
        rows["locus"].append(f[0])
        rows["broad"].append(f[1])
        rows["splits"].append([s for s in f[2].split("/") if s])
        rows["associated"].append([s for s in f[3].split("/") if s])
    return pl.DataFrame(
        rows,
        schema={"locus": pl.String, "broad": pl.String, "splits": pl.List(pl.String), "associated": pl.List(pl.String)},
    )


def read_groups(path: Path) -> pl.DataFrame:
    """wmda/hla_nom_g.txt or hla_nom_p.txt: one row per allele, ``allele`` and ``group`` (null if none).

    Group names get the locus prefix (``A*01:01:01G``), like the alleles.
    """
    alleles: list[str] = []
    groups: list[str | None] = []
    for ln in _data_lines(path):
        f = (ln.split(";") + [""] * 3)[:3]
        locus, members, group = f[0], f[1], f[2].strip()
        for m in members.split("/"):
            if m:
                alleles.append(locus + m)
                groups.append(locus + group if group else None)
    return pl.DataFrame({"allele": alleles, "group": groups}, schema={"allele": pl.String, "group": pl.String})


def read_fasta(path: Path) -> pl.DataFrame:
    """fasta/X_prot.fasta: ``accession``, ``allele``, ``sequence`` in file order (first = locus reference).

    Headers read ``>HLA:HLA00132 B*07:02:01:01 362 bp`` (the count is amino acids, not bp).
    """
    acc: list[str] = []
    names: list[str] = []
    seqs: list[str] = []
    chunks: list[str] = []
    with path.open(encoding="ascii") as fh:
        for ln in fh:
            if ln.startswith(">"):
                if names:
                    seqs.append("".join(chunks))
                    chunks = []
                parts = ln[1:].split()
                acc.append(parts[0].split(":", 1)[-1])
                names.append(parts[1])
            else:
                chunks.append(ln.strip())
    if names:
        seqs.append("".join(chunks))
    return pl.DataFrame({"accession": acc, "allele": names, "sequence": seqs})


def read_tce(path: Path) -> pl.DataFrame:
    """tce/dpb_tce.csv: ``allele``, ``protein``, ``v1``, ``v2``, ``comments`` (raw strings, '$' kept)."""
    rows = _csv(path)
    header, body = rows[0], rows[1:]
    if header[:4] != ["Allele", "Protein", "V1_Assignment", "V2_Assignment"]:
        raise ValueError(f"{path}: unexpected header {','.join(header)}")
    body = [(r + [""] * 5)[:5] for r in body]
    return pl.DataFrame(
        {
            "allele": [r[0] for r in body],
            "protein": [r[1] for r in body],
            "v1": [r[2] or None for r in body],
            "v2": [r[3] or None for r in body],
            "comments": [r[4] or None for r in body],
        },
        schema={k: pl.String for k in ("allele", "protein", "v1", "v2", "comments")},
    )
