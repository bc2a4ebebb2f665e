"""The family and registry simulator: seeds reproduce, files read back clean, the truth is Mendelian."""

from __future__ import annotations

from collections import Counter

import polars as pl
import pytest
from click.testing import CliRunner

from haplomatch import simulate as sim
from haplomatch.familyfile import read_family_file
from haplomatch.kir import GENES
from haplomatch.simulate import (
    KIR_CEN, KIR_TEL, LOCI, AllelePool, SimOptions, family_frame, intervals, simulate_families,
    simulate_registry, truth_frame, write_families, write_registry,
)

FULL = SimOptions(siblings=3, half_siblings=2, patient_children=2, grandparents=True, recombination_rate=0.3,
                  recombination_interval=None, error_rate=0.05, low_resolution_rate=0.2, homozygous_rate=0.1,
                  shared_rate=0.1)


@pytest.fixture(scope="module")
def pool(ref):
    return AllelePool.from_reference(ref)


@pytest.fixture(scope="module")
def nom(ref):
    return ref.nomenclature


# -- seeds -------------------------------------------------------------------------------------------------
def test_same_seed_same_families_and_family_i_does_not_depend_on_n(pool):
    a = simulate_families(6, 11, FULL, pool=pool)
    assert a == simulate_families(6, 11, FULL, pool=pool)
    assert a[:3] == simulate_families(3, 11, FULL, pool=pool)
    assert a != simulate_families(6, 12, FULL, pool=pool)
    assert [f.id for f in a] == [f"FAM{i:07d}" for i in range(1, 7)]


@pytest.mark.parametrize("ext", ["csv", "tsv", "parquet"])
def test_same_seed_byte_identical_files(pool, tmp_path, ext):
    for k in (1, 2):
        fams = simulate_families(8, 5, FULL, pool=pool)
        write_families(fams, tmp_path / f"f{k}.{ext}", truth=tmp_path / f"t{k}.{ext}")
    assert (tmp_path / f"f1.{ext}").read_bytes() == (tmp_path / f"f2.{ext}").read_bytes()
    assert (tmp_path / f"t1.{ext}").read_bytes() == (tmp_path / f"t2.{ext}").read_bytes()


def test_worker_processes_do_not_change_the_output(pool, tmp_path, monkeypatch):
    monkeypatch.setattr(sim, "_FAMILY_BATCH", 4)  # 30 families → 8 batches over 2 processes
    sim.write_simulated_families(30, 9, tmp_path / "one.parquet", FULL, truth=tmp_path / "t1.csv", pool=pool)
    sim.write_simulated_families(30, 9, tmp_path / "two.parquet", FULL, truth=tmp_path / "t2.csv", pool=pool,
                                 workers=2)
    assert (tmp_path / "one.parquet").read_bytes() == (tmp_path / "two.parquet").read_bytes()
    assert (tmp_path / "t1.csv").read_bytes() == (tmp_path / "t2.csv").read_bytes()


# -- the files read back clean -----------------------------------------------------------------------------
READ_BACK = {
    "default": SimOptions(),
    "everything": FULL,
    "siblings only": SimOptions(siblings=4, missing_parents="both"),
    "one parent untyped": SimOptions(missing_parents="one", missing_mode="untyped", half_siblings=1),
    "no kir, class I": SimOptions(kir=False, loci=("B", "A", "C")),
}


@pytest.mark.parametrize("ext", ["csv", "tsv", "parquet"])
@pytest.mark.parametrize("name", list(READ_BACK))
def test_simulated_files_read_back_with_no_problem(pool, nom, tmp_path, name, ext):
    options = READ_BACK[name]
    fams = simulate_families(3, 21, options, pool=pool)
    path = tmp_path / f"fam.{ext}"
    rows = write_families(fams, path)
    read, problems = read_family_file(path, nom)
    assert problems == []
    assert rows == sum(len(f.in_file) for f in fams)
    assert [f.id for f in read] == [f.id for f in fams]
    for got, fam in zip(read, fams):
        assert [p.id for p in got.people] == [p.id for p in fam.in_file]
        assert got.patient.id == "P"
        for person in fam.in_file:
            q = got.person(person.id)
            assert q.relation == person.relation and q.sex == person.sex and q.age == person.age
            assert q.father_id == person.file_father_id and q.mother_id == person.file_mother_id
            typed = {loc: cell for loc, cell in zip(fam.loci, person.cells) if cell is not None}
            assert {loc: t.text for loc, t in q.hla.items()} == typed
            if fam.kir and person.typed:
                assert {g for g in GENES if q.kir[g].present} == person.kir_genes
            elif fam.kir:
                assert all(q.kir[g].present is None for g in GENES)


def test_missing_parents_drop_or_untyped(pool):
    dropped = simulate_families(5, 3, SimOptions(missing_parents="both"), pool=pool)
    for fam in dropped:
        assert {p.id for p in fam.in_file}.isdisjoint({"F", "M"})
        assert all(p.file_father_id is None and p.file_mother_id is None for p in fam.in_file)
    untyped = simulate_families(5, 3, SimOptions(missing_parents="father", missing_mode="untyped"), pool=pool)
    for fam in untyped:
        f = fam.person("F")
        assert f.in_file and not f.typed and f.cells == (None,) * len(LOCI) and f.errors == ()
        assert fam.patient.file_father_id == "F"
    frame = family_frame(untyped)
    assert frame.filter(pl.col("id") == "F").select(pl.col("A").is_null().all(), pl.col("KIR2DL1").is_null().all()).row(0) == (True, True)


def test_missing_rate_applies_to_a_share_of_families(pool):
    fams = simulate_families(200, 4, SimOptions(siblings=1, missing_parents="one", missing_rate=0.5), pool=pool)
    n_missing = sum(len([p for p in f.in_file if p.id in ("F", "M")]) == 1 for f in fams)
    assert 60 < n_missing < 140


# -- Mendelian truth -------------------------------------------------------------------------------------
def _check_mendelian(fam) -> int:
    """Every child carries one haplotype of each parent, switching only at recorded crossovers."""
    by_id = {p.id: p for p in fam.people}
    ivs = fam.intervals
    meioses = 0
    for child in fam.people:
        for side, parent_id, hap in (("paternal", child.father, child.paternal),
                                     ("maternal", child.mother, child.maternal)):
            if parent_id is None:
                assert hap.origin is None and set(hap.founder) == {child.names[0 if side == "paternal" else 1]}
                continue
            meioses += 1
            parent = by_id[parent_id]
            haps = dict(zip(parent.names, (parent.paternal, parent.maternal)))
            assert set(hap.origin) <= set(parent.names)
            for i, label in enumerate(hap.origin):  # the allele and its descent come from that haplotype
                assert hap.alleles[i] == haps[label].alleles[i]
                assert hap.founder[i] == haps[label].founder[i]
            switches = [(ivs[i], hap.origin[i], hap.origin[i + 1]) for i in range(len(ivs))
                        if hap.origin[i] != hap.origin[i + 1]]
            recorded = [(c.interval, c.before, c.after) for c in child.crossovers if c.side == side]
            assert switches == recorded
            assert all(c.parent == parent_id for c in child.crossovers if c.side == side)
            if fam.kir:
                assert hap.kir_origin in parent.names and hap.kir == haps[hap.kir_origin].kir
    return meioses


def test_children_carry_one_haplotype_of_each_parent(pool):
    fams = simulate_families(150, 8, FULL, pool=pool)
    meioses = sum(_check_mendelian(f) for f in fams)
    assert meioses == 150 * 2 * (1 + 3 + 2 + 2 + 2)  # patient, siblings, half-siblings, children, both parents
    assert any(f.crossovers for f in fams)


def test_without_recombination_each_child_has_whole_parental_haplotypes(pool):
    fams = simulate_families(50, 1, SimOptions(siblings=4, grandparents=True), pool=pool)
    for fam in fams:
        _check_mendelian(fam)
        assert fam.crossovers == ()
        for p in fam.people:
            if p.father == "F":
                assert len(set(p.paternal.origin)) == 1 and p.paternal.origin[0] in ("a", "b")
                assert len(set(p.maternal.origin)) == 1 and p.maternal.origin[0] in ("c", "d")


def test_recombination_appears_at_the_requested_interval(pool):
    fams = simulate_families(40, 2, SimOptions(recombination_rate=1.0, recombination_interval="B-DRB1"), pool=pool)
    for fam in fams:
        _check_mendelian(fam)
        for p in fam.people:
            if p.father is not None:  # every meiosis crossed over, once, between B and DRB1
                assert [(c.side, c.interval) for c in p.crossovers] == [("paternal", "B-DRB1"), ("maternal", "B-DRB1")]
                i = LOCI.index("B")
                assert p.paternal.origin[i] != p.paternal.origin[i + 1]
    rate = 0.25
    fams = simulate_families(300, 3, SimOptions(recombination_rate=rate), pool=pool)
    xo = [c for f in fams for c in f.crossovers]
    assert {c.interval for c in xo} == {"DQB1-DPB1"}
    meioses = 300 * 2 * 4
    assert abs(len(xo) / meioses - rate) < 5 * (rate * (1 - rate) / meioses) ** 0.5
    spread = simulate_families(300, 3, SimOptions(recombination_rate=0.5, recombination_interval=None), pool=pool)
    assert {c.interval for f in spread for c in f.crossovers} == set(intervals(LOCI))
    mapped = simulate_families(60, 3, SimOptions(recombination_map=(("A-C", 1.0), ("DRB1-DQB1", 1.0))), pool=pool)
    for fam in mapped:
        for p in fam.people:
            if p.father is not None:
                assert [c.interval for c in p.crossovers] == ["A-C", "DRB1-DQB1"] * 2


def test_truth_frame_records_labels_ibd_and_crossovers(pool):
    fams = simulate_families(30, 6, FULL, pool=pool)
    t = truth_frame(fams)
    assert t.height == sum(len(f.people) for f in fams) * (len(LOCI) + 1)
    assert set(t["locus"].unique()) == set(LOCI) | {"KIR"}
    assert t.filter(pl.col("relation") == "patient")["ibd_with_patient"].unique().to_list() == [2]
    sibs = t.filter(pl.col("relation").is_in(["brother", "sister"]) & (pl.col("locus") != "KIR"))
    assert set(sibs["paternal_label"].unique()) <= {"a", "b"}
    assert set(sibs["maternal_label"].unique()) <= {"c", "d"}
    parents = t.filter(pl.col("relation").is_in(["father", "mother"]) & (pl.col("locus") != "KIR"))
    assert parents["ibd_with_patient"].min() >= 1
    for fam in fams:
        for p in fam.people:
            rows = t.filter((pl.col("family_id") == fam.id) & (pl.col("id") == p.id) & (pl.col("locus") != "KIR"))
            assert rows["ibd_with_patient"].to_list() == list(fam.ibd(p.id, "P"))
            xo = ";".join(c.interval for c in p.crossovers if c.side == "paternal") or None
            assert rows["paternal_crossover"].unique().to_list() == [xo]
            assert rows["written"].to_list() == (list(p.cells) if p.in_file else [None] * len(LOCI))


def test_hla_identical_by_descent_means_same_genotype_without_errors(pool):
    fams = simulate_families(200, 13, SimOptions(siblings=4), pool=pool)
    seen = 0
    for fam in fams:
        pt = fam.patient
        for p in fam.people:
            if p.relation in ("brother", "sister") and min(fam.ibd(p.id, "P")) == 2:
                seen += 1
                assert all(Counter(p.genotype(i)) == Counter(pt.genotype(i)) for i in range(len(LOCI)))
                assert all(Counter(a.split("+")) == Counter(b.split("+")) for a, b in zip(p.cells, pt.cells))
    assert 100 < seen < 300  # a quarter of 800 siblings


# -- typing errors, resolution, homozygosity --------------------------------------------------------------
def _clean(cell: str, a1: str, a2: str) -> str:
    """The cell that would have been written without errors, at the resolution the cell was written."""
    low = ":" not in cell
    return f"{a1.split(':')[0]}+{a2.split(':')[0]}" if low else f"{a1}+{a2}"


def test_error_injection_changes_exactly_the_recorded_cells(pool):
    fams = simulate_families(60, 17, SimOptions(error_rate=0.15, low_resolution_rate=0.3, siblings=3), pool=pool)
    n_err = n_low = 0
    for fam in fams:
        for p in fam.people:
            if not p.typed:
                continue
            recorded = {}
            for e in p.errors:
                recorded.setdefault(e.locus, {})[e.slot] = e
            for i, loc in enumerate(fam.loci):
                cell = p.cells[i]
                clean = _clean(cell, *p.genotype(i))
                n_low += ":" not in cell
                assert (cell != clean) == (loc in recorded)
                if loc in recorded:
                    n_err += len(recorded[loc])
                    written, original = cell.split("+"), clean.split("+")
                    for slot in (1, 2):
                        if slot in recorded[loc]:
                            e = recorded[loc][slot]
                            assert (e.original, e.written) == (original[slot - 1], written[slot - 1])
                            assert e.written not in original and e.written.split("*")[0] == loc
                        else:
                            assert written[slot - 1] == original[slot - 1]
                    assert Counter(written) != Counter(original)  # the genotype changed, not only the order
    assert n_err > 50 and n_low > 100
    t = truth_frame(fams).filter(pl.col("typed") & (pl.col("locus") != "KIR"))
    corrupted = {(r["family_id"], r["id"], r["locus"]) for r in t.filter(pl.col("error_slots").is_not_null()).iter_rows(named=True)}
    assert corrupted == {(f.id, e.person, e.locus) for f in fams for e in f.errors}


def test_no_errors_no_low_resolution_by_default(pool):
    for fam in simulate_families(20, 1, pool=pool):
        assert fam.errors == ()
        for p in fam.people:
            if p.typed:
                assert p.cells == tuple(f"{a}+{b}" for a, b in zip(p.paternal.alleles, p.maternal.alleles))


def test_alleles_are_expressed_two_field_names_of_the_release(pool, alleles):
    expressed = set(alleles.filter(pl.col("suffix") == "")["name2"])
    fams = simulate_families(20, 2, FULL, pool=pool)
    drawn = {a for f in fams for p in f.people for h in (p.paternal, p.maternal) for a in h.alleles}
    assert drawn <= expressed
    assert all(len(x.split("*")[1]) <= 3 for names in pool.one_field.values() for x in names)


def test_homozygous_rate_one_makes_homozygous_founders(pool):
    for fam in simulate_families(10, 4, SimOptions(homozygous_rate=1.0), pool=pool):
        for pid in ("F", "M"):
            p = fam.person(pid)
            assert p.paternal.alleles == p.maternal.alleles


def test_shared_rate_makes_founders_share_alleles(pool):
    fams = simulate_families(50, 4, SimOptions(shared_rate=0.5), pool=pool)
    shared = sum(len(set(f.person("F").genotype(i)) & set(f.person("M").genotype(i))) > 0
                 for f in fams for i in range(len(LOCI)))
    assert shared > 50  # uniform draws alone would almost never share


# -- people and attributes ------------------------------------------------------------------------------
def test_relations_sexes_and_ages_are_consistent(pool):
    from haplomatch.family import RELATION_SEX

    for fam in simulate_families(40, 5, FULL, pool=pool):
        by_id = {p.id: p for p in fam.people}
        assert [p.relation for p in fam.people].count("patient") == 1
        for p in fam.people:
            assert p.sex == RELATION_SEX.get(p.relation, p.sex)
            assert 0 <= p.age < 120
            for par in (p.father, p.mother):
                if par is not None:
                    assert by_id[par].age >= p.age + 11
            if p.father:
                assert by_id[p.father].sex == "M" and by_id[p.mother].sex == "F"
            assert p.abo[:-1] in ("A", "B", "AB", "O") and p.abo[-1] in "+-"
            assert p.fcgr3a in ("VV", "VF", "FF")
        assert not fam.patient.available


def test_kir_haplotypes_follow_rules_gene_contents(pool):
    a_haplotype = {"KIR3DL3", "KIR2DL3", "KIR2DP1", "KIR2DL1", "KIR3DP1", "KIR2DL4", "KIR3DL1", "KIR2DS4",
                   "KIR3DL2"}  # RULES.md 3.1
    assert set(KIR_CEN["cA01"] + KIR_TEL["tA01"]) == a_haplotype
    framework = {"KIR3DL3", "KIR3DP1", "KIR2DL4", "KIR3DL2"}
    b_genes = {"KIR2DL2", "KIR2DL5A", "KIR2DL5B", "KIR3DS1", "KIR2DS1", "KIR2DS2", "KIR2DS3", "KIR2DS5"}
    for c in KIR_CEN:
        for t in KIR_TEL:
            genes = set(KIR_CEN[c] + KIR_TEL[t])
            assert framework <= genes and genes <= set(GENES)
            assert bool(genes & b_genes) == ((c, t) != ("cA01", "tA01"))
    fams = simulate_families(300, 7, SimOptions(siblings=0), pool=pool)
    founders = [p for f in fams for p in f.people if p.id in ("F", "M")]
    aa = sum(not (p.kir_genes & b_genes) for p in founders) / len(founders)
    assert 0.2 < aa < 0.4  # tuned to ~30 % A/A


# -- registry ---------------------------------------------------------------------------------------------
def test_registry_columns_counts_and_values(pool):
    df = simulate_registry(1234, 3, pool=pool)
    hla_cols = [f"{loc}_{k}" for loc in LOCI for k in (1, 2)]
    assert df.columns == ["donor_id", *hla_cols, *GENES, "age", "sex", "abo", "cmv"]
    assert df.height == 1234 and df["donor_id"].n_unique() == 1234
    for loc in LOCI:
        assert set(df[f"{loc}_1"]) | set(df[f"{loc}_2"]) <= set(pool.two_field[loc])
    assert all(df[g].is_in([0, 1]).all() for g in GENES)
    assert all(df[g].min() == 1 for g in ("KIR3DL3", "KIR3DP1", "KIR2DL4", "KIR3DL2"))
    assert df["age"].min() >= 18 and df["age"].max() <= 60
    assert set(df["sex"]) == {"M", "F"} and set(df["cmv"]) == {"pos", "neg"}
    assert set(df["abo"]) <= {f"{g}{r}" for g in ("A", "B", "AB", "O") for r in "+-"}
    assert df.equals(simulate_registry(1234, 3, pool=pool))
    assert not df.equals(simulate_registry(1234, 4, pool=pool))
    assert simulate_registry(0, 3, pool=pool).columns == df.columns


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_registry_written_in_chunks_reads_back_equal(pool, tmp_path, monkeypatch, ext):
    monkeypatch.setattr(sim, "REGISTRY_CHUNK", 100)
    df = simulate_registry(250, 8, pool=pool)
    assert df["donor_id"].to_list() == [f"D{i:08d}" for i in range(1, 251)]
    path = tmp_path / f"reg.{ext}"
    assert write_registry(250, 8, path, pool=pool) == 250
    back = pl.read_parquet(path) if ext == "parquet" else pl.read_csv(path, schema=df.schema)
    assert back.equals(df)
    write_registry(250, 8, tmp_path / f"again.{ext}", pool=pool)
    assert path.read_bytes() == (tmp_path / f"again.{ext}").read_bytes()


# -- options and command line -----------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    {"recombination_interval": "DQB1-A"}, {"error_rate": 1.5}, {"siblings": -1}, {"loci": ("A", "X")},
    {"missing_parents": "grandma"}, {"recombination_map": (("A-C", 2.0),)},
])
def test_bad_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        SimOptions(**kwargs)


def test_cli_families_and_registry_are_reproducible(tmp_path):
    from haplomatch.cli_simulate import simulate_grp

    runner = CliRunner()
    for k in (1, 2):
        r = runner.invoke(simulate_grp, ["families", "--n", "5", "--seed", "4", "--out", str(tmp_path / f"f{k}.csv"),
                                         "--siblings", "2", "--recombination-rate", "0.5",
                                         "--recombination-interval", "DQB1-DPB1", "--error-rate", "0.1",
                                         "--truth", str(tmp_path / f"t{k}.parquet"), "--workers", "1"])
        assert r.exit_code == 0, r.output
        r = runner.invoke(simulate_grp, ["registry", "--n", "50", "--seed", "4", "--out", str(tmp_path / f"r{k}.parquet")])
        assert r.exit_code == 0, r.output
    for name in ("f{}.csv", "t{}.parquet", "r{}.parquet"):
        assert (tmp_path / name.format(1)).read_bytes() == (tmp_path / name.format(2)).read_bytes()
    fam = pl.read_csv(tmp_path / "f1.csv")
    assert fam["family_id"].n_unique() == 5 and fam.height == 5 * 5  # patient, parents, 2 siblings
    truth = pl.read_parquet(tmp_path / "t1.parquet")
    assert set(truth["paternal_crossover"].drop_nulls().unique()) <= {"DQB1-DPB1"}
    assert pl.read_parquet(tmp_path / "r1.parquet").height == 50


def test_cli_refuses_unknown_extension_and_interval(tmp_path):
    from haplomatch.cli_simulate import simulate_grp

    r = CliRunner().invoke(simulate_grp, ["families", "--n", "2", "--out", str(tmp_path / "x.txt")])
    assert r.exit_code == 2 and "csv" in r.output
    r = CliRunner().invoke(simulate_grp, ["families", "--n", "2", "--out", str(tmp_path / "x.csv"),
                                          "--recombination-interval", "A-B"])
    assert r.exit_code == 2
