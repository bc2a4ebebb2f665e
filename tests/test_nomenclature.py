"""Typing names → release alleles. Expected values come from the IPD-IMGT/HLA 3.58.0 files themselves
(Allelelist.txt, Deleted_alleles.txt, hla_nom_g/p.txt, rel_dna_ser/rel_ser_ser.txt) and WHO rules."""

from __future__ import annotations

import polars as pl
import pytest

from haplomatch.errors import UnknownAlleleError
from haplomatch.nomenclature import _v2_candidates, normalise, parse


@pytest.fixture(scope="session")
def nom(ref):
    return ref.nomenclature


@pytest.mark.parametrize("text,key,kind", [
    ("A*02:01", "A*02:01", "allele"),
    ("HLA-A*02:01", "A*02:01", "allele"),
    ("hla-b*57:01:01", "B*57:01:01", "allele"),
    ("A*02:XX", "A*02", "xx"),
    ("A*01:01:01G", "A*01:01:01G", "g_group"),
    ("A*01:01P", "A*01:01P", "p_group"),
    ("Cw7", "Cw7", "serology"),
    ("B51", "B51", "serology"),
    ("DR15", "DR15", "serology"),
    ("A*02:AB", "A*02:AB", "mac"),
])
def test_parse(text, key, kind):
    t = parse(text)
    assert (t.key, t.kind) == (key, kind)


def test_bare_fields_under_a_locus_column():
    assert normalise("02:01", "A") == "A*02:01"
    assert normalise("02:01", "HLA-A") == "A*02:01"
    assert parse("44:02", "B").key == "B*44:02"


def test_two_field_typing_is_every_allele_of_that_protein(nom, alleles):
    got = set(nom.resolve_one("A*02:01").alleles)
    want = set(alleles.filter((pl.col("name2") == "A*02:01") & (pl.col("suffix") == ""))["allele"])
    assert got == want
    assert "A*02:01:01:01" in got and len(got) > 100


def test_suffix_belongs_to_the_name(nom):
    # A*24:02:01:02L is A*24:02L at two fields (WHO), not part of A*24:02
    assert "A*24:02:01:02L" not in nom.resolve_one("A*24:02").alleles
    assert nom.resolve_one("A*24:02L").alleles == ("A*24:02:01:02L",)
    assert nom.resolve_one("A*01:01:01:02N").alleles == ("A*01:01:01:02N",)


def test_name_known_only_with_suffix_resolves_with_warning(nom):
    # Allelelist.txt: A*01:04 exists only as A*01:04:01:01N and A*01:04:01:02N
    r = nom.resolve_one("A*01:04")
    assert r.alleles == ("A*01:04:01:01N", "A*01:04:01:02N")
    assert r.warnings and "suffix" in r.warnings[0]


@pytest.mark.parametrize("v2,v3", [("A*0201", "A*02:01"), ("B*4402", "B*44:02"), ("DPB1*0401", "DPB1*04:01"),
                                   ("B*15101", "B*15:101"), ("A*010101", "A*01:01:01")])
def test_v2_names(nom, v2, v3):
    r = nom.resolve_one(v2)
    assert r.alleles == nom.resolve_one(v3).alleles
    assert "v2" in r.warnings[0]


def test_v2_candidates_cover_three_digit_fields():
    assert "B*15:101" in _v2_candidates("B", "15101")
    assert _v2_candidates("A", "0201") == ["A*02:01"]


def test_renamed_allele_resolves_with_warning(nom):
    # Deleted_alleles.txt: A*01:34N "renamed A*01:01:38L (March 2011)"
    r = nom.resolve_one("A*01:34N")
    assert r.alleles == ("A*01:01:38L",)
    assert "renamed A*01:01:38L" in r.warnings[0]


def test_deleted_allele_is_refused_with_reason(nom):
    # Deleted_alleles.txt: A*02:100 "Name never assigned"
    with pytest.raises(UnknownAlleleError, match="Name never assigned"):
        nom.resolve_one("A*02:100")


def test_xx_is_every_allele_of_the_group(nom, alleles):
    got = set(nom.resolve_one("B*44:XX").alleles)
    want = set(alleles.filter((pl.col("name1") == "B*44") & (pl.col("suffix") == ""))["allele"])
    assert got == want


def test_g_and_p_groups(nom):
    g = nom.resolve_one("A*01:01:01G").alleles
    assert "A*01:01:01:02N" in g and "A*01:01:38L" in g  # hla_nom_g.txt members
    p = nom.resolve_one("A*01:01P").alleles
    assert "A*01:01:01:01" in p and "A*01:01:01:02N" not in p


def test_serology_splits_and_broads(nom):
    b51 = nom.resolve_one("B51").alleles
    b52 = nom.resolve_one("B52").alleles
    b5 = set(nom.resolve_one("B5").alleles)
    assert "B*51:01:01:01" in b51 and "B*52:01:01:01" in b52
    assert set(b51) | set(b52) <= b5  # rel_ser_ser.txt: B5 → B51/B52
    assert "C*03:04:01:01" in nom.resolve_one("Cw10").alleles  # rel_dna_ser: C*03:04:01:01 = 10
    assert "C*03:04:01:01" in nom.resolve_one("Cw3").alleles  # Cw3 → Cw9/Cw10
    assert nom.resolve_one("DR52").alleles[0].startswith("DRB3*")


@pytest.mark.parametrize("text,fragment", [
    ("A*99:01", "not in IPD-IMGT/HLA"),
    ("A*02:AB", "MAC table"),
    ("XYZ", "not an HLA allele name"),
    ("Q*01:01", "no locus Q"),
])
def test_unknown_names_are_refused(nom, text, fragment):
    with pytest.raises(UnknownAlleleError, match=fragment):
        nom.resolve_one(text)


def test_unknown_name_suggests_nearest(nom):
    with pytest.raises(UnknownAlleleError) as e:
        nom.resolve_one("B*57:011")
    assert "B*57:01" in e.value.suggestions


def test_vectorised_resolve_keeps_rows_and_reports_errors(nom):
    typings = ["A*02:01", "nonsense", "B*57:01", "A*02:01"] * 25_000
    out = nom.resolve(typings, strict=False)
    assert out.rows.height == len(typings)  # every input row is there, in order
    assert out.rows["input"].to_list() == typings
    assert out.rows.filter(pl.col("error").is_not_null()).height == 25_000
    assert out.rows.filter(pl.col("input") == "B*57:01")["n_alleles"].unique().to_list() == [81]
    assert out.candidates.filter(pl.col("input") == "A*02:01").height == len(nom.resolve_one("A*02:01").alleles)
    with pytest.raises(UnknownAlleleError):
        nom.resolve(["A*02:01", "nonsense"])


def test_every_release_allele_name_parses_and_resolves_to_itself(nom, alleles):
    # Allelelist.txt 3.58.0: all 41,433 names are WHO v3 names that name exactly one allele.
    names = alleles["allele"].to_list()
    assert len(names) == 41433
    bad = []
    for name in names:
        t = parse(name)
        r = nom.resolve_one(name)
        if t.kind != "allele" or r.alleles != (name,) or t.key + t.suffix != name:
            bad.append(name)
    assert bad == []


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from haplomatch.errors import HaplomatchError  # noqa: E402


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=30), st.from_regex(r"(HLA-)?[A-Z]{1,4}[0-9]?\*[0-9:XNLSQ]{0,14}", fullmatch=True)))
def test_resolver_raises_only_its_own_error(nom, text):
    try:
        nom.resolve_one(text)
    except HaplomatchError:
        pass


def test_four_digit_first_field_is_not_taken_for_a_v2_name(nom):
    # Allelelist 3.58.0 has DPB1*1575:01 (first field 1575) and DPB1*1301:01 as well as DPB1*13:01.
    assert nom.resolve_one("DPB1*1575").alleles == ("DPB1*1575:01",)
    with pytest.raises(UnknownAlleleError) as e:
        nom.resolve_one("DPB1*1301")
    assert set(e.value.suggestions) == {"DPB1*1301", "DPB1*13:01"}


def test_plain_names_read_from_the_index_equal_the_full_reading(ref):
    """The shortcut for written-out names (2-4 fields, no suffix) gives the full reader's Resolution for every
    such name of the release, and declines everything else."""
    from haplomatch.nomenclature import Nomenclature

    nom = Nomenclature(ref.alleles, ref.deleted, ref.ser_ser)
    names = sorted({n for (n, sfx) in nom._prefix_index if sfx == "" and ":" in n})
    assert len(names) > 30_000  # every 2-, 3- and 4-field prefix of the release
    for name in names:
        assert nom._resolve_plain(name) == nom._resolve_full(name, None), name
    # A*24:02 names its suffix-less alleles only (A*24:02:01:02L is not one of them)
    a2402 = nom._resolve_plain("A*24:02").alleles
    assert "A*24:02:01:01" in a2402 and "A*24:02:01:02L" not in a2402
    for other in ("A*02:01N", "A*02:XX", "A*02", "DPB1*1575", "a*02:01", "A*02:AB", "A*99:99", "Cw2"):
        assert nom._resolve_plain(other) is None, other
