"""Issue 8 — screening many families and searching a registry: the vectorised paths agree with ``rank``.

- ``screen`` gives every candidate the rank, eligibility, exclusions, summary and documented facts that
  ``rank_family`` gives it one family at a time (simulated families, both family profiles).
- Row accounting on a file with bad rows: rows in = candidates out + patients + rejected, every bad row in
  the rejects with file, row and column, and a family with an error, a pedigree error or a Mendelian
  conflict rejected as a whole.
- ``search``: the fast facts equal the general ``pair_facts`` on tricky typings (ambiguous, low resolution,
  null alleles, homozygous, untyped) for several patients; the ranking equals the general path's and
  ``rank_family``'s on the same donors; streaming a Parquet file in batches far smaller than the file gives
  the same best N as one batch.
No timed assertions.
"""

from __future__ import annotations

import math
import random
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haplomatch.cli_scale import screen_cmd, search_cmd
from haplomatch.familyfile import read_family_file
from haplomatch.kir import GENES
from haplomatch.pairfacts import GLOSSARY, family_facts, pair_facts
from haplomatch.persons import pair_frame, people_frame, person_from_gl
from haplomatch.ranking import evaluate, rank_family
from haplomatch.rulefiles import rules_path
from haplomatch.screen import screen_files
from haplomatch.errors import InputError
from haplomatch.search import (
    FAST_COLUMNS, FastFacts, NoDonorReadError, RegistryReader, registry_layout, registry_rules, search_registry,
)
from haplomatch.simulate import AllelePool, SimOptions, family_frame, simulate_families, simulate_registry

OPTIONS = SimOptions(siblings=3, homozygous_rate=0.1, shared_rate=0.1, recombination_rate=0.2,
                     missing_parents="one", missing_rate=0.3)
UNRELATED = str(rules_path("unrelated.yaml"))


def _plain(v):
    return None if isinstance(v, float) and math.isnan(v) else v


@pytest.fixture(scope="module")
def pool(ref):
    return AllelePool.from_reference(ref)


@pytest.fixture(scope="module")
def families_csv(tmp_path_factory, pool) -> Path:
    path = tmp_path_factory.mktemp("screen") / "families.csv"
    family_frame(simulate_families(7, 8, OPTIONS, pool=pool)).write_csv(path)
    return path


DATA = Path(__file__).resolve().parent / "data"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


# ------------------------------------------------------------------------------------------------ screen

def _compare_with_rank(ref, result, families, profile, **kw):
    rows = {(r["family_id"], r["id"]): r for r in result.candidates.to_dicts()}
    n = 0
    for fam in families:
        ranking = rank_family(ref, fam, profile, **kw)
        for c in ranking.candidates:
            row = rows[(fam.id, c.id)]
            assert (row["rank"], row["eligible"], row["summary"]) == (c.rank, c.eligible, c.summary), (fam.id, c.id)
            assert row["excluded_by"] == list(c.excluded_by)
            assert row["patient_id"] == fam.patient.id
            for k, v in c.facts.items():
                if k not in ("id", "relation"):
                    assert _plain(row[k]) == _plain(v), (fam.id, c.id, k)
            n += 1
    assert n == result.candidates_out
    return n


@pytest.mark.parametrize("profile", ["haplo-hsct", "nk-cell-therapy"])
def test_the_best_of_shares_are_the_best_of_the_whole(ref, families_csv, profile):
    """``search._best`` (a kept-open registry's shares, each keeping its best N) keeps what ``evaluate`` keeps
    of all the rows at once, in its order, with their people rows: with excluded candidates, and ties on every
    key but the id (the simulated families' candidates as one list, cut into two or three shares)."""
    from haplomatch.ranking import rules_for
    from haplomatch.search import _best, _Compiled, _ordering_rules, _Share

    families, _ = read_family_file(families_csv, ref.nomenclature)
    facts = pl.concat([family_facts(ref, fam)[0] for fam in families], how="vertical_relaxed")
    facts = facts.with_row_index("__row", offset=1).with_columns(pl.col("__row").cast(pl.Int64))
    rules = rules_for(profile, None, dict(facts.schema))
    order = _ordering_rules(rules)
    whole = evaluate(facts, order)
    assert whole["eligible"].n_unique() == 2 or profile == "nk-cell-therapy"  # some excluded
    top = 12
    for cuts in ((0, 1, facts.height), (0, facts.height // 3, facts.height - 1, facts.height)):
        shares = []
        for lo, hi in zip(cuts, cuts[1:]):
            part = facts[lo:hi]
            shares.append(_Share(evaluate(part, order).head(top).select(facts.columns),
                                 part.select("__row", "id", "relation"), hi - lo, hi - lo, 0, [], 1, True, {}, []))
        kept, people = _best(shares, _Compiled(rules, order, set()), top)
        assert kept.equals(whole.head(top).select(facts.columns)), cuts
        assert people["id"].to_list() == kept["id"].to_list() and people["__row"].equals(kept["__row"])


@pytest.mark.parametrize("profile", ["haplo-hsct", "nk-cell-therapy"])
def test_screen_gives_the_ranks_and_facts_of_rank(ref, families_csv, profile):
    result = screen_files(ref, [families_csv], profile=profile)
    families, _ = read_family_file(families_csv, ref.nomenclature)
    assert result.rejected == 0 and result.patients == len(families) == result.families
    assert _compare_with_rank(ref, result, families, profile) > 25
    assert set(GLOSSARY) - {"id", "relation", "dsa"} <= set(result.candidates.columns)  # dsa: with a report
    assert result.rows_in == result.candidates_out + result.patients


def test_screen_and_rank_carry_every_locus_count_and_its_range(ref, tmp_path):
    """Every core locus's counts (not only HLA-A, the glossary's row for them), and an ambiguous typing's range
    (a count left null says nothing alone): values read off the typings. S differs from the patient by one
    allele at each locus but DPB1, where the patient is homozygous 04:01 (GvH 0, HvG 1); T is typed DRB1*13
    (DRB1*13:01 or another): 0 or 1 mismatch each way."""
    path = tmp_path / "fam.csv"
    path.write_text(
        "family_id,id,relation,sex,A,C,B,DRB1,DQB1,DPB1\n"
        "F1,P,patient,F,A*01:01+A*02:01,C*07:01+C*03:04,B*08:01+B*40:01,DRB1*03:01+DRB1*13:01,"
        "DQB1*02:01+DQB1*06:03,DPB1*04:01+DPB1*04:01\n"
        "F1,S,sister,F,A*24:02+A*02:01,C*02:02+C*03:04,B*27:05+B*40:01,DRB1*01:01+DRB1*13:01,"
        "DQB1*05:01+DQB1*06:03,DPB1*04:02+DPB1*04:01\n"
        "F1,T,brother,M,A*01:01+A*02:01,C*07:01+C*03:04,B*08:01+B*40:01,DRB1*13+DRB1*03:01,"
        "DQB1*02:01+DQB1*06:03,DPB1*04:01+DPB1*04:01\n")
    result = screen_files(ref, [path])
    rows = {r["id"]: r for r in result.candidates.to_dicts()}
    s, t = rows["S"], rows["T"]
    for loc in ("A", "B", "C", "DRB1", "DQB1"):
        assert (s[f"gvh_{loc}"], s[f"hvg_{loc}"], s[f"gvh_{loc}_min"], s[f"hvg_{loc}_max"]) == (1, 1, 1, 1), loc
    assert (s["gvh_DPB1"], s["hvg_DPB1"]) == (0, 1)
    assert (s["grade8_bi"], s["grade10_bi_text"], s["grade12_gvh"], s["grade12_hvg"]) == (4, "5/10", 7, 6)
    assert t["gvh_DRB1"] is None and t["hvg_DRB1"] is None
    assert (t["gvh_DRB1_min"], t["gvh_DRB1_max"], t["hvg_DRB1_min"], t["hvg_DRB1_max"]) == (0, 1, 0, 1)
    assert (t["grade8_bi"], t["grade8_bi_text"]) == (None, "7-8/8")
    # why, and what typing would settle it, in rank's words (S has no range: nothing said of it)
    warned = rank_family(ref, read_family_file(path, ref.nomenclature)[0][0]).warnings
    said = [w for w in warned if "a range" in w]
    assert said and said[0].startswith("T's mismatches at DRB1 are a range: T's DRB1*13 may be any of")
    assert said[0] in t["family_warnings"] and "S's" not in t["family_warnings"]
    families, _ = read_family_file(path, ref.nomenclature)
    assert _compare_with_rank(ref, result, families, "haplo-hsct") == 2  # rank's candidates carry the same
    assert "gvh_DPB1_max" in rank_family(ref, families[0]).candidates[0].facts


@pytest.mark.parametrize("prestart", [False, True])
def test_screen_worker_processes_do_not_change_the_output(ref, families_csv, monkeypatch, tmp_path, prestart):
    """Files cut into parts of whole families, screened in two processes (started before or after the
    files are read): the same rows, rejects and counts."""
    import haplomatch.screen as screen

    if prestart:
        monkeypatch.setattr(screen, "_PRESTART_BYTES", 0)

    lines = families_csv.read_text().splitlines()
    bad = tmp_path / "bad.csv"  # a malformed row, a family with an unknown allele, and whole families
    broken = lines[2].replace("A*", "A*99", 1)
    bad.write_text("\n".join([lines[0], lines[1], broken, "x,y", *lines[3:20]]) + "\n")
    one = screen_files(ref, [families_csv, bad])
    monkeypatch.setattr(screen, "_PIECE", 2)
    monkeypatch.setattr(screen, "_MIN_PART", 1)
    # the parts' candidates come back through files in a temporary directory, removed afterwards
    spill_root = tmp_path / "tmp"
    spill_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill_root))
    sent = []
    unspilled = screen._unspilled
    monkeypatch.setattr(screen, "_unspilled", lambda x: sent.append(x[1]) or unspilled(x))
    stored = []  # and the parts' rows go to the processes through files there too
    store = screen._stored
    monkeypatch.setattr(screen, "_stored", lambda *a: stored.append(r := store(*a)) or r)
    two = screen_files(ref, [families_csv, bad], workers=2)
    assert len(sent) > 2 and all(p and p.endswith(".arrow") for p in sent)
    assert len(stored) > 2 and all(s.stored.endswith(".arrow") and s.table[0].height == 0 for s in stored)
    assert list(spill_root.iterdir()) == []
    # without a usable temporary directory the results come through the pipe: the same output
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    sent.clear()
    piped = screen_files(ref, [families_csv, bad], workers=2)
    assert sent and all(p is None for p in sent)
    assert piped.candidates.equals(two.candidates) and piped.rejects.equals(two.rejects)
    assert one.rejected > 0 and one.candidates_out > 0
    assert one.candidates.equals(two.candidates) and one.rejects.equals(two.rejects)
    assert (one.rows_in, one.patients, one.rejected, one.families, one.families_rejected) == (
        two.rows_in, two.patients, two.rejected, two.families, two.families_rejected)
    assert one.rows_in == (len(lines) - 1) + 20  # the second file: 20 data rows, the malformed one included
    if not prestart:  # blanks around the cells: taken off by the processes, as by this one
        padded = tmp_path / "padded.csv"
        padded.write_text("\n".join([lines[0]] + [" " + ln.replace(",", " , ") + "\t" for ln in lines[1:]]) + "\n")
        a, b = screen_files(ref, [padded]), screen_files(ref, [padded], workers=2)
        assert a.candidates.equals(b.candidates) and a.rejects.equals(b.rejects)
        assert a.candidates.drop("file").equals(screen_files(ref, [families_csv]).candidates.drop("file"))
    if not prestart:  # families whose rows are not consecutive: the pieces are gathered, not sliced
        mixed = tmp_path / "mixed.csv"
        rows = lines[1:]
        mixed.write_text("\n".join([lines[0], *rows[::2], *rows[1::2]]) + "\n")
        a, b = screen_files(ref, [mixed]), screen_files(ref, [mixed], workers=2)
        assert a.candidates.equals(b.candidates) and a.rejects.equals(b.rejects)
        whole = screen_files(ref, [families_csv]).candidates.drop("file")
        assert a.candidates.drop("file").sort("family_id", "rank").equals(whole.sort("family_id", "rank"))
    if prestart:  # processes started, then one part only: this process screens it
        first = tmp_path / "first.csv"
        first.write_text("\n".join(lines[:7]) + "\n")
        monkeypatch.setattr(screen, "_MIN_PART", 10_000)
        assert screen_files(ref, [first], workers=2).candidates.equals(screen_files(ref, [first]).candidates)


def test_a_parts_pieces_of_one_file_are_read_as_one_table(ref, tmp_path, monkeypatch):
    """The pieces a part packs are joined per file (in order, the malformed-row problems kept): a worker reads
    one table per file of its part, not ten pieces."""
    import haplomatch.screen as screen

    head = "family_id,id,relation,A\n"
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text(head + "".join(f"F{i},P{i},patient,A*01:01+A*02:01\n" for i in range(6)) + "x,y\n")
    second.write_text(head + "G1,Q1,patient,A*03:01+A*02:01\n")
    monkeypatch.setattr(screen, "_PIECE", 2)
    units = screen._units([screen._open_source(first, 0), screen._open_source(second, 1)])
    assert [k for _, k in units] == [2, 2, 2, 1]  # three pieces of the first file, then the second
    parts = screen._parts(units, 4)
    assert [n for _, n in parts] == [4, 3]
    (a,), (b, c) = (srcs for srcs, _ in parts)
    assert a.table[0]["id"].to_list() == ["P0", "P1", "P2", "P3"]
    assert [(p.row, p.message) for p in a.table[1]] == [(7, "row has 2 cells, the header has 4")]
    assert (b.file, b.table[0]["id"].to_list(), b.table[1]) == (str(first), ["P4", "P5"], [])
    assert (c.file, c.table[0]["id"].to_list()) == (str(second), ["Q1"])


def test_worker_processes_share_the_cpus_for_polars_threads(ref, monkeypatch):
    """Each of two processes on the machine's CPUs runs polars on half of them (at least one thread); this
    process's environment is left as it was, and a POLARS_MAX_THREADS set by the user is passed on."""
    import os

    import haplomatch.screen as screen

    monkeypatch.delenv("POLARS_MAX_THREADS", raising=False)
    with screen._pool(ref, 2) as ex:
        sizes = {ex.submit(pl.thread_pool_size).result() for _ in range(4)}
    assert sizes == {max(1, (os.cpu_count() or 1) // 2)}
    assert "POLARS_MAX_THREADS" not in os.environ
    monkeypatch.setenv("POLARS_MAX_THREADS", "1")
    with screen._pool(ref, 1) as ex:
        assert ex.submit(pl.thread_pool_size).result() == 1
    assert os.environ["POLARS_MAX_THREADS"] == "1"


def test_reader_people_table_equals_the_table_of_its_persons(ref, families_csv, tmp_path):
    """The people table the reader makes while reading (screen uses it) is the one ``people_frame`` makes from
    the Persons read, in every layout: one HLA column per locus, two (one name each, some ambiguous or
    blank), a GL column, a KIR typing column, odd cells; a Person made later is not found in it."""
    from haplomatch.familyfile import read_families_and_table

    base = pl.read_csv(families_csv, infer_schema=False)
    two = base.with_columns(pl.col("A").str.split("+").list.get(0).alias("A_1"),
                            pl.col("A").str.split("+").list.get(1, null_on_oob=True).alias("A_2")).drop("A")
    two = two.with_columns(pl.when(pl.int_range(pl.len()) % 5 == 1).then(pl.lit("A*02:01/A*02:02"))
                           .when(pl.int_range(pl.len()) % 7 == 2).then(pl.lit("")).otherwise("A_2").alias("A_2"))
    loci = ["A", "C", "B", "DRB1", "DQB1", "DPB1"]
    gl = base.with_columns(pl.concat_str([pl.col(c) for c in loci], separator="^").alias("hla")).drop(loci[1:])
    gl = gl.with_columns(pl.when(pl.int_range(pl.len()) % 3 == 0).then(pl.lit("A*01:01+A*99:99"))
                         .otherwise("A").alias("A"))  # both a GL string and an own column for A; a bad name
    files = {"one.csv": base, "two.csv": two, "gl.csv": gl}
    for name, frame in files.items():
        frame.write_csv(tmp_path / name)
    paths = [tmp_path / n for n in files] + [p for p in sorted(DATA.glob("families/*.csv")) if "antibodies" not in p.name]
    paths += [*EXAMPLES.glob("*.ped"), EXAMPLES / "messy-family.csv", EXAMPLES / "neuroblastoma-family.csv"]
    checked = 0
    for path in paths:
        families, _, table = read_families_and_table(path, ref.nomenclature, strict=False)
        persons = [p for f in families for p in f.people]
        rows = table.rows(persons)
        assert rows is not None, path
        assert table.frame[rows].equals(people_frame(persons)), path
        checked += len(persons)
    assert checked > 100
    families, _, table = read_families_and_table(tmp_path / "one.csv", ref.nomenclature, strict=False)
    p = families[0].people[0]
    assert table.rows([p]) is not None and table.rows([replace(p)]) is None


def test_screen_takes_the_people_table_from_the_reader(ref, families_csv, monkeypatch):
    """A usual family file is screened without tabulating its Persons a second time (people_frame)."""
    import haplomatch.persons

    whole = screen_files(ref, [families_csv])

    def refuse(people):
        raise AssertionError("people_frame called")

    monkeypatch.setattr(haplomatch.persons, "people_frame", refuse)
    assert screen_files(ref, [families_csv]).candidates.equals(whole.candidates)


def test_screen_in_chunks_gives_the_same_rows(ref, families_csv):
    whole = screen_files(ref, [families_csv])
    assert screen_files(ref, [families_csv], chunk=2).candidates.equals(whole.candidates)


def test_screen_with_an_antibody_report(ref, families_csv, tmp_path):
    from haplomatch.antibodies import read_antibodies
    from haplomatch.errors import InputError

    table = pl.read_csv(families_csv, infer_schema=False)
    fids = table["family_id"].unique(maintain_order=True).to_list()[:2]
    table = table.filter(pl.col("family_id").is_in(fids)).with_columns(
        pl.when(pl.col("id") == "P").then(pl.lit("P-") + pl.col("family_id")).otherwise(pl.col("id")).alias("id"))
    fam_path = tmp_path / "two.csv"
    table.write_csv(fam_path)
    father_a = table.filter((pl.col("family_id") == fids[0]) & (pl.col("id") == "F"))["A"][0].split("+")[0]
    ab_path = tmp_path / "antibodies.csv"
    ab_path.write_text(f"patient_id,specificity,mfi,c1q\nP-{fids[0]},{father_a},6500,pos\n")
    abs_, _ = read_antibodies(ab_path, ref.nomenclature)
    result = screen_files(ref, [fam_path], antibodies=abs_)
    fams, _ = read_family_file(fam_path, ref.nomenclature)
    first = [f for f in fams if f.id == fids[0]]
    _compare_with_rank(ref, result.__class__(**{**result.__dict__, "candidates": result.candidates.filter(
        pl.col("family_id") == fids[0])}), first, "haplo-hsct", antibodies=abs_)
    father = result.candidates.filter((pl.col("family_id") == fids[0]) & (pl.col("id") == "F")).row(0, named=True)
    assert father["excluded_by"] == ["dsa-high-risk"]
    other = result.candidates.filter(pl.col("family_id") == fids[1])
    assert other["dsa_category"].null_count() == other.height
    assert set(other["dsa_reason"]) == {"the antibody report has no antibodies for this patient"}
    assert not any("no screened family has" in w for w in result.warnings)
    # an antibody naming a patient id no screened family has (a mistyped id) is said, on the command line too
    ab_path.write_text(f"patient_id,specificity,mfi,c1q\nP-{fids[0]},{father_a},6500,pos\nP-X9,{father_a},6500,pos\n")
    abs_, _ = read_antibodies(ab_path, ref.nomenclature)
    said = ("1 antibody of the report names 1 patient id(s) that no screened family has (P-X9): not used (a rejected "
            "family's patient, or a patient not in these files; check the ids)")
    assert said in screen_files(ref, [fam_path], antibodies=abs_).warnings
    r = CliRunner().invoke(screen_cmd, [str(fam_path), "--out", str(tmp_path / "o.csv"), "--antibodies", str(ab_path),
                                        "--workers", "1"], catch_exceptions=False)
    assert r.exit_code == 0 and f"! {said}" in r.output
    # the simulated patient ids repeat across families: a report naming one of them is refused
    ab_path.write_text("patient_id,specificity,mfi,c1q\nP,A*01:01,6500,pos\n")
    abs_, _ = read_antibodies(ab_path, ref.nomenclature)
    with pytest.raises(InputError, match="more than one family"):
        screen_files(ref, [families_csv], antibodies=abs_)


def test_screen_one_file_per_family(ref, families_csv, tmp_path):
    table = pl.read_csv(families_csv, infer_schema=False)
    paths = []
    for fid in table["family_id"].unique(maintain_order=True).to_list()[:3]:
        p = tmp_path / f"{fid}.csv"
        table.filter(pl.col("family_id") == fid).drop("family_id").write_csv(p)
        paths.append(p)
    result = screen_files(ref, paths)
    assert result.families == 3 and result.rejected == 0
    assert result.candidates["family_id"].null_count() == result.candidates_out
    assert sorted(set(result.candidates["file"])) == sorted(str(p) for p in paths)
    for p in paths:
        (fam,), _ = read_family_file(p, ref.nomenclature)
        mine = result.candidates.filter(pl.col("file") == str(p))
        ranking = rank_family(ref, fam)
        assert mine.sort("rank")["id"].to_list() == [c.id for c in ranking.candidates]


@pytest.fixture(scope="module")
def messy(tmp_path_factory, pool):
    """Simulated families with one problem each (and untouched ones), plus a malformed row."""
    df = family_frame(simulate_families(9, 21, SimOptions(siblings=3), pool=pool)).cast(pl.String)
    fids = df["family_id"].unique(maintain_order=True).to_list()
    rows = df.to_dicts()

    def edit(fid, pid, **changes):
        for r in rows:
            if r["family_id"] == fid and r["id"] == pid:
                r.update(changes)
                return
        raise AssertionError((fid, pid))

    edit(fids[0], "S1", age="abc")                                   # a bad cell
    edit(fids[1], "S2", A="A*99:99+A*01:01")                          # an unknown allele
    edit(fids[2], "S1", relation="patient")                           # two patients
    edit(fids[3], "S1", father_id="M")                                # pedigree: a mother as father
    father = next(r for r in rows if r["family_id"] == fids[4] and r["id"] == "F")
    mother = next(r for r in rows if r["family_id"] == fids[4] and r["id"] == "M")
    parental = set(father["A"].split("+")) | set(mother["A"].split("+"))
    novel = [a for a in pool.two_field["A"] if a not in parental][:2]
    edit(fids[4], "S1", A="+".join(novel), C=father["C"])            # a Mendelian conflict
    edit(fids[5], "S3", family_id="")                                 # a row without its family id
    path = tmp_path_factory.mktemp("messy") / "messy.csv"
    pl.DataFrame(rows, schema=df.schema).write_csv(path)
    with path.open("a") as fh:  # a malformed row: one cell too many
        fh.write(",".join(["FAMX", "Q1", "patient"] + [""] * (df.width - 2)) + "\n")
    return path, fids, df


def test_screen_row_accounting_on_a_file_with_bad_rows(ref, messy):
    path, fids, df = messy
    result = screen_files(ref, [path])
    n_rows = df.height + 1
    assert result.rows_in == n_rows
    assert result.rows_in == result.candidates_out + result.patients + result.rejected  # also checked inside
    rej = result.rejects
    # every row of a family with a problem is rejected; the untouched families are screened (a row without a
    # family id is rejected alone: no family can be named for it)
    bad_families = set(fids[:5])
    screened = set(result.candidates["family_id"])
    assert screened == set(fids) - bad_families
    rejected_rows = set(rej["row"].drop_nulls())
    for fid in fids[:5]:
        rows = {i + 1 for i, f in enumerate(df["family_id"]) if f == fid}
        assert rows <= rejected_rows, fid
    # the reasons are located: file, row, column
    by_row = {r["row"]: r for r in rej.to_dicts() if r["column"] == "age"}
    age_row = next(i + 1 for i, r in enumerate(df.iter_rows(named=True)) if r["family_id"] == fids[0] and r["id"] == "S1")
    assert by_row[age_row]["value"] == "abc" and by_row[age_row]["file"] == str(path)
    assert any("A*99:99" in (r["value"] or "") + r["message"] for r in rej.to_dicts())
    assert any("2 patients" in r["message"] for r in rej.to_dicts())
    assert any("segregation failed" in r["message"] for r in rej.filter(pl.col("family_id") == fids[3]).to_dicts())
    assert any("Mendelian conflict" in r["message"] for r in rej.filter(pl.col("family_id") == fids[4]).to_dicts())
    assert any("cells, the header has" in r["message"] for r in rej.to_dicts())
    assert any("empty family_id" in r["message"] for r in rej.to_dicts())
    assert fids[5] in screened and "S3" not in set(result.candidates.filter(pl.col("family_id") == fids[5])["id"])
    assert result.rejected == len(rejected_rows)
    # with --keep-conflicts the conflict family is ranked, as rank ranks it (with a warning)
    kept = screen_files(ref, [path], reject_conflicts=False)
    assert fids[4] in set(kept.candidates["family_id"])
    fams, _ = read_family_file(path, ref.nomenclature, strict=False)
    (fam,) = [f for f in fams if f.id == fids[4]]
    ranking = rank_family(ref, fam)
    mine = kept.candidates.filter(pl.col("family_id") == fids[4]).sort("rank")
    assert mine["id"].to_list() == [c.id for c in ranking.candidates]
    assert any("conflict" in (w or "").lower() or "likely" in (w or "") for w in mine["family_warnings"])


def test_screen_file_level_error_rejects_every_row(ref, tmp_path, families_csv):
    bad = tmp_path / "noid.csv"
    pl.read_csv(families_csv, infer_schema=False).drop("id").write_csv(bad)
    result = screen_files(ref, [bad, families_csv])
    n_bad = pl.read_csv(bad, infer_schema=False).height
    assert result.rejected == n_bad
    assert set(result.rejects["file"]) == {str(bad)}
    assert result.rows_in == result.candidates_out + result.patients + result.rejected


def test_screen_command(ref, families_csv, messy, tmp_path):
    path, _, _ = messy
    out, rej = tmp_path / "out.parquet", tmp_path / "rejects.csv"
    r = CliRunner().invoke(screen_cmd, [str(families_csv), str(path), "--out", str(out), "--rejects", str(rej)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("rows in:") and "candidates out" in last and "rejected" in last
    assert "\r" not in r.output  # no progress bar outside a terminal
    got = pl.read_parquet(out)
    assert got.schema["excluded_by"] == pl.List(pl.String) and got.height > 0
    assert pl.read_csv(rej).height > 0
    csv_out = tmp_path / "out.csv"
    r = CliRunner().invoke(screen_cmd, [str(families_csv), "--out", str(csv_out), "--profile", "nk-cell-therapy"])
    assert r.exit_code == 0, r.output
    assert pl.read_csv(csv_out, infer_schema=False).height == got.filter(pl.col("file") == str(families_csv)).height


# ------------------------------------------------------------------------------------------------ search

_TRICKY = {
    "A": ["A*01:01/A*01:02", "A*02", "A*02:01:01", "A*01:01:01:02N", "A2", "A*68:01", "A*01:01:01G", "A*24:02"],
    "C": ["C*07", "C*07:01/C*07:02", "C*05:01", "C*07:02"],
    "B": ["B*07", "B*44:02/B*44:03", "B*51:01", "B27", "B*07:02"],
    "DRB1": ["DRB1*03", "DRB1*11:01", "DRB1*15:01"],
    "DQB1": ["DQB1*06", "DQB1*05:01", "DQB1*06:02"],
    "DPB1": ["DPB1*04:01/DPB1*04:02", "DPB1*10:01", "DPB1*01:01", "DPB1*04:01", "DPB1*09:01"],
}
PATIENTS = {
    "typical": "A*02:01+A*24:02^C*07:01+C*07:02^B*07:02+B*44:02^DRB1*15:01+DRB1*04:01^DQB1*06:02+DQB1*03:02"
               "^DPB1*04:01+DPB1*02:01",
    "homozygous": "A*02:01+A*02:01^C*07:01+C*07:01^B*07:02+B*07:02^DRB1*15:01+DRB1*15:01^DQB1*06:02+DQB1*06:02"
                  "^DPB1*04:01+DPB1*04:01",
    "ambiguous, no DPB1": "A*02+A*01:01/A*01:02^C*07+C*07:02^B*07:02+B*44:02^DRB1*15:01+DRB1*04:01"
                          "^DQB1*06:02+DQB1*03:02",
    "null allele": "A*01:01:01:02N+A*24:02^C*07:01+C*07:02^B*08:01+B*27:05^DRB1*03:01+DRB1*04:01"
                   "^DQB1*02:01+DQB1*03:02^DPB1*09:01+DPB1*02:01",
}


def _registry(pool, n: int, seed: int, tricky: float = 0.4) -> pl.DataFrame:
    """Simulated donors, with a share of slots replaced by tricky typings (or blank)."""
    reg = simulate_registry(n, seed, pool=pool)
    rng = random.Random(seed)
    cols = {}
    for loc, names in _TRICKY.items():
        for i in (1, 2):
            c = f"{loc}_{i}"
            vals = reg[c].to_list()
            for k in range(n):
                r = rng.random()
                if r < tricky:
                    vals[k] = rng.choice(names)
                elif r < tricky + 0.05:
                    vals[k] = None
            cols[c] = pl.Series(c, vals, dtype=pl.String)
    return reg.with_columns(**cols)


def _read_registry(ref, pool, n: int, seed: int, which: str):
    """A simulated registry read in one batch, and the patient: (registry, patient, reader, batch, rows)."""
    reg = _registry(pool, n, seed)
    patient = person_from_gl("PT", PATIENTS[which], nomenclature=ref.nomenclature, relation="patient", sex="M",
                             cmv=False, abo="A")
    layout, _ = registry_layout(reg.columns)
    reader = RegistryReader(ref, layout)
    batch = reader.read(reg)
    return reg, patient, reader, batch, np.nonzero(~batch.error)[0]


@pytest.mark.parametrize("which", list(PATIENTS))
def test_fast_facts_equal_pair_facts(ref, pool, which):
    reg, patient, reader, batch, rows = _read_registry(ref, pool, 400, 3, which)
    assert len(rows) == reg.height
    fast = FastFacts(ref, patient, reader.slots).facts(batch, rows, set(FAST_COLUMNS))
    general = pair_facts(ref, pair_frame(people_frame([patient]), batch.people(rows)), None)
    for c in FAST_COLUMNS:
        assert fast[c].dtype == general[c].dtype, c
        assert fast[c].equals(general[c]), c


def _family_file_of(patient_row: dict, donors: pl.DataFrame, path: Path) -> Path:
    """The patient and the registry donors as one family file ('unrelated' relatives)."""
    loci = ("A", "C", "B", "DRB1", "DQB1", "DPB1")
    recs = [patient_row]
    for d in donors.iter_rows(named=True):
        rec = {"id": d["donor_id"], "relation": "unrelated", "sex": d["sex"], "age": str(d["age"]),
               "abo": d["abo"], "cmv": d["cmv"]}
        for loc in loci:
            rec[f"{loc}_1"], rec[f"{loc}_2"] = d[f"{loc}_1"], d[f"{loc}_2"]
        for g in GENES:
            rec[g] = None if d[g] is None else str(d[g])
        recs.append(rec)
    cols = ["id", "relation", "sex", "age", "abo", "cmv", *[f"{loc}_{i}" for loc in loci for i in (1, 2)], *GENES]
    pl.DataFrame([{c: r.get(c) for c in cols} for r in recs], schema={c: pl.String for c in cols}).write_csv(path)
    return path


def test_search_ranks_as_the_general_path_and_as_rank(ref, pool, tmp_path):
    reg = simulate_registry(40, 5, pool=pool)
    # the patient shares alleles with some donors, so that grades differ
    d0 = reg.row(3, named=True)
    gl = "^".join(f"{d0[f'{loc}_1']}+{reg.row(7, named=True)[f'{loc}_2']}"
                  for loc in ("A", "C", "B", "DRB1", "DQB1", "DPB1"))
    patient = person_from_gl("PT", gl, nomenclature=ref.nomenclature, relation="patient", sex="M", cmv=False,
                             abo="A", rh="+")
    path = tmp_path / "reg.parquet"
    reg.write_parquet(path)
    fast = search_registry(ref, patient, path, top=reg.height)
    general = search_registry(ref, patient, path, top=reg.height, force_general=True)
    assert fast.path == "fast" and general.path == "general"
    assert [c.id for c in fast.candidates] == [c.id for c in general.candidates]
    assert [c.summary for c in fast.candidates] == [c.summary for c in general.candidates]
    assert fast.candidates[0].id in (d0["donor_id"],)  # shares one haplotype's worth of alleles
    # the same donors as 'unrelated' relatives of a family, ranked by rank with the same rule file
    prow = {"id": "PT", "relation": "patient", "sex": "M", "age": "30", "abo": "A+", "cmv": "neg"}
    for loc in ("A", "C", "B", "DRB1", "DQB1", "DPB1"):
        prow[f"{loc}_1"], prow[f"{loc}_2"] = gl.split("^")[("A", "C", "B", "DRB1", "DQB1", "DPB1").index(loc)].split("+")
    fam_path = _family_file_of(prow, reg, tmp_path / "family.csv")
    (fam,), _ = read_family_file(fam_path, ref.nomenclature)
    ranking = rank_family(ref, fam, rules_path=UNRELATED)
    assert [c.id for c in ranking.candidates] == [c.id for c in fast.candidates]
    segregation_cols = {"shared_haplotypes", "hla_class", "class_all_loci", "class_by_descent", "class_partial",
                        "shared_labels", "class_evidence", "hla_class_reason"}
    by_id = {c.id: c for c in fast.candidates}
    for c in ranking.candidates:
        mine = by_id[c.id]
        assert (mine.rank, mine.eligible, mine.excluded_by) == (c.rank, c.eligible, c.excluded_by)
        for k, v in c.facts.items():
            if k not in segregation_cols and k != "relation":
                assert _plain(mine.facts.get(k)) == _plain(v), (c.id, k)


def test_streaming_search_in_small_batches_gives_the_same_best_donors(ref, pool, tmp_path):
    reg = _registry(pool, 1500, 11, tricky=0.3)
    path = tmp_path / "registry.parquet"
    reg.write_parquet(path)
    d = reg.row(100, named=True)
    gl = "^".join(f"{d[f'{loc}_1'] or d[f'{loc}_2'] or 'A*01:01'}+{d[f'{loc}_2'] or d[f'{loc}_1'] or 'A*01:01'}"
                  for loc in ("A", "C", "B", "DRB1")).replace("A*01:01+", "").replace("+A*01:01", "")
    patient = person_from_gl("PT", gl, nomenclature=ref.nomenclature, relation="patient", sex="F", cmv=True)
    seen = []
    small = search_registry(ref, patient, path, top=15, batch_size=200, progress=lambda r, b: seen.append(b))
    whole = search_registry(ref, patient, path, top=15, batch_size=10**7)
    assert small.batches == 8 and seen == list(range(1, 9)) and whole.batches == 1
    # each batch's time is reported (the bench reads them), within the search's own
    assert len(small.batch_seconds) == 8 and 0 < sum(small.batch_seconds) <= small.seconds
    assert [c.id for c in small.candidates] == [c.id for c in whole.candidates]
    assert small.facts.drop("rank").equals(whole.facts.drop("rank"))
    # and the best 15 of the whole registry, ranked in one piece by the general path
    layout, _ = registry_layout(reg.columns)
    reader = RegistryReader(ref, layout)
    batch = reader.read(reg)
    facts = pair_facts(ref, pair_frame(people_frame([patient]), batch.people()), None)
    rules = registry_rules("unrelated", None, dict(facts.schema))
    assert evaluate(facts, rules).head(15)["id"].to_list() == [c.id for c in small.candidates]
    # a CSV registry streams too
    csv_path = tmp_path / "registry.csv"
    reg.write_csv(csv_path)
    from_csv = search_registry(ref, patient, csv_path, top=15, batch_size=500)
    assert [c.id for c in from_csv.candidates] == [c.id for c in small.candidates]


@pytest.mark.parametrize("which", ["typical", "ambiguous, no DPB1"])
def test_fast_classes_group_donors_with_equal_facts(ref, pool, which):
    """The classes the search's prefilter computes the prefix on: equal class, equal value (every fast column)."""
    reg, patient, reader, batch, rows = _read_registry(ref, pool, 600, 4, which)
    ff = FastFacts(ref, patient, reader.slots)
    facts = ff.facts(batch, rows, set(FAST_COLUMNS))
    for c in FAST_COLUMNS:
        cls = ff.classes(batch, rows, {c})
        if c == "id":
            assert cls is None
            continue
        _, first, inv = np.unique(cls, return_index=True, return_inverse=True)
        assert facts[c].gather(first[inv.reshape(-1)]).equals(facts[c]), c
    # several columns at once: classes are finer than each column's
    cols = {"grade8_bi_min", "dpb1_tce", "donor_age", "donor_kir_b_content_score", "abo_relation"}
    cls = ff.classes(batch, rows, cols)
    _, first, inv = np.unique(cls, return_index=True, return_inverse=True)
    assert facts.select(sorted(cols))[first[inv.reshape(-1)]].equals(facts.select(sorted(cols)))


_ORDER = ["hla_8", "hla_10", "dpb1_tce", "hla_12", "donor_age", "donor_sex", "cmv", "abo", "kir_b_content"]


@pytest.mark.parametrize("first", ["hla_8", "dpb1_tce", "donor_age", "kir_b_content", "abo"])
def test_search_prefilter_keeps_the_best_of_the_general_path(ref, pool, tmp_path, first):
    """The search drops donors per class before computing their facts: its best N (and their facts) are the
    best N of the general pair facts of the whole registry ranked in one piece, whatever the first criterion;
    with ambiguous and blank typings, an exclusion (availability) and rejected rows."""
    reg = _registry(pool, 3000, 21, tricky=0.3)
    rng = random.Random(5)
    reg = reg.with_columns(
        pl.Series("available", [rng.choice(["yes", "no", None, "yes", "yes"]) for _ in range(reg.height)]),
        pl.when(pl.int_range(pl.len()) % 97 == 5).then(pl.lit("A*99:99")).otherwise(pl.col("A_1")).alias("A_1"),
    )
    path = tmp_path / "reg.parquet"
    reg.write_parquet(path)
    d = reg.row(100, named=True)
    loci = ("A", "C", "B", "DRB1", "DQB1", "DPB1")
    typical = dict(zip(loci, PATIENTS["typical"].split("^")))
    gl = "^".join(f"{d[f'{loc}_1'] or typical[loc].split('+')[0]}+{typical[loc].split('+')[1]}" for loc in loci)
    patient = person_from_gl("PT", gl, nomenclature=ref.nomenclature, relation="patient", sex="F", cmv=False,
                             abo="A", rh="+")
    order = [first] + [c for c in _ORDER if c != first]
    res = search_registry(ref, patient, path, top=25, batch_size=700, overrides={"criteria_order": order})
    assert res.path == "fast"
    layout, _ = registry_layout(reg.columns)
    batch = RegistryReader(ref, layout).read(reg)
    rows = np.nonzero(~batch.error)[0]
    assert (res.rows_in, res.rejected, res.ranked) == (reg.height, reg.height - len(rows), len(rows))
    facts = pair_facts(ref, pair_frame(people_frame([patient]), batch.people(rows)), None)
    rules = registry_rules("unrelated", None, dict(facts.schema), {"criteria_order": order})
    best = evaluate(facts, rules).head(25)
    assert best["id"].to_list() == [c.id for c in res.candidates]
    cols = [c for c in FAST_COLUMNS if c in res.facts.columns and c != "relation"]
    assert res.facts.select(cols).equals(best.select(cols))


@pytest.mark.parametrize("profile", ["haplo-hsct", "nk-cell-therapy"])
def test_search_with_rules_reading_other_columns_takes_the_general_path(ref, pool, tmp_path, profile):
    """The rules first compile against the fast columns; rules that read another column compile against the
    general pair facts and the search takes the general path, as when it is forced."""
    reg = simulate_registry(60, 3, pool=pool)
    path = tmp_path / "reg.parquet"
    reg.write_parquet(path)
    patient = person_from_gl("PT", "A*02:01+A*24:02^B*07:02+B*44:02", nomenclature=ref.nomenclature,
                             relation="patient")
    res = search_registry(ref, patient, path, profile=profile, top=5)
    forced = search_registry(ref, patient, path, profile=profile, top=5, force_general=True)
    assert res.path == "general"
    assert [c.id for c in res.candidates] == [c.id for c in forced.candidates]
    assert res.facts.equals(forced.facts)


def test_search_reads_the_three_hla_layouts_alike(ref, pool, tmp_path):
    """A_1/A_2 columns, one column per locus ('A*01:01+A*02:01'), or one GL column: the same answer."""
    reg = simulate_registry(150, 3, pool=pool)
    loci = ("A", "C", "B", "DRB1", "DQB1", "DPB1")
    slots = [f"{loc}_{i}" for loc in loci for i in (1, 2)]
    rest = pl.exclude([*slots, "donor_id"])
    single = reg.select("donor_id", *[(pl.col(f"{x}_1") + "+" + pl.col(f"{x}_2")).alias(x) for x in loci], rest)
    gl = reg.select("donor_id", pl.concat_str([pl.col(f"{x}_1") + "+" + pl.col(f"{x}_2") for x in loci],
                                              separator="^").alias("hla"), rest)
    paths = [tmp_path / "pairs.parquet", tmp_path / "single.parquet", tmp_path / "gl.csv"]
    reg.write_parquet(paths[0])
    single.write_parquet(paths[1])
    gl.write_csv(paths[2])
    d = reg.row(0, named=True)
    patient = person_from_gl("PT", "^".join(f"{d[f'{x}_1']}+{d[f'{x}_2']}" for x in loci),
                             nomenclature=ref.nomenclature, relation="patient")
    res = [search_registry(ref, patient, p, top=20) for p in paths]
    assert res[0].candidates[0].id == d["donor_id"]
    for r in res[1:]:
        assert [c.id for c in r.candidates] == [c.id for c in res[0].candidates]
        assert r.facts.equals(res[0].facts)


def test_search_batch_with_no_donor_that_could_enter(ref, pool, tmp_path, monkeypatch):
    """A batch whose every donor ranks after the best N already found is dropped whole (it used to fail)."""
    import haplomatch.search as search_mod

    reg = simulate_registry(300, 9, pool=pool)
    hla = [c for c in reg.columns if c.split("_")[0] in ("A", "C", "B", "DRB1", "DQB1", "DPB1")]
    first = reg.row(0, named=True)
    # the first 12 donors carry the patient's typing (12/12): no later, random donor can enter the best 5
    reg = reg.with_columns([pl.when(pl.int_range(pl.len()) < 12).then(pl.lit(first[c])).otherwise(pl.col(c))
                            .alias(c) for c in hla])
    path = tmp_path / "reg.parquet"
    reg.write_parquet(path)
    gl = "^".join(f"{first[f'{loc}_1']}+{first[f'{loc}_2']}" for loc in ("A", "C", "B", "DRB1", "DQB1", "DPB1"))
    patient = person_from_gl("PT", gl, nomenclature=ref.nomenclature, relation="patient", sex="F", cmv=False,
                             abo="A", rh="+")
    kept_sizes = []
    real = search_mod._prefilter

    def spy(*args):
        out = real(*args)
        kept_sizes.append(out.size)
        return out

    monkeypatch.setattr(search_mod, "_prefilter", spy)
    res = search_registry(ref, patient, path, top=5, batch_size=50)
    assert 0 in kept_sizes[1:]  # the case under test happened
    assert (res.rows_in, res.ranked, res.rejected, res.batches) == (300, 300, 0, 6)
    assert {c.id for c in res.candidates} <= set(reg["donor_id"].head(12).to_list())
    assert res.facts["grade12_bi"].to_list() == [12] * 5
    whole = search_registry(ref, patient, path, top=5, batch_size=10**6, force_general=True)
    assert [c.id for c in res.candidates] == [c.id for c in whole.candidates]
    # the fast facts of no donor: an empty table with the general path's columns and types
    layout, _ = registry_layout(reg.columns)
    reader = RegistryReader(ref, layout)
    batch = reader.read(reg)
    none = FastFacts(ref, patient, reader.slots).facts(batch, np.zeros(0, dtype=np.int64), set(FAST_COLUMNS))
    general = pair_facts(ref, pair_frame(people_frame([patient]), batch.people(np.arange(3))), None)
    assert none.height == 0 and none.schema == general.select(none.columns).schema


@pytest.fixture(scope="module")
def streamed(ref, pool, tmp_path_factory):
    """A registry with tricky typings, a few bad rows and two donors with the patient's own typing, the
    patient, and the whole registry ranked in one piece by the general path."""
    reg = _registry(pool, 200, 31, tricky=0.3)
    first = reg.row(0, named=True)
    hla = [f"{loc}_{i}" for loc in ("A", "C", "B", "DRB1", "DQB1", "DPB1") for i in (1, 2)]
    reg = reg.with_columns([pl.when(pl.int_range(pl.len()).is_in([0, 150])).then(pl.lit(first[c]))
                            .otherwise(pl.col(c)).alias(c) for c in hla])
    reg = reg.with_columns(pl.when(pl.int_range(pl.len()) % 53 == 7).then(pl.lit("A*99:99")).otherwise(pl.col("A_1"))
                           .alias("A_1"))
    path = tmp_path_factory.mktemp("streamed") / "reg.parquet"
    reg.write_parquet(path)
    gl = "^".join(f"{first[f'{loc}_1'] or 'DPB1*04:01'}+{first[f'{loc}_2'] or first[f'{loc}_1'] or 'DPB1*04:01'}"
                  for loc in ("A", "C", "B", "DRB1", "DQB1", "DPB1"))
    patient = person_from_gl("PT", gl, nomenclature=ref.nomenclature, relation="patient", sex="F", cmv=False,
                             abo="A", rh="+")
    batch = RegistryReader(ref, registry_layout(reg.columns)[0]).read(reg)
    facts = pair_facts(ref, pair_frame(people_frame([patient]), batch.people(np.nonzero(~batch.error)[0])), None)
    ranked = evaluate(facts, registry_rules("unrelated", None, dict(facts.schema)))["id"].to_list()
    return path, patient, ranked


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.integers(25, 120), top=st.integers(1, 12))
def test_streamed_best_n_are_the_best_n_of_the_whole_registry(ref, streamed, batch, top):
    """Whatever the batch size and N (batches in which no donor can enter included), the streamed best N
    are the first N of the whole registry ranked in one piece."""
    path, patient, ranked = streamed
    res = search_registry(ref, patient, path, top=top, batch_size=batch)
    assert [c.id for c in res.candidates] == ranked[:top]
    assert (res.rows_in, res.rejected) == (200, 4)


def test_search_rejects_unreadable_rows(ref, pool, tmp_path):
    reg = simulate_registry(50, 2, pool=pool)
    reg = reg.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("A*99:99")).otherwise(pl.col("A_1")).alias("A_1"),
        pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("X")).otherwise(pl.col("sex")).alias("sex"),
        pl.when(pl.int_range(pl.len()) == 8).then(pl.lit(None)).otherwise(pl.col("donor_id")).alias("donor_id"),
    )
    path = tmp_path / "reg.parquet"
    reg.write_parquet(path)
    patient = person_from_gl("PT", "A*02:01+A*24:02^B*07:02+B*44:02", nomenclature=ref.nomenclature,
                             relation="patient")
    res = search_registry(ref, patient, path, top=5)
    assert (res.rows_in, res.rejected, res.ranked) == (50, 3, 47)
    assert res.rejects["row"].to_list() == [4, 6, 9]
    reasons = res.rejects["reason"].to_list()
    assert "A*99:99" in reasons[0] and "[sex]" in reasons[1] and "empty donor id" in reasons[2]


def test_search_rejects_csv_rows_with_a_wrong_number_of_cells(ref, pool, tmp_path):
    """A short row (polars would pad it: the donor would lose its KIR genes) and a long row (polars would
    refuse the file) are rejected for that alone; blank lines are skipped (rows are numbered without them, as
    in family files); every other row is ranked as without them."""
    reg = simulate_registry(60, 6, pool=pool)
    clean = tmp_path / "clean.csv"
    reg.write_csv(clean)
    lines = clean.read_text().splitlines()
    header = lines[0].split(",")
    short = ",".join(lines[4].split(",")[:-3])  # donor 4 without its last three KIR cells
    long = lines[9] + ",1"  # donor 9 with one cell too many
    short2 = ",".join(lines[30].split(",")[:-1])  # donor 30, after the blank lines, without its last cell
    body = (lines[1:4] + [short] + lines[5:9] + [long] + lines[10:20] + ["", ""] + lines[20:30] + [short2]
            + lines[31:] + [""])
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join([lines[0], *body]) + "\n")
    patient = person_from_gl("PT", "A*02:01+A*24:02^B*07:02+B*44:02", nomenclature=ref.nomenclature,
                             relation="patient")
    res = search_registry(ref, patient, path, top=60, batch_size=7)
    assert (res.rows_in, res.rejected, res.ranked) == (60, 3, 57)
    assert res.rejects["row"].to_list() == [4, 9, 30]
    assert res.rejects["donor_id"].to_list() == ["D00000004", "D00000009", "D00000030"]
    reasons = res.rejects["reason"].to_list()
    assert reasons == [f"row has {len(header) - 3} cells, the header has {len(header)} (a missing or extra separator?)",
                       f"row has {len(header) + 1} cells, the header has {len(header)} (a missing or extra separator?)",
                       f"row has {len(header) - 1} cells, the header has {len(header)} (a missing or extra separator?)"]
    # the other donors: as from the clean file without donors 4, 9 and 30
    kept = reg.filter(~pl.col("donor_id").is_in(["D00000004", "D00000009", "D00000030"]))
    kept_path = tmp_path / "kept.parquet"
    kept.write_parquet(kept_path)
    ref_res = search_registry(ref, patient, kept_path, top=60)
    assert [c.id for c in res.candidates] == [c.id for c in ref_res.candidates]
    assert [c.summary for c in res.candidates] == [c.summary for c in ref_res.candidates]


def test_search_sniffs_the_csv_separator_as_the_family_reader_does(ref, pool, tmp_path):
    reg = simulate_registry(40, 12, pool=pool)
    patient = person_from_gl("PT", "A*02:01+A*24:02^B*07:02+B*44:02", nomenclature=ref.nomenclature,
                             relation="patient")
    reg.write_parquet(tmp_path / "reg.parquet")
    want = search_registry(ref, patient, tmp_path / "reg.parquet", top=40)
    for name, sep in (("semicolon.csv", ";"), ("tab.csv", "\t"), ("tab.tsv", "\t")):
        reg.write_csv(tmp_path / name, separator=sep)
        got = search_registry(ref, patient, tmp_path / name, top=40)
        assert (got.rows_in, got.rejected) == (40, 0), name
        assert [c.summary for c in got.candidates] == [c.summary for c in want.candidates], name


def test_search_where_no_row_reads_says_why_and_writes_the_rejects(ref, pool, tmp_path):
    reg = simulate_registry(30, 8, pool=pool).with_columns(pl.lit("A*99:99").alias("A_1"))
    path = tmp_path / "bad.csv"
    reg.write_csv(path)
    patient = person_from_gl("PT", "A*02:01+A*24:02", nomenclature=ref.nomenclature, relation="patient")
    with pytest.raises(NoDonorReadError) as e:
        search_registry(ref, patient, path, top=5)
    probs = e.value.problems
    assert "none of the registry's 30 rows could be read" in probs[0].message
    assert [p.row for p in probs[1:21]] == list(range(1, 21)) and "A*99:99" in probs[1].message
    assert probs[-1].message == "and 10 more rows"
    assert e.value.rejects.height == 30
    rej = tmp_path / "rej.csv"
    r = CliRunner().invoke(search_cmd, ["--patient", "A*02:01+A*24:02", "--donors", str(path), "--rejects", str(rej)])
    assert r.exit_code == 2 and "none of the registry's 30 rows could be read" in r.output
    assert pl.read_csv(rej)["row"].to_list() == list(range(1, 31))
    # a header and no row; no donor id column; an empty file
    head_only = tmp_path / "head.csv"
    head_only.write_text(path.read_text().splitlines()[0] + "\n")
    with pytest.raises(InputError, match="no donor rows"):
        search_registry(ref, patient, head_only)
    no_id = tmp_path / "noid.csv"
    reg.drop("donor_id").head(3).write_csv(no_id)
    with pytest.raises(InputError, match="no donor id column"):
        search_registry(ref, patient, no_id)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    r = CliRunner().invoke(search_cmd, ["--patient", "A*02:01+A*24:02", "--donors", str(empty)])
    assert r.exit_code == 2 and "the registry file is empty" in r.output and "Traceback" not in r.output


def test_search_command(ref, pool, tmp_path):
    import json

    reg = simulate_registry(200, 4, pool=pool)
    path = tmp_path / "donors.parquet"
    reg.write_parquet(path)
    d = reg.row(0, named=True)
    gl = "^".join(f"{d[f'{loc}_1']}+{d[f'{loc}_2']}" for loc in ("A", "C", "B", "DRB1", "DQB1", "DPB1"))
    out = tmp_path / "best.csv"
    r = CliRunner().invoke(search_cmd, ["--patient", gl, "--patient-sex", "F", "--patient-cmv", "neg",
                                        "--patient-kir", "2DL1,2DL3,3DL1,2DS4", "--donors", str(path), "--top", "5",
                                        "--format", "json", "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["candidates"][0]["id"] == d["donor_id"] and doc["rows_in"] == 200
    assert doc["candidates"][0]["summary"].startswith("unrelated; HLA 8/8 bidirectional; ")  # no family class
    assert all(e["source"] for c in doc["candidates"] for e in c["explanation"])
    assert pl.read_csv(out).height == 5
    r = CliRunner().invoke(search_cmd, ["--patient", gl, "--donors", str(path), "--top", "3"])
    assert r.exit_code == 0 and "rows in: 200" in r.output.splitlines()[-1]



def test_search_command_reads_the_patients_antibody_report(ref, pool, tmp_path):
    """``search --antibodies``: the donor the patient has DSA against is flagged with the antibody and its MFI
    and keeps its place (the unrelated rules flag DSA, Spellman 2010, and rank on HLA first), on the fast
    path; a report naming another patient is refused unless --patient-id names it; with --patients, a patient
    the report does not name is searched without DSA and told so."""
    import json

    reg = simulate_registry(200, 4, pool=pool)
    path = tmp_path / "donors.parquet"
    reg.write_parquet(path)
    d = reg.row(0, named=True)
    target = d["DPB1_1"]  # the patient, donor 0's typing with another DPB1, lacks it
    gl = _gl_of(d).rsplit("^", 1)[0] + f"^DPB1*04:01+{d['DPB1_2']}"
    assert target not in (d["DPB1_2"], "DPB1*04:01")  # (seeded: a mismatch the patient has no allele of)
    ab = tmp_path / "ab.csv"
    ab.write_text(f"patient_id,specificity,mfi\nPT,{target},8000\n")
    base = ["--patient", gl, "--donors", str(path), "--top", "3", "--format", "json"]
    plain = json.loads(CliRunner().invoke(search_cmd, base, catch_exceptions=False).stdout)
    r = CliRunner().invoke(search_cmd, [*base, "--antibodies", str(ab), "--patient-id", "PT"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [c["id"] for c in doc["candidates"]] == [c["id"] for c in plain["candidates"]]
    best = doc["candidates"][0]
    assert best["id"] == d["donor_id"] and "DSA high_risk 8000 MFI" in best["summary"]
    (flag,) = [e for e in best["explanation"] if e["rule"] == "dsa-present"]
    assert target in flag["text"] and "Spellman S et al. Blood 2010" in flag["source"]
    assert not any("antibody report" in w and "not checked" in w for w in doc["warnings"])
    # the profile flags DSA and does not rank on them: said with the ranking (JSON too), not only on stderr
    assert any(w.startswith("an antibody report was given: the unrelated rules flag donors") for w in doc["warnings"])
    assert any("no antibody report" in w for w in plain["warnings"])
    r = CliRunner().invoke(search_cmd, [*base, "--antibodies", str(ab)])
    assert r.exit_code == 2 and "names patient PT" in r.output and "give --patient-id" in r.output
    pts = tmp_path / "patients.csv"
    pts.write_text(f'id,hla\nPT,"{gl}"\nPU,"{gl}"\n')
    r = CliRunner().invoke(search_cmd, ["--patients", str(pts), "--donors", str(path), "--top", "3", "--format",
                                        "json", "--antibodies", str(ab)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    pt, pu = json.loads(r.stdout)
    assert "DSA high_risk 8000 MFI" in pt["candidates"][0]["summary"]
    assert "DSA" not in pu["candidates"][0]["summary"]
    assert any("has no antibodies for patient PU: donor-specific antibodies were not checked" in w
               for w in pu["warnings"])


def _gl_of(d: dict, other: str = "") -> str:
    """Donor ``d``'s typing as a GL string; with ``other`` (a GL string), its second allele at each locus."""
    loci = ("A", "C", "B", "DRB1", "DQB1", "DPB1")
    second = [x.split("+")[1] for x in other.split("^")] if other else [d[f"{loc}_2"] for loc in loci]
    return "^".join(f"{d[f'{loc}_1']}+{b}" for loc, b in zip(loci, second))


def test_search_many_patients_gives_each_patient_s_own_search(ref, pool, tmp_path):
    """``search --patients FILE`` (the registry read once, kept in one process or two): for each patient, what
    ``search --patient`` gives (best donors, summaries, facts, explanations), and one --out file for all."""
    import json

    reg = simulate_registry(300, 6, pool=pool)
    path = tmp_path / "donors.csv"  # a registry file: the shares are cut once its rows are counted
    reg.write_csv(path)
    a, b = reg.row(0, named=True), reg.row(7, named=True)
    other = ("A*02:01+A*24:02^C*07:02+C*03:04^B*07:02+B*44:02^DRB1*15:01+DRB1*04:01^DQB1*06:02+DQB1*03:02"
             "^DPB1*04:01+DPB1*02:01")
    patients = [("PT1", _gl_of(a), "F", "O+", "neg"), ("PT2", _gl_of(b, other), "M", "A-", "pos")]
    rows = ["id,sex,abo,cmv,hla"] + [f'{pid},{sex},{abo},{cmv},"{gl}"' for pid, gl, sex, abo, cmv in patients]
    pts = tmp_path / "patients.csv"
    pts.write_text("\n".join(rows) + "\n")
    singles = []
    for pid, gl, sex, abo, cmv in patients:
        r = CliRunner().invoke(search_cmd, ["--patient", gl, "--patient-id", pid, "--patient-sex", sex,
                                            "--patient-abo", abo, "--patient-cmv", cmv, "--donors", str(path),
                                            "--top", "4", "--format", "json"], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        singles.append(json.loads(r.stdout))
    assert singles[0]["candidates"][0]["id"] == a["donor_id"]  # the patient's own typing: its donor first
    for workers in ("1", "2"):
        out = tmp_path / f"best{workers}.csv"
        r = CliRunner().invoke(search_cmd, ["--patients", str(pts), "--donors", str(path), "--top", "4",
                                            "--workers", workers, "--format", "json", "--out", str(out)],
                               catch_exceptions=False)
        assert r.exit_code == 0, r.output
        docs = json.loads(r.stdout)
        assert [d["patient"] for d in docs] == ["PT1", "PT2"]
        for got, want in zip(docs, singles):
            assert got["candidates"] == want["candidates"]
            assert (got["rows_in"], got["rejected"]) == (300, 0)
        facts = pl.read_csv(out)
        assert facts["patient_id"].to_list() == ["PT1"] * 4 + ["PT2"] * 4
        assert facts["donor_id"].to_list() == [c["id"] for d in docs for c in d["candidates"]]


def test_search_patients_file_problems_are_named(ref, pool, tmp_path):
    """A patients file's problems by file, row and column, all at once; options that contradict it refused."""
    reg = simulate_registry(20, 2, pool=pool)
    path = tmp_path / "donors.parquet"
    reg.write_parquet(path)
    pts = tmp_path / "patients.csv"
    pts.write_text("id,relation,sex,A\nPT1,patient,F,A*02:01+A*24:02\nPT2,patient,M,A*02:01+A*99:99\n"
                   "PT1,patient,F,A*01:01+A*24:02\nS1,brother,M,A*01:01+A*02:01\n")
    r = CliRunner().invoke(search_cmd, ["--patients", str(pts), "--donors", str(path)])
    assert r.exit_code == 2
    lines = [x for x in r.output.splitlines() if x.startswith("Error:")]
    # data rows numbered from 1, as in family files
    assert any("patients.csv:2 [A]" in x and "A*99:99" in x for x in lines)
    assert any("patients.csv:3 [id]" in x and "'PT1' is also on row 1" in x for x in lines)
    assert any("patients.csv:4 [relation]" in x and "patients only: this row is a brother" in x for x in lines)
    gl = "A*02:01+A*24:02"
    for args, said in ((["--patient", gl, "--patients", str(pts)], "give one patient"), ([], "give one patient"),
                       (["--patients", str(pts), "--patient-sex", "F"], "--patient-sex: with --patients"),
                       (["--patient", gl, "--workers", "2"], "--workers is for --patients")):
        r = CliRunner().invoke(search_cmd, [*args, "--donors", str(path)])
        assert r.exit_code == 2 and said in r.output, (args, r.output)


def test_an_antibody_report_the_rules_do_not_rank_on_is_said(ref, pool, tmp_path):
    """The unrelated profile flags DSA (Spellman 2010) and does not rank on them: given an antibody report, a
    search says so and flags the donor the patient has DSA against; a profile that ranks on them says nothing
    of the kind; rules that read no DSA fact say that."""
    from haplomatch.antibodies import read_antibodies

    reg = simulate_registry(30, 3, pool=pool)
    path = tmp_path / "donors.parquet"
    reg.write_parquet(path)
    d = reg.row(0, named=True)
    patient = person_from_gl("PT", _gl_of(d), nomenclature=ref.nomenclature, relation="patient", sex="F")
    other = reg.row(1, named=True)["B_1"]  # donor 1's allele, which the patient lacks
    ab = tmp_path / "ab.csv"
    ab.write_text(f"patient_id,specificity,mfi\nPT,{other},9000\n")
    abs_, _ = read_antibodies(ab, ref.nomenclature)
    said = "an antibody report was given: the unrelated rules flag donors with donor-specific antibodies but do not rank"
    res = search_registry(ref, patient, path, antibodies=abs_, top=30)
    assert any(w.startswith(said) for w in res.warnings)
    donor1 = reg["donor_id"][1]
    c1 = next(c for c in res.candidates if c.id == donor1)
    assert "DSA high_risk 9000 MFI" in c1.summary
    (flag,) = [r for r in c1.explanation if r.rule == "dsa-present"]
    assert flag.effect == "flag" and "Spellman S et al. Blood 2010" in flag.source
    assert f"against {donor1}: {other}" in flag.text and "9000" in flag.text
    assert not any(r.rule == "dsa-present" for c in res.candidates if c.id != donor1 for r in c.explanation)
    without = search_registry(ref, patient, path, top=30)  # the flag changes nothing in the order
    assert [c.id for c in without.candidates] == [c.id for c in res.candidates]
    # the order reads no DSA fact: the fast path decides it, and the best's facts read the report as the
    # general path's do
    general = search_registry(ref, patient, path, antibodies=abs_, top=30, force_general=True)
    assert (res.path, general.path) == ("fast", "general")
    assert [c.id for c in general.candidates] == [c.id for c in res.candidates]
    dsa = ["id", "dsa_max_mfi", "dsa_category", "dsa"]
    assert res.facts.select(dsa).equals(general.facts.select(dsa))
    assert res.facts.filter(pl.col("id") == donor1)["dsa_max_mfi"].item() == 9000
    with pytest.raises(InputError, match=r"names patient PT \(report row 1\), who is not the patient here \(PX\)"):
        search_registry(ref, replace(patient, id="PX"), path, antibodies=abs_, top=3)
    haplo = search_registry(ref, patient, path, antibodies=abs_, top=30, profile="haplo-hsct")
    assert not any("donor-specific antibodies but do not rank" in w or "read no donor-specific" in w
                   for w in haplo.warnings)
    assert next(c for c in haplo.candidates if c.id == donor1).excluded_by == ("dsa-high-risk",)
    import yaml

    doc = yaml.safe_load(Path(UNRELATED).read_text())
    doc["rules"] = [r for r in doc["rules"] if r["id"] != "dsa-present"]
    bare = tmp_path / "no-dsa.yaml"
    bare.write_text(yaml.safe_dump(doc, allow_unicode=True))
    res = search_registry(ref, patient, path, antibodies=abs_, top=30, rules_path=bare)
    assert any(w.startswith("an antibody report was given, but the unrelated rules read no donor-specific-antibody "
                            "fact") for w in res.warnings)


def test_unrelated_rules_cite_every_rule(ref):
    import yaml

    doc = yaml.safe_load(Path(UNRELATED).read_text())
    assert doc["profile"] == "unrelated"
    for rule in doc["rules"]:
        assert rule["source"] and rule["evidence"] in ("✔", "◐", "✖"), rule["id"]
    order = doc["settings"]["criteria_order"]["value"]
    assert order[:4] == ["hla_8", "hla_10", "dpb1_tce", "hla_12"]


def test_nk_facts_computed_elsewhere_give_the_same_table(ref):
    """``pair_facts(..., nk_elsewhere=...)`` (a kept-open registry's best: NK facts from a share process, HLA
    facts here) is the one-process table column for column: the neuroblastoma family, with its segregation
    and its antibody report (the DSA columns read both parts)."""
    from haplomatch.antibodies import read_antibodies
    from haplomatch.nk import nk_pair_facts
    from haplomatch.pairfacts import FactSettings, family_pairs, segregation_frame
    from haplomatch.segregation import segregate

    examples = Path(__file__).resolve().parents[1] / "examples"
    (family,), _ = read_family_file(examples / "neuroblastoma-family.csv", ref.nomenclature)
    abs_, _ = read_antibodies(examples / "neuroblastoma-antibodies.csv", ref.nomenclature)
    seg = segregation_frame(family, segregate(family, ref.nomenclature))
    pairs, fs = family_pairs(family), FactSettings()
    calls = []

    def elsewhere() -> pl.DataFrame:
        calls.append(1)
        return nk_pair_facts(ref, pairs, fs.nk)

    one = pair_facts(ref, pairs, seg, abs_, fs)
    split = pair_facts(ref, pairs, seg, abs_, fs, nk_elsewhere=elsewhere)
    assert calls == [1] and split.columns == one.columns and split.equals(one)
    assert one["dsa_max_mfi"].max() == 6500  # the father's anti-B27 (examples/neuroblastoma-antibodies.csv)


def test_slot_tables_looked_up_by_name_are_the_filtered_rows(ref):
    """``slotmemo.per_slot``: a request of a few slots (looked up by name) gives the rows, in the order, that a
    pass over the whole table gives; only slots never seen are computed, once, a slot without a row too."""
    from haplomatch import slotmemo

    calls: list[list[str]] = []

    def compute(new: list[str]) -> pl.DataFrame:  # a slot "X…" has no row (as an unknown allele in some tables)
        calls.append(list(new))
        kept = [x for x in new if not x.startswith("X")]
        return pl.DataFrame({"slot": kept, "n": [len(x) for x in kept]}, schema={"slot": pl.String, "n": pl.Int64})

    many = [f"S{k}" for k in range(400)] + ["X0"]
    assert slotmemo.per_slot("test-lookup", ref, pl.Series(many), compute, 1).height == 400  # > 256: the pass
    few = ["S7", "X1", "T1", "S3", "X0", "T1", None, ""]
    got = slotmemo.per_slot("test-lookup", ref, few, compute, 1)
    assert calls[1:] == [["X1", "T1"]]  # only the slots never seen, each once
    assert got["slot"].to_list() == ["S3", "S7", "T1"]  # table order, as the pass gives them
    table = slotmemo._MEMOS[("test-lookup", id(ref), id(ref.nomenclature), (1,))].table
    assert got.equals(table.filter(pl.col("slot").is_in(["S7", "X1", "T1", "S3", "X0"])))
    assert slotmemo.per_slot("test-lookup", ref, ["X1", "S3"], compute, 1)["slot"].to_list() == ["S3"]
    assert len(calls) == 2
