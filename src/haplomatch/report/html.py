"""The donor report as one self-contained HTML file (``haplomatch report``): for a transplant board, on screen
or printed.

Contents, in reading order: the header (patient, profile, date, haplomatch version, IPD-IMGT/HLA and IPD-KIR
releases); every warning (typing conflicts, recombinations, ambiguities, unmapped antibodies, input problems)
at the top; the pedigree with each person's two inherited haplotypes (:mod:`.pedigree_svg`); the segregation
table (alleles of the parental haplotypes a–d per locus) and who inherited which; the ranked donors, each a
card with its key facts and the rules that decided, with their sources; the citations of the rules and data.

Self-contained: inline CSS and inline SVG, no script, no font or image fetched (a Content-Security-Policy
forbids it too). Printable: print CSS, page margins for A4 and Letter, a donor card never split across pages.
Every string that comes from the input is escaped with :func:`html.escape`.

Library use::

    from haplomatch.report.html import build_report, render_html
    rep = build_report(ref, family, "haplo-hsct", antibodies)
    Path("report.html").write_text(render_html(rep), encoding="utf-8")
"""

from __future__ import annotations

import datetime as _dt
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from haplomatch.haplotypes_out import phase_open
from haplomatch.ranking import DSA_UNCHECKED, phase_open_text
from haplomatch.report.pedigree_svg import (
    HAPLOTYPE_COLOURS,
    HAPLOTYPE_TEXT,
    Layout,
    PersonView,
    layout_pedigree,
    legend_svg,
    pedigree_svg,
)

#: Citations of the reference databases (README "Reference data"; reference/PROVENANCE.md).
IMGTHLA_CITATIONS = (
    "Barker D, Maccari G, Georgiou X, Cooper M, Flicek P, Robinson J, Marsh SGE. The IPD-IMGT/HLA Database. "
    "Nucleic Acids Research 2023;51(D1):D948-D955.",
    "Robinson J, Barker D, Marsh SGE. 25 years of the IPD-IMGT/HLA Database. HLA 2024;103(6):e15549.",
    "Robinson J, Malik A, Parham P, Bodmer JG, Marsh SGE. IMGT/HLA - a sequence database for the human major "
    "histocompatibility complex. Tissue Antigens 2000;55:280-287.",
)
IPDKIR_CITATIONS = (
    "Robinson J, Waller MJ, Stoehr P, Marsh SGE. IPD - the Immuno Polymorphism Database. Nucleic Acids Research "
    "2005;33:D523-526.",
    "Robinson J, Halliwell JA, McWilliam H, Lopez R, Marsh SGE. IPD - the Immuno Polymorphism Database. Nucleic "
    "Acids Research 2013;41:D1234-40.",
)
GL_CITATION = ("GL String 1.1: Milius RP et al. Tissue Antigens 2013;82:106-12; Mack SJ et al. HLA 2023;102:206-12.")

_MAIN_LOCI = ("A", "C", "B", "DRB1", "DQB1", "DPB1")


def e(x: object) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape("" if x is None else str(x), quote=True)


@dataclass(frozen=True)
class Report:
    """Everything one family's report shows (computed by :func:`build_report`; rendered by :func:`render_html`)."""

    family: Any  # haplomatch.family.Family
    pedigree: Any  # haplomatch.pedigree.Pedigree
    segregation: Any  # haplomatch.segregation.Segregation
    ranking: Any  # haplomatch.ranking.Ranking
    rules: Any  # haplomatch.rules.RuleSet
    facts: dict[str, dict[str, Any]]  # every pair fact of each candidate, by candidate id
    imgthla: str
    ipdkir: str
    version: str
    created: str  # ISO date and time the report was made
    antibodies: tuple | None = None  # haplomatch.antibodies.Antibody, or None when no report was given
    input_warnings: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()  # the input file names, as given
    layout: Layout | None = field(default=None, compare=False)


def build_report(ref, family, profile: str = "haplo-hsct", antibodies=None, *, input_warnings: Iterable[str] = (),
                 rules_path=None, overrides=None, created: _dt.datetime | str | None = None,
                 inputs: Iterable[str] = ()) -> Report:
    """Segregate, rank and collect the facts of one family (the ranking is :func:`haplomatch.ranking.rank_family`,
    exactly as ``haplomatch rank`` gives it). ``input_warnings``: problems met while reading the inputs."""
    from haplomatch import __version__
    from haplomatch.pairfacts import family_facts
    from haplomatch.pedigree import build_pedigree
    from haplomatch.ranking import ranking_of, rules_for

    input_warnings = tuple(input_warnings)
    facts, seg = family_facts(ref, family, antibodies)
    ranking = ranking_of(ref, family, facts, seg, profile, antibodies, rules_path, overrides, warnings=input_warnings)
    rules = rules_for(profile, rules_path, dict(facts.schema), overrides)
    by_id = {row["id"]: row for row in facts.to_dicts()}
    if created is None:
        created = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()
    elif isinstance(created, _dt.datetime):
        created = created.strftime("%Y-%m-%d %H:%M")
    ped = build_pedigree(family)
    return Report(family, ped, seg, ranking, rules, by_id, ref.release.imgthla, ref.release.ipdkir, __version__,
                  str(created), None if antibodies is None else tuple(antibodies), input_warnings, tuple(inputs),
                  layout_pedigree(ped))


# -- warnings --------------------------------------------------------------------------------------------------
def report_warnings(rep: Report) -> list[tuple[str, str]]:
    """(category, text) of everything a reader must not miss, most serious first."""
    seg, fam = rep.segregation, rep.family
    out: list[tuple[str, str]] = []
    for c in seg.conflicts:
        out.append(("conflict", f"{c.message} (likely: {', '.join(c.causes)})"))
    for r in seg.recombinants:
        out.append(("recombination", r.text))
    if not seg.unique:
        out.append(("ambiguity", f"the segregation is not unique: {seg.n_solutions} equally good solution(s); "
                                 "the classes below hold only where all of them agree"))
    for r in seg.relationships:
        if r.klass == "undetermined" and r.possibilities:
            out.append(("ambiguity", f"{r.id} ({r.relation}): class undetermined — {r.evidence}"))
    for lab, per in seg.haplotypes.items():
        open_ = [(locus, vals) for locus, vals in per.items() if len(vals) > 1]
        if open_:
            out.append(("ambiguity", f"haplotype {lab} is not determined at {', '.join(x for x, _ in open_)}: "
                        + "; ".join(f"{locus} {' or '.join(vals)}" for locus, vals in open_)))
    for p in fam.people:
        for locus, t in p.hla.items():
            if t is None or not t.typed:
                continue
            if len(t.genotypes) > 1 or any(len(s) > 1 for g in t.genotypes for s in g):
                out.append(("ambiguity", f"{p.id} is typed ambiguously at {locus}: {t.gl()}"))
            if t.assumed_homozygous:
                out.append(("ambiguity", f"{p.id} at {locus}: one allele given, read as homozygous ({t.gl()})"))
    for n in seg.notes:
        out.append(("ambiguity", n))
    if rep.antibodies is None and not any(w.endswith(DSA_UNCHECKED) for w in rep.input_warnings):
        out.append(("antibodies", f"no antibody report given: {DSA_UNCHECKED}"))
    else:
        for a in rep.antibodies:
            if a.kind == "unmapped":
                out.append(("antibodies", f"antibody specificity {a.specificity!r} ({a.mfi:g} MFI) cannot be mapped to "
                                          "IPD-IMGT/HLA: it was not checked against the donors"))
    unknown: dict[tuple[str, str], list[str]] = {}
    for c in rep.ranking.candidates:
        for r in c.explanation:
            if r.effect == "not evaluated":
                unknown.setdefault((r.rule, r.text), []).append(c.id)
    for (rule, text), ids in unknown.items():
        out.append(("not evaluated", f"rule {rule}, for {', '.join(ids)}: {text}"))
    texts = [t for _, t in out]
    unmapped = [a.specificity for a in rep.antibodies or () if a.kind == "unmapped"]
    for w in list(rep.input_warnings) + [str(p) for p in fam.warnings] + list(rep.ranking.warnings):
        if w in texts:
            continue
        if "cannot be mapped" in w and any(f"'{s}'" in w for s in unmapped):
            continue  # said above, in the reader's words
        if rep.segregation.phase_open and w == phase_open_text(rep.segregation.phase_open):
            continue  # said above, haplotype by haplotype with the alleles possible
        out.append(("input" if w.startswith(("warning:", "error:")) else "other", w))
        texts.append(w)
    order = {"conflict": 0, "recombination": 1, "antibodies": 2, "ambiguity": 3, "not evaluated": 4, "input": 5,
             "other": 6}
    return sorted(out, key=lambda x: order.get(x[0], 9))


# -- people in the drawing ------------------------------------------------------------------------------------
def person_views(rep: Report) -> dict[str, PersonView]:
    """What the pedigree shows of each node: sex, age, labels per locus, class, conflicts, notes."""
    ped, seg = rep.pedigree, rep.segregation
    labels = {ph.id: ph for ph in seg.persons}
    rels = {r.id: r for r in seg.relationships}
    out: dict[str, PersonView] = {}
    for node in ped.graph.nodes:
        p = ped.graph.nodes[node].get("person")
        virtual = p is None
        if virtual:
            is_father = node == ped.father
            sex, relation, label = ("M" if is_father else "F"), ("father" if is_father else "mother"), node
            typed, age = False, None
        else:
            sex, relation, label = p.sex, p.relation, p.id
            typed = any(t is not None and t.typed for t in p.hla.values())
            age = p.age
        ph = labels.get(node)
        r = rels.get(node)
        notes: list[str] = []
        if node == ped.patient:
            klass = "patient"
        elif r is None:
            klass = "not in file" if virtual else ""
        elif not typed and not virtual:
            klass = "not HLA typed"
        elif r.klass == "undetermined":
            klass = "undetermined"
        else:
            short = {"HLA-identical": "HLA-identical", "haploidentical": "haploidentical", "mismatched": "mismatched"}
            klass = short.get(r.klass, r.klass)
            if r.shared_haplotypes:
                klass += " · " + " ".join(r.shared_haplotypes)
            if not r.by_descent:
                klass = f"shares {' '.join(r.shared_haplotypes) or 'none'} (by state)"
        if r is not None:
            notes.append(r.evidence)
        conflicts: dict[str, tuple[str, ...]] = {}
        for c in seg.conflicts:
            if c.person == node:
                for side in (("paternal",) if c.side == "father" else ("maternal",) if c.side == "mother"
                             else ("paternal", "maternal")):
                    conflicts[side] = tuple(conflicts.get(side, ())) + tuple(c.loci)
                notes.append(c.message)
        recomb = tuple(x.side for x in seg.recombinants if x.person == node)
        notes += [x.text for x in seg.recombinants if x.person == node]
        if virtual:
            notes.append("not in the family file: haplotypes reconstructed from the children")
        elif not typed:
            notes.append("not HLA typed")
        if ph is None and not virtual and node != ped.patient:
            notes.append("not in the patient's nuclear family: compared with the patient by allele state only")
        out[node] = PersonView(
            node, label, relation, sex, age, node == ped.patient, virtual, typed,
            ph.paternal if ph is not None else None, ph.maternal if ph is not None else None,
            klass, conflicts, recomb, tuple(notes))
    return out


# -- formatting helpers ------------------------------------------------------------------------------------------
def _chip(label: str | None) -> str:
    if not label:
        return '<span class="chip unknown">?</span>'
    parts = []
    for lab in label.split(","):
        lab = lab.strip()
        colour = HAPLOTYPE_COLOURS.get(lab, "#d0d0d0")
        text = HAPLOTYPE_TEXT.get(lab, "#000")
        parts.append(f'<span class="chip" style="background:{colour};color:{text}">{e(lab)}</span>')
    return "".join(parts)


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return '<span class="na">unknown</span>'
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        v = int(v) if v.is_integer() else round(v, 2)
    if isinstance(v, (list, tuple)):
        return e(", ".join(str(x) for x in v)) if v else "none"
    return e(f"{v}{unit}")


def _range(f: dict, key: str) -> str:
    v = f.get(key)
    if v is not None:
        return e(v)
    lo, hi = f.get(f"{key}_min"), f.get(f"{key}_max")
    if lo is not None and hi is not None:
        return e(f"{lo}–{hi}")
    return '<span class="na">?</span>'


def _labels_text(labels: tuple[str | None, ...] | None, loci: tuple[str, ...]) -> str:
    if labels is None:
        return '<span class="na">—</span>'
    seen = [x for x in dict.fromkeys(labels)]
    if len(seen) == 1:
        return _chip(seen[0])
    # recombinant: the label per run of loci
    runs, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            span = loci[start] if i - start == 1 else f"{loci[start]}–{loci[i - 1]}"
            runs.append(f"{_chip(labels[start])}<small>{e(span)}</small>")
            start = i
    return " ".join(runs)


# -- sections -----------------------------------------------------------------------------------------------------
def _header(rep: Report) -> str:
    fam, rk = rep.family, rep.ranking
    pt = fam.patient
    bits = [f"sex {e(pt.sex or '?')}"]
    if pt.age is not None:
        bits.append(f"{pt.age:g} years")
    if pt.weight_kg is not None:
        bits.append(f"{pt.weight_kg:g} kg")
    if pt.abo:
        bits.append(f"ABO {e(pt.abo)}{e(pt.rh or '')}")
    if pt.cmv is not None:
        bits.append(f"CMV {'pos' if pt.cmv else 'neg'}")
    best = next((c for c in rk.candidates if c.eligible), None)
    rows = [
        ("Patient", f"<strong>{e(pt.id)}</strong> ({', '.join(bits)})"),
        ("Family", e(fam.id) if fam.id else "—"),
        ("Profile", f"<strong>{e(rep.rules.title or rk.profile)}</strong> (<code>{e(rk.profile)}</code>)"),
        ("Top-ranked eligible donor", (f"<strong>{e(best.id)}</strong> ({e(best.relation)}): {e(best.summary)}"
                                       if best else '<strong class="bad">none eligible</strong>')),
        ("Date", e(rep.created)),
        ("haplomatch", e(rep.version)),
        ("Reference data", f"IPD-IMGT/HLA {e(rep.imgthla)}; IPD-KIR {e(rep.ipdkir)}"),
        ("Rule file", f"<code>{e(Path(rk.rules_file).name)}</code>"),
    ]
    if rep.inputs:
        rows.append(("Input", ", ".join(f"<code>{e(Path(x).name)}</code>" for x in rep.inputs)))
    dl = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    title = f"Donor report — patient {e(pt.id)}" + (f", family {e(fam.id)}" if fam.id else "")
    return f'<header><h1>{title}</h1><table class="meta">{dl}</table></header>'


def _warnings(rep: Report) -> str:
    items = report_warnings(rep)
    if not items:
        return ('<section class="warnings ok" id="warnings"><h2>Warnings</h2><p>No conflicts, recombinations, '
                'ambiguities or unmapped antibodies.</p></section>')
    lis = "".join(f'<li class="w-{e(cat.replace(" ", "-"))}"><span class="wcat">{e(cat)}</span> {e(text)}</li>'
                  for cat, text in items)
    serious = sum(cat in ("conflict", "recombination", "antibodies") for cat, _ in items)
    cls = "warnings" + (" serious" if serious else "")
    return (f'<section class="{cls}" id="warnings"><h2>⚠ Warnings ({len(items)})</h2>'
            f'<p class="hint">Read these before the ranking: they limit what the ranking can say.</p><ul>{lis}</ul></section>')


def _pedigree(rep: Report) -> str:
    views = person_views(rep)
    svg = pedigree_svg(rep.pedigree, views, rep.segregation.loci, rep.layout,
                       title=f"Pedigree of patient {rep.family.patient.id}", scale=(0.62, 1.6))
    return (f'<section class="pedigree" id="pedigree"><h2>Pedigree and inherited haplotypes</h2>'
            f'<div class="svgwrap">{svg}</div><div class="legendwrap">{legend_svg()}</div></section>')


def _segregation(rep: Report) -> str:
    seg, ped = rep.segregation, rep.pedigree
    loci = seg.loci
    people = {p.id: p for p in rep.family.people}

    def origin(lab: str) -> str:
        parent = ped.father if lab in "ab" else ped.mother
        who = "father" if lab in "ab" else "mother"
        p = people.get(parent)
        if p is None:
            return f"{who} (not in the file; reconstructed)"
        typed = any(t is not None and t.typed for t in p.hla.values())
        return f"{who} {e(parent)}" + ("" if typed else " (not typed; reconstructed)")

    head = "".join(f"<th>{e(loc)}</th>" for loc in loci)
    rows = []
    for lab in "abcd":
        per = seg.haplotypes.get(lab, {})
        cells = "".join(f"<td>{' / '.join(e(v) for v in per.get(loc, ())) or '<span class=na>?</span>'}</td>"
                        for loc in loci)
        pt_has = any(lab in (ph.paternal + ph.maternal) for ph in seg.persons if ph.id == ped.patient)
        rows.append(f"<tr><th>{_chip(lab)}</th><td>{origin(lab)}</td><td>{'yes' if pt_has else ''}</td>{cells}</tr>")
    table = (f'<table class="seg"><thead><tr><th>haplotype</th><th>from</th><th>the patient&#x27;s</th>{head}</tr></thead>'
             f'<tbody>{"".join(rows)}</tbody></table>')
    rels = {r.id: r for r in seg.relationships}
    inh = []
    for ph in seg.persons:
        r = rels.get(ph.id)
        p = people.get(ph.id)
        rel = p.relation if p else ("father" if ph.id == ped.father else "mother")
        klass = "patient" if ph.id == ped.patient else (r.klass if r else "")
        shared = "" if r is None or r.shared is None else str(r.shared)
        inh.append(f"<tr><td>{e(ph.id)}</td><td>{e(rel)}</td><td>{_labels_text(ph.paternal, loci)}</td>"
                   f"<td>{_labels_text(ph.maternal, loci)}</td><td>{e(klass)}</td><td>{e(shared)}</td>"
                   f"<td class=small>{e(r.evidence if r else '')}</td></tr>")
    listed = {ph.id for ph in seg.persons}
    for r in seg.relationships:
        if r.id not in listed:
            inh.append(f"<tr><td>{e(r.id)}</td><td>{e(r.relation)}</td><td colspan=2><span class=na>by allele state"
                       f"</span></td><td>{e(r.klass)}</td><td>{e('' if r.shared is None else r.shared)}</td>"
                       f"<td class=small>{e(r.evidence)}</td></tr>")
    inherit = ('<table class="inherit"><thead><tr><th>id</th><th>relation</th><th>from father</th><th>from mother</th>'
               '<th>class vs patient</th><th>shared</th><th>evidence</th></tr></thead><tbody>'
               + "".join(inh) + "</tbody></table>")
    sol = ("Unique solution." if seg.unique and seg.n_solutions == 1 else
           f"{seg.n_solutions} equally good solutions" + ("" if seg.unique else " (they disagree: see the warnings)") + ".")
    if (open_at := phase_open(seg)):
        sol += (f" Phase open at {', '.join(open_at)}: the haplotypes list each allele they may carry there (typing a "
                "parent or more relatives would settle it).")
    return (f'<section class="segregation" id="segregation"><h2>Segregation</h2>'
            f'<p>The four parental HLA haplotypes: <strong>a, b</strong> from the father, <strong>c, d</strong> from the '
            f'mother; the patient\'s are a and c by convention. {e(sol)}</p>{table}'
            f'<h3>Who inherited which haplotype</h3>{inherit}</section>')


def _fact_rows(rep: Report, cid: str) -> str:
    f = rep.facts.get(cid, {})
    c = next(x for x in rep.ranking.candidates if x.id == cid)
    cf = {**f, **{k: v for k, v in c.facts.items() if v is not None}}
    rows: list[tuple[str, str]] = []
    klass = e(cf.get("hla_class") or "unknown")
    if cf.get("shared_labels"):
        klass += " — shares " + _chip(cf["shared_labels"])
    if cf.get("class_by_descent") is False:
        klass += " <small>(by allele state, descent not proven)</small>"
    if cf.get("class_partial"):
        klass += " <small>(on the loci typed)</small>"
    if cf.get("class_all_loci") is False:
        klass += " <small>(not at every locus: recombination)</small>"
    rows.append(("HLA sharing", klass))
    grades = []
    for g in ("8", "10", "12"):
        bi = cf.get(f"grade{g}_bi_text")
        if bi:
            grades.append(f"{e(bi)} <small>(GvH {e(cf.get(f'grade{g}_gvh_text') or '?')}, "
                          f"HvG {e(cf.get(f'grade{g}_hvg_text') or '?')})</small>")
    rows.append(("Match grade", " · ".join(grades) or '<span class="na">unknown</span>'))
    loci = [loc for loc in _MAIN_LOCI if f"gvh_{loc}" in cf and (cf.get(f"typed_{loc}") is not False)]
    loci += [loc for loc in rep.segregation.loci if loc not in loci and f"gvh_{loc}" in cf]
    if loci:
        def cell(key: str) -> str:
            v = cf.get(key)
            cls = "mm0" if v == 0 else ("mm" if isinstance(v, int) and v > 0 else "mmq")
            return f'<td class="{cls}">{_range(cf, key)}</td>'

        head = "".join(f"<th>{e(loc)}</th>" for loc in loci)
        gvh = "".join(cell(f"gvh_{loc}") for loc in loci)
        hvg = "".join(cell(f"hvg_{loc}") for loc in loci)
        rows.append(("Mismatches by direction",
                     f'<table class="mm-table"><tr><th></th>{head}</tr><tr><th>GvH</th>{gvh}</tr>'
                     f'<tr><th>HvG</th>{hvg}</tr></table>'))
    extra = []
    if cf.get("dpb1_tce"):
        extra.append(f"DPB1 TCE {e(cf['dpb1_tce'])}")
    if cf.get("b_leader_genotype_match") is not None:
        extra.append(f"HLA-B leader −21 genotypes {'equal' if cf['b_leader_genotype_match'] else 'differ'}"
                     + (f" ({e(cf['b_leader_code'])})" if cf.get("b_leader_code") else ""))
    if extra:
        rows.append(("HLA refinements", "; ".join(extra)))
    gvh_l = cf.get("ll_gvh")
    kir = [f"GvH ligand mismatch: <strong>{_fmt(gvh_l)}</strong>"
           + (f" — alloreactive (donor carries {_fmt(cf.get('ll_gvh_kir'))})" if cf.get("ll_gvh_alloreactive") else "")]
    kir.append(f"HvG: {_fmt(cf.get('ll_hvg'))}")
    rl = cf.get("rl_count")
    kir.append(f"receptor–ligand: {_fmt(rl)}" + (f" ({_fmt(cf.get('rl_kir'))})" if cf.get("rl_kir") else ""))
    if cf.get("kir3dl1_hlab"):
        kir.append(f"KIR3DL1×HLA-B {e(cf['kir3dl1_hlab'])}")
    rows.append(("KIR-ligand mismatch", "; ".join(kir)))
    bc = cf.get("donor_kir_b_content_group")
    rows.append(("KIR B-content",
                 f"{_fmt(bc)} (score {_fmt(cf.get('donor_kir_b_content_score'))}; genotype "
                 f"{_fmt(cf.get('donor_kir_genotype'))}, cen {_fmt(cf.get('donor_kir_cen'))}, tel {_fmt(cf.get('donor_kir_tel'))})"))
    if cf.get("dsa_category") is None and cf.get("dsa_reason"):
        dsa = f'<span class="na">{e(cf["dsa_reason"])}</span>'
    else:
        cat = cf.get("dsa_category") or "unknown"
        cls = "good" if cat == "negative" else "bad"
        dsa = f'<strong class="{cls}">{e(cat)}</strong>'
        if cf.get("dsa_specificities"):
            dsa += ": " + _fmt(cf["dsa_specificities"])
        if cf.get("dsa_max_mfi"):
            dsa += f"; strongest {_fmt(cf['dsa_max_mfi'])} MFI"
        possible = [d for d in (cf.get("dsa") or []) if isinstance(d, dict) and d.get("status") == "possible"]
        if possible:
            dsa += "; possible: " + e(", ".join(f"{d.get('specificity')} ({d.get('mfi', 0):g} MFI"
                                                + (f", {d['note']}" if d.get("note") else "") + ")" for d in possible))
    rows.append(("Donor-specific antibodies", dsa))
    age = cf.get("donor_age")
    rows.append(("Age", _fmt(age, " years") if age is not None else _fmt(None)))
    sex = cf.get("donor_sex")
    rows.append(("Sex", _fmt(sex) + (" <small>(female donor, male patient)</small>" if cf.get("female_to_male") else "")))
    abo = "".join(x for x in (cf.get("donor_abo"), cf.get("donor_rh")) if x) or None
    rows.append(("ABO", f"{_fmt(abo)} — {_fmt(cf.get('abo_relation'))}"))
    rows.append(("CMV", _fmt(cf.get("cmv_pairing"))))
    av = cf.get("available")
    rows.append(("Available", _fmt(av)))
    if cf.get("donor_fcgr3a"):
        rows.append(("FCGR3A-158", _fmt(cf.get("donor_fcgr3a"))))
    split = next(i for i, (k, _) in enumerate(rows) if k == "Donor-specific antibodies")
    halves = (rows[:split], rows[split:])
    return "".join('<table class="facts">' + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in half)
                   + "</table>" for half in halves)


def _candidates(rep: Report) -> str:
    cards = []
    for c in rep.ranking.candidates:
        status = ("eligible" if c.eligible else "EXCLUDED (" + ", ".join(c.excluded_by) + ")")
        cls = "card" + ("" if c.eligible else " excluded")
        reasons = []
        for r in c.explanation:
            ev = f" <span class=ev>{e(r.evidence)}</span>" if r.evidence else ""
            rcls = "r-" + r.effect.split()[0].replace(" ", "-")
            if r.effect == "not evaluated":
                rcls = "r-not-evaluated"
            reasons.append(f'<li class="{e(rcls)}"><span class="eff">{e(r.effect)}</span> {e(r.text)}'
                           f'<div class="src">Source: {e(r.source)}{ev}</div></li>')
        cards.append(
            f'<article class="{cls}" id="donor-{e(c.id)}"><h3><span class="rank">{c.rank}</span> {e(c.id)} '
            f'<span class="rel">{e(c.relation)}</span> <span class="status">{e(status)}</span></h3>'
            f'<p class="summary">{e(c.summary)}</p><div class="factgrid">{_fact_rows(rep, c.id)}</div>'
            f'<h4>Why this rank</h4><ol class="reasons">{"".join(reasons) or "<li>no rule fired</li>"}</ol></article>')
    order = ", ".join(e(x) for x in rep.rules.criteria_order)
    return (f'<section class="donors" id="donors"><h2>Ranked donors</h2><p>Exclusions first, then tiers, then the '
            f'criteria in the profile\'s order ({order}); ties by age and id. GvH: patient alleles the donor lacks; '
            f'HvG: donor alleles the patient lacks.</p>{"".join(cards)}</section>')


def _citations(rep: Report) -> str:
    from haplomatch.reference.facts import SOURCES

    rs = rep.rules
    rules = "".join(f"<tr><td><code>{e(r.id)}</code></td><td>{e(r.effect if r.effect != 'tier' else f'tier {r.tier}')}"
                    f"{e(' ' + r.criterion if r.criterion else '')}</td><td>{e(r.source)}</td><td>{e(r.evidence)}</td></tr>"
                    for r in rs.rules)
    settings = "".join(f"<tr><td><code>{e(s.name)}</code></td><td>{_fmt(rep.ranking.settings.get(s.name, s.value))}</td>"
                       f"<td>{e(s.source or '')}{(' — ' + e(s.note)) if s.note else ''}</td></tr>"
                       for s in rs.settings.values())
    facts = "".join(f"<li>{e(v)}</li>" for v in SOURCES.values())
    imgt = "".join(f"<li>{e(x)}</li>" for x in IMGTHLA_CITATIONS)
    kir = "".join(f"<li>{e(x)}</li>" for x in IPDKIR_CITATIONS)
    return (
        f'<section class="citations" id="citations"><h2>Sources</h2>'
        f'<h3>Rules of the profile <code>{e(rs.profile)}</code> ({e(Path(rs.path).name)})</h3>'
        f'<p>{e(rs.description)}</p>'
        f'<table class="rules"><thead><tr><th>rule</th><th>effect</th><th>source</th><th>evidence</th></tr></thead>'
        f'<tbody>{rules}</tbody></table>'
        f'<p class="small">Evidence: ✔ checked against the source, ◐ partly, ✖ not checked.</p>'
        f'<h3>Settings</h3><table class="rules"><thead><tr><th>setting</th><th>value</th><th>source</th></tr></thead>'
        f'<tbody>{settings}</tbody></table>'
        f'<h3>HLA facts derived from the release</h3><ul>{facts}</ul>'
        f'<h3>Data</h3><p>IPD-IMGT/HLA release {e(rep.imgthla)} and IPD-KIR release {e(rep.ipdkir)}, '
        f'unmodified release files (licence CC BY-ND). Cite the databases when you use their data:</p>'
        f'<p><strong>IPD-IMGT/HLA</strong></p><ul>{imgt}</ul><p><strong>IPD-KIR</strong></p><ul>{kir}</ul>'
        f'<p class="small">{e(GL_CITATION)}</p></section>')


CSS = """
:root{--ink:#1a1a1a;--muted:#555;--line:#d6d6d6;--warn:#8a4b00;--warnbg:#fff4e0;--bad:#a00000;--badbg:#fde8e8;
--good:#17623a}
*{box-sizing:border-box}
html{-webkit-print-color-adjust:exact;print-color-adjust:exact}
body{font-family:"DejaVu Sans","Liberation Sans",Arial,Helvetica,sans-serif;color:var(--ink);margin:0;
background:#f4f4f2;font-size:14px;line-height:1.4}
main{max-width:1120px;margin:0 auto;padding:18px 22px 40px;background:#fff}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:26px 0 8px;border-bottom:2px solid var(--ink);
padding-bottom:3px}h3{font-size:15px;margin:16px 0 6px}h4{font-size:13px;margin:10px 0 4px}
table{border-collapse:collapse}th,td{text-align:left;vertical-align:top;padding:3px 8px}
table.meta th{color:var(--muted);font-weight:normal;white-space:nowrap;padding-left:0}
table.seg,table.inherit,table.rules{width:100%;font-size:12.5px}
table.seg th,table.seg td,table.inherit th,table.inherit td,table.rules th,table.rules td{border:1px solid var(--line)}
table.seg thead th,table.inherit thead th,table.rules thead th{background:#f0f0ee}
code{font-family:"DejaVu Sans Mono","Liberation Mono",monospace;font-size:.92em}
.chip{display:inline-block;min-width:1.5em;padding:0 .35em;margin-right:2px;border-radius:3px;text-align:center;
font-weight:bold;border:1px solid #333}
.chip.unknown{background:#d0d0d0}
.na{color:#888;font-style:italic}.small,small{font-size:11.5px;color:var(--muted)}
.good{color:var(--good)}.bad{color:var(--bad)}
.warnings{border:2px solid var(--warn);background:var(--warnbg);padding:4px 14px 8px;margin-top:14px;border-radius:6px}
.warnings.serious{border-color:var(--bad);background:var(--badbg)}
.warnings.ok{border-color:var(--good);background:#eaf6ee}
.warnings h2{border:0;margin:6px 0 2px}.warnings ul{margin:4px 0;padding-left:18px}.warnings li{margin:3px 0}
.hint{margin:0;color:var(--muted);font-size:12.5px}
.wcat{display:inline-block;font-size:11px;font-weight:bold;text-transform:uppercase;padding:0 5px;border-radius:3px;
background:#fff;border:1px solid currentColor;margin-right:4px}
.w-conflict .wcat,.w-recombination .wcat,.w-antibodies .wcat{color:var(--bad)}
.svgwrap{overflow-x:auto;border:1px solid var(--line);border-radius:6px;background:#fcfcfb}
.svgwrap svg.pedigree{display:block;width:100%;height:auto;margin:0 auto}
.legendwrap svg{max-width:100%;height:auto}
.card{border:1px solid var(--line);border-left:6px solid var(--good);border-radius:6px;padding:6px 14px 10px;
margin:12px 0;break-inside:avoid;page-break-inside:avoid}
.card.excluded{border-left-color:var(--bad);background:#fffafa}
.card h3{margin:6px 0 2px;font-size:16px}
.rank{display:inline-block;background:var(--ink);color:#fff;border-radius:50%;width:1.7em;height:1.7em;
line-height:1.7em;text-align:center;margin-right:4px}
.rel{font-weight:normal;color:var(--muted)}.status{font-size:12.5px;font-weight:bold;margin-left:8px;color:var(--good)}
.excluded .status{color:var(--bad)}
.summary{margin:2px 0 6px;font-style:italic}
.factgrid{display:flex;flex-wrap:wrap;align-items:flex-start;gap:0 22px}.factgrid>table{flex:1 1 380px}
table.facts{font-size:12.5px}table.facts>tbody>tr>th{width:150px;color:var(--muted);font-weight:normal}
table.facts>tbody>tr{border-top:1px solid #eee}
table.mm-table th,table.mm-table td{border:1px solid var(--line);padding:1px 7px;text-align:center;font-size:12px}
td.mm0{background:#eaf6ee}td.mm{background:#ffe9c7;font-weight:bold}td.mmq{background:#eee}
ol.reasons{padding-left:20px;margin:4px 0;font-size:12.5px}ol.reasons li{margin:3px 0}
.eff{display:inline-block;font-size:11px;border:1px solid #999;border-radius:3px;padding:0 4px;margin-right:3px;
background:#f6f6f6}
.r-exclude .eff{border-color:var(--bad);color:var(--bad);font-weight:bold}
.r-not-evaluated .eff{border-color:var(--warn);color:var(--warn)}
.src{color:var(--muted);font-size:11.5px}.ev{font-weight:bold}
footer{margin-top:28px;font-size:11.5px;color:var(--muted);border-top:1px solid var(--line);padding-top:6px}
.family+.family{margin-top:40px;border-top:4px double var(--ink)}
/* paper: the printer's size (A4 or Letter); the content fits the narrower and shorter of the two */
@page{size:auto;margin:12mm 11mm 14mm}
@media print{
 body{background:#fff;font-size:9pt}
 main{max-width:none;padding:0}
 h1{font-size:15pt}h2{font-size:12.5pt;margin:12pt 0 5pt;break-after:avoid;page-break-after:avoid}
 h3{font-size:10.5pt;margin:8pt 0 3pt;break-after:avoid;page-break-after:avoid}h4{font-size:9pt}
 table.meta{font-size:8.5pt}table.meta th,table.meta td{padding:1px 6px 1px 0}
 table.seg,table.inherit,table.rules,table.facts,ol.reasons{font-size:7.8pt}
 .small,small,.src,.hint{font-size:7.2pt}
 .svgwrap{overflow:visible;border:0}
 .svgwrap svg.pedigree{min-width:0!important;max-width:100%!important;max-height:125mm}
 .legendwrap svg{width:125mm}
 section.pedigree,.warnings,tr{break-inside:avoid;page-break-inside:avoid}
 .family+.family{break-before:page;page-break-before:always;border:0}
 .card{break-inside:avoid;page-break-inside:avoid;padding:3pt 8pt 5pt;margin:7pt 0}
 .card h3{font-size:11pt}.summary{margin:1pt 0 3pt;font-size:8.5pt}
 .factgrid{gap:0 10pt}.factgrid>table{flex:1 1 80mm}
 table.facts>tbody>tr>th{width:28mm}table.facts th,table.facts td{padding:1pt 4pt}
 table.mm-table th,table.mm-table td{font-size:7.5pt;padding:0 4pt}
 ol.reasons li{margin:1pt 0}
 ol.reasons .src{display:inline;margin-left:3pt}

}
"""


def render_family(rep: Report) -> str:
    """The sections of one family's report (an ``<div class="family">``)."""
    return ('<div class="family">' + _header(rep) + _warnings(rep) + _pedigree(rep) + _segregation(rep)
            + _candidates(rep) + _citations(rep) + "</div>")


def render_html(reports: Report | Sequence[Report]) -> str:
    """The whole document: one file, inline CSS and SVG, no script, nothing fetched."""
    reps = [reports] if isinstance(reports, Report) else list(reports)
    if not reps:
        raise ValueError("no report to render")
    first = reps[0]
    title = "haplomatch donor report — " + ", ".join(r.family.patient.id for r in reps)
    body = "".join(render_family(r) for r in reps)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "img-src data:\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<meta name=\"generator\" content=\"haplomatch {e(first.version)}\">"
        f"<title>{e(title)}</title><style>{CSS}</style></head><body><main>{body}"
        f"<footer>Made by haplomatch {e(first.version)} on {e(first.created)} from IPD-IMGT/HLA {e(first.imgthla)} and "
        f"IPD-KIR {e(first.ipdkir)}. Research software: it does not replace the judgement of a transplant physician "
        "or an accredited HLA laboratory. Check every fact against the typing reports.</footer>"
        "</main></body></html>\n")


def report_html(ref, family, profile: str = "haplo-hsct", antibodies=None, **kw) -> str:
    """One family's report as an HTML string (:func:`build_report` then :func:`render_html`)."""
    return render_html(build_report(ref, family, profile, antibodies, **kw))
