"""Writing a segregation result: per person, two haplotypes with parental labels and alleles per locus.

Formats: a plain table, JSON (one object per person plus family-level facts), and the IHIW-18 pedigree
result columns (Hap1_Inferred, Hap1_Parent, Hap1_Recombined, Hap2_…).
"""

from __future__ import annotations

from haplomatch.family import Family
from haplomatch.segregation import Segregation


def _alleles(seg: Segregation, labels: tuple[str | None, ...]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for locus, lab in zip(seg.loci, labels):
        vals = seg.haplotypes[lab][locus] if lab else ()
        out[locus] = "/".join(vals) if vals else None
    return out


def _label(labels: tuple[str | None, ...]) -> str | None:
    seen = [x for x in dict.fromkeys(labels) if x]
    return "/".join(seen) if seen else None


def persons_json(family: Family, seg: Segregation) -> dict:
    """The JSON document of ``haplomatch haplotypes``."""
    rels = {r.id: r for r in seg.relationships}
    out = []
    founders = {seg.persons[0].id, seg.persons[1].id}  # the patient's parents: their own parents are not known
    for ph in seg.persons:
        person = next((p for p in family.people if p.id == ph.id), None)
        founder = ph.id in founders
        r = rels.get(ph.id)
        notes = [x.text for x in seg.recombinants if x.person == ph.id]
        notes += [c.message + " (likely: " + ", ".join(c.causes) + ")" for c in seg.conflicts if c.person == ph.id]
        if r is not None and r.partial:
            notes.append("class on the loci typed only")
        out.append({
            "id": ph.id,
            "relation": person.relation if person else ("father" if ph.id == seg.persons[0].id else "mother"),
            "virtual": person is None,
            "haplotypes": [
                {"label": _label(ph.paternal), "origin": None if founder else "father", "alleles": _alleles(seg, ph.paternal)},
                {"label": _label(ph.maternal), "origin": None if founder else "mother", "alleles": _alleles(seg, ph.maternal)},
            ],
            "shared_with_patient": None if r is None else r.shared,
            "shared_haplotypes": [] if r is None else list(r.shared_haplotypes),
            "class": "patient" if person is not None and person.relation == "patient" else (r.klass if r else None),
            "all_loci": None if r is None else r.all_loci,
            "by_descent": None if r is None else r.by_descent,
            "evidence": None if r is None else r.evidence,
            "notes": notes,
        })
    for r in seg.relationships:  # relatives compared by state (not in the sibship)
        if r.id not in {p["id"] for p in out}:
            person = next(p for p in family.people if p.id == r.id)
            out.append({"id": r.id, "relation": person.relation, "virtual": False, "haplotypes": [],
                        "shared_with_patient": r.shared, "shared_haplotypes": list(r.shared_haplotypes),
                        "class": r.klass, "all_loci": r.all_loci, "by_descent": r.by_descent,
                        "evidence": r.evidence, "notes": ["compared by allele state"]})
    return {
        "family_id": family.id,
        "loci": list(seg.loci),
        "haplotypes": {lab: {loc: list(v) for loc, v in per.items()} for lab, per in seg.haplotypes.items()},
        "persons": out,
        "unique": seg.unique,
        "solutions": seg.n_solutions,
        "phase_open": phase_open(seg),
        "recombinants": [r.text for r in seg.recombinants],
        "conflicts": [{"person": c.person, "loci": list(c.loci), "side": c.side, "alleles": list(c.alleles),
                       "message": c.message, "causes": list(c.causes)} for c in seg.conflicts],
        "notes": list(seg.notes),
    }


def phase_open(seg: Segregation) -> list[str]:
    """The loci at which some parental haplotype may carry more than one allele: the data do not tell which
    of a parent's alleles each haplotype carries there (a unique solution is a unique inheritance, not this)."""
    return [loc for loc in seg.loci if any(len(per.get(loc, ())) > 1 for per in seg.haplotypes.values())]


def ihiw_rows(family: Family, seg: Segregation) -> list[dict]:
    """IHIW-18 pedigree result columns: the PED columns plus Hap1/Hap2 _Inferred, _Parent, _Recombined."""
    people = {p.id: p for p in family.people}
    recomb = {(r.person, r.side) for r in seg.recombinants}
    rows = []
    founders = {seg.persons[0].id, seg.persons[1].id}
    for ph in seg.persons:
        p = people.get(ph.id)
        if p is None:
            continue
        founder = ph.id in founders
        row = {"Family_ID": family.id or "1", "Individual_ID": p.id, "Paternal_ID": p.father_id or "0",
               "Maternal_ID": p.mother_id or "0", "Sex": {"M": "1", "F": "2"}.get(p.sex or "", "0"),
               "Phenotype": "^".join(t.gl() for t in p.hla.values() if t.typed)}
        for i, (labels, origin, side) in enumerate(((ph.paternal, "father", "paternal"), (ph.maternal, "mother", "maternal")), 1):
            al = _alleles(seg, labels)
            row[f"Hap{i}_Inferred"] = "~".join(v for v in al.values() if v) or ""
            row[f"Hap{i}_Label"] = _label(labels) or ""
            row[f"Hap{i}_Parent"] = "0" if founder else ((p.father_id if i == 1 else p.mother_id) or origin)
            row[f"Hap{i}_Recombined"] = "1" if (p.id, side) in recomb else "0"
        rows.append(row)
    return rows
