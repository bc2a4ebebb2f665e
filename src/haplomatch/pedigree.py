"""The family as a genetic pedigree (a networkx DiGraph parent → child), built from relations and/or
``father_id``/``mother_id``, and checked: one father and one mother per person, no cycles, parents of the
right sex, exactly one patient. Missing parents of the patient's sibship become *virtual* (untyped) nodes, so
siblings-only families segregate too.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from haplomatch.errors import InputError, Problem
from haplomatch.family import Family, Person

VIRTUAL_FATHER = "(father)"
VIRTUAL_MOTHER = "(mother)"
FULL_SIBLINGS = ("brother", "sister", "sibling")
CHILDREN = ("son", "daughter", "child")


@dataclass(frozen=True)
class Pedigree:
    """The checked graph and the roles of the patient's nuclear family."""

    graph: nx.DiGraph
    patient: str
    father: str
    mother: str
    siblings: tuple[str, ...]  # full siblings, patient excluded
    paternal_half_siblings: tuple[str, ...]
    maternal_half_siblings: tuple[str, ...]
    children: tuple[str, ...]  # the patient's own children
    others: tuple[str, ...]  # everyone else (grandparents, aunts, uncles, cousins, unrelated)

    def is_virtual(self, node: str) -> bool:
        return bool(self.graph.nodes[node].get("virtual"))


def build_pedigree(family: Family) -> Pedigree:
    """Raises InputError listing every inconsistency of the pedigree."""
    problems: list[Problem] = []
    people = {p.id: p for p in family.people}
    patients = [p for p in family.people if p.relation == "patient"]
    if len(patients) != 1:
        raise InputError([Problem(f"the family must have exactly one patient, not {len(patients)}", column="relation")])
    pt = patients[0]

    def where(p: Person, column: str) -> dict:
        return {"file": p.source_file, "row": p.source_row, "column": column, "value": p.id}

    g = nx.DiGraph()
    for p in family.people:
        g.add_node(p.id, person=p, virtual=False)
    # explicit parent links
    for p in family.people:
        for field, sex in (("father_id", "M"), ("mother_id", "F")):
            pid = getattr(p, field)
            if pid is None:
                continue
            if pid not in people:
                problems.append(Problem(f"{field} {pid!r} is not in the family", **where(p, field)))
                continue
            par = people[pid]
            if par.sex and par.sex != sex:
                problems.append(Problem(f"{pid} is named as {field.split('_')[0]} of {p.id} but has sex {par.sex}",
                                        **where(p, field)))
            g.add_edge(pid, p.id, kind=field)
    # the patient's parents, from ids or relations
    def one(rel: str) -> str | None:
        c = [p.id for p in family.people if p.relation == rel]
        if len(c) > 1:
            problems.append(Problem(f"{len(c)} people have relation {rel}", column="relation", value=", ".join(c)))
        return c[0] if c else None

    father = pt.father_id or one("father")
    mother = pt.mother_id or one("mother")
    if father is None:
        father = VIRTUAL_FATHER
        g.add_node(father, person=None, virtual=True)
    if mother is None:
        mother = VIRTUAL_MOTHER
        g.add_node(mother, person=None, virtual=True)
    g.add_edge(father, pt.id, kind="father_id")
    g.add_edge(mother, pt.id, kind="mother_id")
    sibs, half_p, half_m, kids, others = [], [], [], [], []
    for p in family.people:
        if p.id in (pt.id, father, mother):
            continue
        pf, pm = p.father_id, p.mother_id
        if p.relation in FULL_SIBLINGS or (pf == father and pm == mother and pf is not None):
            if (pf and pf != father) or (pm and pm != mother):
                problems.append(Problem(f"{p.id} is a full sibling but has other parents in the file", **where(p, "relation")))
            sibs.append(p.id)
            g.add_edge(father, p.id, kind="father_id")
            g.add_edge(mother, p.id, kind="mother_id")
        elif p.relation == "half-sibling" or (pf == father) != (pm == mother) and (pf == father or pm == mother):
            if pf == father and pf is not None:
                half_p.append(p.id)
            elif pm == mother and pm is not None:
                half_m.append(p.id)
            else:
                others.append(p.id)  # side unknown: compared by state only
        elif p.relation in CHILDREN or pt.id in (pf, pm):
            kids.append(p.id)
            g.add_edge(pt.id, p.id, kind="father_id" if pt.sex == "M" else "mother_id")
        else:
            others.append(p.id)
            if p.relation.endswith(("grandfather", "grandmother")) and not (pf or pm):
                child = father if p.relation.startswith("paternal") else mother
                kind = "father_id" if p.relation.endswith("grandfather") else "mother_id"
                if not any(k == kind for _, _, k in g.in_edges(child, data="kind")):
                    g.add_edge(p.id, child, kind=kind)
    # structural checks
    for node in g.nodes:
        ins = list(g.in_edges(node, data="kind"))
        for kind in ("father_id", "mother_id"):
            srcs = {u for u, _, k in ins if k == kind}
            if len(srcs) > 1:
                problems.append(Problem(f"{node} has {len(srcs)} {kind.split('_')[0]}s: {', '.join(sorted(srcs))}",
                                        column=kind, value=node))
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        problems.append(Problem("the pedigree has a cycle: " + " → ".join(u for u, _ in cycle), column="father_id"))
    for parent, expected in ((father, "M"), (mother, "F")):
        par = people.get(parent)
        if par is not None and par.sex and par.sex != expected:
            problems.append(Problem(f"the patient's {'father' if expected == 'M' else 'mother'} {parent} has sex {par.sex}",
                                    **where(par, "sex")))
    if problems:
        raise InputError(problems)
    return Pedigree(g, pt.id, father, mother, tuple(sibs), tuple(half_p), tuple(half_m), tuple(kids), tuple(others))


def generations(ped: Pedigree) -> dict[str, int]:
    """Generation of each node (0 = the oldest), for drawing: longest path from a founder."""
    gen: dict[str, int] = {}
    for node in nx.topological_sort(ped.graph):
        preds = list(ped.graph.predecessors(node))
        gen[node] = 1 + max(gen[p] for p in preds) if preds else 0
    return gen
