"""Reading family files, HLA cells, MAC codes and antibody reports: every problem located, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from haplomatch.cli import main
from haplomatch.errors import InputError, Problem
from haplomatch.hlatyping import check_names, parse_cell, simple_cell
from haplomatch.mac import read_mac_table
from haplomatch.persons import slot_strings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def nom(ref):
    return ref.nomenclature


# -- HLA cells as labs write them --------------------------------------------------------------------------
@pytest.mark.parametrize("cell,gl", [
    ("A*01:01+A*02:01", "A*01:01+A*02:01"),
    ("A*01:01, A*02:01", "A*01:01+A*02:01"),
    ("HLA-A*01:01+HLA-A*02:01", "A*01:01+A*02:01"),
    ("01:01+02:01", "A*01:01+A*02:01"),  # bare fields under the A column
    ("A*01:01/A*01:02+A*02:01", "A*01:01/A*01:02+A*02:01"),
    ("A*01:01+A*02:01|A*01:02+A*02:01", "A*01:01+A*02:01|A*01:02+A*02:01"),  # GL genotype list
    ("A1, A2", "A1+A2"),  # serology
    ("A*02:XX+A*01:01", "A*02:XX+A*01:01"),
])
def test_one_column_cells(cell, gl):
    t, problems = parse_cell(cell, "A")
    assert t.gl() == gl and not problems


def test_two_column_cells():
    t, problems = parse_cell("02:01", "A", second="24:02")
    assert t.gl() == "A*02:01+A*24:02" and not problems


@pytest.mark.parametrize("second", ["", "-", "NT"])
def test_blank_second_allele_is_homozygous_with_warning(second):
    t, problems = parse_cell("02:01", "A", second=second)
    assert t.gl() == "A*02:01+A*02:01" and t.assumed_homozygous
    assert [p.severity for p in problems] == ["warning"]


def test_blank_second_allele_settings():
    t, _ = parse_cell("A*02:01", "A", missing_second="untyped")
    assert t.gl() == "A*02:01+A*XX"
    t, problems = parse_cell("A*02:01", "A", missing_second="error")
    assert t is None and problems[0].severity == "error"


def test_untyped_locus_is_none():
    assert parse_cell("", "A") == (None, [])
    assert parse_cell("-", "A", second="-") == (None, [])


def test_cells_are_checked_against_the_release(nom):
    t, _ = parse_cell("A*99:01+B*07:02", "A", source={"file": "f.csv", "row": 3, "column": "A"})
    problems = check_names(t, nom, {"file": "f.csv", "row": 3, "column": "A"})
    assert {p.value for p in problems} == {"A*99:01", "B*07:02"}
    assert all(p.row == 3 and p.column == "A" for p in problems)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.sampled_from(["A", "B", "DRB1"]), st.one_of(st.none(), st.text(max_size=12)))
def test_cell_parser_never_raises(nom, text, locus, second):
    t, problems = parse_cell(text, locus, second=second)
    assert all(isinstance(p, Problem) for p in problems)
    if t is not None:
        assert all(isinstance(p, Problem) for p in check_names(t, nom))


# -- MAC ---------------------------------------------------------------------------------------------------
def test_mac_codes_expand_with_the_users_table(nom):
    # NMDP numer.v3 layout; codes as published (RULES 7.6, py-ard PR #65): AB = 01/02; ASXJP allele-specific
    table = read_mac_table(DATA / "mac-numer-fixture.txt")
    assert table["AB"] == ("01", "02")
    m = nom.with_mac(table)
    got = set(m.resolve_one("B*08:AB").alleles)
    assert got == set(m.resolve_one("B*08:01").alleles) | set(m.resolve_one("B*08:02").alleles)
    assert "B*08:19N" in m.resolve_one("B*08:ASXJP").alleles


def test_mac_table_errors(tmp_path):
    bad = tmp_path / "mac.txt"
    bad.write_text("CODE\tSUBTYPE\nthis is not a code line\n")
    with pytest.raises(InputError) as e:
        read_mac_table(bad)
    assert e.value.problems[0].row == 2


# -- family files -------------------------------------------------------------------------------------------
def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_clean_example_validates():
    r = run("validate", str(EXAMPLES / "neuroblastoma-family.csv"), "--antibodies",
            str(EXAMPLES / "neuroblastoma-antibodies.csv"))
    assert r.exit_code == 0, r.output


def test_validate_says_whose_antibodies_a_report_cannot_give(tmp_path):
    """The example report with its patient_id changed to P99: validating it with the example family is an
    error (rank refuses it, naming row and column); with a second family file, a warning (screen leaves it
    out and says so). The example report itself validates."""
    report = tmp_path / "p99.csv"
    report.write_text((EXAMPLES / "neuroblastoma-antibodies.csv").read_text().replace("P01,", "P99,"))
    family = str(EXAMPLES / "neuroblastoma-family.csv")
    r = run("validate", family, "--antibodies", str(report), "--format", "json")
    assert r.exit_code == 2
    (p,) = [p for p in json.loads(r.output) if p["column"] == "patient_id"]
    assert (p["severity"], p["row"], p["value"]) == ("error", 1, "P99")
    assert "5 antibodies name patient P99" in p["message"] and "not the patient here (P01)" in p["message"]
    other = tmp_path / "other.csv"
    other.write_text((EXAMPLES / "neuroblastoma-family.csv").read_text().replace("P01,", "Q01,"))
    r = run("validate", family, str(other), "--antibodies", str(report), "--format", "json")
    assert r.exit_code == 0
    (p,) = [p for p in json.loads(r.output) if p["column"] == "patient_id"]
    assert p["severity"] == "warning" and "(P01, Q01)" in p["message"]


def test_messy_example_lists_every_problem():
    r = run("validate", str(EXAMPLES / "messy-family.csv"), "--format", "json")
    assert r.exit_code == 2
    problems = json.loads(r.output)
    assert all(set(p) >= {"file", "row", "column", "value", "message", "severity"} for p in problems)
    errors = [p for p in problems if p["severity"] == "error"]
    kinds = {p["message"].split(":")[0].split("(")[0].strip() for p in errors}
    assert len(kinds) >= 10, kinds
    located = {(p["row"], p["column"]) for p in errors}
    assert (3, "age") in located and (4, "relation") in located and (5, "id") in located


def test_reader_returns_people(ref):
    from haplomatch.familyfile import read_family_file

    families, problems = read_family_file(EXAMPLES / "neuroblastoma-family.csv", ref.nomenclature)
    assert len(families) == 1 and not [p for p in problems if p.severity == "error"]
    fam = families[0]
    assert fam.patient.id == "P01"
    assert fam.loci == ("A", "C", "B", "DRB1", "DQB1", "DPB1")
    father = fam.person("F01")
    assert (father.sex, father.age, father.abo, father.rh, father.cmv, father.fcgr3a, father.available) == (
        "M", 38.0, "A", "+", True, "VV", True)
    assert father.hla["B"].gl() == "B*08:01+B*27:05"


def test_strict_reader_raises_with_all_problems(ref):
    from haplomatch.familyfile import read_family_file

    with pytest.raises(InputError) as e:
        read_family_file(EXAMPLES / "messy-family.csv", ref.nomenclature)
    assert len([p for p in e.value.problems if p.severity == "error"]) >= 10


@pytest.mark.parametrize("header", ["A_1,A_2", "HLA-A_1,HLA-A_2", "A.1,A.2"])
def test_two_column_headers(ref, tmp_path, header):
    from haplomatch.familyfile import read_family_file

    f = tmp_path / "fam.csv"
    f.write_text(f"ID,Relationship,{header}\np,patient,02:01,24:02\nm,mother,02:01,\n")
    (fam,), problems = read_family_file(f, ref.nomenclature)
    assert fam.person("p").hla["A"].gl() == "A*02:01+A*24:02"
    assert fam.person("m").hla["A"].assumed_homozygous
    assert [p.row for p in problems if p.severity == "warning"] == [2]


def test_tsv_semicolon_and_ragged_rows(ref, tmp_path):
    from haplomatch.familyfile import read_family_file

    f = tmp_path / "fam.tsv"
    f.write_text("id\trelation\tA\np\tpatient\tA*02:01+A*01:01\nm\tmother\n")
    with pytest.raises(InputError) as e:
        read_family_file(f, ref.nomenclature)
    assert e.value.problems[0].row == 2 and "cells" in e.value.problems[0].message
    g = tmp_path / "fam.csv"
    g.write_text("id;relation;A\np;patient;A*02:01+A*01:01\n")
    (fam,), _ = read_family_file(g, ref.nomenclature)
    assert fam.patient.hla["A"].gl() == "A*02:01+A*01:01"


def test_a_quoted_cell_longer_than_the_csv_module_reads_is_a_clear_error(ref, tmp_path):
    """Python's csv module refuses a cell over 128 KiB: the file is refused with a message, not a traceback."""
    from haplomatch.familyfile import read_family_file

    f = tmp_path / "fam.csv"
    f.write_text('id,relation,A\np,patient,"' + "A*02:01/" * 20_000 + 'A*01:01"\n')
    with pytest.raises(InputError, match="field larger than field limit") as e:
        read_family_file(f, ref.nomenclature)
    assert e.value.problems[0].file == str(f)


@pytest.mark.parametrize("text, locus, message", [
    # an alternative of one allele among '|' alternatives: refused, as in a cell (it used to keep one alternative)
    ("B*07:02|B*08:01+B*07:02", "B", "each '|' alternative of B needs two alleles"),
    ("B*08:01+B*07:02|B*07:02", "B", "each '|' alternative of B needs two alleles"),
    # a phased locus given in one alternative only (it used to fail with a ValueError, or drop the other)
    ("A*02:01~B*07:02+A*03:01~B*08:01|B*44:02+B*44:03", "A", "A is given in some '|' alternatives and not in others"),
    ("A*02:01~B*07:02|B*08:01+B*07:02", "A", "A is given in some '|' alternatives and not in others"),
])
def test_gl_alternatives_that_do_not_read_as_genotypes_are_refused(text, locus, message):
    from haplomatch.hlatyping import from_gl_text

    typed, problems = from_gl_text(text)
    assert locus not in typed
    assert any(p.severity == "error" and message in p.message for p in problems)


def test_gl_phased_and_listed_typings_still_read():
    from haplomatch.hlatyping import from_gl_text

    typed, _ = from_gl_text("A*02:01~B*07:02/B*08:01")  # '/' binds tighter than '~': B is one of two
    assert (typed["A"].gl(), typed["B"].gl()) == ("A*02:01+A*02:01", "B*07:02/B*08:01+B*07:02/B*08:01")
    typed, problems = from_gl_text("A*02:01~B*07:02+A*03:01~B*08:01")
    assert (typed["A"].gl(), typed["B"].gl()) == ("A*02:01+A*03:01", "B*07:02+B*08:01")
    assert not [p for p in problems if p.severity == "error"]
    typed, problems = from_gl_text("B*08:01+B*07:02|B*07:02+B*07:02")
    assert typed["B"].gl() == "B*08:01+B*07:02|B*07:02+B*07:02" and not problems


def test_a_family_file_with_a_header_only_is_refused(ref, tmp_path):
    """rank and haplotypes used to print nothing (or fail on --format json); validate found no problem."""
    import polars as pl

    csv_file = tmp_path / "fam.csv"
    csv_file.write_text("id,relation,A\n")
    pq_file = tmp_path / "fam.parquet"
    pl.DataFrame(schema={"id": pl.String, "relation": pl.String, "A": pl.String}).write_parquet(pq_file)
    for f in (csv_file, pq_file):
        for args in (["rank", str(f), "--format", "json"], ["haplotypes", str(f), "--format", "json"],
                     ["validate", str(f)]):
            r = CliRunner().invoke(main, args)
            assert r.exit_code == 2 and "the file has no data row" in r.output, (f, args, r.output)


def test_parquet_family_file(ref, tmp_path):
    import polars as pl

    from haplomatch.familyfile import read_family_file

    f = tmp_path / "fam.parquet"
    pl.DataFrame({"id": ["p", "f"], "relation": ["patient", "father"], "B": ["B*44:02+B*07:02", "B*07:02+B*08:01"]}).write_parquet(f)
    (fam,), _ = read_family_file(f, ref.nomenclature)
    assert fam.person("f").sex == "M"  # implied by the relation


def test_antibody_report(ref):
    from haplomatch.antibodies import read_antibodies

    abs_, problems = read_antibodies(EXAMPLES / "neuroblastoma-antibodies.csv", ref.nomenclature)
    kinds = {a.specificity: a.kind for a in abs_}
    assert kinds == {"B27": "antigen", "DQB1*03:01": "allele", "A*24:02": "allele",
                     "DQA1*05:01/DQB1*02:01": "pair", "Cw17": "unmapped"}
    assert len(abs_) == 5  # the unmappable one is kept, and reported
    assert [p.row for p in problems] == [5]


def test_ihiw_ped_file_with_gl_phenotypes(ref):
    # IHIW-18 pedigree layout (Family_ID Individual_ID Paternal_ID Maternal_ID Sex Phenotype), as documented by
    # the GRAMM family-haplotyping service (gramm.math.biu.ac.il/example); sex 1 = male, 2 = female.
    from haplomatch.familyfile import read_family_file

    (fam,), problems = read_family_file(EXAMPLES / "neuroblastoma-family.ped", ref.nomenclature, patient="P01")
    rel = {p.id: p.relation for p in fam.people}
    assert rel == {"F01": "father", "M01": "mother", "P01": "patient", "S01": "brother", "S02": "sister"}
    assert fam.person("M01").hla["DPB1"].gl() == "DPB1*04:01+DPB1*02:01"
    assert fam.person("F01").father_id is None  # '0' = not in the file


def test_ped_file_needs_the_patient(ref):
    from haplomatch.familyfile import read_family_file

    with pytest.raises(InputError, match="--patient"):
        read_family_file(EXAMPLES / "neuroblastoma-family.ped", ref.nomenclature)


def test_gl_string_column(ref, tmp_path):
    from haplomatch.familyfile import read_family_file

    f = tmp_path / "fam.csv"
    f.write_text("id,relation,hla\np,patient,hla#3.58.0#HLA-A*01:01+HLA-A*02:01^HLA-B*08:01+HLA-B*44:02\n")
    (fam,), _ = read_family_file(f, ref.nomenclature)
    assert fam.patient.hla["B"].gl() == "B*08:01+B*44:02"


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_family_reader_raises_only_input_error(ref, tmp_path_factory, text):
    from haplomatch.familyfile import read_family_file

    f = tmp_path_factory.mktemp("fuzz") / "fam.csv"
    f.write_text("id,relation,A,KIR2DL1,abo\n" + text)
    try:
        read_family_file(f, ref.nomenclature)
    except InputError:
        pass


_TOKENS = st.sampled_from(["A*01:01", "A*02:01:01:01", "02:01", "A*24:02N", "A*01:01/A*01:02", "A2", " A*03:01 ",
                           "", " ", "-", "NA", "XX", "A*01", "B*07:02", "+", ",", ";", "|", "/", "hla-A*11:01"])


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(_TOKENS, min_size=1, max_size=4), two_columns=st.booleans())
def test_the_quick_reading_of_usual_cells_equals_the_full_reader(parts, two_columns):
    """simple_cell (the batch reader's shortcut) gives parse_cell's typing whenever it answers, and answers
    for the usual forms 'X+Y' and two columns X, Y."""
    if two_columns:
        value, second = "".join(parts[: len(parts) // 2 or 1]), "".join(parts[len(parts) // 2 or 1:])
    else:
        value, second = "+".join(parts[:2]) if len(parts) > 1 else parts[0], None
    quick = simple_cell(value, "A", second)
    full, problems = parse_cell(value, "A", second=second)
    if quick is not None:
        assert quick == full and not problems


def test_the_quick_reading_answers_for_the_usual_forms():
    assert simple_cell("A*01:01+A*02:01", "A") == parse_cell("A*01:01+A*02:01", "A")[0]
    assert simple_cell(" A*01:01 + 02:01 ", "A").genotypes == ((("A*01:01",), ("A*02:01",)),)
    assert simple_cell("A*01:01", "A", "A*01:01/A*01:02").genotypes == ((("A*01:01",), ("A*01:01", "A*01:02")),)
    assert simple_cell("A*01:01", "A") is None  # one allele: homozygous or not is a setting, with a warning
    assert simple_cell("A*01:01+A*02:01|A*01:02+A*02:01", "A") is None


_CELLS = st.lists(_TOKENS, min_size=0, max_size=3).map("".join) | st.sampled_from(
    ["A*01:01+A*02:01", " A*01:01 +\tA*02:01 ", "A*01:01+A*01:01", "A*01:01\u00a0+A*02:01", "\x1cA*01:01+A*02:01",
     "B*07:02+A*01:01", "A*99:99+A*01:01", "a*01:01+A*02:01", "A*02:XX+A*01:01", "A*01:01:01G+A*02:01P"])


@settings(max_examples=300, deadline=None)
@given(cells=st.lists(st.tuples(_CELLS, _CELLS | st.none()), min_size=1, max_size=6), two_columns=st.booleans())
def test_reading_a_whole_locus_column_equals_reading_each_cell(ref, cells, two_columns):
    """The family reader types a locus column at once (polars recognises the usual 'X+Y' cells); every
    row's typing and problems equal those of the one-cell reader (which falls back on parse_cell)."""
    import polars as pl

    from haplomatch.familyfile import Settings, _CellMemo

    if two_columns:
        table = pl.DataFrame({"A_1": [a for a, _ in cells], "A_2": [b for _, b in cells]}, schema={"A_1": pl.String, "A_2": pl.String})
        got, s1, s2 = _CellMemo(ref.nomenclature, False).column("A", "A_1/A_2", table, ("A_1", "A_2"), Settings())
        one = _CellMemo(ref.nomenclature, False)
        want = [one.cell("A", "A_1/A_2", a, b or "", Settings()) for a, b in cells]
    else:
        table = pl.DataFrame({"A": [a for a, _ in cells]}, schema={"A": pl.String})
        got, s1, s2 = _CellMemo(ref.nomenclature, False).column("A", "A", table, None, Settings())
        one = _CellMemo(ref.nomenclature, False)
        want = [one.cell("A", "A", a, None, Settings()) for a, _ in cells]
    assert got == want
    # and each row's slot strings, as the people table writes them
    assert list(zip(s1.to_list(), s2.to_list())) == [slot_strings(t) for t, _ in want]


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_plain_files_are_read_by_polars_as_the_csv_module_reads_them(sep):
    """Files without quotes are parsed by polars (fast); the table and the problems (a row with too many or
    too few cells) equal those of the csv-module reader, blanks stripped, empty cells empty strings."""
    import csv
    import io

    from haplomatch.familyfile import _plain_table, _to_table

    rows = ["id, relation ,A", "P,patient, A*01:01+A*02:01 ", "F ,father,", "M,mother,A*01:01,extra",
            "S1,\u00a0brother\u00a0,A*02:01+A*03:01", "S2,sister", "S3,,\tA*24:02+A*01:01"]
    lines = [r.replace(",", sep) if sep != "," else r for r in rows]
    if sep == "\t":
        lines = [ln.replace("\tA*24", " A*24") for ln in lines]
    want = _to_table(list(csv.reader(io.StringIO("\n".join(lines)), delimiter=sep)), "f.csv", sep)
    got = _plain_table(lines, "f.csv", sep)
    assert got[0].equals(want[0]) and got[0].columns == want[0].columns == ["id", "relation", "A", "__row__"]
    assert [(p.row, p.message) for p in got[1]] == [(3, "row has 4 cells, the header has 3"),
                                                     (5, "row has 2 cells, the header has 3")]
    assert got[0]["relation"].to_list() == ["patient", "father", "brother", ""]  # U+00A0 is a blank, stripped
    clean = [ln for i, ln in enumerate(lines) if i not in (3, 5)]
    fast = _plain_table(clean, "f.csv", sep)  # no ragged row: the polars route
    slow = _to_table(list(csv.reader(io.StringIO("\n".join(clean)), delimiter=sep)), "f.csv", sep)
    assert fast[0].equals(slow[0]) and fast[0]["A"].to_list() == ["A*01:01+A*02:01", "", "A*02:01+A*03:01",
                                                                  "A*24:02+A*01:01"]


def test_values_made_without_init_equal_constructed_ones(ref):
    """person_of / typing_of (the batch reader's constructors) give values equal to, hashing, printing and
    pickling as Person(...) / LocusTyping(...); person_of refuses a dict that misses a field."""
    import dataclasses
    import pickle

    from haplomatch.family import Person, person_of
    from haplomatch.familyfile import read_family_file
    from haplomatch.hlatyping import LocusTyping, typing_of

    (fam,), _ = read_family_file(EXAMPLES / "neuroblastoma-family.csv", ref.nomenclature)
    for p in fam.people:
        values = {f.name: getattr(p, f.name) for f in dataclasses.fields(Person)}
        made, built = person_of(dict(values)), Person(**values)
        assert made == built and hash(made) == hash(built) and repr(made) == repr(built)
        assert pickle.loads(pickle.dumps(made)) == built
        assert dataclasses.replace(made, age=1.0) == dataclasses.replace(built, age=1.0)
        for t in p.hla.values():
            args = (t.locus, t.genotypes, t.text, t.assumed_homozygous)
            assert typing_of(*args) == LocusTyping(*args) and hash(typing_of(*args)) == hash(LocusTyping(*args))
            assert repr(typing_of(*args)) == repr(LocusTyping(*args))
    with pytest.raises(TypeError):
        person_of({"id": "x", "relation": "father"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.age = 3.0


# -- whole files read by polars agree with the line-by-line reader ------------------------------------------
_CELL_CHARS = st.sampled_from(list("Aa1*:+/ \t,;#\"\r") + ["\x1f", "\x0b", "é", "\x00"])
_PLAIN_CELLS = st.text(st.sampled_from(list("Aa1*:+/ ")), max_size=5)
_CELLS = st.one_of(_PLAIN_CELLS, _PLAIN_CELLS, _PLAIN_CELLS, st.text(_CELL_CHARS, max_size=3))


@st.composite
def _table_lines(draw, sep: str) -> list[str]:
    """A header and rows of as many cells, one row sometimes with a cell more or fewer."""
    width = draw(st.integers(min_value=1, max_value=4))
    rows = draw(st.lists(st.lists(_CELLS, min_size=width, max_size=width), min_size=1, max_size=6))
    odd = draw(st.sampled_from([None, None, None, "fewer", "more"]))
    if odd == "fewer" and width > 1:
        rows[0] = rows[0][1:]
    elif odd == "more":
        rows[-1] = rows[-1] + ["x"]
    return [sep.join(["id"] + [f"c{j}" for j in range(width - 1)])] + [sep.join(r) for r in rows]


@settings(max_examples=400, deadline=None)
@given(st.data(), st.sampled_from([",", ";", "\t"]), st.sampled_from(["\n", "\r\n"]),
       st.just([]) | st.lists(st.sampled_from(["", " ", "\t", "\r"]), max_size=2), st.sampled_from(["", ".tsv"]),
       st.integers(min_value=0, max_value=6))
def test_whole_file_reading_agrees_with_the_line_reader(data, sep, eol, blanks, suffix, at):
    """``_plain_text_table`` (polars, whole text) returns nothing or exactly what the line reader returns:
    ragged rows, blank and comment lines, quotes and odd blanks go to the line reader."""
    import polars as pl

    from haplomatch.familyfile import _plain_text_table, _text_table

    lines = data.draw(_table_lines(sep))
    lines[min(at, len(lines)):min(at, len(lines))] = blanks
    text = eol.join(lines) + eol
    fast = _plain_text_table(text, suffix)
    from_bytes = _plain_text_table(text.encode(), suffix)  # read_table hands it the file's bytes
    assert (fast is None) == (from_bytes is None)
    if fast is None:
        return
    assert from_bytes[0].equals(fast[0])
    slow = _text_table(text, "f.csv", suffix)
    assert fast[1] == slow[1] == []
    assert fast[0].columns == slow[0].columns
    assert fast[0].equals(slow[0]), (text, fast[0], slow[0])
    assert fast[0].schema[next(iter(fast[0].columns))] == pl.String


def test_read_table_reads_bytes_as_a_text_file_reads(tmp_path):
    """A byte order mark, CR LF or lone CR line ends and undecodable bytes: the table read_table gives is the
    one the line reader gives for the text as Python's text mode reads it (universal newlines)."""
    from haplomatch.familyfile import _text_table, read_table

    cases = {
        "bom_crlf.csv": b"\xef\xbb\xbfid,A\r\nP1, A*01:01+A*02:01\r\nF1,A*01:01+A*03:01\r\n",
        "lone_cr.csv": b"id,A\rP1,A*01:01+A*02:01\rF1,\r",
        "latin1.csv": b"id,A,name\nP1,A*01:01+A*02:01,J\xe9r\xf4me\n",
        "comment_crlf.csv": b"# a note\r\nid,A\r\n\r\nP1,A*01:01+A*02:01\r\n",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        want = _text_table(path.read_text(encoding="utf-8-sig", errors="replace"), str(path), ".csv")
        got = read_table(path)
        assert got[0].equals(want[0]) and got[1] == want[1], name
    assert read_table(tmp_path / "bom_crlf.csv")[0].columns[0] == "id"


def test_usual_batch_file_is_read_whole_by_polars():
    """The usual file (CRLF line ends, blanks around cells) takes the polars path, with cells stripped and
    rows numbered from 1; a ragged row, a comment line or a quote sends the text to the line reader."""
    from haplomatch.familyfile import ROW, _plain_text_table

    df, problems = _plain_text_table("id,A\r\nP1, A*01:01+A*02:01 \r\nF1,A*01:01+A*03:01\r\n")
    assert problems == []
    assert df.rows() == [("P1", "A*01:01+A*02:01", 1), ("F1", "A*01:01+A*03:01", 2)]
    assert df.columns == ["id", "A", ROW]
    for odd in ("id,A\nP1,x,y\nF1\n", "id,A\n# note\nP1,x\n", 'id,A\n"P1",x\n', "id,A\n\nP1,x\n", "id,A\nP1,é\n"):
        assert _plain_text_table(odd) is None, odd


def test_rows_with_a_gl_cell_or_a_cell_problem_and_plain_rows_read_alike(ref, tmp_path):
    """A family file with a GL column beside locus columns: a locus in both is an error (the GL string's
    typing kept), a GL locus not used for donor choice a warning, an unknown allele an error at its cell;
    rows without any of these take their column typings as they are (the reader's fast path). Each row's
    typings are the one-cell reader's (parse_cell)."""
    from haplomatch.familyfile import Settings, _CellMemo, _read_people, map_columns, read_table

    path = tmp_path / "fam.csv"
    path.write_text(
        "family_id,id,relation,father_id,mother_id,sex,hla,A,B\n"
        "F1,P,patient,F,M,M,A*01:01+A*02:01^B*07:02+B*08:01,A*03:01+A*11:01,\n"
        "F1,F,father,,,M,E*01:01+E*01:03,A*01:01+A*03:01,B*07:02+B*44:02\n"
        "F1,M,mother,,,F,,A*02:01+A*11:01, B*08:01 + B*99:99\n"
        "F1,S,sibling,F,M,F,,A*01:01+A*11:01,B*07:02+B*08:01\n")
    table, _ = read_table(path)
    cmap, _ = map_columns(table.columns)
    people, problems, clean, _ = _read_people(table, str(path), cmap, _CellMemo(ref.nomenclature, False),
                                              Settings())
    assert [(p.row, p.column, p.severity) for p in problems] == [(1, "A", "error"), (2, "hla", "warning"),
                                                                  (3, "B", "error")]
    assert problems[0].message == "locus A is given both in the GL string and in its own column"
    assert problems[1].message == "locus E is not used for donor choice; ignored"
    assert problems[2].value == "B*99:99" and problems[2].message.startswith("not in IPD-IMGT/HLA")
    assert clean == {2, 4}

    def cell(v: str, locus: str):
        return parse_cell(v, locus)[0]

    want = {
        "P": {"A": "A*01:01+A*02:01", "B": "B*07:02+B*08:01"},  # from the GL string
        "F": {"A": "A*01:01+A*03:01", "B": "B*07:02+B*44:02"},
        "M": {"A": "A*02:01+A*11:01", "B": "B*08:01+B*99:99"},
        "S": {"A": "A*01:01+A*11:01", "B": "B*07:02+B*08:01"},
    }
    for p in people:
        assert {loc: t.gl() for loc, t in p.hla.items()} == want[p.id], p.id
    s = next(p for p in people if p.id == "S")
    assert s.hla == {"A": cell("A*01:01+A*11:01", "A"), "B": cell("B*07:02+B*08:01", "B")}
