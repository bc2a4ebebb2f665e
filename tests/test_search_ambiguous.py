"""Registry search on very ambiguous typings (1-field names, XX codes, serology, broad antigens, allele lists):
the fast facts count each renamed row of two ambiguous donor slots on a reduced set of keys
(``FastFacts._reduced``); they must equal the general ``pair_facts`` for every column, whatever the
patient (ambiguous too, null allele, untyped locus), and at every comparison level."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest

from haplomatch.compat import CompatSettings
from haplomatch.pairfacts import FactSettings, pair_facts
from haplomatch.persons import pair_frame, people_frame, person_from_gl
from haplomatch.search import FAST_COLUMNS, FastFacts, RegistryReader, registry_layout
from haplomatch.simulate import AllelePool, simulate_registry

_VAGUE = {
    "A": ["A*02", "A2", "A*02:XX", "A*02:01/A*02:05", "A*24", "A9", "A*01:01/A*01:02/A*24:02", "A*02:01",
          "A*01:01:01:02N", "A*24:02", "A*68", "A*03/A*11"],
    "C": ["C*07", "Cw7", "C*07:01/C*07:02", "C*07:02", "C*05", "C*04:01"],
    "B": ["B*07", "B5", "B*44:02/B*44:03", "B*51", "B27", "B*07:02", "B*15", "B*44"],
    "DRB1": ["DRB1*03", "DR15", "DRB1*11:01", "DRB1*15", "DRB1*04", "DR4"],
    "DQB1": ["DQB1*06", "DQ6", "DQB1*05:01", "DQB1*06:02", "DQB1*03"],
    "DPB1": ["DPB1*04:01/DPB1*04:02", "DPB1*04", "DPB1*01:01", "DPB1*04:01", "DPB1*02"],
}
PATIENTS = {
    "typed": "A*02:01+A*24:02^C*07:01+C*07:02^B*07:02+B*44:02^DRB1*15:01+DRB1*04:01^DQB1*06:02+DQB1*03:02"
             "^DPB1*04:01+DPB1*02:01",
    "ambiguous": "A*02+A*24:02/A*24:03^C*07+C*07:02^B*07+B*44^DRB1*15+DRB1*04:01^DQB1*06+DQB1*03:02",
    "null allele": "A*01:01:01:02N+A*02^C*07:01+C*07:02^B*08:01+B*27:05^DRB1*03:01+DRB1*04:01"
                   "^DQB1*02:01+DQB1*03:02^DPB1*04+DPB1*02:01",
}


@pytest.fixture(scope="module")
def registry(ref) -> pl.DataFrame:
    pool = AllelePool.from_reference(ref)
    reg = simulate_registry(500, 9, pool=pool)
    rng = random.Random(9)
    cols = {}
    for loc, names in _VAGUE.items():
        for i in (1, 2):
            c = f"{loc}_{i}"
            vals = reg[c].to_list()
            for k in range(reg.height):
                r = rng.random()
                if r < 0.6:
                    vals[k] = rng.choice(names)
                elif r < 0.65:
                    vals[k] = None
            cols[c] = pl.Series(c, vals, dtype=pl.String)
    return reg.with_columns(**cols)


@pytest.mark.parametrize("compat", [{}, {"level": "antigen"}, {"homozygous_count": 2}, {"null_alleles": "allele"}],
                         ids=["default", "antigen", "homozygous twice", "null alleles as alleles"])
@pytest.mark.parametrize("which", list(PATIENTS))
def test_fast_facts_on_ambiguous_donors_equal_pair_facts(ref, registry, which, compat):
    settings = FactSettings(compat=CompatSettings(**compat))
    patient = person_from_gl("PT", PATIENTS[which], nomenclature=ref.nomenclature, relation="patient", sex="M",
                             cmv=False, abo="A")
    layout, _ = registry_layout(registry.columns)
    reader = RegistryReader(ref, layout, settings.compat)
    batch = reader.read(registry)
    rows = np.nonzero(~batch.error)[0]
    assert len(rows) > 400
    ff = FastFacts(ref, patient, reader.slots, settings)
    fast = ff.facts(batch, rows, set(FAST_COLUMNS))
    assert sum(len(v) for v in ff._splits.values()) > 20  # rows of two ambiguous slots were reduced
    general = pair_facts(ref, pair_frame(people_frame([patient]), batch.people(rows)), None, None, settings)
    for c in FAST_COLUMNS:
        assert fast[c].dtype == general[c].dtype, c
        assert fast[c].equals(general[c]), c


def test_class_counting_equals_np_unique():
    from haplomatch.search import _unique

    rng = np.random.default_rng(2)
    for code in (rng.integers(0, 50, 1000), rng.integers(0, 10**9, 1000), np.array([3, 3, 1, 7, 1]),
                 np.zeros(0, dtype=np.int64), np.array([5])):
        _, first, inv, counts = np.unique(code, return_index=True, return_inverse=True, return_counts=True)
        got = _unique(code)
        for g, w in zip(got, (first, inv.reshape(-1), counts)):
            assert np.array_equal(g, w)


def test_search_says_why_a_count_is_a_range_as_rank_does(ref, tmp_path):
    """A best donor whose count at a locus is a range gets rank's warning (why, and what typing would settle
    it); a patient's ambiguous typing is said once per locus. Same words as ``rank`` for the same people."""
    from haplomatch.family import Family
    from haplomatch.ranking import _range_warnings
    from haplomatch.search import search_registry

    reg = pl.DataFrame({
        "donor_id": ["D1", "D2", "D3"],
        "A_1": ["A*02", "A*02:01", "A*01:01"], "A_2": ["A*24:02", "A*24:02", "A*03:01"],
        "B_1": ["B*07:02", "B*07:02", "B*08:01"], "B_2": ["B*44:02", "B*44:02", "B*35:01"],
        "C_1": ["C*05:01/C*05:03", "C*07:02", "C*07:01"], "C_2": ["C*07:02", "C*05:01", "C*04:01"],
    })
    path = tmp_path / "reg.csv"
    reg.write_csv(path)
    patient = person_from_gl("PT", "A*02:01+A*24:02^B*07:02+B*44:02^C*05:01+C*07:02",
                             nomenclature=ref.nomenclature, relation="patient")
    res = search_registry(ref, patient, path, top=3)
    assert [c.id for c in res.candidates][:2] == ["D2", "D1"]
    # D1's A*02 (1,073 two-field alleles in IPD-IMGT/HLA 3.58.0) and C*05:01/C*05:03 leave its counts open
    d1 = [n for n in res.notes if n.startswith("D1's")]
    assert [n.split(":")[0] for n in d1] == ["D1's mismatches at A are a range", "D1's mismatches at C are a range"]
    assert "A*02 may be any of 1,073 two-field alleles" in d1[0] and "typing D1 at A" in d1[0]
    assert d1[1] == ("D1's mismatches at C are a range: D1's C*05:01/C*05:03 may be any of 2 two-field alleles "
                     "(C*05:01, C*05:03): typing D1 at C to one two-field allele per slot would settle it")
    assert not [n for n in res.notes if n.startswith(("D2", "D3", "the patient"))]
    # rank's words for the same pair
    from haplomatch.persons import person_from_gl as gl
    d1p = gl("D1", "A*02+A*24:02^B*07:02+B*44:02^C*05:01/C*05:03+C*07:02", nomenclature=ref.nomenclature,
             relation="unrelated")
    fam = Family("F", (patient, d1p))
    facts = pair_facts(ref, pair_frame(people_frame([patient]), people_frame([d1p])), None)
    assert _range_warnings(ref, fam, facts, CompatSettings()) == d1
    # an ambiguous patient: said once for the locus, whatever the number of donors
    vague = person_from_gl("PT", "A*02+A*24:02^B*07:02+B*44:02", nomenclature=ref.nomenclature, relation="patient")
    notes = search_registry(ref, vague, path, top=3).notes
    assert sum(n.startswith("the patient's A*02 may be any of 1,073") for n in notes) == 1
