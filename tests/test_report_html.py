"""`haplomatch report`: one self-contained HTML file with the pedigree, the inherited haplotypes and the ranked
donors (issue 9).

What is checked:
- the neuroblastoma example's report has every part the issue asks for (header, warnings first, pedigree,
  segregation table, donor cards with key facts and sources, citations), fetches nothing and runs no script;
- input strings are escaped;
- the pedigree layout (a pure function) never overlaps boxes and keeps them in the SVG's viewBox: a 15-person
  simulated family, a hand-built 15-person family with aunts and uncles, and random pedigrees of 2–20 people;
- in a real browser (Debian's headless chromium): the reports load without console errors and are not blank;
  the screenshots are written to tests/output/screenshots/ for a person to look at.
"""

from __future__ import annotations

import itertools
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

import haplomatch
from haplomatch.cli_report import report_cmd
from haplomatch.family import Family, Person
from haplomatch.familyfile import read_family_file
from haplomatch.pedigree import build_pedigree
from haplomatch.report.html import build_report, render_html
from haplomatch.report.pedigree_svg import PersonView, layout_pedigree, pedigree_svg

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
FAMILY = EXAMPLES / "neuroblastoma-family.csv"
ABS = EXAMPLES / "neuroblastoma-antibodies.csv"
SCREENSHOTS = HERE / "output" / "screenshots"
SVG_NS = "{http://www.w3.org/2000/svg}"


def report(*args) -> str:
    r = CliRunner().invoke(report_cmd, [*map(str, args), "-o", "-"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


@pytest.fixture(scope="module")
def nb_html() -> str:
    return report(FAMILY, "--antibodies", ABS)


def svg_of(doc: str) -> ET.Element:
    m = re.search(r'<svg xmlns="http://www.w3.org/2000/svg" class="pedigree".*?</svg>', doc, re.S)
    assert m, "no pedigree SVG in the report"
    return ET.fromstring(m[0])


def person_boxes(svg: ET.Element) -> dict[str, tuple[float, float, float, float]]:
    out = {}
    for g in svg.iter(f"{SVG_NS}g"):
        if "person" in (g.get("class") or "").split():
            r = next(x for x in g if x.get("class") == "person-box")
            out[g.get("data-id")] = tuple(float(r.get(k)) for k in ("x", "y", "width", "height"))
    return out


def assert_no_overlap(svg: ET.Element, n: int) -> dict:
    """Every person box inside the viewBox, no two intersecting."""
    boxes = person_boxes(svg)
    assert len(boxes) == n
    _, _, vw, vh = (float(x) for x in svg.get("viewBox").split())
    for pid, (x, y, w, h) in boxes.items():
        assert x >= 0 and y >= 0 and x + w <= vw and y + h <= vh, f"{pid} outside the viewBox"
    for (p, (x1, y1, w1, h1)), (q, (x2, y2, w2, h2)) in itertools.combinations(boxes.items(), 2):
        assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1, f"boxes of {p} and {q} overlap"
    return boxes


# -- the example report --------------------------------------------------------------------------------------
def test_example_report_has_every_part(nb_html):
    doc = nb_html
    # header: patient, profile, date, version, releases
    assert "Donor report — patient P01" in doc
    assert "Haploidentical stem-cell transplantation" in doc and "haplo-hsct" in doc
    assert re.search(r"<th>Date</th><td>\d{4}-\d{2}-\d{2} \d{2}:\d{2}", doc)
    assert f"<th>haplomatch</th><td>{haplomatch.__version__}</td>" in doc
    assert "IPD-IMGT/HLA 3.58.0; IPD-KIR 2.13.0" in doc
    # warnings at the top (before the pedigree and the donors): the unmapped antibody Cw17
    assert doc.index('id="warnings"') < doc.index('id="pedigree"') < doc.index('id="segregation"') < doc.index('id="donors"')
    warn = doc[doc.index('id="warnings"'):doc.index('id="pedigree"')]
    assert "Cw17" in warn and "cannot be mapped" in warn
    # the pedigree: father a square, mother and patient circles, the patient marked
    svg = svg_of(doc)
    people = {g.get("data-id"): g for g in svg.iter(f"{SVG_NS}g") if "person" in (g.get("class") or "")}
    assert set(people) == {"P01", "F01", "M01", "S01", "S02"}
    assert people["F01"].find(f"{SVG_NS}rect[@width='30.0']") is not None
    assert people["M01"].find(f"{SVG_NS}circle") is not None
    assert "patient" in people["P01"].get("class") and people["P01"].find(f"{SVG_NS}polygon") is not None  # arrow
    # the haplotype bars: the patient a/c, the sister b/c (one segment per locus, coloured by label)
    segs = [r.get("class") for r in people["P01"].iter(f"{SVG_NS}rect") if (r.get("class") or "").startswith("seg ")]
    assert segs == ["seg seg-a"] * 6 + ["seg seg-c"] * 6
    segs = [r.get("class") for r in people["S02"].iter(f"{SVG_NS}rect") if (r.get("class") or "").startswith("seg ")]
    assert segs == ["seg seg-b"] * 6 + ["seg seg-c"] * 6
    assert_no_overlap(svg, 5)
    # the segregation table: haplotype b carries B*27:05 (the target of the anti-B27 antibody)
    seg = doc[doc.index('id="segregation"'):doc.index('id="donors"')]
    row_b = re.search(r'<tr><th><span class="chip"[^>]*>b</span></th>(.*?)</tr>', seg)[1]
    assert "father F01" in row_b and "A*24:02" in row_b and "B*27:05" in row_b and "DPB1*04:02" in row_b
    # the donors, in rank order, with key facts and sources
    donors = doc[doc.index('id="donors"'):doc.index('id="citations"')]
    assert re.findall(r'<span class="rank">(\d+)</span> (\w+)', donors) == [("1", "S01"), ("2", "M01"), ("3", "S02"), ("4", "F01")]
    s02 = donors[donors.index('id="donor-S02"'):donors.index('id="donor-F01"')]
    assert "EXCLUDED (dsa-high-risk)" in s02 and "B27 (6500 MFI, C1q+)" in s02 and "Ciurea SO" in s02
    for fact in ("HLA sharing", "Match grade", "Mismatches by direction", "GvH", "HvG", "KIR-ligand mismatch",
                 "KIR B-content", "Donor-specific antibodies", "Age", "Sex", "ABO", "CMV"):
        assert f">{fact}<" in s02, fact
    m01 = donors[donors.index('id="donor-M01"'):donors.index('id="donor-S02"')]
    assert "DQB1*03:01 (1200 MFI)" in m01 and "C2" in m01 and "D-/R-" in m01 and "Ruggeri L" in m01
    # citations: the rules, the derived facts, the databases
    cites = doc[doc.index('id="citations"'):]
    assert "dsa-high-risk" in cites and "Wang Y et al. Blood 2014" in cites and "Foley B et al." in cites
    assert "Barker D, Maccari G" in cites and "Robinson J, Waller MJ" in cites


def test_report_is_self_contained_and_printable(nb_html):
    doc = nb_html
    lower = doc.lower()
    for banned in ("<script", "<link", "<iframe", "<img", "@import", "url(", "src=", "href="):
        assert banned not in lower, banned
    assert set(re.findall(r"https?://[^\s\"'<>]+", doc)) == {"http://www.w3.org/2000/svg"}  # a namespace, not a fetch
    assert "Content-Security-Policy" in doc and "default-src 'none'" in doc
    assert "@media print" in doc and "@page" in doc
    assert re.search(r"\.card\{[^}]*break-inside:avoid", doc)


def test_input_strings_are_escaped(ref, tmp_path):
    f = tmp_path / "fam.csv"
    evil = '<img src=x onerror=alert(1)>'
    f.write_text("id,relation,sex,A,B\n"
                 "P&1,patient,F,A*01:01+A*02:01,B*08:01+B*44:02\n"
                 f'"{evil}",brother,M,A*01:01+A*02:01,B*08:01+B*44:02\n')
    doc = report(f)
    assert evil not in doc and "&lt;img src=x onerror=alert(1)&gt;" in doc and "P&amp;1" in doc
    assert "<script" not in doc.lower()
    svg_of(doc)  # still well-formed XML
    # no parents in the file: they are drawn as virtual (dashed) persons and the report says so
    assert 'class="person virtual' in doc and "reconstructed" in doc


def test_conflict_is_marked_in_the_pedigree_and_listed_first():
    # S1 carries a haplotype found in neither of the father's: every paternal locus is outlined in red
    doc = report(HERE / "data" / "families" / "non-paternity.csv")
    svg = svg_of(doc)
    s1 = next(g for g in svg.iter(f"{SVG_NS}g") if g.get("data-id") == "S1")
    assert len([r for r in s1.iter(f"{SVG_NS}rect") if r.get("class") == "conflict"]) == 6
    assert any(t.text == "!" for t in s1.iter(f"{SVG_NS}text"))
    warn = doc[doc.index('id="warnings"'):doc.index('id="pedigree"')]
    first = re.search(r'<li class="w-([^"]+)"><span class="wcat">[^<]*</span>([^<]*)', warn)
    assert first[1] == "conflict" and "shares no haplotype with the father" in first[2] and "non-paternity" in first[2]


def test_pedigree_file_with_patient_option():
    doc = report(EXAMPLES / "neuroblastoma-family.ped", "--patient", "P01", "--profile", "nk-cell-therapy")
    assert "Donor report — patient P01" in doc and "nk-cell-therapy" in doc
    assert_no_overlap(svg_of(doc), 5)


# -- layout ---------------------------------------------------------------------------------------------------
def test_simulated_15_person_family_renders_without_overlaps(ref, tmp_path):
    from haplomatch.simulate import SimOptions, simulate_families, write_families

    opts = SimOptions(siblings=6, patient_children=2, grandparents=True, recombination_rate=0.5)
    path = tmp_path / "sim15.csv"
    write_families(simulate_families(1, 7, opts, ref=ref), path)
    (fam,), _ = read_family_file(path, ref.nomenclature)
    assert len(fam.people) == 15
    rep = build_report(ref, fam, created="2026-01-01 00:00")
    doc = render_html(rep)
    (tmp_path / "sim15.html").write_text(doc, encoding="utf-8")
    boxes = assert_no_overlap(svg_of(doc), 15)
    # the SVG shows the pure layout's boxes
    assert {k: (b.x, b.y, b.w, b.h) for k, b in rep.layout.boxes.items()} == boxes
    rows = {pid: b.generation for pid, b in rep.layout.boxes.items()}
    assert rows["PGF"] == rows["MGM"] == 0 and rows["F"] == rows["M"] == 1 and rows["P"] == rows["S6"] == 2
    assert rows["C1"] == rows["C2"] == 3


def hand_built_15(path: Path) -> Path:
    """4 grandparents, the parents, a paternal aunt and a maternal uncle, the patient and six siblings; one
    sibling (S3) carries a paternal recombinant haplotype (a up to DQB1, then b at DPB1)."""
    pools = {
        "A": ("A*01:01", "A*02:01", "A*03:01", "A*24:02", "A*11:01", "A*26:01", "A*29:02", "A*68:01"),
        "C": ("C*07:01", "C*07:02", "C*05:01", "C*15:02", "C*04:01", "C*03:04", "C*06:02", "C*12:03"),
        "B": ("B*08:01", "B*07:02", "B*44:02", "B*51:01", "B*35:01", "B*40:01", "B*57:01", "B*18:01"),
        "DRB1": ("DRB1*03:01", "DRB1*15:01", "DRB1*04:01", "DRB1*11:01", "DRB1*01:01", "DRB1*13:01", "DRB1*07:01", "DRB1*08:01"),
        "DQB1": ("DQB1*02:01", "DQB1*06:02", "DQB1*03:02", "DQB1*03:01", "DQB1*05:01", "DQB1*06:03", "DQB1*03:03", "DQB1*04:02"),
        "DPB1": ("DPB1*04:01", "DPB1*02:01", "DPB1*03:01", "DPB1*04:02", "DPB1*01:01", "DPB1*05:01", "DPB1*06:01", "DPB1*09:01"),
    }
    loci = list(pools)

    def hap(k):  # founder haplotype k, or a recombinant (k1 up to a locus, then k2)
        if isinstance(k, tuple):
            k1, k2, at = k
            return [pools[loc][k1 if i < loci.index(at) else k2] for i, loc in enumerate(loci)]
        return [pools[loc][k] for loc in loci]

    rows = [  # id, relation, sex, age, father, mother, paternal haplotype, maternal haplotype
        ("PGF", "paternal grandfather", "M", 70, "", "", 0, 1), ("PGM", "paternal grandmother", "F", 68, "", "", 2, 3),
        ("MGF", "maternal grandfather", "M", 72, "", "", 4, 5), ("MGM", "maternal grandmother", "F", 66, "", "", 6, 7),
        ("F", "father", "M", 44, "PGF", "PGM", 0, 2), ("M", "mother", "F", 41, "MGF", "MGM", 4, 6),
        ("AU", "paternal aunt", "F", 40, "PGF", "PGM", 1, 3), ("UN", "maternal uncle", "M", 38, "MGF", "MGM", 5, 7),
        ("P", "patient", "F", 9, "F", "M", 0, 4), ("S1", "brother", "M", 17, "F", "M", 2, 6),
        ("S2", "sister", "F", 15, "F", "M", 0, 6), ("S3", "brother", "M", 13, "F", "M", (0, 2, "DPB1"), 4),
        ("S4", "sister", "F", 11, "F", "M", 2, 4), ("S5", "brother", "M", 7, "F", "M", 0, 4),
        ("S6", "sister", "F", 4, "F", "M", 2, 6),
    ]
    lines = ["id,relation,sex,age,father_id,mother_id," + ",".join(loci)]
    for pid, rel, sex, age, fa, mo, h1, h2 in rows:
        a, b = hap(h1), hap(h2)
        lines.append(f"{pid},{rel},{sex},{age},{fa},{mo}," + ",".join(f"{x}+{y}" for x, y in zip(a, b)))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def family15(ref, tmp_path_factory):
    path = hand_built_15(tmp_path_factory.mktemp("fam15") / "fam15.csv")
    (fam,), _ = read_family_file(path, ref.nomenclature)
    rep = build_report(ref, fam, inputs=[path.name])
    return rep, render_html(rep)


def test_hand_built_15_person_family_with_aunt_and_uncle(family15):
    rep, doc = family15
    boxes = assert_no_overlap(svg_of(doc), 15)
    b = rep.layout.boxes
    # rows: grandparents, parents with the aunt and uncle, the sibship
    assert {b[x].generation for x in ("PGF", "PGM", "MGF", "MGM")} == {0}
    assert {b[x].generation for x in ("F", "M", "AU", "UN")} == {1}
    assert {b[x].generation for x in ("P", "S1", "S2", "S3", "S4", "S5", "S6")} == {2}
    # spouses adjacent; the paternal side left, the maternal right; the aunt beside her brother
    x = {k: v.x for k, v in b.items()}
    assert x["AU"] < x["F"] < x["M"] < x["UN"]
    assert x["PGF"] < x["PGM"] < x["MGF"] < x["MGM"]
    assert abs(x["M"] - x["F"]) == pytest.approx(b["F"].w + 16)
    # siblings oldest first, centred under their parents
    sibs = sorted(("P", "S1", "S2", "S3", "S4", "S5", "S6"), key=lambda k: x[k])
    assert sibs == ["S1", "S2", "S3", "S4", "P", "S5", "S6"]
    mid_parents = (b["F"].cx + b["M"].cx) / 2
    assert (b[sibs[0]].cx + b[sibs[-1]].cx) / 2 == pytest.approx(mid_parents, abs=1)
    # the recombinant is drawn (colour change with a crossover tick) and listed among the warnings
    svg = svg_of(doc)
    s3 = next(g for g in svg.iter(f"{SVG_NS}g") if g.get("data-id") == "S3")
    pat = [r.get("class") for r in s3.iter(f"{SVG_NS}rect") if (r.get("class") or "").startswith("seg ")][:6]
    assert pat == ["seg seg-a"] * 5 + ["seg seg-b"]
    assert any(ln.get("class") == "crossover" for ln in s3.iter(f"{SVG_NS}line"))
    warn = doc[doc.index('id="warnings"'):doc.index('id="pedigree"')]
    assert "S3: paternal recombination between DQB1 and DPB1" in warn
    assert len(boxes) == 15


def _random_family(rng: random.Random, n: int) -> Family:
    """A random pedigree of about n people: a sibship, optionally grandparents, aunts/uncles (linked or by
    relation only), half-siblings, the patient's children, cousins and unrelated people."""
    people = [Person("P", "patient", sex=rng.choice("MF"), age=rng.randint(1, 50))]
    parents = n >= 3 and rng.random() < 0.8
    if parents:
        people += [Person("F", "father", sex="M", age=60), Person("M", "mother", sex="F", age=58)]
    fa, mo = ("F", "M") if parents else (None, None)
    people[0] = Person("P", "patient", sex=people[0].sex, age=people[0].age, father_id=fa, mother_id=mo)
    k = 0

    def nid(prefix: str) -> str:
        nonlocal k
        k += 1
        return f"{prefix}{k}"

    grand = parents and n >= 7 and rng.random() < 0.6
    if grand:
        for pid, rel, sex in (("PGF", "paternal grandfather", "M"), ("PGM", "paternal grandmother", "F"),
                              ("MGF", "maternal grandfather", "M"), ("MGM", "maternal grandmother", "F")):
            people.append(Person(pid, rel, sex=sex, age=80))
        people = [Person(p.id, p.relation, sex=p.sex, age=p.age, father_id="PGF", mother_id="PGM") if p.id == "F" else
                  Person(p.id, p.relation, sex=p.sex, age=p.age, father_id="MGF", mother_id="MGM") if p.id == "M" else p
                  for p in people]
    while len(people) < n:
        kind = rng.choice(["sib", "sib", "sib", "half", "child", "aunt", "unrelated", "cousin"])
        sex = rng.choice("MF")
        if kind == "sib" or (kind == "half" and not parents):
            people.append(Person(nid("S"), "brother" if sex == "M" else "sister", sex=sex, age=rng.randint(1, 50),
                                 father_id=fa, mother_id=mo))
        elif kind == "half":
            people.append(Person(nid("H"), "half-sibling", sex=sex, age=rng.randint(1, 50),
                                 **({"father_id": fa} if rng.random() < 0.5 else {"mother_id": mo})))
        elif kind == "child":
            pt = people[0]
            link = {"father_id": "P"} if pt.sex == "M" else {"mother_id": "P"}
            people.append(Person(nid("C"), "son" if sex == "M" else "daughter", sex=sex, age=rng.randint(0, 20), **link))
        elif kind == "aunt":
            side = rng.choice(["paternal", "maternal"])
            rel = f"{side} {'uncle' if sex == 'M' else 'aunt'}"
            link = ({"father_id": "PGF", "mother_id": "PGM"} if side == "paternal" else
                    {"father_id": "MGF", "mother_id": "MGM"}) if grand else {}
            people.append(Person(nid("A"), rel, sex=sex, age=55, **link))
        elif kind == "cousin":
            people.append(Person(nid("K"), "cousin", sex=sex, age=rng.randint(1, 50)))
        else:
            people.append(Person(nid("U"), "unrelated", sex=rng.choice(["M", "F", None]), age=40))
    assert len(people) == n
    return Family(None, tuple(people))


@pytest.mark.parametrize("n", list(range(2, 21)))
def test_random_pedigrees_of_2_to_20_people_do_not_overlap(n):
    rng = random.Random(n)
    for trial in range(6):
        fam = _random_family(rng, n)
        ped = build_pedigree(fam)
        lay = layout_pedigree(ped)
        views = {node: PersonView(node, node, "", None, virtual=ped.is_virtual(node)) for node in ped.graph.nodes}
        svg = ET.fromstring(pedigree_svg(ped, views, ("A", "C", "B", "DRB1", "DQB1", "DPB1"), lay))
        assert_no_overlap(svg, len(ped.graph))
        # parents are always above their children
        for u, v in ped.graph.edges:
            assert lay.boxes[u].generation < lay.boxes[v].generation


# -- the command line -----------------------------------------------------------------------------------------
def test_cli_writes_a_file_and_reports_bad_input(tmp_path):
    out = tmp_path / "r.html"
    r = CliRunner().invoke(report_cmd, [str(FAMILY), "--profile", "nk-cell-therapy", "-o", str(out)])
    assert r.exit_code == 0, r.output
    doc = out.read_text(encoding="utf-8")
    assert doc.startswith("<!DOCTYPE html>") and "nk-cell-therapy" in doc
    assert "no antibody report given" in doc[doc.index('id="warnings"'):doc.index('id="pedigree"')]
    r = CliRunner().invoke(report_cmd, [str(EXAMPLES / "messy-family.csv"), "-o", str(tmp_path / "x.html")])
    assert r.exit_code == 2 and "Error:" in r.output and not (tmp_path / "x.html").exists()
    r = CliRunner().invoke(report_cmd, [str(FAMILY)])
    assert r.exit_code == 2 and "-o" in r.output


# -- in a real browser -------------------------------------------------------------------------------------------
def test_reports_render_in_headless_chromium(nb_html, family15):
    import browser

    if browser.chromium() is None:
        pytest.skip("chromium not installed (Debian: apt-get install -y chromium); .ci/run installs it")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    ignore = SCREENSHOTS.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# screenshots written by tests/test_report_html.py\n*\n")
    pages = {"neuroblastoma": nb_html, "family-15": family15[1]}
    jobs = []
    for name, doc in pages.items():
        html = SCREENSHOTS / f"{name}.html"
        html.write_text(doc, encoding="utf-8")
        jobs.append((html, SCREENSHOTS / f"{name}.png"))
    jobs.append((SCREENSHOTS / "neuroblastoma.html", SCREENSHOTS / "neuroblastoma.pdf"))
    runs = browser.render(jobs)
    for run in runs:
        assert run.returncode == 0, f"{run.html.name}: chromium exited {run.returncode}\n{run.stderr[-2000:]}"
        assert run.console == [], f"{run.html.name}: console messages {run.console}"
        assert run.out.exists() and run.out.stat().st_size > 20_000, f"{run.out} missing or too small"
    for run in runs:
        if run.out.suffix == ".png":
            s = browser.summarise(run.out)
            assert (s.width, s.height) == (1200, 1800)
            assert s.colours > 50 and s.dominant_share < 0.9 and s.ink_share > 0.01, f"{run.out.name} looks blank: {s}"
    pdf = (SCREENSHOTS / "neuroblastoma.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and 2 <= len(re.findall(rb"/Type\s*/Page\b", pdf)) <= 12


def test_the_report_ranks_as_rank_does(ref):
    """build_report ranks the facts it shows (computed once) exactly as rank_family ranks the family."""
    from haplomatch.antibodies import read_antibodies
    from haplomatch.ranking import rank_family

    (fam,), _ = read_family_file(FAMILY, ref.nomenclature)
    abs_, _ = read_antibodies(ABS, ref.nomenclature)
    for profile in ("haplo-hsct", "nk-cell-therapy"):
        rep = build_report(ref, fam, profile, abs_, created="2026-01-01 00:00")
        assert rep.ranking.to_dict() == rank_family(ref, fam, profile, abs_).to_dict()
    excluded = [c.id for c in build_report(ref, fam, "haplo-hsct", abs_).ranking.candidates if not c.eligible]
    assert sorted(excluded) == ["F01", "S02"]  # the anti-B27 (6,500 MFI, C1q+) against haplotype b
