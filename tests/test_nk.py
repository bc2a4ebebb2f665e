"""KIR ligands of a person, the NK alloreactivity models and the donor KIR genotype (haplomatch.nk,
haplomatch.kirscores, haplomatch.cli_nk).

Every expected value comes from the rule text or the source named next to it (RULES.md = ../shared/science/
RULES.md; the IPD-KIR ligand calculator and IPD ligand tables [S1, S3]; Ruggeri 2002 Table 1; Leung 2004;
Hsu 2005; Cooley 2010 as implemented in DKMS CTUtools; Boudreau 2017 / CTUtools ASSIGN_KIR3DL1 and its
tests; Venstrom 2012; Krieger 2020 and Boelen 2018 formulas as in CTUtools), never from this code's output.
"""

from __future__ import annotations

import json
import random

import polars as pl
import pytest
from click.testing import CliRunner

from haplomatch.cli_nk import kir_cmd, kir_typing_from_text, kir_typing_from_tokens, nk_cmd
from haplomatch.kir import KirAlleleList
from haplomatch.kirscores import (
    cen_expr, genotype_expr, kir3dl1_allele_class, kir3dl1_genotype_class, kir3dl1_table, kir_genotype_columns,
    tel_expr,
)
from haplomatch.nk import MODELS, SOURCES, NkSettings, nk_pair, nk_pair_facts, pair_report, person_ligand_columns
from haplomatch.persons import pair_frame, people_frame, person_from_gl
from haplomatch.rulefiles import rules_path

# Typings used below, with their ligand from RULES 1.3 / 1.9 / 1.11 / 1.14 (IPD ligand tables [S3]).
C1_ALLELES = ("C*07:02", "C*07:01", "C*03:04", "C*01:02", "C*15:07")        # C*15:07: C1 despite lineage (1.3)
C2_ALLELES = ("C*06:02", "C*04:01", "C*05:01", "C*16:02")                    # C*16:02: C2 despite lineage (1.3)


@pytest.fixture(scope="session")
def release(ref):
    return KirAlleleList.from_reference(ref)


def gl(a=("A*01:01", "A*02:01"), b=("B*08:01", "B*07:02"), c=("C*07:02", "C*07:01"), drb1=None) -> str:
    """A GL string; a locus given as None is left out (untyped)."""
    parts = []
    for locus, pair in (("A", a), ("B", b), ("C", c), ("DRB1", drb1)):
        if pair:
            parts.append("+".join(f"HLA-{x}" for x in pair))
    return "^".join(parts)


def person(ref, typing: str, kir=None, pid="x"):
    return person_from_gl(pid, typing, kir=kir, nomenclature=ref.nomenclature)


def kir(release, *tokens: str, partial: bool = False):
    """Genes named present (or GENE=VALUE), all others absent (or untyped with partial)."""
    return kir_typing_from_tokens(list(tokens), partial=partial, release=release)


def ligands(ref, typing: str, include_hla_a_bw4: bool = True) -> dict:
    return person_ligand_columns(ref, people_frame([person(ref, typing)]), "", include_hla_a_bw4).row(0, named=True)


def pair(ref, patient: str, donor: str, donor_kir, settings: NkSettings | None = None, patient_kir=None) -> dict:
    return nk_pair(ref, person(ref, patient, patient_kir, "p"), person(ref, donor, donor_kir, "d"), settings)


# -------------------------------------------------------------------------------------- ligands of a person


def test_c_groups_from_ipd_ligand_table(ref):
    """RULES 1.1/1.3: C1 = Asn80, C2 = Lys80 (IPD-KIR calculator); exceptions C*16:02 (C2) and C*15:07 (C1).
    Homozygous: the same allele entered twice (RULES 1.16). All combinations in one people table."""
    combos = [(x, y) for x in C1_ALLELES + C2_ALLELES for y in C1_ALLELES + C2_ALLELES]
    people = people_frame([person(ref, gl(c=xy), pid=f"{xy[0]}+{xy[1]}") for xy in combos])
    got = person_ligand_columns(ref, people).select("id", "c_group", "has_C1", "has_C2")
    for (x, y), row in zip(combos, got.iter_rows(named=True)):
        n1 = (x in C1_ALLELES) + (y in C1_ALLELES)
        expected = {2: "C1/C1", 1: "C1/C2", 0: "C2/C2"}[n1]
        assert row["id"] == f"{x}+{y}"
        assert (row["c_group"], row["has_C1"], row["has_C2"]) == (expected, n1 > 0, n1 < 2), (x, y)


HLA_B_GROUPS = [
    # RULES 1.9 reference calls (IPD ligand data, 2-field)
    ("B*07:02", "Bw6"), ("B*08:01", "Bw6"), ("B*35:01", "Bw6"), ("B*15:01", "Bw6"),
    ("B*57:01", "Bw4-80I"), ("B*51:01", "Bw4-80I"), ("B*27:02", "Bw4-80I"), ("B*58:01", "Bw4-80I"),
    ("B*13:02", "Bw4-80T"), ("B*37:01", "Bw4-80T"), ("B*44:02", "Bw4-80T"),
    # RULES 1.9 disagreement: older lists say 80I, sequence (IPD) says 80T
    ("B*27:05", "Bw4-80T"), ("B*44:03", "Bw4-80T"),
]


def test_hla_b_group_homozygous(ref):
    people = people_frame([person(ref, gl(b=(x, x)), pid=x) for x, _ in HLA_B_GROUPS])
    got = person_ligand_columns(ref, people)
    for (allele, group), row in zip(HLA_B_GROUPS, got.iter_rows(named=True)):
        assert row["id"] == allele and row["b_group"] == group, allele
        assert row["has_Bw4"] is (group != "Bw6")
        assert row["has_Bw4_80I"] is (group == "Bw4-80I")
        assert row["has_Bw4_80T"] is (group == "Bw4-80T")


def test_b_group_is_the_strongest_of_the_two(ref):
    """RULES 1.15: strongest of Bw4-80I > Bw4-80T > Bw6 (CTUtools HLA_B_classification)."""
    assert ligands(ref, gl(b=("B*44:03", "B*57:01")))["b_group"] == "Bw4-80I"
    assert ligands(ref, gl(b=("B*07:02", "B*44:03")))["b_group"] == "Bw4-80T"
    assert ligands(ref, gl(b=("B*07:02", "B*08:01")))["b_group"] == "Bw6"


@pytest.mark.parametrize("a_allele, bw4", [("A*24:02", True), ("A*32:01", True), ("A*23:01", True),
                                           ("A*25:01", True), ("A*01:01", False), ("A*02:01", False)])
def test_hla_a_bw4_on_and_off(ref, a_allele, bw4):
    """RULES 1.11: A*23, A*24, A*25, A*32 carry Bw4 (80I); A*01:01 none. With HLA-B Bw6 only, the person's
    Bw4 comes from HLA-A alone, and the IPD-KIR calculator setting (HLA-B and -C only, RULES 1.6) ignores it."""
    typing = gl(a=(a_allele, "A*02:01"), b=("B*07:02", "B*08:01"))
    on = ligands(ref, typing)
    off = ligands(ref, typing, include_hla_a_bw4=False)
    assert on["has_Bw4"] is bw4 and on["has_Bw4_A"] is bw4 and on["has_Bw4_80I"] is bw4
    assert off["has_Bw4"] is False and off["has_Bw4_A"] is bw4      # reported per locus either way
    assert on["b_group"] == off["b_group"] == "Bw6"                  # b_group reads HLA-B only (RULES 1.15)
    assert ("Bw4-80I" in on["ligands"]) is bw4 and "Bw4-80I" not in off["ligands"]


def test_weak_kir3dl1_ligands_are_flagged_not_dropped(ref):
    """RULES 1.10-1.11 (Foley 2008): B*13:01/13:02 and A*23:01/25:01 keep Bw4 but are weak ligands."""
    b13 = ligands(ref, gl(a=("A*01:01", "A*02:01"), b=("B*13:02", "B*07:02")))
    assert (b13["has_Bw4"], b13["has_weak_Bw4"], b13["has_Bw4_weak_only"]) == (True, True, True)
    a23 = ligands(ref, gl(a=("A*23:01", "A*01:01"), b=("B*07:02", "B*08:01")))
    assert (a23["has_Bw4"], a23["has_weak_Bw4"], a23["has_Bw4_weak_only"]) == (True, True, True)
    strong = ligands(ref, gl(a=("A*24:02", "A*01:01"), b=("B*13:02", "B*08:01")))   # A*24:02 is not weak
    assert (strong["has_Bw4"], strong["has_weak_Bw4"], strong["has_Bw4_weak_only"]) == (True, True, False)


def test_null_allele_carries_no_ligand(ref, alleles):
    """RULES 1.8/1.16: null alleles are not expressed and are not entered in the IPD calculator: no ligand.
    C*04:09N is a null allele of the C2 lineage C*04 in the release."""
    row = alleles.filter(pl.col("allele") == "C*04:09N")
    assert row.height == 1 and row["expressed"][0] is False
    got = ligands(ref, gl(c=("C*07:02", "C*04:09N")))
    assert (got["has_C1"], got["has_C2"], got["c_group"]) == (True, False, "C1/C1")
    assert got["ligand_sets"] == [["C1"]]
    # a typing that may be the null allele or C*04:01 (C2): C2 possible, not certain
    amb = ligands(ref, gl(c=("C*07:02", "C*04:01/C*04:09N")))
    assert (amb["has_C1"], amb["has_C2"], amb["c_group"]) == (True, None, None)
    assert sorted(amb["ligand_sets"]) == [["C1"], ["C1", "C2"]]


def test_ambiguous_typing_gives_possible_sets_not_a_guess(ref):
    """RULES 1.15 / issue 5: B*15 (first field only) spans Bw6 (B*15:01) and Bw4 (B*15:13, 15:16, 15:17,
    RULES 1.9): has_Bw4 unknown, b_group unknown, and the possible ligand sets listed."""
    got = ligands(ref, gl(a=("A*01:01", "A*02:01"), b=("B*15", "B*07:02"), c=("C*07:02", "C*07:02")))
    assert got["has_Bw4"] is None and got["b_group"] is None
    assert got["has_C1"] is True and got["has_C2"] is False          # the unambiguous facts stay certain
    sets = got["ligand_sets"]
    assert ["C1"] in sets and ["C1", "Bw4-80I"] in sets
    assert all("C1" in s for s in sets)
    assert "Bw4-80I" in got["ligands_unknown"]


def test_untyped_locus_is_unknown_not_absent(ref):
    typing = gl(a=None, b=("B*07:02", "B*08:01"), c=None)
    got = ligands(ref, typing)
    assert got["has_Bw4"] is None                     # HLA-A untyped could carry Bw4 (A*24 ...)
    assert got["has_C1"] is None and got["c_group"] is None and got["ligand_sets"] is None
    assert got["b_group"] == "Bw6"                    # HLA-B alone decides the HLA-B group
    assert ligands(ref, typing, include_hla_a_bw4=False)["has_Bw4"] is False


def test_c1_on_hla_b_and_a3_a11(ref):
    """RULES 1.14: B*46:01 and B*73:01 carry the C1 epitope and are Bw6 for KIR3DL1. RULES 1.13: A*03, A*11."""
    b46 = ligands(ref, gl(a=("A*03:01", "A*11:01"), b=("B*46:01", "B*73:01"), c=("C*06:02", "C*06:02")))
    assert (b46["has_C1_on_B"], b46["has_C1"], b46["b_group"], b46["has_A3_A11"]) == (True, False, "Bw6", True)
    none = ligands(ref, gl(a=("A*01:01", "A*02:01"), b=("B*15:01", "B*07:02")))
    assert (none["has_C1_on_B"], none["has_A3_A11"]) == (False, False)


# ----------------------------------------------------------------------------------------------- models


def test_ligand_ligand_gvh_needs_the_donor_kir(ref, release):
    """RULES 2.4 (Ruggeri 2002 Table 1): GvH incompatibility = the recipient lacks a donor C1/C2/Bw4 group;
    alloreactive only with the matching inhibitory KIR (C2 ↔ KIR2DL1, RULES 2a)."""
    patient = gl(c=("C*07:02", "C*07:01"))                       # C1/C1, Bw6
    donor = gl(c=("C*07:02", "C*06:02"))                         # C1/C2, Bw6
    with_kir = pair(ref, patient, donor, kir(release, "2DL1", "2DL3"))
    assert with_kir["ll_gvh"] == ["C2"] and with_kir["ll_hvg"] == []
    assert with_kir["ll_gvh_alloreactive"] is True and with_kir["ll_gvh_kir"] == ["KIR2DL1"]
    without = pair(ref, patient, donor, kir(release, "2DL3"))
    assert without["ll_gvh"] == ["C2"] and without["ll_gvh_alloreactive"] is False


def test_ligand_ligand_hvg_direction_and_sorted_labels(ref, release):
    """RULES 2.4/2.8: HvG = recipient groups the donor lacks. Patient C1/C2 + Bw4 vs a C1/C1 Bw6 donor:
    HvG {Bw4, C2}, GvH none. Patient KIR typed → HvG alloreactive where the patient has 2DL1/3DL1."""
    patient = gl(a=("A*01:01", "A*02:01"), b=("B*57:01", "B*07:02"), c=("C*07:02", "C*06:02"))
    donor = gl(a=("A*01:01", "A*02:01"), b=("B*08:01", "B*07:02"), c=("C*07:02", "C*07:01"))
    got = pair(ref, patient, donor, kir(release, "2DL1", "2DL3", "3DL1"), patient_kir=kir(release, "3DL1"))
    assert got["ll_hvg"] == ["Bw4", "C2"] and got["ll_gvh"] == []
    assert got["ll_hvg_alloreactive"] is True and got["ll_hvg_kir"] == ["KIR3DL1"]
    untyped = pair(ref, patient, donor, kir(release, "2DL1"))
    assert untyped["ll_hvg_alloreactive"] is None          # patient KIR not typed: unknown, not "no"


def test_ligand_ligand_homozygous_c2_patient(ref, release):
    """A C2/C2 (homozygous) patient lacks C1: a C1/C2 donor with KIR2DL3 is GvH alloreactive (RULES 2.4)."""
    got = pair(ref, gl(c=("C*06:02", "C*06:02")), gl(c=("C*06:02", "C*07:02")), kir(release, "2DL1", "2DL3"))
    assert got["ll_gvh"] == ["C1"] and got["ll_gvh_kir"] == ["KIR2DL2/3"] and got["ll_gvh_alloreactive"] is True


def test_ligand_ligand_hla_a_bw4_and_a3_a11_settings(ref, release):
    """Donor Bw4 only on HLA-A*24:02 (RULES 1.11); A3/A11 only when asked for (Ruggeri 2002 Table 1)."""
    patient = gl(a=("A*01:01", "A*02:01"), b=("B*08:01", "B*07:02"))
    donor = gl(a=("A*24:02", "A*03:01"), b=("B*08:01", "B*07:02"))
    k = kir(release, "2DL1", "2DL3", "3DL1", "3DL2")
    assert pair(ref, patient, donor, k)["ll_gvh"] == ["Bw4"]
    assert pair(ref, patient, donor, k, NkSettings(include_hla_a_bw4=False))["ll_gvh"] == []
    both = pair(ref, patient, donor, k, NkSettings(include_a3_a11=True))
    assert both["ll_gvh"] == ["A3/A11", "Bw4"] and both["ll_gvh_kir"] == ["KIR3DL1", "KIR3DL2"]


def test_c1_on_hla_b_setting(ref, release):
    """RULES 1.14: B*46:01 carries the C1 epitope recognised by KIR2DL2/3 (Boelen/Rafei count it); the classic
    models read HLA-C only. A C2/C2 patient with B*46:01 lacks C1 by HLA-C but not with the setting."""
    patient = gl(b=("B*46:01", "B*07:02"), c=("C*06:02", "C*06:02"))
    donor = gl(c=("C*06:02", "C*07:02"))
    k = kir(release, "2DL1", "2DL3")
    assert pair(ref, patient, donor, k)["ll_gvh"] == ["C1"]
    on = pair(ref, patient, donor, k, NkSettings(c1_on_hla_b=True))
    assert on["ll_gvh"] == [] and on["rl_kir"] == []


def test_ligand_ligand_ambiguous_patient_is_unknown(ref, release):
    got = pair(ref, gl(b=("B*15", "B*07:02")), gl(b=("B*57:01", "B*07:02")), kir(release, "3DL1"))
    assert got["ll_gvh"] == [] and got["ll_gvh_unknown"] == ["Bw4"] and got["ll_gvh_alloreactive"] is None


def test_receptor_ligand_ignores_donor_hla(ref, release):
    """RULES 2.5 (Leung 2004): donor inhibitory KIR (2DL1, 2DL2/3, 3DL1; optionally 3DL2) whose ligand the
    recipient lacks; donor HLA ignored. C1/C1 Bw6 patient, donor 2DL1 + 2DL3 + 3DL1 → KIR2DL1 and KIR3DL1."""
    patient = gl(c=("C*07:02", "C*07:01"))
    k = kir(release, "2DL1", "2DL3", "3DL1", "3DL2")
    for donor in (gl(c=("C*07:02", "C*07:01")), gl(b=("B*57:01", "B*44:03"), c=("C*06:02", "C*06:02"))):
        got = pair(ref, patient, donor, k)
        assert got["rl_kir"] == ["KIR2DL1", "KIR3DL1"] and got["rl_count"] == 2
    # optionally KIR3DL2: A*01:01/A*02:01 carries no A3/A11
    assert pair(ref, patient, gl(), k, NkSettings(include_a3_a11=True))["rl_count"] == 3
    # a patient with every ligand: no mismatch
    full = gl(b=("B*57:01", "B*07:02"), c=("C*07:02", "C*06:02"))
    assert pair(ref, full, gl(), k)["rl_count"] == 0


def test_receptor_ligand_untyped_gene_is_unknown(ref, release):
    got = pair(ref, gl(c=("C*07:02", "C*07:01")), gl(), kir(release, "2DL1", "2DL3", partial=True))
    assert got["rl_kir"] == ["KIR2DL1"] and got["rl_kir_unknown"] == ["KIR3DL1"]
    assert (got["rl_count"], got["rl_count_min"], got["rl_count_max"]) == (None, 1, 2)


def test_missing_ligand_only_for_hla_identical_pairs(ref, release):
    """RULES 2.6 (Hsu 2005): lack of recipient ligand for donor inhibitory KIR, in HLA-identical pairs."""
    typing = gl(c=("C*07:02", "C*07:01"), drb1=("DRB1*15:01", "DRB1*03:01"))
    k = kir(release, "2DL1", "2DL3", "3DL1")
    same = pair(ref, typing, typing, k)
    assert same["ml_applicable"] is True and same["ml_kir"] == ["KIR2DL1", "KIR3DL1"] and same["ml_count"] == 2
    other = pair(ref, typing, gl(c=("C*07:02", "C*06:02"), drb1=("DRB1*15:01", "DRB1*03:01")), k)
    assert other["ml_applicable"] is False and other["ml_kir"] is None
    untyped = pair(ref, gl(c=("C*07:02", "C*07:01")), gl(c=("C*07:02", "C*07:01")), k)   # DRB1 untyped
    assert untyped["ml_applicable"] is None


def test_donor_education(ref, release):
    """RULES 2.2: a donor KIR is licensed when the donor carries its ligand (2DL1↔C2, 2DL2/3↔C1, 3DL1↔Bw4)."""
    got = pair(ref, gl(), gl(c=("C*07:02", "C*07:01")), kir(release, "2DL1", "2DL3", "3DL1"))
    assert got["donor_licensed_kir"] == ["KIR2DL2/3"]
    assert got["donor_unlicensed_kir"] == ["KIR2DL1", "KIR3DL1"]
    bw4 = pair(ref, gl(), gl(a=("A*24:02", "A*01:01"), c=("C*07:02", "C*06:02")), kir(release, "2DL1", "2DL3", "3DL1"))
    assert bw4["donor_licensed_kir"] == ["KIR2DL1", "KIR2DL2/3", "KIR3DL1"] and bw4["donor_unlicensed_kir"] == []


# --------------------------------------------------------------------------------- donor KIR genotype


def _presence_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={k: pl.Boolean for k in rows[0]})


@pytest.mark.parametrize("dl3, dl2, ds2, expected", [
    # RULES 3.3 (CTUtools KIR_haplotype_Cen)
    (True, False, False, "A/A"),        # Cen-A/A = 2DL3+ 2DL2- 2DS2-
    (True, True, False, "A/B"),         # Cen-A/B = 2DL3+ and (2DL2+ or 2DS2+)
    (True, False, True, "A/B"),
    (True, True, True, "A/B"),
    (False, True, False, "B/B"),        # Cen-B/B = 2DL3- and (2DL2+ or 2DS2+)
    (False, True, True, "B/B"),
    (False, False, False, None),        # all absent: not classifiable
    (None, True, True, None),           # 2DL3 untyped decides A/B vs B/B: unknown
    (True, None, False, None),          # 2DL2 untyped decides A/A vs A/B: unknown
])
def test_cooley_centromeric_motifs(dl3, dl2, ds2, expected):
    df = _presence_frame([{"kir_2DL3": dl3, "kir_2DL2": dl2, "kir_2DS2": ds2}])
    assert df.select(cen_expr("", df.columns))[0, 0] == expected


@pytest.mark.parametrize("dl1, ds4, s31, s21, expected", [
    # RULES 3.4 (CTUtools KIR_haplotype_Tel)
    (True, True, False, False, "A/A"),  # Tel-A/A = 3DL1+ 2DS4+ 3DS1- 2DS1-
    (True, True, True, False, "A/B"),   # Tel-A/B = 3DL1+ 2DS4+ and (3DS1+ or 2DS1+)
    (True, True, False, True, "A/B"),
    (False, True, True, True, "B/B"),   # Tel-B/B = 3DL1- or 2DS4-
    (True, False, True, False, "B/B"),
    (False, None, None, None, "B/B"),   # 3DL1 absent decides B/B whatever the rest
    (True, True, None, False, None),    # 3DS1 untyped decides A/A vs A/B
])
def test_cooley_telomeric_motifs(dl1, ds4, s31, s21, expected):
    df = _presence_frame([{"kir_3DL1": dl1, "kir_2DS4": ds4, "kir_3DS1": s31, "kir_2DS1": s21}])
    assert df.select(tel_expr("", "any", df.columns))[0, 0] == expected


def _genotype(ref, release, *tokens, partial=False, tel_2ds4="any") -> dict:
    p = person(ref, gl(), kir(release, *tokens, partial=partial))
    return kir_genotype_columns(people_frame([p]), tel_2ds4=tel_2ds4).row(0, named=True)


def test_most_common_german_genotype_is_a_over_a(ref, release):
    """RULES 3.2: 2DL1 2DL3 2DL4 2DP1 2DS4N 3DL1 3DL2 3DL3 3DP1 is A/A; a 2DS4 null allele does not make B.
    Cen-A/A (2DL3+, 2DL2-, 2DS2-); Tel-A/A with any 2DS4 (Cooley gene content), Tel-B/B when only the
    full-length 2DS4 column counts (CTUtools reading; RULES 3.4 open issue)."""
    tokens = ("2DL1", "2DL3", "2DL4", "2DP1", "2DS4N", "3DL1", "3DL2", "3DL3", "3DP1")
    g = _genotype(ref, release, *tokens)
    assert (g["kir_genotype"], g["kir_cen"], g["kir_tel"]) == ("A/A", "A/A", "A/A")
    assert (g["kir_b_content_score"], g["kir_b_content_group"]) == (0, "Neutral")
    assert (g["kir_activating_count"], g["kir_activating_functional_count"], g["kir2ds4"]) == (1, 0, "2DS4N only")
    fl = _genotype(ref, release, *tokens, tel_2ds4="full_length")
    assert (fl["kir_tel"], fl["kir_b_content_score"]) == ("B/B", 2)


@pytest.mark.parametrize("tokens, cen, tel, score, group", [
    # RULES 3.5-3.6 (Cooley 2010): score = Cen B motifs + Tel B motifs; Best = Cen-B/B; Better >= 2; Neutral 0-1
    (("2DL2", "2DS2", "3DL1", "2DS4"), "B/B", "A/A", 2, "Best"),
    (("2DL2", "2DS2", "3DS1", "2DS1"), "B/B", "B/B", 4, "Best"),
    (("2DL3", "2DL2", "3DL1", "2DS4", "3DS1"), "A/B", "A/B", 2, "Better"),
    (("2DL3", "2DL2", "3DS1"), "A/B", "B/B", 3, "Better"),
    (("2DL3", "3DL1", "2DS4", "2DS1"), "A/A", "A/B", 1, "Neutral"),
    (("2DL3", "2DS2", "3DL1", "2DS4"), "A/B", "A/A", 1, "Neutral"),
])
def test_b_content_score_and_group(ref, release, tokens, cen, tel, score, group):
    g = _genotype(ref, release, "2DL4", "3DL2", "3DL3", "3DP1", *tokens)
    assert (g["kir_cen"], g["kir_tel"], g["kir_b_content_score"], g["kir_b_content_group"]) == (cen, tel, score, group)
    assert g["kir_genotype"] == "B/x"


def test_b_content_unknown_gene_gives_unknown_but_cen_bb_is_best(ref, release):
    partial = _genotype(ref, release, "2DL3", "2DL2", partial=True)          # Tel genes untyped
    assert (partial["kir_cen"], partial["kir_tel"], partial["kir_b_content_score"]) == ("A/B", None, None)
    assert partial["kir_b_content_group"] is None
    best = _genotype(ref, release, "2DL2", "2DS2", "2DL3=NEG", partial=True)  # Cen-B/B: Best whatever Tel
    assert (best["kir_cen"], best["kir_b_content_group"]) == ("B/B", "Best")


def test_a_over_a_versus_b_over_x(ref, release):
    """RULES 3.1: B/x when any of 2DL2, 2DL5, 3DS1, 2DS1, 2DS2, 2DS3, 2DS5 is present."""
    base = ("2DL1", "2DL3", "2DL4", "3DL1", "2DS4", "3DL2", "3DL3")
    for b_gene in ("2DL2", "2DL5", "3DS1", "2DS1", "2DS2", "2DS3", "2DS5"):
        assert _genotype(ref, release, *base, b_gene)["kir_genotype"] == "B/x", b_gene
    assert _genotype(ref, release, *base)["kir_genotype"] == "A/A"
    assert _genotype(ref, release, *base, partial=True)["kir_genotype"] is None      # B genes untyped
    df = _presence_frame([{"kir_2DL5": True}])
    assert df.select(genotype_expr("", df.columns))[0, 0] == "B/x"


# ------------------------------------------------------------------------------------------- KIR3DL1


@pytest.mark.parametrize("code, cls", [
    # RULES 3.11 (Boudreau 2017 table, CTUtools ASSIGN_KIR3DL1)
    ("001", "H"), ("002", "H"), ("015", "H"), ("020", "H"), ("00101", "H"), ("KIR3DL1*001", "H"),
    ("005", "L"), ("007", "L"), ("109", "L"),
    ("004", "N"), ("019", "N"), ("091", "N"),
    ("013", "S"), ("107", "S"),
    ("003", None), ("069", None), ("NEW", None),       # unclassified in the table
])
def test_kir3dl1_allele_classes(code, cls):
    assert kir3dl1_allele_class(code) == cls


def test_any_kir3ds1_allele_is_s():
    assert kir3dl1_allele_class("013", gene="KIR3DS1") == "S"
    assert kir3dl1_allele_class("KIR3DS1*078") == "S"     # 078 is unclassified as a number, but it is a 3DS1


def test_kir3dl1_table_file_has_its_source_and_no_overlap():
    tab = kir3dl1_table(str(rules_path("kir3dl1-boudreau2017.yaml")))
    assert "Boudreau" in tab["source"]["model"] and "2017" in tab["source"]["model"]
    assert tab["order"] == ["L", "H", "S", "N"]
    assert len(tab["classes"]) == 46 + 11 + 11 + 20     # RULES 3.11 lists 46 H, 11 L, 11 N, 20 S codes


@pytest.mark.parametrize("alleles, present, expected", [
    # CTUtools tests/testthat/test_kir.R: "001/095+004" → KIR3DL1-H; "005" (+ 3DS1 013/107) → KIR3DL1-L
    ("001/095+004", True, "H"),
    ("005", True, "L"),
    # RULES 3.12: strongest of L > H > S > N; a single allele pairs with N; S reported as N
    ("001+005", True, "L"),
    ("004+004", True, "N"),
    ("004", True, "N"),
    ("001|001+002", True, "H"),
    (None, False, "N"),                      # KIR3DL1 absent (RULES 3.11: "and 3DL1 absent")
    ("NEG", False, "N"),
    (None, True, None),                      # present, alleles not typed
    ("001/005+004", True, None),             # ambiguity across classes
    ("001+003", True, None),                 # 003 unclassified could be stronger than H
    ("005+003", True, "L"),                  # nothing is stronger than L
    ("001|005", True, None),                 # alternatives with different classes (RULES 3.12)
])
def test_kir3dl1_genotype_class(alleles, present, expected):
    assert kir3dl1_genotype_class(alleles, present) == expected


@pytest.mark.parametrize("b_pair, k3dl1, result, detail", [
    # RULES 3.13 (CTUtools KIR3DL1_HLA_B_inhibiting): strong = H+80I or L+80T; weak = H+80T or L+80I;
    # non-inhibiting = Bw6 (missing ligand) or N with Bw4 (educated, uninhibited)
    (("B*57:01", "B*57:01"), "001+001", "strong inhibiting", "strong inhibiting"),
    (("B*44:03", "B*07:02"), "005", "strong inhibiting", "strong inhibiting"),
    (("B*44:03", "B*07:02"), "001+002", "weak inhibiting", "weak inhibiting"),
    (("B*57:01", "B*07:02"), "005+004", "weak inhibiting", "weak inhibiting"),
    (("B*07:02", "B*08:01"), "001", "non-inhibiting", "missing ligand"),
    (("B*57:01", "B*44:03"), "004+004", "non-inhibiting", "educated, uninhibited"),
    (("B*57:01", "B*07:02"), "NEG", "non-inhibiting", "educated, uninhibited"),
])
def test_kir3dl1_x_hla_b(ref, release, b_pair, k3dl1, result, detail):
    k = kir(release, "2DL1", "2DL3", f"KIR3DL1={k3dl1}")
    got = pair(ref, gl(b=b_pair), gl(), k)
    assert (got["kir3dl1_hlab"], got["kir3dl1_hlab_detail"]) == (result, detail)


def test_kir3dl1_x_hla_b_reads_hla_a_only_when_asked(ref, release):
    """RULES 3.13: CTUtools derives the group from HLA-B only; HLA-A Bw4 (A*24:02, 80I) is an option."""
    patient = gl(a=("A*24:02", "A*01:01"), b=("B*07:02", "B*08:01"))
    k = kir(release, "KIR3DL1=001+001")
    assert pair(ref, patient, gl(), k)["kir3dl1_hlab_detail"] == "missing ligand"
    with_a = pair(ref, patient, gl(), k, NkSettings(kir3dl1_include_hla_a=True))
    assert (with_a["kir3dl1_patient_group"], with_a["kir3dl1_hlab"]) == ("Bw4-80I", "strong inhibiting")


@pytest.mark.parametrize("donor_c, has_2ds1, favourable, group", [
    # RULES 3.10 (Venstrom 2012): donor 2DS1 with >= 1 C1 favourable; 2DS1 with C2/C2 not
    (("C*07:02", "C*07:01"), True, True, "2DS1+ C1/x"),      # C1/C1
    (("C*07:02", "C*06:02"), True, True, "2DS1+ C1/x"),      # C1/C2
    (("C*06:02", "C*04:01"), True, False, "2DS1+ C2/C2"),    # C2/C2
    (("C*07:02", "C*06:02"), False, False, "2DS1-"),
])
def test_kir2ds1_with_donor_c1(ref, release, donor_c, has_2ds1, favourable, group):
    k = kir(release, "2DL1", "2DL3", *(("2DS1",) if has_2ds1 else ()))
    got = pair(ref, gl(), gl(c=donor_c), k)
    assert (got["kir2ds1_favourable"], got["kir2ds1_group"]) == (favourable, group)


def test_krieger_and_boelen_scores(ref, release):
    """RULES 3.15 (Krieger): the CTUtools score_krieger example genotype (2DL1, 2DL2, 3DL2, 2DS1, 2DS4,
    2DS5, 3DS1; 2DL3, 3DL1, 2DS2 absent) against a C1/C1, Bw6/Bw4-80T, A*01:01 homozygous recipient:
    ikir = 2DL2:C1 = 1; mkir = 2DL1 (no C2) + 3DL2 (no A3/A11) = 2; akir = 0 → KIRL 1, IMKIR 3,
    WKIR 0.80 + 1.98 = 2.78.
    RULES 3.16 (Boelen): the CTUtools score_boelen_inhib examples: 2DL1 + 2DL2 with C1/C2 → 1 + 1 = 2;
    2DL1 + 2DL2 + 2DL3 with C2/C2 and B*46:01 → 1 + 1 + 0.75 = 2.75."""
    donor_kir = kir(release, "2DL1", "2DL2", "3DL2", "2DS1", "KIR2DS4=001", "2DS5", "3DS1")
    patient = gl(a=("A*01:01", "A*01:01"), b=("B*07:02", "B*44:03"), c=("C*07:02", "C*07:01"))
    got = pair(ref, patient, gl(), donor_kir)
    assert (got["krieger_ikir"], got["krieger_mkir"], got["krieger_akir"]) == (1, 2, 0)
    assert (got["krieger_kirl"], got["krieger_imkir"], got["krieger_wkir"]) == (1, 3, pytest.approx(2.78))
    b1 = pair(ref, gl(), gl(b=("B*07:02", "B*07:02"), c=("C*07:02", "C*06:02")), kir(release, "2DL1", "2DL2"))
    assert b1["donor_boelen_score"] == pytest.approx(2.0)
    b2 = pair(ref, gl(), gl(b=("B*07:02", "B*46:01"), c=("C*06:02", "C*06:02")), kir(release, "2DL1", "2DL2", "2DL3"))
    assert b2["donor_boelen_score"] == pytest.approx(2.75)


# ------------------------------------------------------------------------------------------- vectorised


MODEL_COLUMNS = (
    "patient_ligands", "patient_ligand_sets", "patient_c_group", "patient_b_group", "donor_ligands",
    "donor_c_group", "ll_gvh", "ll_hvg", "ll_gvh_unknown", "ll_gvh_alloreactive", "ll_gvh_kir", "rl_kir",
    "rl_kir_unknown", "rl_count", "rl_count_min", "rl_count_max", "ml_applicable", "ml_kir", "donor_licensed_kir",
    "donor_unlicensed_kir", "donor_kir_genotype", "donor_kir_cen", "donor_kir_tel", "donor_kir_b_content_score",
    "donor_kir_b_content_group", "donor_kir3dl1_class", "kir3dl1_hlab_detail", "kir2ds1_favourable", "krieger_wkir",
    "donor_boelen_score",
)


def test_batch_equals_per_pair(ref, release):
    """A pair table with many rows gives, row for row, what one-pair calls give."""
    rng = random.Random(5)
    a = ["A*01:01", "A*02:01", "A*03:01", "A*11:01", "A*24:02", "A*23:01", "A*24", None]
    b = ["B*07:02", "B*08:01", "B*57:01", "B*44:03", "B*15", "B*46:01", "B*13:02", "B*27:05"]
    c = ["C*07:02", "C*07:01", "C*06:02", "C*04:01", "C*04:09N", "C*07", "C*16:02"]
    kirs = [("2DL1", "2DL3", "2DL4", "2DP1", "2DS4N", "KIR3DL1=001+004", "3DL2", "3DL3", "3DP1"),
            ("2DL1", "2DL2", "2DL3", "2DS2", "2DS1", "3DS1", "2DL5", "3DL2", "KIR3DL1=005"),
            ("2DL2", "2DS2", "2DS3", "3DS1", "2DS1", "2DS5", "3DL2"),
            ("2DL1", "2DL3", "3DL1")]                       # read as a partial typing (others untyped)

    def some_person(pid: str, with_kir: bool):
        pick = lambda xs: tuple(rng.choice(xs) for _ in range(2))  # noqa: E731
        aa = pick(a)
        typing = gl(a=None if None in aa else aa, b=pick(b), c=pick(c))
        k = None
        if with_kir:
            toks = rng.choice(kirs)
            k = kir(release, *toks, partial=len(toks) == 3)
        return person(ref, typing, k, pid)

    patients = [some_person(f"p{i}", False) for i in range(6)]
    donors = [some_person(f"d{i}", True) for i in range(20)]
    pairs = pair_frame(people_frame(patients), people_frame(donors))
    batch = nk_pair_facts(ref, pairs)
    assert batch.height == 120
    by_id = {(r["patient_id"], r["donor_id"]): r for r in batch.iter_rows(named=True)}
    sample = rng.sample(sorted(by_id), 12)
    for pid, did in sample:
        one = nk_pair(ref, next(p for p in patients if p.id == pid), next(d for d in donors if d.id == did))
        for col in MODEL_COLUMNS:
            assert one[col] == by_id[(pid, did)][col], (pid, did, col)


def test_person_columns_are_computed_once_per_typing(ref):
    """A repeated typing (one patient against many donors) gives identical rows, in input order."""
    people = people_frame([person(ref, gl(b=("B*15", "B*57:01")), pid=f"x{i}") for i in range(50)])
    out = person_ligand_columns(ref, people)
    assert out.height == 50 and out["id"].to_list() == [f"x{i}" for i in range(50)]
    assert out["has_Bw4"].to_list() == [True] * 50 and out.select(pl.col("ligand_sets").n_unique()).item() == 1


# ---------------------------------------------------------------------------------------------- sources


def test_every_model_has_a_source_with_author_and_year():
    for key, m in MODELS.items():
        assert m["model"] and m["source"] and any(str(y) in m["source"] for y in range(1997, 2026)), key
    for name, year in (("Ruggeri", "2002"), ("Leung", "2004"), ("Hsu", "2005"), ("Boudreau", "2017"),
                       ("Venstrom", "2012"), ("Cooley", "2010")):
        assert any(name in s and year in s for s in SOURCES.values()), name


def test_pair_report_names_model_and_source_everywhere(ref, release):
    row = pair(ref, gl(), gl(c=("C*07:02", "C*06:02")), kir(release, "2DL1", "2DL3"))
    report = pair_report(row, NkSettings(), release=ref.label)
    for key in ("patient", "donor", "ligand_ligand", "receptor_ligand", "missing_ligand", "education",
                "kir_genotype", "kir3dl1_hla_b", "kir2ds1"):
        assert report[key]["model"] and report[key]["source"], key
    assert report["scores"]["krieger"]["source"] and report["scores"]["boelen"]["source"]


# -------------------------------------------------------------------------------------------------- CLI


def test_cli_kir_json(ref):
    """Issue 5 item 5: present genes and GENE=VALUE tokens; genes not named are absent."""
    res = CliRunner().invoke(kir_cmd, ["KIR2DL1", "2DL3", "2DL4", "2DP1", "2DS4N", "3DL2", "3DL3", "3DP1",
                                       "KIR3DL1=001+005", "KIR2DS1=NEG", "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert (out["genotype"], out["cen"], out["tel"]) == ("A/A", "A/A", "A/A")          # RULES 3.2-3.4
    assert (out["b_content_score"], out["b_content_group"], out["activating_count"]) == (0, "Neutral", 1)
    assert out["kir3dl1_class"] == "L"                                                  # RULES 3.12: L > H
    assert all(m["model"] and m["source"] for m in out["models"].values())


def test_cli_kir_partial_and_no_alleles(ref):
    res = CliRunner().invoke(kir_cmd, ["2DL2", "KIR2DL2=POS", "--format", "json"])
    assert res.exit_code == 2                                     # given twice
    res = CliRunner().invoke(kir_cmd, ["--partial", "2DL2", "2DS2", "--format", "json"])
    out = json.loads(res.output)
    assert out["genotype"] == "B/x" and out["cen"] is None and "kir3dl1_class" not in out
    table = CliRunner().invoke(kir_cmd, ["2DL1", "2DL3", "3DL1", "2DS4"])
    assert table.exit_code == 0 and "Cooley" in table.output and "Sources:" in table.output


def test_cli_kir_unknown_gene_exits_2_naming_it(ref):
    res = CliRunner().invoke(kir_cmd, ["2DL1", "2DL9", "KIR7DS1=001"])
    assert res.exit_code == 2
    assert "2DL9" in res.output and "KIR7DS1" in res.output


def test_cli_nk_json(ref):
    """Issue 5 item 6: ligand_ligand.gvh/hvg sorted labels, receptor_ligand.count/kir."""
    args = ["--patient", gl(c=("C*07:02", "C*07:01")),
            "--donor", gl(a=("A*24:02", "A*01:01"), c=("C*07:02", "C*06:02")),
            "--donor-kir", "KIR2DL1+KIR2DL3+KIR3DL1", "--format", "json"]
    res = CliRunner().invoke(nk_cmd, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["ligand_ligand"]["gvh"] == ["Bw4", "C2"] and out["ligand_ligand"]["hvg"] == []
    assert out["receptor_ligand"]["count"] == 2 and out["receptor_ligand"]["kir"] == ["KIR2DL1", "KIR3DL1"]
    assert "Ruggeri" in out["ligand_ligand"]["source"] and "Leung" in out["receptor_ligand"]["source"]
    assert out["kir2ds1"]["group"] == "2DS1-" and out["release"]
    ipd = json.loads(CliRunner().invoke(nk_cmd, args + ["--ipd-calculator"]).output)
    assert ipd["ligand_ligand"]["gvh"] == ["C2"] and ipd["settings"]["include_hla_a_bw4"] is False


def test_cli_nk_table_and_gl_kir(ref):
    res = CliRunner().invoke(nk_cmd, ["--patient", gl(), "--donor", gl(c=("C*06:02", "C*07:02")),
                                      "--donor-kir", "KIR2DL1*001+KIR2DL1*002^KIR3DL1*005^KIR2DL3*001"])
    assert res.exit_code == 0, res.output
    for word in ("ligand-ligand", "receptor-ligand", "missing ligand", "KIR3DL1 x HLA-B", "KIR2DS1",
                 "Ruggeri 2002", "Leung 2004", "Hsu 2005", "Boudreau 2017", "Venstrom 2012", "Sources:"):
        assert word in res.output, word


def test_cli_nk_unknown_names_exit_2(ref):
    res = CliRunner().invoke(nk_cmd, ["--patient", "HLA-A*01:01+HLA-A*99:99^HLA-B*08:01", "--donor", gl(),
                                      "--donor-kir", "KIR2DL1"])
    assert res.exit_code == 2 and "A*99:99" in res.output
    res = CliRunner().invoke(nk_cmd, ["--patient", gl(), "--donor", gl(), "--donor-kir", "KIR2DL1+KIR9DL3"])
    assert res.exit_code == 2 and "KIR9DL3" in res.output


def test_kir_typing_from_text_forms(release):
    listed = kir_typing_from_text("KIR2DL1, KIR2DL3+KIR3DL1")
    assert listed.present("KIR2DL1") and listed.present("KIR2DL2") is False
    gl_typing = kir_typing_from_text("KIR2DL1*001+KIR2DL1*002^KIR3DL1*005", release=release)
    assert gl_typing.present("KIR3DL1") and gl_typing.present("KIR2DL2") is None   # not in the GL: untyped


@pytest.mark.parametrize("n_labels", [3, 13])
def test_label_lists_by_bit_code_equal_lists_built_per_row(n_labels):
    """listexpr.label_list (a bit code picking one of 2^k lists; per-row lists above 12 labels) gives the
    true conditions' labels in order; a null condition is not listed; no row gives null."""
    import itertools

    import polars as pl

    from haplomatch.listexpr import label_list

    values = [True, False, None]
    rows = list(itertools.product(values, repeat=3)) * 3
    df = pl.DataFrame({f"c{j}": [r[j % 3] for r in rows] for j in range(n_labels)}, schema={f"c{j}": pl.Boolean for j in range(n_labels)})
    labels = [f"L{j}" for j in range(n_labels)]
    got = df.select(label_list([(pl.col(f"c{j}"), labels[j]) for j in range(n_labels)]).alias("x"))["x"].to_list()
    want = [[labels[j] for j in range(n_labels) if r[j % 3] is True] for r in rows]
    assert got == want
    assert got[0] == labels  # the first row: every condition true
    assert df.head(0).select(label_list([(pl.col("c0"), "L0")]).alias("x")).height == 0
