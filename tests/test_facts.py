"""Per-allele facts, checked against values published in the literature and IPD files (not the code).

Sources are cited per test; RULES.md section numbers refer to ../shared/science/RULES.md.
"""

from __future__ import annotations

import polars as pl
import pytest

from conftest import fact


def two_field(ref, name: str, column: str = "ligand"):
    t = ref.two_field.filter(pl.col("name2") == name)
    assert t.height == 1, name
    return t[column][0]


# IPD-KIR ligand assignments (via DKMS CTUtools HLA_C_class_data), RULES 1.3: common alleles and
# lineage exceptions (C*16:02 is C2, C*15:07 C1, despite their first fields).
C1 = ["C*01:02", "C*03:02", "C*03:03", "C*03:04", "C*07:01", "C*07:02", "C*07:04", "C*08:01", "C*08:02",
      "C*12:02", "C*12:03", "C*14:02", "C*16:01", "C*02:27", "C*04:11", "C*05:20", "C*06:11", "C*15:07", "C*17:22"]
C2 = ["C*02:02", "C*04:01", "C*05:01", "C*06:02", "C*15:02", "C*17:01", "C*18:01", "C*01:14", "C*03:07",
      "C*03:10", "C*03:15", "C*07:07", "C*07:09", "C*08:10", "C*12:04", "C*12:05", "C*14:12", "C*16:02"]


@pytest.mark.parametrize("name", C1)
def test_c1_alleles(ref, name):
    assert two_field(ref, name) == "C1"


@pytest.mark.parametrize("name", C2)
def test_c2_alleles(ref, name):
    assert two_field(ref, name) == "C2"


# IPD-KIR ligand data for HLA-B, RULES 1.9 (sequence-derived: B*27:05, 44:02, 44:03, 47:01 are 80T).
BW6 = ["B*07:02", "B*08:01", "B*14:02", "B*15:01", "B*18:01", "B*35:01", "B*39:01", "B*40:01", "B*40:02",
       "B*46:01", "B*55:01", "B*56:01", "B*73:01"]
BW4_80I = ["B*15:13", "B*15:16", "B*15:17", "B*27:02", "B*38:01", "B*49:01", "B*51:01", "B*52:01", "B*53:01",
           "B*57:01", "B*57:03", "B*58:01", "B*59:01"]
BW4_80T = ["B*13:01", "B*13:02", "B*27:05", "B*37:01", "B*38:02", "B*44:02", "B*44:03", "B*47:01"]


@pytest.mark.parametrize("name,ligand", [(n, "Bw6") for n in BW6] + [(n, "Bw4-80I") for n in BW4_80I]
                         + [(n, "Bw4-80T") for n in BW4_80T])
def test_hla_b_bw4_bw6(ref, name, ligand):
    assert two_field(ref, name) == ligand


@pytest.mark.parametrize("name", ["A*23:01", "A*24:02", "A*24:03", "A*25:01", "A*32:01"])
def test_hla_a_bw4_80i(ref, name):
    # Foley B et al. Blood 2008;112:435-43 and IPD data (RULES 1.11): these HLA-A carry Bw4, residue 80 = I.
    assert two_field(ref, name) == "Bw4-80I"


@pytest.mark.parametrize("name", ["A*01:01", "A*02:01", "A*03:01", "A*11:01", "A*26:01", "A*68:01"])
def test_hla_a_without_bw4_has_no_ligand(ref, name):
    # The IPD-KIR calculator's 77+80 grid would call these (T80, G83) Bw4-80T: HLA-A must not use it.
    assert two_field(ref, name) == "none"


def test_weak_kir3dl1_ligands_flagged(alleles):
    # Foley 2008: B*13:01, B*13:02 did not protect in a KIR3DL1 lysis assay; A*23:01, A*25:01 weak.
    for name in ["B*13:01:01:01", "B*13:02:01:01", "A*23:01:01:01", "A*25:01:01:01"]:
        assert fact(alleles, name, "weak_kir3dl1_ligand") is True, name
    for name in ["B*57:01:01:01", "A*24:02:01:01", "A*32:01:01:01"]:
        assert fact(alleles, name, "weak_kir3dl1_ligand") is False, name


@pytest.mark.parametrize("name,expected", [("B*46:01", True), ("B*73:01", True), ("B*15:01", False), ("B*07:02", False)])
def test_c1_epitope_on_hla_b(ref, name, expected):
    # Moesta 2008 / Parham 2012 (RULES 1.14): B*46:01 and B*73:01 carry the C1 epitope (V76, N80).
    assert two_field(ref, name, "c1_epitope") is expected


def test_c1_epitope_residues(alleles):
    assert fact(alleles, "B*46:01:01:01", "r76") == "V"
    assert fact(alleles, "B*46:01:01:01", "r80") == "N"
    # Bw6 for KIR3DL1 purposes (RULES 1.14: 77-83 motif SLRNLRG)
    assert fact(alleles, "B*46:01:01:01", "r77_83") == "SLRNLRG"


def test_canonical_77_83_motifs(alleles):
    # Bw4 NLRIALR / NLRTALR, Bw6 SLRNLRG (Gumperz 1997; RULES 1.5)
    assert fact(alleles, "B*57:01:01:01", "r77_83") == "NLRIALR"
    assert fact(alleles, "B*44:02:01:01", "r77_83") == "NLRTALR"
    assert fact(alleles, "B*07:02:01:01", "r77_83") == "SLRNLRG"


def test_c05_01_and_c08_02_differ_at_77_80(alleles):
    # Sim MJW et al. 2016 (RULES 1.4): C*05:01 (C2) and C*08:02 (C1) differ at the KIR epitope 77/80.
    assert (fact(alleles, "C*05:01:01:01", "r77"), fact(alleles, "C*05:01:01:01", "r80")) == ("N", "K")
    assert (fact(alleles, "C*08:02:01:01", "r77"), fact(alleles, "C*08:02:01:01", "r80")) == ("S", "N")


@pytest.mark.parametrize("name", ["A*03:01", "A*11:01", "A*11:02"])
def test_a3_a11_kir3dl2_ligand(ref, name):
    # Ruggeri 2002 Table 1; DKMS CTUtools: the A3/A11 group is the KIR3DL2 ligand.
    assert two_field(ref, name, "kir3dl2_ligand") is True


def test_null_alleles_carry_no_ligand(alleles):
    nulls = alleles.filter(pl.col("locus").is_in(["A", "B", "C"]) & (pl.col("suffix") == "N"))
    assert nulls.height > 1000
    assert nulls["kir_ligand"].unique().to_list() == ["none"]
    # B*35:542N read through its frameshift would look like "Bw4-80D/E" (RULES 1.8)
    assert fact(alleles, "B*35:542N", "kir_ligand") == "none"


@pytest.mark.parametrize("name,leader", [
    ("B*07:02", "M"), ("B*08:01", "M"), ("B*14:02", "M"), ("B*38:01", "M"), ("B*39:01", "M"), ("B*73:01", "M"),
    ("B*13:02", "T"), ("B*15:01", "T"), ("B*18:01", "T"), ("B*27:05", "T"), ("B*35:01", "T"), ("B*37:01", "T"),
    ("B*40:01", "T"), ("B*44:02", "T"), ("B*46:01", "T"), ("B*51:01", "T"), ("B*52:01", "T"), ("B*57:01", "T"),
    ("B*58:01", "T"),
])
def test_hla_b_leader(ref, name, leader):
    # Petersdorf 2020; krantzlab sequence-derived calls (RULES 4.8)
    assert two_field(ref, name, "leader") == leader


def test_leader_from_sequence_when_known(alleles):
    assert fact(alleles, "B*07:02:01:01", "r_m21") == "M"
    assert fact(alleles, "B*07:02:01:01", "leader_basis") == "sequence"


def test_leader_fallback_is_marked(alleles):
    b = alleles.filter((pl.col("locus") == "B") & pl.col("expressed"))
    no_seq = b.filter(pl.col("r_m21").is_null())
    assert no_seq.height > 1000  # a third of alleles are exon 2+3 partials (LAYOUT.md)
    assert set(no_seq["leader_basis"].drop_nulls().unique()) <= {"protein", "lineage"}
    assert no_seq["leader_inferred"].drop_nulls().all()


def test_no_two_field_b_protein_mixes_leaders(ref):
    # LAYOUT.md: no 2-field B group mixes M and T.
    t = ref.two_field.filter(pl.col("locus") == "B")
    mixed = t.filter(pl.col("leader_possible").list.set_intersection(["M", "T"]).list.len() > 1)
    assert mixed.height == 0, mixed["name2"].to_list()


def test_c_ligand_constant_within_protein(ref):
    # RULES 1.2: within every two-field name of HLA-C the C1/C2 class is constant.
    t = ref.two_field.filter((pl.col("locus") == "C") & pl.col("any_expressed"))
    assert t.filter(pl.col("ligand").is_null()).height == 0


@pytest.mark.parametrize("protein,group", [
    ("DPB1*09:01", "1"), ("DPB1*10:01", "1"), ("DPB1*17:01", "1"),
    ("DPB1*03:01", "2"), ("DPB1*14:01", "2"), ("DPB1*45:01", "2"),
    ("DPB1*01:01", "3"), ("DPB1*02:01", "3"), ("DPB1*04:01", "3"), ("DPB1*04:02", "3"), ("DPB1*05:01", "3"),
])
def test_dpb1_tce_v2(ref, protein, group):
    # Crivello 2016 / IPD-IMGT/HLA tce groups (RULES 4.10)
    assert two_field(ref, protein, "tce_v2") == group


def test_dpb1_tce_counts(alleles):
    # LAYOUT.md: V2 counts in dpb_tce.csv 3.58.0 ('$' kept as a separate flag)
    counts = dict(alleles.filter(pl.col("locus") == "DPB1").group_by("tce_v2_raw").len().iter_rows())
    assert counts == {"3": 1164, "3$": 899, "2": 190, "2$": 181, "2a": 44, "2a$": 4, "1": 72, "1$": 63, "0": 145}
    d = alleles.filter(pl.col("locus") == "DPB1")
    assert d.filter(pl.col("tce_v2_dollar")).height == 899 + 181 + 4 + 63
    assert d.filter(pl.col("tce_v1").is_null()).height == 463


@pytest.mark.parametrize("name,antigen,broad", [
    ("B*51:01:01:01", "B51", "B5"), ("A*23:01:01:01", "A23", "A9"), ("A*24:02:01:01", "A24", "A9"),
    ("C*03:04:01:01", "Cw10", "Cw3"), ("DRB1*15:01:01:01", "DR15", "DR2"), ("DQB1*06:02:01:01", "DQ6", "DQ1"),
    ("B*44:02:01:01", "B44", "B12"), ("B*15:01:01:01", "B62", "B15"),
])
def test_serology(alleles, name, antigen, broad):
    # WMDA rel_dna_ser / rel_ser_ser (RULES 7.4; LAYOUT.md examples B*15:01:01:01 → 62, C*03:04:01:01 → 10)
    assert fact(alleles, name, "antigen") == antigen
    assert fact(alleles, name, "broad_antigen") == broad


def test_null_allele_has_no_antigen(alleles):
    assert fact(alleles, "A*01:01:01:02N", "serology_null") is True
    assert fact(alleles, "A*01:01:01:02N", "antigen") is None


def test_groups(alleles):
    # hla_nom_g / hla_nom_p examples (LAYOUT.md)
    assert fact(alleles, "A*01:01:01:01", "g_group") == "A*01:01:01G"
    assert fact(alleles, "A*01:01:01:02N", "g_group") == "A*01:01:01G"
    assert fact(alleles, "A*01:02:01:01", "p_group") == "A*01:02P"


def test_release_counts(alleles, ref):
    # LAYOUT.md / PROVENANCE.md: 41,433 alleles; A 8,472, B 10,183, C 8,570, DPB1 2,762; KIR 2,219 of 17 genes
    counts = dict(alleles.group_by("locus").len().iter_rows())
    assert alleles.height == 41433
    assert (counts["A"], counts["B"], counts["C"], counts["DPB1"]) == (8472, 10183, 8570, 2762)
    assert ref.kir_alleles.height == 2219
    assert ref.kir_alleles["gene"].n_unique() == 17


def test_every_expressed_class_i_allele_has_its_ligand_residues(alleles):
    # LAYOUT.md: every expressed allele covers 76-83 (exon 2 is always sequenced); 6 B nulls lack FASTA.
    cls1 = alleles.filter(pl.col("locus").is_in(["A", "B", "C"]) & pl.col("expressed"))
    assert cls1.filter(pl.col("r80").is_null()).height == 0
    assert cls1.filter(pl.col("kir_ligand").is_null()).height == 0


def test_bw_rule83_disagreements_are_few(alleles):
    # RULES 1.7: the 77/80 grid and the 83-rule disagree for a few dozen expressed HLA-B alleles.
    b = alleles.filter((pl.col("locus") == "B") & pl.col("surface"))
    dis = b.filter(pl.col("bw_rule83_agrees") == False)  # noqa: E712
    assert 0 < dis.height < 100


def test_a_cache_built_by_other_code_is_not_reused(ref, monkeypatch):
    """The cache key carries a digest of the deriving code: an older haplomatch's facts are never read."""
    from haplomatch.reference import cache

    assert cache.is_built(ref.release)
    assert cache.CODE_DIGEST in cache.cache_dir(ref.release).name
    monkeypatch.setattr(cache, "CODE_DIGEST", "0000000000")
    assert not cache.is_built(ref.release)


def test_a_changed_release_file_is_read_again(tmp_path):
    """open_release remembers a folder's checksum only while its files keep their size and time."""
    import os
    import shutil

    from haplomatch.reference.release import REQUIRED_FILES, open_release, shipped_root

    for rel in REQUIRED_FILES:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shipped_root() / rel, tmp_path / rel)
    first = open_release(tmp_path)
    assert open_release(tmp_path) is first
    with (tmp_path / "imgthla/tce/dpb_tce.csv").open("a") as fh:
        fh.write("\n")
    os.utime(tmp_path / "imgthla/tce/dpb_tce.csv", ns=(1, 1))
    again = open_release(tmp_path)
    assert again.checksum != first.checksum
    assert (again.imgthla, again.ipdkir) == ("3.58.0", "2.13.0")
