"""`haplomatch rank`: the shipped examples ranked as the cited rules imply, rule-file settings that change the
ranking without code changes, and every rule-file error.

The neuroblastoma family (examples/): father F01 a/b, mother M01 c/d, patient P01 a/c (HLA-C C1/C1 and
HLA-B Bw6/Bw6: she lacks the C2 and Bw4 ligands), brother S01 a/c (HLA-identical), sister S02 b/c.
Haplotype b carries B*27:05; the patient has anti-B27 antibodies at 6,500 MFI, C1q-positive, so the
father and the sister carry the target antigen.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from haplomatch.cli import main
from haplomatch.errors import InputError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FAMILY = str(EXAMPLES / "neuroblastoma-family.csv")
ABS = str(EXAMPLES / "neuroblastoma-antibodies.csv")


def run(*args):
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r


def rank_json(*args):
    r = run("rank", FAMILY, "--antibodies", ABS, "--format", "json", *args)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def order(doc):
    return [c["id"] for c in doc["candidates"]]


def test_haplo_hsct_on_the_example():
    doc = rank_json()
    assert set(doc) >= {"patient", "profile", "release", "warnings", "candidates"}
    c = {x["id"]: x for x in doc["candidates"]}
    # 1. The HLA-identical brother ranks first: a matched sibling is the standard first choice (tier 0).
    assert order(doc)[0] == "S01" and c["S01"]["eligible"]
    assert any("above every haploidentical donor" in e["text"] for e in c["S01"]["explanation"])
    # 2. Anti-B27 at 6,500 MFI (> 5,000, and C1q+) against B*27:05 on haplotype b: father and sister excluded
    #    (EBMT consensus, Ciurea 2018); the explanation names the antibody, its MFI and the source.
    for pid in ("F01", "S02"):
        assert not c[pid]["eligible"] and c[pid]["excluded_by"] == ["dsa-high-risk"]
        (e,) = [e for e in c[pid]["explanation"] if e["effect"] == "exclude"]
        assert "B27 (6500 MFI, C1q+)" in e["text"] and "5000" in e["text"] and "Ciurea SO" in e["source"]
    # 3. The mother is the eligible haploidentical donor, with her DSA (DQB1*03:01, 1,200 MFI) flagged.
    assert order(doc)[1] == "M01" and c["M01"]["eligible"]
    assert any(e["rule"] == "dsa-positive" and "DQB1*03:01 (1200 MFI)" in e["text"] for e in c["M01"]["explanation"])
    assert [x["rank"] for x in doc["candidates"]] == [1, 2, 3, 4]
    assert all(set(x) >= {"id", "relation", "rank", "eligible", "excluded_by", "summary", "explanation", "facts"}
               for x in doc["candidates"])
    assert any("Cw17" in w for w in doc["warnings"])  # the unmappable specificity is reported


def test_nk_therapy_on_the_example():
    doc = rank_json("--profile", "nk-cell-therapy")
    c = {x["id"]: x for x in doc["candidates"]}
    # The patient lacks C2 and Bw4; mother and brother carry KIR2DL1 and KIR3DL1: receptor-ligand count 2 for
    # both (Leung 2004). Both have KIR A/A (B-content 0) and 1 activating gene (2DS4); no KIR2DS1. The next
    # criterion, FCGR3A-158 (Koene 1997), puts the mother (VF) before the brother (FF).
    assert c["M01"]["facts"]["rl_count"] == 2 and c["S01"]["facts"]["rl_count"] == 2
    assert sorted(c["M01"]["facts"]["rl_kir"]) == ["KIR2DL1", "KIR3DL1"]
    assert order(doc)[:2] == ["M01", "S01"]
    assert not c["F01"]["eligible"] and not c["S02"]["eligible"]
    assert any("Modak" in e["source"] for e in c["M01"]["explanation"])


def test_without_antibodies_dsa_is_not_evaluated():
    r = run("rank", FAMILY, "--format", "json")
    doc = json.loads(r.output)
    assert all(x["eligible"] for x in doc["candidates"])
    assert any("antibody report" in w for w in doc["warnings"])
    f = next(x for x in doc["candidates"] if x["id"] == "F01")
    assert any(e["effect"] == "not evaluated" and e["rule"] == "dsa-high-risk" for e in f["explanation"])


def test_changing_a_setting_in_the_yaml_changes_the_ranking(tmp_path):
    from haplomatch.rulefiles import rules_path

    text = rules_path("haplo-hsct.yaml").read_text()
    # raise the DSA exclusion threshold and stop excluding C1q-positive DSA: father and sister come back,
    # and by donor age (the first criterion) the 13-year-old sister now ranks before the mother.
    changed = text.replace("value: 5000", "value: 10000").replace("exclude_c1q_positive_dsa:\n    value: true",
                                                                    "exclude_c1q_positive_dsa:\n    value: false")
    own = tmp_path / "my-rules.yaml"
    own.write_text(changed)
    doc = rank_json("--rules", str(own))
    assert order(doc)[:2] == ["S01", "S02"] and all(x["eligible"] for x in doc["candidates"])
    # the same through --set, no file copy
    doc2 = rank_json("--set", "dsa_exclude_mfi=10000", "--set", "exclude_c1q_positive_dsa=false")
    assert order(doc2) == order(doc)
    # swapping two criteria: ABO before age puts the ABO-matched father (A+ to A+) before the sister (O, minor)
    swapped = changed.replace("[donor_age, donor_sex, abo,", "[abo, donor_age, donor_sex,")
    own.write_text(swapped)
    assert order(rank_json("--rules", str(own)))[:2] == ["S01", "F01"]


@pytest.mark.parametrize("edit,fragment", [
    (("available = false", "availabel = false"), "availabel"),
    (("when: \"shared_haplotypes = 0\"", "when: \"shared_haplotypes = = 0\""), "does not compile"),
    (("    source: \"donor eligibility is a gate, not a score (RULES 5.8)\"\n", ""), "missing 'source'"),
    (("effect: exclude\n    explain: \"{id} is not available", "effect: banish\n    explain: \"{id} is not available"), "unknown effect"),
    (("{dsa_exclude_mfi} OR", "{no_such_setting} OR"), "unknown setting"),
    (("[donor_age, donor_sex,", "[donor_age, eye_colour, donor_sex,"), "eye_colour"),
])
def test_rule_file_errors_name_the_file_rule_and_problem(ref, tmp_path, edit, fragment):
    from haplomatch.pairfacts import family_facts
    from haplomatch.familyfile import read_family_file
    from haplomatch.ranking import rules_for
    from haplomatch.rulefiles import rules_path

    text = rules_path("haplo-hsct.yaml").read_text()
    assert edit[0] in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(edit[0], edit[1], 1))
    (fam,), _ = read_family_file(FAMILY, ref.nomenclature)
    facts, _ = family_facts(ref, fam)
    with pytest.raises(InputError) as e:
        rules_for(None, bad, dict(facts.schema))
    msg = str(e.value)
    assert fragment in msg and str(bad) in msg
    r = run("rank", FAMILY, "--rules", str(bad))
    assert r.exit_code == 2 and fragment in r.output


def test_yaml_syntax_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [unclosed\n")
    r = run("rank", FAMILY, "--rules", str(bad))
    assert r.exit_code == 2 and "not valid YAML" in r.output


def test_csv_markdown_and_table_fit(tmp_path):
    r = run("rank", FAMILY, "--antibodies", ABS, "--format", "csv")
    head = r.output.splitlines()[0].split(",")
    assert head[:6] == ["family_id", "patient", "profile", "id", "relation", "rank"] and len(r.output.splitlines()) == 5
    r = run("rank", FAMILY, "--antibodies", ABS, "--format", "markdown", "--explain")
    assert "| rank | id |" in r.output
    r = run("rank", FAMILY, "--antibodies", ABS, "--explain")
    assert max(len(line) for line in r.output.splitlines()) <= 100


def test_library_api(ref):
    import haplomatch
    from haplomatch.familyfile import read_family_file

    (fam,), _ = read_family_file(FAMILY, ref.nomenclature)
    ranking = haplomatch.rank(fam)
    assert ranking.candidates[0].id == "S01" and ranking.to_dict()["profile"] == "haplo-hsct"


def test_strong_dsa_against_the_best_matched_parent():
    # The father a/b carries on b the patient's maternal alleles at every locus but HLA-B (B*07:02) and DPB1:
    # bidirectionally he is 7/8 (one B mismatch) while the mother (c/d) is 4/8. The patient has anti-B7 at
    # 8,200 MFI: above the 5,000 MFI high-risk threshold (EBMT consensus, Ciurea 2018) -> the father is
    # excluded, and the explanation names the antibody, its MFI and the source of the threshold.
    fam = Path(__file__).resolve().parent / "data" / "families"
    r = run("rank", str(fam / "dsa-best-parent.csv"), "--antibodies", str(fam / "dsa-best-parent-antibodies.csv"),
            "--format", "json")
    doc = json.loads(r.output)
    c = {x["id"]: x for x in doc["candidates"]}
    assert c["F"]["facts"]["grade8_bi"] == 7 and c["M"]["facts"]["grade8_bi"] == 4
    assert c["F"]["excluded_by"] == ["dsa-high-risk"] and not c["F"]["eligible"]
    (e,) = [e for e in c["F"]["explanation"] if e["effect"] == "exclude"]
    assert "B7 (8200 MFI)" in e["text"] and "5000" in e["text"]
    assert e["source"].startswith("Ciurea SO et al. Bone Marrow Transplant 2018")
    assert order(doc) == ["M", "F"]


def test_pair_facts_of_no_pairs_has_the_columns_of_one(ref):
    """An empty pair table (a batch with no candidates) gives no rows, with the same columns and types."""
    from haplomatch.pairfacts import pair_facts
    from haplomatch.persons import pair_frame, people_frame, person_from_gl

    patient = people_frame([person_from_gl("P", "A*02:01+A*24:02^B*07:02+B*44:02", relation="patient")])
    donor = people_frame([person_from_gl("D", "A*02:01+A*01:01^B*07:02+B*08:01")])
    one = pair_facts(ref, pair_frame(patient, donor), None)
    none = pair_facts(ref, pair_frame(patient, donor.clear()), None)
    assert none.height == 0 and none.schema == one.schema
    assert one["gvh_A"][0] == 1 and one["hvg_B"][0] == 1


@pytest.mark.parametrize("command", [["rank", FAMILY], ["screen", FAMILY, "--out", "never-written.csv"]])
def test_a_set_option_without_equals_is_refused(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, [*command, "--set", "dsa_exclude_mfi"])
    assert r.exit_code == 2 and "--set needs NAME=VALUE, not 'dsa_exclude_mfi'" in r.output
    assert not (tmp_path / "never-written.csv").exists()


def test_a_haploidentical_class_on_a_low_resolution_typing_says_what_would_confirm_it(tmp_path):
    # the sister typed A*02 (first field) where the mother's haplotype c carries A*02:01: she is haploidentical
    # by segregation, but her A is compared at the resolution typed, and the tier's explanation says so
    text = Path(FAMILY).read_text().replace("S02,sister,F,13,45,O+,pos,VV,yes,A*24:02+A*02:01,",
                                            "S02,sister,F,13,45,O+,pos,VV,yes,A*24:02+A*02,")
    assert "A*24:02+A*02," in text
    fam = tmp_path / "family.csv"
    fam.write_text(text)
    r = run("rank", str(fam), "--antibodies", ABS, "--format", "json")
    c = {x["id"]: x for x in json.loads(r.output)["candidates"]}
    (e,) = [e for e in c["S02"]["explanation"] if e["rule"] == "haploidentical"]
    assert e["text"].startswith("S02 (sister) is haploidentical: shares haplotype c with the patient (S02 inherited")
    assert ("A compared at the resolution typed (S02 not typed at two fields there): typing at two fields would "
            "confirm the class") in e["text"]
    # a parent's class needs no such note
    (e,) = [e for e in c["M01"]["explanation"] if e["rule"] == "haploidentical"]
    assert e["text"].endswith("(a parent passes one haplotype to every child: the patient inherited haplotype c "
                              "from M01)")


def test_a_mismatch_range_in_rank_says_whose_typing_and_what_would_settle_it(tmp_path):
    # the sister typed A*02 (first field): her A mismatches with the patient's A*01:01+A*02:01 are 1 or 2
    text = Path(FAMILY).read_text().replace("S02,sister,F,13,45,O+,pos,VV,yes,A*24:02+A*02:01,",
                                            "S02,sister,F,13,45,O+,pos,VV,yes,A*24:02+A*02,")
    fam = tmp_path / "family.csv"
    fam.write_text(text)
    doc = json.loads(run("rank", str(fam), "--antibodies", ABS, "--format", "json").output)
    c = {x["id"]: x for x in doc["candidates"]}
    assert c["S02"]["facts"]["gvh_A"] is None and "HLA 3-4/8 bidirectional" in c["S02"]["summary"]
    (w,) = [w for w in doc["warnings"] if w.startswith("S02's mismatches at A are a range")]
    assert "S02's A*02 may be any of " in w and "(A*02:01, A*02:02, A*02:03, A*02:04, …)" in w
    assert w.endswith("typing S02 at A to one two-field allele per slot would settle it")
    # the fully typed relatives have exact counts and no such warning
    assert not [w for w in doc["warnings"] if "are a range" in w and not w.startswith("S02")]
    # the patient typed A*02 too: said once, for every donor
    text = text.replace("P01,patient,F,6,19.5,A+,neg,VF,no,A*01:01+A*02:01,",
                        "P01,patient,F,6,19.5,A+,neg,VF,no,A*01:01+A*02,")
    fam.write_text(text)
    doc = json.loads(run("rank", str(fam), "--antibodies", ABS, "--format", "json").output)
    (w,) = [w for w in doc["warnings"] if w.startswith("the patient's A*02 may be any of")]
    assert "every donor's mismatches at A depend on it" in w


def _two_families(tmp_path) -> str:
    """The example family twice in one file (family_id F1, and F2 with every id prefixed X)."""
    lines = Path(FAMILY).read_text().splitlines()
    rows = ["family_id," + lines[0]] + ["F1," + x for x in lines[1:]] + ["F2,X" + x for x in lines[1:]]
    path = tmp_path / "two.csv"
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def test_an_antibody_report_applies_to_the_patient_it_names_only(tmp_path):
    """The report names patient P01 (patient_id): in a file of two families, P01's father and sister are
    excluded on the anti-B27 (6,500 MFI, C1q-positive), while XP01's relatives (the same typings) are not
    judged on P01's antibodies: their DSA are unknown and a warning says so. Before, every family of the file
    got the report."""
    r = run("rank", _two_families(tmp_path), "--antibodies", ABS, "--format", "json")
    assert r.exit_code == 0, r.output
    p01, xp01 = json.loads(r.output)
    excluded = {c["id"]: c["excluded_by"] for c in p01["candidates"] if not c["eligible"]}
    assert excluded == {"F01": ["dsa-high-risk"], "S02": ["dsa-high-risk"]}
    assert all(c["eligible"] for c in xp01["candidates"])
    assert any("has no antibodies for patient XP01: donor-specific antibodies were not checked" in w
               for w in xp01["warnings"])
    assert not any(w.startswith("no antibody report given") for w in xp01["warnings"])
    # a report that names no patient at all (no antibody listed) is the one patient's, or nobody's among two
    empty = tmp_path / "empty.csv"
    empty.write_text("patient_id,specificity,mfi\n")
    one = json.loads(run("rank", FAMILY, "--antibodies", str(empty), "--format", "json").output)
    assert {c["id"]: c["summary"].split("; ")[2] for c in one["candidates"]}["F01"] == "DSA negative"
    both = json.loads(run("rank", _two_families(tmp_path), "--antibodies", str(empty), "--format", "json").output)
    assert all(any("has no antibodies for patient" in w for w in d["warnings"]) for d in both)


def test_an_antibody_report_of_another_patient_is_refused(tmp_path):
    """A report whose patient_id names someone else is refused with its file, row and column (applied, it
    would exclude the father and the sister on another patient's anti-B27); a report without patient_id
    belongs to the one patient of a file, and cannot be assigned in a file of two families."""
    other = tmp_path / "p99.csv"
    other.write_text(Path(ABS).read_text().replace("P01,", "P99,"))
    r = run("rank", FAMILY, "--antibodies", str(other))
    assert r.exit_code == 2
    assert f"{other}:1 [patient_id]: 'P99': 5 antibodies name patient P99" in r.output
    assert "who is not the patient here (P01)" in r.output
    r = run("report", FAMILY, "--antibodies", str(other), "-o", str(tmp_path / "r.html"))
    assert r.exit_code == 2 and "5 antibodies name patient P99" in r.output
    unnamed = tmp_path / "unnamed.csv"
    unnamed.write_text("\n".join(x.split(",", 1)[1] for x in Path(ABS).read_text().splitlines()) + "\n")
    doc = json.loads(run("rank", FAMILY, "--antibodies", str(unnamed), "--format", "json").output)
    assert {c["id"] for c in doc["candidates"] if not c["eligible"]} == {"F01", "S02"}
    r = run("rank", _two_families(tmp_path), "--antibodies", str(unnamed))
    assert r.exit_code == 2 and "5 antibodies have no patient_id" in r.output and "2 patients (P01, XP01)" in r.output


def test_antibodies_by_patient_refuses_what_it_cannot_assign(ref, tmp_path):
    from haplomatch.antibodies import by_patient, read_antibodies

    abs_, _ = read_antibodies(ABS, ref.nomenclature)
    assert {a.patient_id for a in abs_} == {"P01"}
    assert by_patient(abs_, ["P01", "P02"]) == {"P01": abs_}  # P02 not named: left out
    with pytest.raises(InputError, match="patient id P01 names 2 patients"):
        by_patient(abs_, ["P01", "P01"])
    with pytest.raises(InputError) as e:
        by_patient(abs_, ["Q1"], file="r.csv", fix="say who")
    (p,) = e.value.problems
    assert (p.file, p.row, p.column, p.value, p.fix) == ("r.csv", 1, "patient_id", "P01", "say who")


def test_a_family_of_the_patient_alone_says_there_is_no_donor(tmp_path):
    f = tmp_path / "alone.csv"
    f.write_text("id,relation,A\nP,patient,A*02:01+A*03:01\n")
    r = run("rank", str(f), "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["candidates"] == []
    assert "no relative of patient P in the family: there is no donor to rank" in doc["warnings"]
