"""GL String syntax: the tree each delimiter builds, the text written back, and the refusals.

Sources of the example strings (cited per case below):
  [M13]  Milius RP et al., Tissue Antigens 2013;82:106-12 — delimiter order / ~ + | ^ (tightest first).
  [GLSC] https://glstring.org/syntax-1.1.html — namespace#version#glstring, namespaces hla and kir.
  [CHK]  github.com/bmilius-nmdp/check_glstring README (R. Milius, first author of [M13]): good/bad examples.
  [IGR]  github.com/k96nb01/immunogenetr_package, GLstring_expand_longer example (GL String 1.1 ``?``).
  [BRIEF] examples written for this project in the style of [M13].
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haplomatch.errors import InputError, Problem
from haplomatch.glstring import (
    OPERATORS, Allele, AlleleList, Genotype, GenotypeList, GLString, Haplotype, MultiLocus,
    ParalogAmbiguity, alleles, allele_name_problems, genotypes_by_locus, loci, parse, write,
)

A = Allele


def gl(root, namespace=None, version=None) -> GLString:
    return GLString(namespace, version, root)


# ------------------------------------------------------------------------------- trees from examples

EXAMPLES = [
    # [BRIEF] '/' binds tighter than '+': an allele list is one gene copy.
    ("HLA-A*02:01/HLA-A*02:02+HLA-A*03:01",
     Genotype((AlleleList((A("HLA-A*02:01"), A("HLA-A*02:02"))), A("HLA-A*03:01")))),
    # [BRIEF] '~' binds tighter than '+': two phased haplotypes make one genotype.
    ("HLA-A*01:01~HLA-B*08:01+HLA-A*02:01~HLA-B*44:02",
     Genotype((Haplotype((A("HLA-A*01:01"), A("HLA-B*08:01"))),
               Haplotype((A("HLA-A*02:01"), A("HLA-B*44:02")))))),
    # [BRIEF] '+' binds tighter than '|': a list of whole genotypes.
    ("HLA-A*01:01+HLA-A*02:01|HLA-A*01:02+HLA-A*02:01",
     GenotypeList((Genotype((A("HLA-A*01:01"), A("HLA-A*02:01"))),
                   Genotype((A("HLA-A*01:02"), A("HLA-A*02:01")))))),
    # [CHK] good multilocus string: '^' joins per-locus genotypes.
    ("HLA-A*01:01+HLA-A*24:02^HLA-B*44:01+HLA-B*44:02",
     MultiLocus((Genotype((A("HLA-A*01:01"), A("HLA-A*24:02"))),
                 Genotype((A("HLA-B*44:01"), A("HLA-B*44:02")))))),
    # [CHK] good genotype list.
    ("HLA-A*01:01+HLA-A*24:02|HLA-A*01:03+HLA-A*24:03",
     GenotypeList((Genotype((A("HLA-A*01:01"), A("HLA-A*24:02"))),
                   Genotype((A("HLA-A*01:03"), A("HLA-A*24:03")))))),
    # [CHK] good allele list.
    ("HLA-B*44:01/HLA-B*44:02", AlleleList((A("HLA-B*44:01"), A("HLA-B*44:02")))),
    # [IGR] (first two loci of its example): every level at once, and 'HLA-' optional per allele.
    ("HLA-A*01:01:01:01/HLA-A*01:02/HLA-A*01:03/HLA-A*01:95+HLA-A*24:02:01:01"
     "|HLA-A*01:01:01:01/HLA-A*01:03+HLA-A*24:03:01:01"
     "^HLA-B*07:01:01+B*15:01:01/B*15:02:01|B*07:03+B*15:99:01",
     MultiLocus((
         GenotypeList((
             Genotype((AlleleList((A("HLA-A*01:01:01:01"), A("HLA-A*01:02"), A("HLA-A*01:03"),
                                   A("HLA-A*01:95"))), A("HLA-A*24:02:01:01"))),
             Genotype((AlleleList((A("HLA-A*01:01:01:01"), A("HLA-A*01:03"))), A("HLA-A*24:03:01:01"))),
         )),
         GenotypeList((
             Genotype((A("HLA-B*07:01:01"), AlleleList((A("B*15:01:01"), A("B*15:02:01"))))),
             Genotype((A("B*07:03"), A("B*15:99:01"))),
         )),
     ))),
    # [IGR] DRB1 phased with DRB5 inside a multilocus string.
    ("HLA-DRB1*03:01:02~HLA-DRB5*01:01:01+HLA-DRB1*15:01",
     Genotype((Haplotype((A("HLA-DRB1*03:01:02"), A("HLA-DRB5*01:01:01"))), A("HLA-DRB1*15:01")))),
    # [IGR] GL String 1.1 '?': the KIR2DL5 sequences belong to KIR2DL5A or to KIR2DL5B ([IGR] writes
    # them 'HLA-KIR2DL5A*...'; KIR names take no HLA- prefix, so it is dropped here).
    ("KIR2DL5A*0010101+KIR2DL5A*0010201?KIR2DL5B*0010201+KIR2DL5B*0010301",
     ParalogAmbiguity((Genotype((A("KIR2DL5A*0010101"), A("KIR2DL5A*0010201"))),
                       Genotype((A("KIR2DL5B*0010201"), A("KIR2DL5B*0010301")))))),
]


@pytest.mark.parametrize("text, tree", EXAMPLES, ids=[t[:40] for t, _ in EXAMPLES])
def test_examples_give_the_exact_tree(text, tree):
    got = parse(text)
    assert got == gl(tree)
    assert write(got) == text


def test_question_mark_binds_loosest_of_all():
    # GL String 1.1 precedence table: '?' is 0, '^' is 1, so 'A^B?C' is (A^B)?C, not A^(B?C).
    assert [op for op, _ in OPERATORS] == ["?", "^", "|", "+", "~", "/"]
    assert parse("A*01+A*02^B*08+B*44?A*03+A*11").root == ParalogAmbiguity((
        MultiLocus((Genotype((A("A*01"), A("A*02"))), Genotype((A("B*08"), A("B*44"))))),
        Genotype((A("A*03"), A("A*11"))),
    ))


def test_every_pair_of_operators_nests_the_tighter_inside():
    ops = [op for op, _ in OPERATORS]
    for i, loose in enumerate(ops):
        for tight in ops[i + 1:]:
            root = parse(f"A*01{tight}A*02{loose}A*03").root
            assert isinstance(root, dict(OPERATORS)[loose]), (loose, tight)
            assert isinstance(root.items[0], dict(OPERATORS)[tight]), (loose, tight)


def test_same_operator_repeated_is_one_flat_node():
    assert parse("A*01/A*02/A*03").root == AlleleList((A("A*01"), A("A*02"), A("A*03")))
    # three gene copies: KIR copy number can exceed two
    assert parse("KIR2DL1*001+KIR2DL1*002+KIR2DL1*003").root == Genotype(
        (A("KIR2DL1*001"), A("KIR2DL1*002"), A("KIR2DL1*003")))


def test_single_allele_is_an_allele():
    assert parse("HLA-A*01").root == A("HLA-A*01")  # low resolution is fine: syntax only


# ----------------------------------------------------------------------------------------- code prefix


def test_hla_code_prefix():  # [GLSC] / [BRIEF]
    got = parse("hla#3.58.0#HLA-A*01:01+HLA-A*02:01")
    assert got == gl(Genotype((A("HLA-A*01:01"), A("HLA-A*02:01"))), "hla", "3.58.0")
    assert write(got) == "hla#3.58.0#HLA-A*01:01+HLA-A*02:01"
    assert write(got, prefix=False) == "HLA-A*01:01+HLA-A*02:01"


def test_kir_code_prefix():  # [GLSC] / [BRIEF]
    got = parse("kir#2.13.0#KIR2DL1*001+KIR2DL1*002")
    assert (got.namespace, got.version) == ("kir", "2.13.0")
    assert got.root == Genotype((A("KIR2DL1*001"), A("KIR2DL1*002")))


def test_date_instead_of_version():  # [GLSC]: the date is used when the version is not available
    assert parse("hla#2023-06-07#A*01:01").version == "2023-06-07"


def test_whitespace_around_operators_and_hashes_is_dropped():
    got = parse("  hla # 3.58.0 #  HLA-A*01:01 +\tHLA-A*02:01 / HLA-A*02:02 \n")
    assert write(got) == "hla#3.58.0#HLA-A*01:01+HLA-A*02:01/HLA-A*02:02"


# ------------------------------------------------------------------------------------------ helpers


def test_loci_and_alleles():
    g = parse("HLA-A*01:01~HLA-B*08:01+A*01:01~B*44:02^KIR2DL1*001+KIR2DL1*001")
    assert loci(g) == ("A", "B", "KIR2DL1")
    assert alleles(g) == ("HLA-A*01:01", "HLA-B*08:01", "A*01:01", "B*44:02", "KIR2DL1*001", "KIR2DL1*001")
    assert loci(g.root) == loci(g) and A("HLA-DRB1*15:01").locus == "DRB1"


def test_genotypes_by_locus_splits_multilocus():
    g = parse("HLA-A*01:01+HLA-A*24:02^HLA-B*44:01+HLA-B*44:02^C*07:01~DRB1*15:01+C*07:02~DRB1*03:01")
    parts = genotypes_by_locus(g)
    assert list(parts) == ["A", "B", "C~DRB1"]
    assert write(parts["B"]) == "HLA-B*44:01+HLA-B*44:02"
    assert genotypes_by_locus(parse("A*01+A*02")) == {"A": Genotype((A("A*01"), A("A*02")))}


def test_genotypes_by_locus_refuses_a_locus_twice():
    # [CHK] 'bad': HLA-A in two locus blocks
    text = "HLA-A*01:01+HLA-A*24:02^HLA-A*01:03+HLA-A*24:03"
    with pytest.raises(InputError) as e:
        genotypes_by_locus(parse(text), source={"file": "fam.csv", "row": 2, "column": "donor"})
    (p,) = e.value.problems
    assert p.message == ("locus A appears in '^' parts 1 and 2; a multilocus GL string gives each locus once")
    assert (p.file, p.row, p.column, p.value) == ("fam.csv", 2, "donor", text)


def test_genotypes_by_locus_refuses_paralog_ambiguity():
    with pytest.raises(InputError, match=r"'\?' leaves open which paralogous gene"):
        genotypes_by_locus(parse("KIR2DL5A*001?KIR2DL5B*001"))


# -------------------------------------------------------------------------------------------- errors

SOURCE = {"file": "family.csv", "row": 4, "column": "gl_string"}

ERRORS = [
    ("A*01:01++A*02:01",
     ["empty operand between '+' at character 8 and '+' at character 9; an allele name must come between them"]),
    ("A*01:01+", ["GL string ends with operator '+' at character 8; an allele name must follow it"]),
    ("/A*01:01", ["GL string starts with operator '/' at character 1; an allele name must come before it"]),
    ("hla#3.58.0", ["GL String Code is incomplete: needs three '#'-separated parts "
                    "(namespace#version#glstring) but the '#' at character 4 is the only one"]),
    ("hla#3.58.0#A*01#x", ["GL String Code has more than three '#'-separated parts: "
                           "unexpected '#' at character 16"]),
    ("abc#3.58.0#A*01:01", ["unknown GL String Code namespace 'abc' at character 1; expected 'hla' or 'kir'"]),
    ("HLA#3.58.0#A*01:01", ["unknown GL String Code namespace 'HLA' at character 1; expected 'hla' or 'kir'"]),
    ("hla##A*01:01", ["GL String Code has an empty version between the '#' at characters 4 and 5"]),
    ("hla#3 .58#A*01", ["GL String Code version '3 .58' has illegal character ' ' at character 6; "
                        "expected a release like 3.58.0 or a date like 2023-06-07"]),
    ("hla#.3#A*01", ["GL String Code version '.3' starts with '.' at character 5; "
                     "expected a release like 3.58.0 or a date like 2023-06-07"]),
    ("hla#3.58.0#", ["empty GL string after the code prefix: nothing follows the '#' at character 11"]),
    ("", ["empty GL string"]),
    ("A*01:01,A*02:01", ["illegal character ',' at character 8; allele names use letters, digits, '*', ':' "
                         "and '-', operators are / ~ + | ^ ?"]),
    ("A*01:01 A*02:01", ["missing operator between 'A*01:01' and 'A*02:01' at character 9; "
                         "whitespace is allowed only around operators"]),
    ("hla-a*02:01", ["allele name 'hla-a*02:01' at character 1: has lower-case letters; "
                     "HLA and KIR names are upper case"]),
    ("A*01:01+A0201", ["allele name 'A0201' at character 9: has no '*' between gene and allele "
                       "(expected e.g. HLA-A*01:01 or KIR2DL1*001)"]),
    # a word is not an allele name: no '*' is said first, not 'write GARBAGE'
    ("garbage", ["allele name 'garbage' at character 1: has no '*' between gene and allele "
                 "(expected e.g. HLA-A*01:01 or KIR2DL1*001)"]),
    ("A*01::01", ["allele name 'A*01::01' at character 1: has an empty field (':' at the start, "
                  "at the end or doubled)"]),
    ("HLA-A*NEG", ["allele name 'HLA-A*NEG' at character 1: presence call 'NEG' is allowed only for KIR genes"]),
    ("HLA-KIR2DL5A*001", ["allele name 'HLA-KIR2DL5A*001' at character 1: KIR genes take no 'HLA-' prefix"]),
    ("kir#2.13.0#KIR2DL1*001+A*01:01", ["allele name 'A*01:01' at character 24 is not a KIR gene, "
                                        "but the GL String Code namespace is 'kir'"]),
    ("hla#3.58.0#KIR2DL1*001", ["allele name 'KIR2DL1*001' at character 12 is a KIR gene, "
                                "but the GL String Code namespace is 'hla'"]),
    # every problem is reported, not just the first
    ("A*01:01++A*02:01^B*08;01|", [
        "empty operand between '+' at character 8 and '+' at character 9; an allele name must come between them",
        "illegal character ';' at character 22; allele names use letters, digits, '*', ':' and '-', "
        "operators are / ~ + | ^ ?",
        "GL string ends with operator '|' at character 25; an allele name must follow it",
    ]),
]


@pytest.mark.parametrize("text, messages", ERRORS, ids=[t or "<empty>" for t, _ in ERRORS])
def test_errors_say_what_and_where(text, messages):
    with pytest.raises(InputError) as e:
        parse(text, source=SOURCE)
    assert sorted(p.message for p in e.value.problems) == sorted(messages)
    for p in e.value.problems:
        assert (p.file, p.row, p.column, p.value, p.severity) == ("family.csv", 4, "gl_string", text, "error")


def test_error_without_source_has_no_location_and_a_fix_where_obvious():
    with pytest.raises(InputError) as e:
        parse("a*01:01")
    (p,) = e.value.problems
    assert (p.file, p.row, p.column, p.fix) == (None, None, None, "write 'A*01:01'")


@pytest.mark.parametrize("bad", [None, 42, b"A*01:01", ["A*01:01"]])
def test_non_text_is_an_input_error(bad):
    with pytest.raises(InputError, match="a GL string must be text"):
        parse(bad)


def test_kir_presence_calls_are_names():
    assert alleles(parse("kir#2.13.0#KIR3DL1*NEG^KIR2DS4*POS")) == ("KIR3DL1*NEG", "KIR2DS4*POS")


def test_tree_refuses_shapes_that_cannot_round_trip():
    with pytest.raises(ValueError):
        Genotype((A("A*01"),))  # one item would be written as a bare allele
    with pytest.raises(TypeError):
        AlleleList((Genotype((A("A*01"), A("A*02"))), A("A*03")))  # '+' inside '/' needs parentheses
    with pytest.raises(ValueError):
        A("A*01 ")
    assert Genotype([A("A*01"), A("A*02")]).items == (A("A*01"), A("A*02"))  # lists become tuples
    with pytest.raises(ValueError):
        GLString("hla", None, A("A*01"))


# ---------------------------------------------------------------------------------------- properties

_HLA_LOCI = ["A", "B", "C", "DRB1", "DRB3", "DRB4", "DRB5", "DQA1", "DQB1", "DPB1", "MICA"]
_KIR_LOCI = ["KIR2DL1", "KIR2DL2", "KIR2DL3", "KIR2DL5A", "KIR2DS4", "KIR3DL1", "KIR3DS1", "KIR2DP1"]

_field = st.integers(1, 999).map(lambda n: f"{n:02d}")
_hla_names = st.builds(
    lambda prefix, locus, fields, suffix: f"{prefix}{locus}*{':'.join(fields)}{suffix}",
    st.sampled_from(["", "HLA-"]), st.sampled_from(_HLA_LOCI),
    st.one_of(st.lists(_field, min_size=1, max_size=4), _field.map(lambda f: [f, "XX"])),
    st.sampled_from(["", "", "", "N", "L", "Q"]),
)
_kir_names = st.builds(
    lambda locus, allele: f"{locus}*{allele}",
    st.sampled_from(_KIR_LOCI),
    st.one_of(st.integers(1, 999).map(lambda n: f"{n:03d}"), st.integers(1, 99999).map(lambda n: f"{n:05d}"),
              st.sampled_from(["NEG", "POS"])),
)


def _trees(names: st.SearchStrategy[str]) -> st.SearchStrategy:
    """Well-formed trees: each composite has 2-3 children of strictly tighter kinds."""
    level: st.SearchStrategy = names.map(Allele)
    for _, cls in reversed(OPERATORS):
        tighter = level
        level = st.one_of(tighter, st.lists(tighter, min_size=2, max_size=3).map(lambda xs, c=cls: c(tuple(xs))))
    return level


@settings(max_examples=150, deadline=None)
@given(_trees(st.one_of(_hla_names, _kir_names)))
def test_write_then_parse_is_identity(root):
    x = gl(root)
    assert parse(write(x)) == x
    assert alleles(parse(write(x))) == alleles(x)


@settings(max_examples=50, deadline=None)
@given(_trees(_hla_names), st.sampled_from(["3.58.0", "3.25.0", "2023-06-07"]))
def test_write_then_parse_is_identity_with_code_prefix(root, version):
    x = gl(root, "hla", version)
    assert parse(write(x)) == x


@settings(max_examples=50, deadline=None)
@given(_trees(_kir_names))
def test_write_then_parse_is_identity_kir_namespace(root):
    x = gl(root, "kir", "2.13.0")
    assert parse(write(x)) == x


def _parse_or_input_error(text: str) -> None:
    try:
        got = parse(text)
    except InputError as e:
        assert e.problems and all(isinstance(p, Problem) and p.message for p in e.problems)
        str(e)  # the message itself must be buildable
    else:
        assert isinstance(got, GLString)
        assert parse(write(got)) == got


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_parses_or_raises_input_error(text):
    _parse_or_input_error(text)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="AB*01:-/~+|^?# \tHLAKIRDNEGhla.", max_size=40))
def test_near_miss_text_parses_or_raises_input_error(text):
    # st.text() rarely reaches the parser's inner paths; this alphabet does.
    _parse_or_input_error(text)


def test_allele_name_problems_is_empty_for_good_names():
    for name in ["HLA-A*01:01:01:01", "A*01", "HLA-DRB1*15:01:01:02N", "A*01:XX", "B*44:AB", "KIR2DS4*003",
                 "KIR3DL1*NEG", "HLA-A*NNNN"]:
        assert allele_name_problems(name) == [], name
