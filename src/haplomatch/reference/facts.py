"""Per-allele facts derived from the unmodified release files (never shipped: built on the user's machine).

One row per IPD-IMGT/HLA allele. Facts that depend on protein residues are read from the sequence placed
on IMGT numbering (``numbering.py``), never from the first field of the name; the sources of each rule are
in ``SOURCES`` and in ``science`` notes of the README.
"""

from __future__ import annotations

import re

import polars as pl

from haplomatch.reference import files
from haplomatch.reference.names import EXPRESSION_UNCERTAIN, NOT_ON_SURFACE, prefix_names, split_name
from haplomatch.reference.numbering import column_name, residues_at
from haplomatch.reference.release import Release

SOURCES: dict[str, str] = {
    "c1c2": "IPD-KIR KIR Ligand Calculator (HLA-C: C1 = Asn80, C2 = Lys80); Robinson J et al. Nucleic Acids Res 2013;41:D1234-40",
    "bw4_a": "HLA-A Bw4 from the 77-83 motif (R83; subtype from residue 80): Foley B et al. Blood 2008;112:435-43; Gumperz JE et al. J Immunol 1997;158:5237-41",
    "bw4": "HLA-B: IPD-KIR KIR Ligand Calculator residue 77+80 grid (Bw4: N77+I80, N77+T80, D77+T80, S77+T80; Bw6: G77+N80, S77+N80); Gumperz JE et al. J Immunol 1997;158:5237-41",
    "bw4_rule83": "cross-check only: residue 83 R = Bw4, G = Bw6 (krantzlab immunogenomics-ref, derive_bw4_80i)",
    "c1_on_b": "C1 epitope on HLA-B (Val76 + Asn80; B*46:01, B*73:01): Moesta AK et al. J Immunol 2008;180:3969-79; Moesta AK, Parham P. Front Immunol 2012;3:336",
    "kir3dl2": "A3/A11 epitope, ligand of KIR3DL2 (serological A3 or A11): Ruggeri L et al. Science 2002;295:2097-100 (Table 1); DKMS CTUtools kir.R",
    "weak_kir3dl1": "weak or non-functional KIR3DL1 ligand (B*13:01, B*13:02; A*23:01, A*25:01): Foley B et al. Blood 2008;112:435-43",
    "leader": "HLA-B leader residue -21 Met/Thr: Petersdorf EW et al. Blood 2020;136:362-9",
    "tce": "DPB1 T-cell-epitope groups, IPD-IMGT/HLA tce/dpb_tce.csv; Crivello P et al. Biol Blood Marrow Transplant 2016; Fleischhauer K et al. Lancet Oncol 2012;13:366-74",
    "serology": "WMDA rel_dna_ser.txt and rel_ser_ser.txt (IPD-IMGT/HLA)",
}

#: Serological locus prefix of each gene, as antigen names are written (A2, B51, Cw7, DR15, DQ6).
SEROLOGY_PREFIX: dict[str, str] = {
    "A": "A", "B": "B", "C": "Cw", "DRB1": "DR", "DRB3": "DR", "DRB4": "DR", "DRB5": "DR", "DQB1": "DQ",
}
_SER_SER_PREFIX = {"A": "A", "B": "B", "Cw": "Cw", "DR": "DR", "DQ": "DQ"}

CLASS_I = ("A", "B", "C")


def _residues(release: Release) -> pl.DataFrame:
    frames = []
    for locus in CLASS_I:
        fasta = files.read_fasta(release.path(f"imgthla/fasta/{locus}_prot.fasta"))
        frames.append(residues_at(fasta))
    res = pl.concat(frames, how="vertical")
    # 'X' is a stop codon: no residue there (null and truncated alleles)
    return res.with_columns(pl.when(pl.col(c) != "X").then(pl.col(c)).name.keep() for c in res.columns if c != "allele")


def antigen_parents(ser_ser: pl.DataFrame) -> dict[str, str]:
    """Child antigen → parent (split → broad, associated → its antigen), names like 'B51' → 'B5'."""
    parent: dict[str, str] = {}
    for locus, broad, splits, assoc in ser_ser.iter_rows():
        p = _SER_SER_PREFIX.get(locus)
        if p is None:
            continue
        for child in list(splits) + list(assoc):
            parent[p + child] = p + broad
    return parent


def _broad(antigen: str | None, parent: dict[str, str]) -> str | None:
    if antigen is None:
        return None
    seen = antigen
    while seen in parent:
        seen = parent[seen]
    return seen


def _prefixed_list(col: str) -> pl.Expr:
    """A '/'-separated serology field as antigen names of the row's locus ('51/52' → ['B51', 'B52'])."""
    out = pl.lit(None, pl.String)
    expr = pl.when(False).then(out)
    for locus, p in SEROLOGY_PREFIX.items():
        expr = expr.when(pl.col("locus") == locus).then(pl.lit(p) + pl.col(col).str.replace_all("/", "/" + p, literal=True))
    return expr.str.split("/").list.eval(pl.element().filter(~pl.element().str.contains(r"^[A-Za-z]+[0?]$"))).fill_null([])


def _ligand_expr() -> pl.Expr:
    """KIR ligand of one allele from its residues; 'none' when it presents no KIR ligand.

    HLA-C: residue 80 (IPD-KIR calculator). HLA-B: the calculator's residue 77+80 grid. HLA-A: the
    calculator does not classify HLA-A, and its 77+80 grid would call A*01:01, A*02:01 and A*03:01
    (N/D77 + T80 with the Bw6-like G83) Bw4-80T while missing A*25:01 and A*32:01 (S77 + I80). So
    HLA-A Bw4 is read from the Bw4 motif itself: R83 (with R79-…-L82 of 77-83), subtype from residue
    80, which gives the known Bw4 carriers A*23, A*24, A*25, A*32 (Foley B et al. Blood 2008;112:435-43).
    """
    r77, r80, r83 = pl.col("r77"), pl.col("r80"), pl.col("r83")
    bw4_80i = (r77 == "N") & (r80 == "I")
    bw4_80t = r77.is_in(["N", "D", "S"]) & (r80 == "T")
    bw6 = r77.is_in(["G", "S"]) & (r80 == "N")
    locus = pl.col("locus")
    return (
        pl.when(~pl.col("surface")).then(pl.lit("none"))
        .when(r80.is_null()).then(pl.lit(None, pl.String))
        .when(locus == "C").then(
            pl.when(r80 == "N").then(pl.lit("C1")).when(r80 == "K").then(pl.lit("C2")).otherwise(pl.lit("unclassified"))
        )
        .when(locus == "B").then(
            pl.when(bw4_80i).then(pl.lit("Bw4-80I"))
            .when(bw4_80t).then(pl.lit("Bw4-80T"))
            .when(bw6).then(pl.lit("Bw6"))
            .otherwise(pl.lit("unclassified"))
        )
        .when(locus == "A").then(
            pl.when(r83 != "R").then(pl.lit("none"))
            .when(r80 == "I").then(pl.lit("Bw4-80I"))
            .when(r80 == "T").then(pl.lit("Bw4-80T"))
            .otherwise(pl.lit("unclassified"))
        )
        .otherwise(pl.lit(None, pl.String))
        .alias("kir_ligand")
    )


def _leader(df: pl.DataFrame) -> pl.DataFrame:
    """Leader −21: from the sequence; else from the 2-field protein (if its sequenced members agree);
    else the majority of the first field, marked inferred. Only for expressed class I alleles."""
    known = df.filter(pl.col("r_m21").is_not_null() & pl.col("expressed"))
    by_protein = (
        known.group_by("locus", "name2")
        .agg(pl.col("r_m21").unique().alias("vals"))
        .with_columns(pl.when(pl.col("vals").list.len() == 1).then(pl.col("vals").list.first()).alias("leader_protein"))
        .select("locus", "name2", "leader_protein")
    )
    by_lineage = (
        known.group_by("locus", "name1", "r_m21").len()
        .sort(["locus", "name1", "len", "r_m21"], descending=[False, False, True, False])
        .group_by("locus", "name1", maintain_order=True)
        .agg(pl.col("r_m21").first().alias("leader_lineage"), pl.col("len").first().alias("_top"),
             pl.col("len").sum().alias("_all"), pl.col("len").get(1, null_on_oob=True).alias("_second"))
        # a tie between M and T in a lineage decides nothing
        .with_columns(pl.when(pl.col("_second") == pl.col("_top")).then(None).otherwise(pl.col("leader_lineage")).alias("leader_lineage"))
        .select("locus", "name1", "leader_lineage")
    )
    df = df.join(by_protein, on=["locus", "name2"], how="left").join(by_lineage, on=["locus", "name1"], how="left")
    cls1 = pl.col("locus").is_in(CLASS_I) & pl.col("expressed")
    leader = (
        pl.when(~cls1).then(None)
        .when(pl.col("r_m21").is_not_null()).then(pl.col("r_m21"))
        .when(pl.col("leader_protein").is_not_null()).then(pl.col("leader_protein"))
        .otherwise(pl.col("leader_lineage"))
    )
    basis = (
        pl.when(~cls1).then(None)
        .when(pl.col("r_m21").is_not_null()).then(pl.lit("sequence"))
        .when(pl.col("leader_protein").is_not_null()).then(pl.lit("protein"))
        .when(pl.col("leader_lineage").is_not_null()).then(pl.lit("lineage"))
    )
    return df.with_columns(leader.alias("leader"), basis.alias("leader_basis")).with_columns(
        pl.col("leader_basis").is_in(["protein", "lineage"]).alias("leader_inferred")
    ).drop("leader_protein", "leader_lineage")


def _tce(release: Release) -> pl.DataFrame:
    raw = files.read_tce(release.path("imgthla/tce/dpb_tce.csv"))
    cols = []
    for v in ("v1", "v2"):
        cols += [
            pl.col(v).str.replace_all(r"[$a]", "").alias(f"tce_{v}"),
            pl.col(v).alias(f"tce_{v}_raw"),
            pl.col(v).str.contains(r"\$", literal=False).fill_null(False).alias(f"tce_{v}_dollar"),
        ]
    return raw.select(pl.col("allele"), *cols)


def build_allele_facts(release: Release) -> pl.DataFrame:
    """The per-allele facts table for one release (columns documented in ARCHITECTURE.md)."""
    df = files.read_allele_list(release.path("imgthla/Allelelist.txt"))
    df = df.with_columns(split_name()).with_columns(prefix_names())
    bad = df.filter(pl.col("locus").is_null())
    if bad.height:
        raise ValueError(f"Allelelist.txt: names not in WHO v3 form: {bad['allele'].head(5).to_list()}")
    df = df.with_columns(
        (pl.col("suffix") != "N").alias("expressed"),
        (~pl.col("suffix").is_in(list(NOT_ON_SURFACE))).alias("surface"),
        pl.col("suffix").is_in(list(EXPRESSION_UNCERTAIN)).alias("expression_uncertain"),
    )
    g = files.read_groups(release.path("imgthla/wmda/hla_nom_g.txt")).rename({"group": "g_group"})
    p = files.read_groups(release.path("imgthla/wmda/hla_nom_p.txt")).rename({"group": "p_group"})
    df = df.join(g, on="allele", how="left").join(p, on="allele", how="left")

    # Serology: the WHO/WMDA equivalents, written as antigen names.
    ser = files.read_rel_dna_ser(release.path("imgthla/wmda/rel_dna_ser.txt"))
    parents = antigen_parents(files.read_rel_ser_ser(release.path("imgthla/wmda/rel_ser_ser.txt")))
    df = df.join(ser, on="allele", how="left")
    prefix = pl.col("locus").replace_strict(SEROLOGY_PREFIX, default=None)
    # A field is "single" when it names one antigen (not a '/' list, not 0 = null, not ? = unknown).
    single = lambda c: pl.when(pl.col(c).str.contains(r"^[0-9]*[1-9][0-9]*$")).then(pl.col(c))  # noqa: E731
    df = df.with_columns(
        # WMDA '0' in the unambiguous field = no antigen on the cell (null, or secreted S alleles whose expert
        # field still names the soluble antigen): such an allele has no antigen for matching or DSA.
        pl.when((pl.col("unambiguous") != "0").fill_null(True)).then(
            prefix + pl.coalesce(single("unambiguous"), single("expert"), single("assumed"))
        ).alias("antigen"),
        pl.when(pl.col("unambiguous") == "0").then(None)
        .when(single("unambiguous").is_not_null()).then(pl.lit("unambiguous"))
        .when(single("expert").is_not_null()).then(pl.lit("expert"))
        .when(single("assumed").is_not_null()).then(pl.lit("assumed"))
        .alias("antigen_basis"),
        (pl.col("unambiguous") == "0").fill_null(False).alias("serology_null"),
        # every antigen any field allows (possible, assumed or expert lists such as '0/3')
        pl.concat_list(_prefixed_list("possible"), _prefixed_list("assumed"), _prefixed_list("expert"))
        .list.unique().list.sort().alias("antigens_possible"),
        pl.concat_str([pl.col("possible"), pl.col("assumed"), pl.col("expert")], separator="/", ignore_nulls=True)
        .str.split("/").list.contains("0").fill_null(False).alias("serology_maybe_null"),
    ).rename({"unambiguous": "ser_unambiguous", "possible": "ser_possible", "assumed": "ser_assumed", "expert": "ser_expert"})
    broad_map = {a: _broad(a, parents) for a in set(parents) | set(parents.values())}
    df = df.with_columns(
        pl.col("antigen").replace_strict(broad_map, default=pl.col("antigen")).alias("broad_antigen")
    )

    # Residues of class I alleles, on IMGT numbering.
    res = _residues(release)
    df = df.join(res, on="allele", how="left")
    df = df.with_columns(
        pl.concat_str([pl.col(column_name(i)) for i in range(77, 84)]).alias("r77_83"),
    )
    df = df.with_columns(_ligand_expr())
    df = df.with_columns(
        pl.when(pl.col("locus").is_in(["A", "B"]) & pl.col("surface"))
        .then(pl.when(pl.col("r83") == "R").then(pl.lit("Bw4")).when(pl.col("r83") == "G").then(pl.lit("Bw6"))
              .when(pl.col("r83").is_not_null()).then(pl.lit("non-canonical")))
        .alias("bw_rule83"),
        (pl.col("surface") & (pl.col("locus") == "B") & (pl.col("r76") == "V") & (pl.col("r80") == "N")).alias("c1_epitope"),
        pl.when(pl.col("locus") == "A").then(
            pl.col("surface") & pl.when(pl.col("antigen").is_not_null())
            .then(pl.col("antigen").is_in(["A3", "A11"]))
            .when(pl.col("antigens_possible").list.len() > 0)
            .then(pl.col("antigens_possible").list.eval(pl.element().is_in(["A3", "A11"])).list.any())
            .otherwise(pl.col("name1").is_in(["A*03", "A*11"]))
        ).otherwise(False).alias("kir3dl2_ligand"),
        pl.when(pl.col("locus") == "A").then(
            pl.when((pl.col("antigen").is_not_null()) | (pl.col("antigens_possible").list.len() > 0))
            .then(pl.lit("serology")).otherwise(pl.lit("lineage"))
        ).alias("kir3dl2_basis"),
    )
    df = df.with_columns(
        pl.when(pl.col("kir_ligand").is_in(["Bw4-80I", "Bw4-80T"]))
        .then(pl.col("name2").is_in(["B*13:01", "B*13:02", "A*23:01", "A*25:01"])
              | pl.col("name1").is_in(["B*13", "A*23", "A*25"]))
        .otherwise(False).alias("weak_kir3dl1_ligand"),
        pl.when(pl.col("bw_rule83").is_not_null() & pl.col("kir_ligand").is_not_null()).then(
            (pl.col("bw_rule83") == "Bw4") == pl.col("kir_ligand").str.starts_with("Bw4")
        ).alias("bw_rule83_agrees"),
    )
    df = _leader(df)
    df = df.join(_tce(release), on="allele", how="left")
    return df.sort("locus", "allele", maintain_order=True)


_RENAMED = re.compile(r"(?:renamed|identical to)\s+([A-Z][A-Z0-9]*\*[0-9:]+[NLSCAQ]?)")


def build_deleted(release: Release) -> pl.DataFrame:
    """Deleted and renamed names: ``allele`` (old), ``description``, ``renamed_to`` (current name or null)."""
    d = files.read_deleted(release.path("imgthla/Deleted_alleles.txt"))
    return d.with_columns(pl.col("description").str.extract(_RENAMED.pattern, 1).alias("renamed_to"))


def build_kir_alleles(release: Release) -> pl.DataFrame:
    """IPD-KIR allele list: ``accession``, ``allele``, ``gene`` (e.g. KIR2DL1), ``protein`` (3 digits)."""
    k = files.read_allele_list(release.path("ipdkir/Allelelist.txt"))
    return k.with_columns(
        pl.col("allele").str.extract(r"^([^*]+)\*", 1).alias("gene"),
        pl.col("allele").str.extract(r"\*(\d{3})", 1).alias("protein"),
    )
