"""Prepared registries (``haplomatch prepare``): a search of the prepared registry gives what a search of the
file gives (donors, facts, ranks, rejected rows and their reasons), reads no cell by hash, and is refused when
the registry file changed since it was prepared."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from haplomatch.cli import main
from haplomatch.errors import InputError
from haplomatch.persons import person_from_gl
from haplomatch.prepared import MANIFEST, open_prepared, prepare_registry
from haplomatch.search import search_registry
from haplomatch.simulate import AllelePool, simulate_registry

LOCI = ("A", "C", "B", "DRB1", "DQB1", "DPB1")
#: typings a registry holds beside plain two-field names: allele lists, first-field and serology names,
#: a null allele, a G group, an unknown allele (rejected)
TRICKY = {
    "A": ["A*01:01/A*01:02", "A*02", "A*01:01:01:02N", "A2", "A*02:01:01G", "A*99:99"],
    "B": ["B*07", "B*44:02/B*44:03", "B27"],
    "DPB1": ["DPB1*04:01/DPB1*04:02", "DPB1*10:01"],
}


@pytest.fixture(scope="module")
def pool(ref):
    return AllelePool.from_reference(ref)


def _messy(pool, n: int, seed: int) -> pl.DataFrame:
    reg = simulate_registry(n, seed, pool=pool)
    rng = random.Random(seed)
    cols = {}
    for loc, names in TRICKY.items():
        for i in (1, 2):
            vals = reg[f"{loc}_{i}"].to_list()
            for k in range(n):
                if rng.random() < 0.3:
                    vals[k] = rng.choice(names + [None])
            cols[f"{loc}_{i}"] = pl.Series(vals, dtype=pl.String)
    sex = ["X" if k % 41 == 5 else s for k, s in enumerate(reg["sex"].to_list())]
    return reg.with_columns(**cols, sex=pl.Series(sex, dtype=pl.String))


_DEFAULT = {"A": "A*02:01", "C": "C*07:02", "B": "B*07:02", "DRB1": "DRB1*15:01", "DQB1": "DQB1*06:02",
            "DPB1": "DPB1*04:01"}


def _gl(reg: pl.DataFrame, row: int = 0) -> str:
    """Donor ``row``'s typing as a GL string, where its cells are names that read (else a default allele)."""
    d = reg.row(row, named=True)

    def cell(x: str, i: int) -> str:
        v = d[f"{x}_{i}"]
        return v if v and "*" in v and "99:99" not in v else _DEFAULT[x]

    return "^".join(f"{cell(x, 1)}+{cell(x, 2)}" for x in LOCI)


def _patient(ref, reg: pl.DataFrame, row: int = 0):
    gl = _gl(reg, row)
    return person_from_gl("PT", gl, nomenclature=ref.nomenclature, relation="patient", sex="F", cmv=False,
                          abo="A", rh="+")


def _same(a, b) -> None:
    assert (a.rows_in, a.ranked, a.rejected) == (b.rows_in, b.ranked, b.rejected)
    assert [c.id for c in a.candidates] == [c.id for c in b.candidates]
    assert [c.summary for c in a.candidates] == [c.summary for c in b.candidates]
    assert a.facts.equals(b.facts)
    assert a.rejects.equals(b.rejects)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_prepared_search_gives_the_answer_of_the_file(ref, pool, tmp_path, suffix):
    """Prepared in parts of 37 rows, searched in batches of 50 (neither the file's): the same best donors,
    facts, rejected rows and reasons as the file."""
    reg = _messy(pool, 300, 11)
    path = tmp_path / f"reg{suffix}"
    reg.write_parquet(path) if suffix == ".parquet" else reg.write_csv(path)
    prepared = prepare_registry(path, tmp_path / "reg.prepared", batch_size=37)
    assert prepared.rows == 300 and len(prepared.parts) == 9
    patient = _patient(ref, reg)
    whole = search_registry(ref, patient, path, top=25, batch_size=1000)
    assert whole.rejected > 10  # the unknown allele and sex X: the case under test
    for batch in (50, 1000):
        _same(search_registry(ref, patient, tmp_path / "reg.prepared", top=25, batch_size=batch), whole)


def test_prepared_search_reads_no_cell_by_hash(ref, pool, tmp_path, monkeypatch):
    """The point of preparing: the search gathers integers; the per-row hashing of cells is not run."""
    import haplomatch.search as search_mod

    reg = _messy(pool, 120, 3)
    path = tmp_path / "reg.parquet"
    reg.write_parquet(path)
    prepare_registry(path, tmp_path / "p")
    patient = _patient(ref, reg)
    before = search_registry(ref, patient, path, top=5)

    def no_hashing(*args, **kw):
        raise AssertionError("a cell was hashed")

    monkeypatch.setattr(search_mod, "_intern", no_hashing)
    with pytest.raises(AssertionError, match="hashed"):
        search_registry(ref, patient, path, top=5)
    _same(search_registry(ref, patient, tmp_path / "p", top=5), before)


def test_prepared_csv_rows_with_a_wrong_number_of_cells_and_blank_lines(ref, pool, tmp_path):
    """A short row, a long row and blank lines: rejected with the file's reasons and row numbers."""
    reg = simulate_registry(40, 6, pool=pool)
    clean = tmp_path / "clean.csv"
    reg.write_csv(clean)
    lines = clean.read_text().splitlines()
    short = ",".join(lines[4].split(",")[:-3])
    body = lines[1:4] + [short] + lines[5:9] + [lines[9] + ",1"] + lines[10:20] + ["", ""] + lines[20:]
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join([lines[0], *body]) + "\n")
    prepare_registry(path, tmp_path / "p", batch_size=7)
    patient = _patient(ref, reg, 12)
    res = search_registry(ref, patient, tmp_path / "p", top=40, batch_size=3)  # the bad rows in later batches
    assert res.rejects["row"].to_list() == [4, 9]
    assert res.rejects["reason"][0].startswith(f"row has {len(lines[0].split(',')) - 3} cells")
    _same(res, search_registry(ref, patient, path, top=40, batch_size=9))


def test_prepared_kir_columns_read_as_numbers_in_one_part_and_as_text_in_another(ref, pool, tmp_path):
    """Integer KIR columns are read as a number per row where a batch holds only 0/1, as text where it holds
    another value (a 2 here): one dictionary holds both kinds, and the answer is the file's."""
    reg = simulate_registry(60, 4, pool=pool)
    kir = [c for c in reg.columns if c.upper().startswith("KIR")]
    assert kir
    reg = reg.with_columns([pl.col(c).cast(pl.Int64) for c in kir])
    reg = reg.with_columns(pl.when(pl.int_range(pl.len()) == 45).then(2).otherwise(pl.col(kir[0])).alias(kir[0]))
    path = tmp_path / "reg.parquet"
    reg.write_parquet(path)
    p = prepare_registry(path, tmp_path / "p", batch_size=20)
    d = pl.read_parquet(tmp_path / "p" / p.dicts["\x00kir"])
    assert d.columns == ["v", "int"] and d["int"].null_count() < d.height and d["v"].null_count() < d.height
    patient = _patient(ref, reg)
    _same(search_registry(ref, patient, tmp_path / "p", top=60, batch_size=25),
          search_registry(ref, patient, path, top=60, batch_size=20))


def test_prepared_registry_of_a_changed_file_is_refused_and_prepared_again(ref, pool, tmp_path):
    reg = simulate_registry(30, 2, pool=pool)
    path = tmp_path / "reg.parquet"
    reg.write_parquet(path)
    out = tmp_path / "p"
    prepare_registry(path, out)
    patient = _patient(ref, reg)
    reg.head(20).write_parquet(path)
    os.utime(path, ns=(1, 1))  # a different modification time, whatever the clock's resolution
    with pytest.raises(InputError, match="changed since it was prepared") as e:
        search_registry(ref, patient, out, top=5)
    assert "haplomatch prepare" in e.value.problems[0].fix
    prepare_registry(path, out)  # replaces the prepared registry
    assert search_registry(ref, patient, out, top=5).rows_in == 20


def test_prepared_registry_whose_file_is_gone_is_searched_with_a_warning(ref, pool, tmp_path):
    reg = simulate_registry(30, 2, pool=pool)
    path = tmp_path / "reg.parquet"
    reg.write_parquet(path)
    prepare_registry(path, tmp_path / "p")
    patient = _patient(ref, reg)
    before = search_registry(ref, patient, path, top=5)
    path.unlink()
    res = search_registry(ref, patient, tmp_path / "p", top=5)
    assert [c.id for c in res.candidates] == [c.id for c in before.candidates]
    assert any("no longer there" in w for w in res.warnings)


def test_prepared_registry_refusals(ref, pool, tmp_path):
    reg = simulate_registry(10, 2, pool=pool)
    path = tmp_path / "reg.parquet"
    reg.write_parquet(path)
    patient = _patient(ref, reg)
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="not a registry file nor a prepared registry"):
        search_registry(ref, patient, tmp_path / "plain", top=5)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x.txt").write_text("mine")
    with pytest.raises(InputError, match="not a prepared registry: not overwritten"):
        prepare_registry(path, tmp_path / "taken")
    assert (tmp_path / "taken" / "x.txt").read_text() == "mine"
    out = tmp_path / "p"
    p = prepare_registry(path, out)
    (out / p.parts[0]).unlink()
    with pytest.raises(InputError, match="incomplete"):
        search_registry(ref, patient, out, top=5)
    prepare_registry(path, out)
    m = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps(m | {"format": "haplomatch prepared registry, format 0"}))
    with pytest.raises(InputError, match="another format"):
        open_prepared(out)
    (out / MANIFEST).write_text(json.dumps({k: v for k, v in m.items() if k != "source"}))
    with pytest.raises(InputError, match="manifest.json is incomplete"):
        open_prepared(out)
    (out / MANIFEST).write_text(json.dumps(m | {"items": {"A_1": "i0"}}))
    with pytest.raises(InputError, match="another version"):
        search_registry(ref, patient, out, top=5)
    assert not [x for x in tmp_path.iterdir() if x.name.startswith(".")]  # no temporary directory left


def test_prepare_and_search_commands(ref, pool, tmp_path):
    reg = _messy(pool, 80, 5)
    path = tmp_path / "reg.parquet"
    reg.write_parquet(path)
    out = tmp_path / "reg.prepared"
    r = CliRunner().invoke(main, ["prepare", str(path), "--out", str(out)])
    assert r.exit_code == 0, r.output
    # 12 HLA columns (6 dictionaries: a locus's two share one), age, sex, abo, cmv, and the KIR genes as one
    assert r.output.startswith(f"prepared 80 rows of {path} into {out}: 17 columns read as 11 dictionaries (")
    values = open_prepared(out).dictionaries()
    for x in LOCI:  # a locus's dictionary: its two columns' distinct cells, blank included
        assert sorted(values[f"{x}_1"], key=str) == sorted(set(reg[f"{x}_1"].to_list() + reg[f"{x}_2"].to_list()),
                                                           key=str)
    assert values["sex"].count("X") == 1
    gl = _gl(reg)
    runs = [CliRunner().invoke(main, ["search", "--patient", gl, "--donors", str(p), "--top", "5",
                                      "--format", "json"]) for p in (path, out)]
    assert [x.exit_code for x in runs] == [0, 0], runs[1].output
    docs = [json.loads(x.stdout) for x in runs]
    for doc in docs:
        doc.pop("seconds")
    # the output names what was searched: the file, or the prepared registry, when and from what
    assert docs[0].pop("registry") == str(path)
    said = docs[1].pop("registry")
    assert said.startswith(f"{out} (prepared 20") and f"from {path.resolve()}, 80 rows)" in said
    assert docs[0] == docs[1]
    assert docs[0]["rows_in"] == 80 and docs[0]["rejected"] > 0
    missing = CliRunner().invoke(main, ["prepare", str(tmp_path / "none.parquet"), "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "registry file not found" in missing.output
    typo = CliRunner().invoke(main, ["search", "--patient", gl, "--donors", str(tmp_path / "reg.prepred")])
    assert typo.exit_code == 2 and "reg.prepred: registry file not found" in typo.output


@pytest.mark.parametrize("kind", ["file", "prepared"])
def test_open_registry_serves_many_searches_with_the_answers_of_the_file(ref, pool, tmp_path, monkeypatch, kind):
    """An OpenRegistry is read once; each patient's search gives what a search of the file gives, without
    reading a row again."""
    import haplomatch.search as search_mod
    from haplomatch.compat import CompatSettings
    from haplomatch.errors import HaplomatchError
    from haplomatch.pairfacts import FactSettings

    reg = _messy(pool, 200, 21)
    path = tmp_path / "reg.parquet"
    reg.write_parquet(path)
    where = path if kind == "file" else prepare_registry(path, tmp_path / "p", batch_size=64).path
    opened = search_mod.OpenRegistry(ref, where, batch_size=64)
    assert opened.rows == 200 and len(opened.kept) == 4
    patients = [_patient(ref, reg, row) for row in (0, 7, 130)]
    expected = [search_registry(ref, p, path, top=15, batch_size=64) for p in patients]

    def no_reading(*args, **kw):
        raise AssertionError("rows read again")

    monkeypatch.setattr(search_mod._Opened, "batches", no_reading)
    for p, want in zip(patients, expected):
        _same(search_registry(ref, p, opened, top=15), want)
    with pytest.raises(HaplomatchError, match="other fact settings"):
        search_registry(ref, patients[0], opened, settings=FactSettings(compat=CompatSettings(level="antigen")))


def test_people_table_of_a_few_rows_is_the_whole_table_s_rows(ref, pool):
    """``_Batch.people`` builds a few rows (the best donors of a batch) from Python values, many rows column
    by column: the same table, types included (HLA slots, attributes, KIR genes, ids)."""
    from haplomatch.search import RegistryReader, registry_layout

    reg = _messy(pool, 300, 8)
    batch = RegistryReader(ref, registry_layout(reg.columns)[0]).read(reg)
    whole = batch.people(np.arange(300))
    few = np.array([299, 3, 41, 3, 150], dtype=np.int64)
    got = batch.people(few)
    assert got.schema == whole.schema
    assert got.equals(whole[few.tolist()])
    assert got["id"].to_list() == [reg["donor_id"][i] for i in few.tolist()]
    assert got["DPB1_1"].null_count() < 5 and got["sex"].null_count() < 5  # real values, not only nulls


def test_open_registry_keeps_compiled_rules_per_rule_file_version(ref, pool, tmp_path):
    """An opened registry compiles the rules once for its next patients; a rule file of the user's that changed
    on disk, other settings (--set) or an antibody report are not served from what was kept."""
    from haplomatch.rulefiles import rules_path
    from haplomatch.search import OpenRegistry

    reg = simulate_registry(20, 1, pool=pool)
    path = tmp_path / "reg.parquet"
    reg.write_parquet(path)
    mine = tmp_path / "mine.yaml"
    mine.write_text(rules_path("unrelated.yaml").read_text())
    opened = OpenRegistry(ref, path)
    key = opened.rules_key("unrelated", mine, None, False, None)
    search_registry(ref, _patient(ref, reg), opened, rules_path=mine)
    assert list(opened.rules_cache) == [key]
    os.utime(mine, ns=(1, 1))
    assert opened.rules_key("unrelated", mine, None, False, None) != key
    assert opened.rules_key("unrelated", None, None, False, None) != opened.rules_key(
        "unrelated", None, {"age_limit": 40}, False, None)
    assert opened.rules_key("unrelated", None, None, False, antibodies=[]) is None


def test_prepared_csv_read_by_the_csv_module_and_a_gl_column(ref, tmp_path):
    """A CSV with a quote out of place (read by Python's csv module) and HLA as one GL column: prepared in
    parts of 2 rows, the same donors and rejected rows, with the same reasons, as the file."""
    path = tmp_path / "gl.csv"
    path.write_text('donor_id,hla,sex\nD1,"A*02:01+A*24:02^B*07:02+B*44:02",F\nD2,A*0"1:01+A*02:01,M\n'
                    'D3,"A*02:01+A*01:01",X\nD4,"A*02:01+A*24:02^B*07:02+B*08:01",M\n')
    prepare_registry(path, tmp_path / "p", batch_size=2)
    patient = person_from_gl("PT", "A*02:01+A*24:02^B*07:02+B*44:02", nomenclature=ref.nomenclature,
                             relation="patient")
    res = search_registry(ref, patient, tmp_path / "p", top=5)
    _same(res, search_registry(ref, patient, path, top=5))
    assert [c.id for c in res.candidates] == ["D1", "D4"]
    assert res.rejects["row"].to_list() == [2, 3]
    assert res.rejects["reason"][1] == "[sex] sex not understood (use M or F)"


def test_open_registry_in_shares_gives_the_answers_of_the_file(ref, pool, tmp_path):
    """A prepared registry kept open in three processes (shares cut inside batches of 64, at rows 67 and 133):
    each patient's search gives what a search of the file gives: the same best donors, facts, counts, and
    rejected rows numbered as in the file, from every share. (A registry file in shares, whose rows are counted
    before the other processes start: ``test_search_many_patients_gives_each_patient_s_own_search``, CSV.)"""
    from haplomatch.search import OpenRegistry

    reg = _messy(pool, 200, 21)
    path = tmp_path / "reg.parquet"
    reg.write_parquet(path)
    where = prepare_registry(path, tmp_path / "p", batch_size=64).path
    patients = [_patient(ref, reg, row) for row in (0, 130)]
    expected = [search_registry(ref, p, path, top=15, batch_size=64) for p in patients]
    with OpenRegistry(ref, where, batch_size=64, workers=3) as opened:
        bounds = [opened.share] + [w.share[:2] for w in opened.workers]
        assert bounds == [(0, 67), (67, 133), (133, 200)]
        assert opened.rows == 200 and sum(b.n for b in opened.kept) == 67
        for p, want in zip(patients, expected):
            got = search_registry(ref, p, opened, top=15)
            _same(got, want)
            rows = got.rejects["row"].to_list()
            assert min(rows) <= 67 and 133 < max(rows)  # rejected rows came from the first and the last share
            assert got.worker_peak_mb and got.worker_peak_mb > 50  # a process with polars and the release
            assert "read into memory in 3 shares, one per process" in got.registry
    assert opened.workers == ()
    from haplomatch.errors import HaplomatchError

    closed = r"opened in shares and closed \(this process holds rows 1 to 67 of 200\)"
    with pytest.raises(HaplomatchError, match=closed):  # not a search of the first share alone
        search_registry(ref, patients[0], opened)


def test_open_registry_in_shares_when_a_share_has_no_donor_that_reads(ref, tmp_path):
    """The first share's donors all rejected (an unknown allele): the ranking comes from the other share, and
    every row is accounted for."""
    from haplomatch.search import OpenRegistry

    rows = ["donor_id,A_1,A_2,B_1,B_2,sex"]
    rows += [f"D{k},A*99:99,A*02:01,B*07:02,B*44:02,F" for k in range(3)]
    rows += ["D3,A*02:01,A*24:02,B*07:02,B*44:02,F", "D4,A*01:01,A*24:02,B*07:02,B*08:01,M",
             "D5,A*02:01,A*03:01,B*07:02,B*44:02,M"]
    path = tmp_path / "reg.csv"
    path.write_text("\n".join(rows) + "\n")
    patient = person_from_gl("PT", "A*02:01+A*24:02^B*07:02+B*44:02", nomenclature=ref.nomenclature,
                             relation="patient", sex="F")
    want = search_registry(ref, patient, path)
    with OpenRegistry(ref, path, workers=2) as opened:
        got = search_registry(ref, patient, opened)
    _same(got, want)
    assert (got.rows_in, got.ranked, got.rejected) == (6, 3, 3)
    assert [c.id for c in got.candidates] == ["D3", "D5", "D4"]  # 0, 1 and 2 A+B mismatches
    assert got.rejects["row"].to_list() == [1, 2, 3] and "A*99:99" in got.rejects["reason"][0]


def test_a_refusal_pickles_whole():
    """A refusal raised in another process reaches the caller with its problems (file, row, column)."""
    import pickle

    from haplomatch.errors import UnknownAlleleError

    e = pickle.loads(pickle.dumps(InputError.one("unknown allele", file="reg.csv", row=3, column="A_1")))
    assert type(e) is InputError and str(e) == "error: reg.csv:3 [A_1]: unknown allele"
    assert (e.problems[0].row, e.problems[0].column) == (3, "A_1")
    u = pickle.loads(pickle.dumps(UnknownAlleleError("A*99:99", ["A*99:01"])))
    assert (u.name, u.suggestions) == ("A*99:99", ("A*99:01",))
