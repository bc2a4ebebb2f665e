"""Reading KIR typings as labs write them (haplomatch.kir).

Real-world forms come from the DKMS Clinical Trials Unit R package CTUtools (github.com/bosefalk/CTUtools):
``tests/testthat/test_kir.R`` (KIR_det_GCN, KIR3DL1_3DS1_assignment), ``R/kir.R`` (KIR_present examples)
and ``tests/testthat/scores_check.csv`` (20 exported DKMS donor rows, one column per gene, with the
separate ``kir2ds4N`` and combined ``kir2dl5`` columns). Allele validity is checked against the IPD-KIR
2.13.0 Allelelist shipped with the reference data; the German genotype is RULES.md 3.2.
"""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haplomatch.errors import InputError
from haplomatch.kir import (
    GENES, KIR2DL5_EITHER, KIR2DS4_DELETION_PROTEINS, KIR2DS4_FULL, KIR2DS4_FULL_LENGTH_PROTEINS, KIR2DS4_NULL,
    GeneCall, KirAlleleList, KirGenotype, canonical_gene, from_columns, kir2ds4_variant, parse_alleles,
    parse_gene_list, parse_gl, parse_presence,
)


@pytest.fixture(scope="session")
def kir(ref) -> pl.DataFrame:
    return ref.kir_alleles


@pytest.fixture(scope="session")
def release(ref) -> KirAlleleList:
    return KirAlleleList.from_reference(ref)


def codes(kir: pl.DataFrame, gene: str) -> list[str]:
    return kir.filter(pl.col("gene") == gene)["allele"].str.split("*").list.get(1).to_list()


def only_problem(exc: pytest.ExceptionInfo) -> object:
    assert len(exc.value.problems) == 1, exc.value.problems
    return exc.value.problems[0]


# ----------------------------------------------------------------------------------------- gene names


def test_genes_are_the_release_genes(kir):
    assert set(GENES) == set(kir["gene"].unique().to_list())
    assert len(GENES) == 17


@pytest.mark.parametrize("gene", GENES)
def test_every_release_gene_is_accepted_in_every_form(gene, kir, release):
    short = gene[3:]
    for spelling in (gene, short, gene.lower(), short.lower(), f"kir_{short}", f"KIR-{short}", f" {gene} "):
        assert canonical_gene(spelling) == gene, spelling
    assert parse_presence("POS", short).status == "present"
    assert parse_presence("0", gene).status == "absent"
    code = codes(kir, gene)[0]                       # a real allele of the release, e.g. 0010101
    for written in (code[:3], code, f"{gene}*{code[:3]}"):
        call = parse_alleles(f"{written}+{written}", short, release=release)
        assert (call.gene, call.status, call.copies) == (gene, "present", 2)
    g = parse_gl(f"{gene}*{code}", release=release)
    assert g[gene].status == "present"
    assert all(g[other].status == "unknown" for other in GENES if other != gene)
    assert from_columns({short: code[:3]}, release=release)[gene].status == "present"


@pytest.mark.parametrize("name,key", [
    ("KIR2DL1", "KIR2DL1"), ("2DL1", "KIR2DL1"), ("kir2dl1", "KIR2DL1"), ("kir_2DL1", "KIR2DL1"),
    ("2DL5A", "KIR2DL5A"), ("kir2dl5b", "KIR2DL5B"),
    ("KIR2DL5", KIR2DL5_EITHER), ("2DL5", KIR2DL5_EITHER), ("kir2dl5", KIR2DL5_EITHER),
    ("2DS4N", KIR2DS4_NULL), ("KIR2DS4N", KIR2DS4_NULL), ("kir2ds4N", KIR2DS4_NULL), ("2DS4del", KIR2DS4_NULL),
    ("2DS4 null", KIR2DS4_NULL), ("2DS4-del", KIR2DS4_NULL),
    ("2DS4FL", KIR2DS4_FULL), ("2DS4 full", KIR2DS4_FULL), ("KIR2DS4-FL", KIR2DS4_FULL),
    ("2DS4", "KIR2DS4"),
    ("2DL6", None), ("KIR", None), ("A", None), ("HLA-A", None), ("2DS4X", None), ("3DL1A", None),
    ("2DL1N", None), ("kir2dl1_gcn", None), ("", None),
])
def test_canonical_gene(name, key):
    assert canonical_gene(name) == key


# ------------------------------------------------------------------------------------ presence cells


@pytest.mark.parametrize("value,status", [
    ("1", "present"), ("0", "absent"), ("+", "present"), ("-", "absent"), ("POS", "present"), ("NEG", "absent"),
    ("pos", "present"), ("neg", "absent"), ("present", "present"), ("Absent", "absent"), ("yes", "present"),
    ("NO", "absent"), ("P", "present"), ("a", "absent"), ("true", "present"), ("FALSE", "absent"),
    ("positive", "present"), ("negative", "absent"), (" 1 ", "present"),
    ("", "unknown"), ("NT", "unknown"), ("nt", "unknown"), ("ND", "unknown"), ("?", "unknown"), ("na", "unknown"),
    ("N/A", "unknown"),
])
def test_parse_presence(value, status):
    call = parse_presence(value, "2DL1")
    assert (call.gene, call.status) == ("KIR2DL1", status)
    assert call.alleles == ()
    assert call.copies == (0 if status == "absent" else None)


def test_parse_presence_refuses_other_values_naming_them_and_the_accepted_forms():
    with pytest.raises(InputError) as exc:
        parse_presence("maybe", "2DL1", {"file": "donors.csv", "row": 4, "column": "KIR 2DL1"})
    p = only_problem(exc)
    assert p.value == "maybe"
    assert (p.file, p.row, p.column) == ("donors.csv", 4, "KIR 2DL1")
    for form in ("1/0", "POS/NEG", "present/absent", "NT"):
        assert form in p.message
    with pytest.raises(InputError):
        parse_presence("2", "2DL1")          # not a copy number: a typo is more likely than a count
    with pytest.raises(InputError):
        parse_presence("1", "2DL9")          # not a gene


# -------------------------------------------------------------------------------------- allele cells


def test_brief_example_alternatives_copies_options(release):
    call = parse_alleles("001/002+003|004+005", "KIR2DL1", release=release)
    assert call.alleles == ((("001", "002"), ("003",)), (("004",), ("005",)))
    assert (call.status, call.copies) == ("present", 2)


# CTUtools tests/testthat/test_kir.R, KIR_det_GCN: the DKMS column form and its gene copy number
# ("004+003|006+010" → 2; "008+008+008" → 3; "001|001+002" → "1|2", i.e. not one number; POS → "x").
@pytest.mark.parametrize("value,gene,status,copies", [
    ("004+003|006+010", "KIR2DL1", "present", 2),
    ("004+003", "KIR2DL1", "present", 2),
    ("001", "KIR2DL1", "present", 1),
    ("008+008+008", "KIR2DL4", "present", 3),
    ("POS", "KIR2DL1", "present", None),
    ("NEG", "KIR2DL1", "absent", 0),
    ("", "KIR2DL1", "unknown", None),
    ("001|001+002", "KIR2DL1", "present", None),
    # CTUtools tests: KIR3DL1_3DS1_assignment(kir_3DL1 = "001/095+004", kir_3DS1 = "013/107")
    ("001/095+004", "KIR3DL1", "present", 2),
    ("013/107", "KIR3DS1", "present", 1),
    # CTUtools R/kir.R, KIR_present examples
    ("003/034+003/034", "KIR2DL1", "present", 2),
])
def test_dkms_allele_strings(value, gene, status, copies, release):
    call = parse_alleles(value, gene, release=release)
    assert (call.gene, call.status, call.copies) == (gene, status, copies)


def test_allele_resolutions_names_and_suffixes(release):
    assert parse_alleles("0010101", "2DL1", release=release).alleles == (((("0010101",),),))
    assert parse_alleles("00101", "2DL1", release=release).alleles == (((("00101",),),))
    assert parse_alleles("KIR2DL1*001+KIR2DL1*002", "2DL1", release=release).alleles == ((("001",), ("002",)),)
    assert parse_alleles("2DL1*001 + 2DL1*002", "2DL1", release=release).alleles == ((("001",), ("002",)),)
    # expression suffix: KIR2DL1*013N is the only 013 allele; with or without the N it names it
    assert parse_alleles("013N", "2DL1", release=release).alleles == (((("013N",),),))
    assert parse_alleles("013", "2DL1", release=release).status == "present"
    # NEW: DKMS's mark for an allele not yet named (CTUtools R/kir.R handles "NEW" in 3DL1 strings)
    assert parse_alleles("001+NEW", "3DL1", release=release).alleles == ((("001",), ("NEW",)),)
    # a NEG copy: that haplotype lacks the gene
    assert parse_alleles("001+NEG", "2DL1", release=release) == GeneCall("KIR2DL1", "present", ((("001",),),), 1)
    either = parse_alleles("001|NEG", "2DL1", release=release)
    assert (either.status, either.alleles, either.copies) == ("unknown", ((("001",),), ()), None)


def test_kir3dl1_neg(release):
    absent = GeneCall("KIR3DL1", "absent", (), 0)
    assert parse_alleles("KIR3DL1*NEG", "KIR3DL1", release=release) == absent
    assert parse_alleles("NEG", "3DL1", release=release) == absent
    assert parse_alleles("neg", "3DL1", release=release) == absent
    g = parse_gl("KIR3DL1*NEG^KIR3DS1*013+KIR3DS1*013", release=release)
    assert g["KIR3DL1"] == absent
    assert (g["KIR3DS1"].status, g["KIR3DS1"].copies) == ("present", 2)
    assert g.present("3DL1") is False and g.present("3DS1") is True
    assert from_columns({"kir3dl1": "NEG", "kir3ds1": "013/107"}, release=release)["3DL1"] == absent
    with pytest.raises(InputError):
        parse_alleles("KIR3DS1*NEG", "KIR3DL1", release=release)   # another gene's result in this column


def test_invalid_codes_name_the_nearest_valid_ones(kir, release):
    valid_2dl2 = {c[:3] for c in codes(kir, "KIR2DL2")}
    assert "099" not in valid_2dl2
    with pytest.raises(InputError) as exc:
        parse_alleles("001+099", "2DL2", {"file": "f.csv", "row": 7, "column": "kir2dl2"}, release=release)
    p = only_problem(exc)
    assert (p.file, p.row, p.column, p.value) == ("f.csv", 7, "kir2dl2", "099")
    assert "KIR2DL2*099" in p.message and "2.13.0" in p.message
    suggested = p.message.split("nearest valid codes: ")[1].split(" ")[0:5]
    suggested = [s.strip(",") for s in suggested if s.strip(",").isdigit()]
    assert suggested and all(s in valid_2dl2 for s in suggested)
    assert max(valid_2dl2) in suggested            # numerically nearest: the highest 2DL2 protein
    # 3DL1 and 3DS1 are alleles of one locus: a 3DS1 code typed as 3DL1 says so
    with pytest.raises(InputError) as exc:
        parse_alleles("013", "KIR3DL1", release=release)
    assert "exists for KIR3DS1" in only_problem(exc).message
    # wrong length and junk
    for bad in ("0012", "01", "001:01", "x01", "001A"):
        with pytest.raises(InputError) as exc:
            parse_alleles(bad, "2DL1", release=release)
        assert "3, 5 or 7 digits" in only_problem(exc).message


def test_one_problem_per_bad_allele_in_a_string(release):
    with pytest.raises(InputError) as exc:
        parse_alleles("998/001+999", "2DL2", release=release)
    assert [p.value for p in exc.value.problems] == ["998", "999"]
    for bad in ("001++002", "001|", "/001", "POS+001", "001/NEG", "001^002"):
        with pytest.raises(InputError):
            parse_alleles(bad, "2DL1", release=release)


# -------------------------------------------------------------------------------------- untyped genes


def test_an_untyped_gene_is_unknown_never_absent(release):
    g = parse_gl("KIR2DL1*001", release=release)
    for gene in GENES[1:]:
        assert g[gene] == GeneCall(gene, "unknown")
        assert g.present(gene) is None
    assert g.typed == ("KIR2DL1",)
    assert g.kir2ds4_full_length is None and g.kir2ds4_null is None and g.kir2dl5_any is None
    row = from_columns({"KIR2DL1": "1", "KIR2DL3": "0"}, release=release)
    assert row.typed == ("KIR2DL1", "KIR2DL3")
    assert row.present("2DL2") is None
    assert all(row[gene].status == "unknown" for gene in GENES if gene not in ("KIR2DL1", "KIR2DL3"))
    assert KirGenotype.untyped().typed == ()


def test_genotype_is_a_mapping_of_all_17_genes(release):
    g = from_columns({"2DL1": "POS"}, release=release)
    assert list(g) == list(GENES) and len(g) == 17
    assert g["kir2dl1"] is g["KIR2DL1"] and "2DL1" in g
    assert dict(g)["KIR2DL1"].status == "present"
    with pytest.raises(KeyError):
        g[KIR2DS4_NULL]                  # a column key, not a gene: ask present("2DS4N")
    with pytest.raises(KeyError):
        g.present("KIR9DL9")


# ------------------------------------------------------------------------------------------- KIR2DS4


def test_kir2ds4_deletion_list_matches_the_release(kir):
    proteins = {c[:3] for c in codes(kir, "KIR2DS4")}
    assert KIR2DS4_DELETION_PROTEINS <= proteins
    assert KIR2DS4_FULL_LENGTH_PROTEINS <= proteins
    assert not KIR2DS4_DELETION_PROTEINS & KIR2DS4_FULL_LENGTH_PROTEINS
    # the alleles of 2.13.0 whose variant could not be checked (sequences newer than the file read)
    assert proteins - KIR2DS4_DELETION_PROTEINS - KIR2DS4_FULL_LENGTH_PROTEINS == {"023", "024"}
    assert kir2ds4_variant("0030101") == "deletion" and kir2ds4_variant("KIR2DS4*008") == "deletion"
    assert kir2ds4_variant("00101") == "full_length" and kir2ds4_variant("023") is None


def test_most_common_german_genotype_as_a_gene_list():
    # RULES.md 3.2: most common genotype in >70,000 German donors (DKMS), an A/A genotype
    g = parse_gene_list("2DL1, 2DL3, 2DL4, 2DP1, 2DS4N, 3DL1, 3DL2, 3DL3, 3DP1")
    assert g["KIR2DS4"].status == "present"
    assert g.kir2ds4_null is True and g.present("2DS4N") is True
    assert g.kir2ds4_full_length is False and g.present("2DS4FL") is False
    assert g["KIR2DL2"].status == "absent" and g.present("KIR2DL2") is False
    for gene in ("KIR2DL5A", "KIR2DL5B", "KIR2DS1", "KIR2DS2", "KIR2DS3", "KIR2DS5", "KIR3DS1"):
        assert g[gene].status == "absent", gene
    assert g.kir2dl5_any is False
    for gene in ("KIR2DL1", "KIR2DL3", "KIR2DL4", "KIR2DP1", "KIR3DL1", "KIR3DL2", "KIR3DL3", "KIR3DP1"):
        assert g[gene].status == "present", gene


def test_kir2ds4_dkms_columns(release):
    # CTUtools scores_check.csv row 1: kir2ds4 "001/017|011" (full-length), kir2ds4N "006"
    g = from_columns({"kir2ds4": "001/017|011", "kir2ds4N": "006"}, release=release)
    assert (g.kir2ds4_full_length, g.kir2ds4_null) == (True, True)
    assert g["KIR2DS4"] == GeneCall("KIR2DS4", "present",
                                    ((("001", "017"), ("006",)), (("011",), ("006",))), 2)
    # scores_check.csv rows with kir2ds4 "NEG" and kir2ds4N "003+004"
    g = from_columns({"kir2ds4": "NEG", "kir2ds4N": "003+004"}, release=release)
    assert (g.kir2ds4_full_length, g.kir2ds4_null) == (False, True)
    assert g["KIR2DS4"] == GeneCall("KIR2DS4", "present", ((("003",), ("004",)),), 2)
    # ... and kir2ds4 "001/017", kir2ds4N "NEG"
    g = from_columns({"kir2ds4": "001/017", "kir2ds4N": "NEG"}, release=release)
    assert (g.kir2ds4_full_length, g.kir2ds4_null, g["2DS4"].copies) == (True, False, 1)
    # both NEG: no KIR2DS4 at all
    g = from_columns({"kir2ds4": "NEG", "kir2ds4N": "NEG"}, release=release)
    assert (g["2DS4"].status, g.kir2ds4_full_length, g.kir2ds4_null) == ("absent", False, False)
    # presence-only DKMS columns (CTUtools test_scores.R: kir_2DS4 = 1, kir_2DS4N = "NEG")
    g = from_columns({"kir_2DS4": 1, "kir_2DS4N": "NEG"}, release=release)
    assert (g["2DS4"].status, g.kir2ds4_full_length, g.kir2ds4_null) == ("present", True, False)


def test_kir2ds4_without_a_null_column_is_any_kir2ds4(release):
    g = from_columns({"2DS4": "POS"}, release=release)
    assert (g["2DS4"].status, g.kir2ds4_full_length, g.kir2ds4_null) == ("present", None, None)
    g = from_columns({"2DS4": "001+003"}, release=release)
    assert (g.kir2ds4_full_length, g.kir2ds4_null) == (True, True)
    g = from_columns({"2DS4": "003+006"}, release=release)
    assert (g.kir2ds4_full_length, g.kir2ds4_null) == (False, True)
    g = from_columns({"2DS4": "003|001"}, release=release)          # either, not known which
    assert (g.kir2ds4_full_length, g.kir2ds4_null) == (None, None)
    g = from_columns({"2DS4": "NEG"}, release=release)
    assert (g.kir2ds4_full_length, g.kir2ds4_null) == (False, False)
    # a plain column holding a deletion allele next to a 2DS4N column: the lab's 2DS4 means "any"
    g = from_columns({"2DS4": "001+003", "2DS4N": "003"}, release=release)
    assert g["2DS4"].alleles == ((("001",), ("003",)),)
    assert (g.kir2ds4_full_length, g.kir2ds4_null) == (True, True)


def test_kir2ds4_in_gl_strings_by_allele(release):
    g = parse_gl("KIR2DS4*003", release=release)
    assert (g["KIR2DS4"].status, g.kir2ds4_full_length, g.kir2ds4_null) == ("present", False, True)
    g = parse_gl("KIR2DS4*00101+KIR2DS4*0030101", release=release)
    assert (g.kir2ds4_full_length, g.kir2ds4_null) == (True, True)
    g = parse_gl("KIR2DS4*023", release=release)                   # variant not verified: unknown
    assert (g["KIR2DS4"].status, g.kir2ds4_full_length, g.kir2ds4_null) == ("present", None, None)


def test_kir2ds4_contradictions_are_refused(release):
    with pytest.raises(InputError) as exc:
        from_columns({"2DS4N": "001"}, release=release)
    assert "full-length" in only_problem(exc).message
    with pytest.raises(InputError) as exc:
        from_columns({"2DS4FL": "003"}, release=release)
    assert "22-bp deletion" in only_problem(exc).message
    with pytest.raises(InputError):
        from_columns({"2DS4": "001+003", "2DS4N": "NEG"}, release=release)
    with pytest.raises(InputError):
        from_columns({"2DS4": "NEG", "2DS4FL": "POS"}, release=release)


def test_kir2ds4_in_gene_lists():
    g = parse_gene_list("2DL1 2DS4 3DL1")          # no variant named: only "some KIR2DS4"
    assert (g["2DS4"].status, g.kir2ds4_full_length, g.kir2ds4_null) == ("present", None, None)
    g = parse_gene_list("2DL1 3DL1")
    assert (g["2DS4"].status, g.kir2ds4_full_length, g.kir2ds4_null) == ("absent", False, False)
    g = parse_gene_list("2DS4, 2DS4N")              # DKMS: 2DS4 = full-length, listed separately
    assert (g.kir2ds4_full_length, g.kir2ds4_null) == (True, True)
    g = parse_gene_list("2DS4FL")
    assert (g["2DS4"].status, g.kir2ds4_full_length, g.kir2ds4_null) == ("present", True, False)


# ------------------------------------------------------------------------------------------- KIR2DL5


def test_combined_2dl5_column(release):
    g = from_columns({"kir2dl5": "NEG"}, release=release)
    assert (g["2DL5A"].status, g["2DL5B"].status, g.kir2dl5_any) == ("absent", "absent", False)
    g = from_columns({"kir2dl5": "POS"}, release=release)
    assert (g["2DL5A"].status, g["2DL5B"].status, g.present("2DL5")) == ("unknown", "unknown", True)
    # scores_check.csv: DKMS writes the gene as a letter after the code; here A or B, not known which
    g = from_columns({"kir2dl5": "002B/005A/010B/021A"}, release=release)
    assert (g["2DL5A"].status, g["2DL5B"].status, g.kir2dl5_any) == ("unknown", "unknown", True)
    assert g.kir2dl5.alleles == ((("002B", "005A", "010B", "021A"),),)
    # codes that exist in one gene only name it (2DL5A*001, 2DL5B*002 in IPD-KIR 2.13.0)
    g = from_columns({"kir2dl5": "001+002"}, release=release)
    assert g["2DL5A"] == GeneCall("KIR2DL5A", "present", ((("001",),),), 1)
    assert g["2DL5B"] == GeneCall("KIR2DL5B", "present", ((("002",),),), 1)
    g = from_columns({"kir2dl5": "005A+005A"}, release=release)
    assert (g["2DL5A"].copies, g["2DL5B"].status) == (2, "absent")
    with pytest.raises(InputError) as exc:
        from_columns({"kir2dl5": "002A"}, release=release)          # 2DL5A has no 002
    assert "KIR2DL5A*002" in only_problem(exc).message
    g = parse_gl("KIR2DL5A*001+KIR2DL5B*002", release=release)
    assert g.present("2DL5A") and g.present("2DL5B") and g.kir2dl5_any
    g = parse_gene_list("2DL1 2DL5 3DL1")           # 2DL5 listed: A or B, neither becomes absent
    assert (g["2DL5A"].status, g["2DL5B"].status, g.kir2dl5_any) == ("unknown", "unknown", True)
    with pytest.raises(InputError):
        from_columns({"2DL5": "NEG", "2DL5A": "POS"}, release=release)


# --------------------------------------------------------------------------------------- whole rows


# CTUtools tests/testthat/scores_check.csv, first donor row (KIR columns only, as DKMS exported them)
DKMS_ROW = {
    "kir2ds1": "NEG", "kir3dl1": "002+004/091", "kir3ds1": "NEG",
    "kir2dl1": "003/009/015/018/033/034+004|003/009/015/018/033/034+010|006+010",
    "kir2ds4": "001/017|011", "kir2ds4N": "006", "kir2dl2": "001/002/005|008/010",
    "kir2dl3": "001/003/007/012/021/024", "kir2dl4": "001/022/026/033+008", "kir2dl5": "002B/005A/010B/021A",
    "kir2dp1": "001+002", "kir2ds2": "001/002|006", "kir2ds3": "001/007", "kir2ds5": "NEG",
    "kir3dl2": "001/010/085/086/091/096/100/108+026|002/055/063/075/092/094/098/101/102/107+003/011",
    "kir3dl3": "010/060+020|011+028", "kir3dp1": "001/003/004/009+003",
}


def test_a_whole_dkms_row(release):
    g = from_columns(DKMS_ROW, {"file": "scores_check.csv", "row": 1}, release=release)
    absent = {"KIR2DS1", "KIR2DS5", "KIR3DS1"}
    unknown = {"KIR2DL5A", "KIR2DL5B"}
    for gene in GENES:
        expected = "absent" if gene in absent else "unknown" if gene in unknown else "present"
        assert g[gene].status == expected, gene
    assert g["KIR2DL1"].copies == 2 and len(g["KIR2DL1"].alleles) == 3
    assert g["KIR2DL2"].copies == 1 and g["KIR2DL3"].copies == 1
    assert g["KIR3DL1"].alleles == ((("002",), ("004", "091")),)
    assert (g.kir2ds4_full_length, g.kir2ds4_null, g.kir2dl5_any) == (True, True, True)


def test_from_columns_reports_every_problem_of_the_row_at_once(release):
    row = {"2DL1": "999", "2DL2": "maybe", "foo": "1", "3DL1": "001", "2DS4N": "001", "KIR2DL3": "POS"}
    with pytest.raises(InputError) as exc:
        from_columns(row, {"file": "donors.csv", "row": 12}, release=release)
    problems = exc.value.problems
    assert [p.column for p in problems] == ["2DL1", "2DL2", "foo", "2DS4N"]
    assert all((p.file, p.row) == ("donors.csv", 12) for p in problems)
    assert [p.value for p in problems] == ["999", "maybe", "foo", "001"]


def test_from_columns_cells_from_dataframes(release):
    # numbers and missing values as pandas/polars/R hand them over
    g = from_columns({"2DL1": 1, "2DL2": 0.0, "2DL3": None, "3DL1": float("nan"), "2DS1": True}, release=release)
    assert [g[x].status for x in ("2DL1", "2DL2", "2DL3", "3DL1", "2DS1")] == \
        ["present", "absent", "unknown", "unknown", "present"]


def test_same_gene_twice_must_agree(release):
    assert from_columns({"2DL1": "POS", "KIR2DL1": "1"}, release=release)["2DL1"].status == "present"
    with pytest.raises(InputError):
        from_columns({"2DL1": "POS", "KIR2DL1": "NEG"}, release=release)


# ------------------------------------------------------------------------------------------ GL strings


def test_parse_gl_brief_example(release):
    text = "KIR2DL1*001+KIR2DL1*002^KIR3DL1*005+KIR3DL1*005^KIR2DS4*003"
    for t in (text, f"kir#2.13.0#{text}", f"KIR#2.13.0#{text}"):
        g = parse_gl(t, release=release)
        assert g["KIR2DL1"] == GeneCall("KIR2DL1", "present", ((("001",), ("002",)),), 2)
        assert g["KIR3DL1"] == GeneCall("KIR3DL1", "present", ((("005",), ("005",)),), 2)
        assert g["KIR2DS4"].status == "present" and g.kir2ds4_null is True and g.kir2ds4_full_length is False
        assert g.typed == ("KIR2DL1", "KIR2DS4", "KIR3DL1")


def test_parse_gl_alternatives_and_ambiguity(release):
    g = parse_gl("KIR2DL1*001/KIR2DL1*002+KIR2DL1*003|KIR2DL1*004+KIR2DL1*005^KIR2DS1*POS", release=release)
    assert g["KIR2DL1"].alleles == ((("001", "002"), ("003",)), (("004",), ("005",)))
    assert g["KIR2DS1"] == GeneCall("KIR2DS1", "present")


@pytest.mark.parametrize("text,needle", [
    ("", "empty"),
    ("hla#3.58.0#KIR2DL1*001", "namespace"),
    ("KIR2DL1*001~KIR2DS4*003", "phased"),
    ("KIR2DL1*001^KIR2DL1*002", "more than one"),
    ("KIR2DL1*001|KIR2DL2*001", "one gene"),
    ("001+002", "names each allele"),
    ("KIR2DL1*001^^KIR3DL1*001", "empty gene"),
    ("KIR2DS4N*003", "report columns"),
    ("KIR2DL9*001", "not a KIR gene"),
    ("KIR2DL2*099", "nearest valid codes"),
])
def test_parse_gl_refusals(text, needle, release):
    with pytest.raises(InputError) as exc:
        parse_gl(text, {"file": "family.txt", "row": 2}, release=release)
    assert any(needle in p.message for p in exc.value.problems), exc.value.problems
    assert all(p.file == "family.txt" for p in exc.value.problems)


# ------------------------------------------------------------------------------------------ gene lists


def test_gene_list_separators_and_spellings():
    a = parse_gene_list("KIR2DL1, KIR2DL3, 2DS4, 3DL1")
    b = parse_gene_list("kir2dl1;kir2dl3 ; 2DS4\t3DL1\n")
    assert a == b
    assert a.typed == GENES                          # complete by default


def test_gene_list_with_typed_genes_leaves_the_rest_unknown():
    g = parse_gene_list("2DL1, 3DL1", typed_genes=["2DL1", "2DL2", "3DL1", "3DS1"])
    assert [g[x].status for x in ("2DL1", "2DL2", "3DL1", "3DS1")] == ["present", "absent", "present", "absent"]
    assert all(g[x].status == "unknown" for x in GENES if x not in ("KIR2DL1", "KIR2DL2", "KIR3DL1", "KIR3DS1"))
    # a listed gene is present even if typed_genes forgot it
    assert parse_gene_list("2DS2", typed_genes=["2DL1"])["2DS2"].status == "present"


def test_gene_list_refuses_unknown_names():
    with pytest.raises(InputError) as exc:
        parse_gene_list("2DL1, HLA-A, 2DL9", {"file": "f.txt", "row": 3})
    assert [p.value for p in exc.value.problems] == ["HLA-A", "2DL9"]
    with pytest.raises(InputError):
        parse_gene_list("2DL1", typed_genes=["2DL1", "nope"])


def test_empty_gene_list_with_complete_typing_is_all_absent():
    g = parse_gene_list("")
    assert all(g[x].status == "absent" for x in GENES)


# ------------------------------------------------------------------------------- only InputError, ever

_KIRISH = st.text(alphabet="0123456789/+|^*#~ ,;NEGPOSKIRDLSAB?-kirdlsnegpos", max_size=40)
_ANY = st.one_of(st.text(max_size=60), _KIRISH)
_FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _only_input_error(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except InputError as e:
        assert e.problems and all(p.message for p in e.problems)


@_FAST
@given(value=_ANY, gene=st.one_of(st.sampled_from(GENES + ("2DL5", "2DS4N", "2DS4FL")), st.text(max_size=10)))
def test_cell_parsers_raise_only_input_error(value, gene, release):
    assert canonical_gene(gene) in (None, *GENES, "KIR2DL5", "KIR2DS4N", "KIR2DS4FL")
    _only_input_error(parse_presence, value, gene)
    _only_input_error(parse_alleles, value, gene, release=release)


_GL_PARTS = st.lists(st.sampled_from(
    ["KIR2DL1*001", "KIR2DL5A*001", "KIR2DL5B*002", "KIR2DS4*003", "KIR3DL1*NEG", "KIR2DL1*099", "x", ""]), max_size=4)
_GLISH = st.tuples(_GL_PARTS, st.sampled_from(["^", "+", "|", "/"])).map(lambda t: t[1].join(t[0]))


@_FAST
@given(text=st.one_of(_ANY, _GLISH))
def test_parse_gl_raises_only_input_error(text, release):
    _only_input_error(parse_gl, text, release=release)


@_FAST
@given(text=_ANY, typed=st.one_of(st.none(), st.lists(st.sampled_from(GENES + ("2DL5", "2DS4N", "x")), max_size=4)))
def test_parse_gene_list_raises_only_input_error(text, typed):
    _only_input_error(parse_gene_list, text, typed_genes=typed)


@_FAST
@given(values=st.dictionaries(
    st.one_of(st.sampled_from(GENES + ("2DL5", "2DS4N", "2DS4FL", "2dl1")), st.text(max_size=8)), _ANY, max_size=6))
def test_from_columns_raises_only_input_error(values, release):
    _only_input_error(from_columns, values, {"file": "f.csv", "row": 1}, release=release)


def test_default_release_is_the_loaded_reference(ref):
    # without release=, the parsers read the IPD-KIR list of load_reference()
    assert parse_alleles("001", "2DL1").status == "present"
    with pytest.raises(InputError) as exc:
        parse_alleles("999", "2DL2")
    assert ref.release.ipdkir in only_problem(exc).message
