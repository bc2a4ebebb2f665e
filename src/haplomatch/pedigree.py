"""The family as a genetic pedigree (a networkx DiGraph parent → child), built from relations and/or
``father_id``/``mother_id``, and checked: one father and one mother per person, no cycles, parents of the
right sex, exactly one patient. Missing parents of the patient's sibship become *virtual* (untyped) nodes, so
siblings-only families segregate too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from haplomatch.errors import InputError, Problem
from haplomatch.family import Family, Person

VIRTUAL_FATHER = "(father)"
VIRTUAL_MOTHER = "(mother)"
FULL_SIBLINGS = ("brother", "sister", "sibling")
CHILDREN = ("son", "daughter", "child")

if TYPE_CHECKING:  # networkx is imported where a graph is built (~0.2 s: ranking a family needs none)
    import networkx as nx


class Pedigree:
    """The checked graph and the roles of the patient's nuclear family. The networkx graph is built on first
    use of ``graph`` (segregation needs only the roles and which parents are virtual)."""

    __slots__ = ("_graph", "_ops", "_virtual", "_family", "patient", "father", "mother", "siblings",
                 "paternal_half_siblings", "maternal_half_siblings", "children", "others")

    def __init__(self, graph: nx.DiGraph | None, patient: str, father: str, mother: str, siblings: tuple[str, ...],
                 paternal_half_siblings: tuple[str, ...], maternal_half_siblings: tuple[str, ...],
                 children: tuple[str, ...], others: tuple[str, ...], *, ops: list | None = None,
                 virtual: frozenset[str] | None = None) -> None:
        self._graph = graph
        self._ops = ops  # the graph's construction (add_node / add_edge calls), replayed on first use
        self._virtual = virtual
        self._family: Family | None = None  # without ops: the family the graph is built from on first use
        self.patient = patient
        self.father = father
        self.mother = mother
        self.siblings = siblings  # full siblings, patient excluded
        self.paternal_half_siblings = paternal_half_siblings
        self.maternal_half_siblings = maternal_half_siblings
        self.children = children  # the patient's own children
        self.others = others  # everyone else (grandparents, aunts, uncles, cousins, unrelated)

    @property
    def graph(self) -> nx.DiGraph:
        if self._graph is None:
            self._graph = _replay(self._ops) if self._ops is not None else build_pedigree(self._family).graph
        return self._graph

    def is_virtual(self, node: str) -> bool:
        if self._virtual is not None and self._graph is None:
            return node in self._virtual
        return bool(self.graph.nodes[node].get("virtual"))


def _replay(ops: list) -> nx.DiGraph:
    import networkx as nx

    g = nx.DiGraph()
    for op in ops:
        if op[0] == "node":
            g.add_node(op[1], person=op[2], virtual=op[3])
        else:
            g.add_edge(op[1], op[2], kind=op[3])
    return g


#: the roles found by build_pedigree, per signature of the family (see pedigree_roles)
_ROLES: dict[tuple, tuple] = {}


def pedigree_roles(family: Family) -> Pedigree:
    """build_pedigree's Pedigree, from the roles found for an earlier family with the same ids, relations,
    parent ids and sexes in the same order (all that build_pedigree reads but the source rows, which only its
    errors name; a family with errors is checked anew each time). A batch of families meets few of these
    signatures. Its graph is built from this family on first use."""
    key = tuple([(p.id, p.relation, p.father_id, p.mother_id, p.sex) for p in family.people])
    roles = _ROLES.get(key)
    if roles is None:
        ped = build_pedigree(family)
        if len(_ROLES) >= 1 << 14:
            _ROLES.clear()
        roles = _ROLES[key] = (ped.patient, ped.father, ped.mother, ped.siblings, ped.paternal_half_siblings,
                               ped.maternal_half_siblings, ped.children, ped.others, ped._virtual)
        return ped
    *named, virtual = roles
    ped = Pedigree(None, *named, virtual=virtual)
    ped._family = family
    return ped


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

    # The graph is recorded as the calls that build it (replayed by Pedigree.graph), with what the checks need
    # kept alongside: the nodes in order and each node's parents by edge (u -> kind, the last kind set wins,
    # as networkx's add_edge).
    ops: list[tuple] = []
    nodes: dict[str, None] = {}
    parents: dict[str, dict[str, str]] = {}

    def add_edge(u: str, v: str, kind: str) -> None:
        ops.append(("edge", u, v, kind))
        nodes.setdefault(u)
        nodes.setdefault(v)
        parents.setdefault(v, {})[u] = kind

    virtual: set[str] = set()
    for p in family.people:
        ops.append(("node", p.id, p, False))
        nodes.setdefault(p.id)
        virtual.discard(p.id)
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
            add_edge(pid, p.id, field)
    # the patient's parents, from ids or relations
    def one(rel: str) -> str | None:
        c = [p.id for p in family.people if p.relation == rel]
        if len(c) > 1:
            problems.append(Problem(f"{len(c)} people have relation {rel}", column="relation", value=", ".join(c)))
        return c[0] if c else None

    father = pt.father_id or one("father")
    mother = pt.mother_id or one("mother")
    for name, w in ((father, VIRTUAL_FATHER), (mother, VIRTUAL_MOTHER)):
        if name is None:
            ops.append(("node", w, None, True))
            nodes.setdefault(w)
            virtual.add(w)
    father = father if father is not None else VIRTUAL_FATHER
    mother = mother if mother is not None else VIRTUAL_MOTHER
    add_edge(father, pt.id, "father_id")
    add_edge(mother, pt.id, "mother_id")
    sibs, half_p, half_m, kids, others = [], [], [], [], []
    for p in family.people:
        if p.id in (pt.id, father, mother):
            continue
        pf, pm = p.father_id, p.mother_id
        if p.relation in FULL_SIBLINGS or (pf == father and pm == mother and pf is not None):
            if (pf and pf != father) or (pm and pm != mother):
                problems.append(Problem(f"{p.id} is a full sibling but has other parents in the file", **where(p, "relation")))
            sibs.append(p.id)
            add_edge(father, p.id, "father_id")
            add_edge(mother, p.id, "mother_id")
        elif p.relation == "half-sibling" or (pf == father) != (pm == mother) and (pf == father or pm == mother):
            if pf == father and pf is not None:
                half_p.append(p.id)
            elif pm == mother and pm is not None:
                half_m.append(p.id)
            else:
                others.append(p.id)  # side unknown: compared by state only
        elif p.relation in CHILDREN or pt.id in (pf, pm):
            kids.append(p.id)
            add_edge(pt.id, p.id, "father_id" if pt.sex == "M" else "mother_id")
        else:
            others.append(p.id)
            if p.relation.endswith(("grandfather", "grandmother")) and not (pf or pm):
                child = father if p.relation.startswith("paternal") else mother
                kind = "father_id" if p.relation.endswith("grandfather") else "mother_id"
                if not any(k == kind for k in parents.get(child, {}).values()):
                    add_edge(p.id, child, kind)
    # structural checks
    for node in nodes:
        ins = parents.get(node)
        if not ins:
            continue
        for kind in ("father_id", "mother_id"):
            srcs = {u for u, k in ins.items() if k == kind}
            if len(srcs) > 1:
                problems.append(Problem(f"{node} has {len(srcs)} {kind.split('_')[0]}s: {', '.join(sorted(srcs))}",
                                        column=kind, value=node))
    graph = None
    if _has_cycle(nodes, parents):
        import networkx as nx

        graph = _replay(ops)
        cycle = nx.find_cycle(graph)
        problems.append(Problem("the pedigree has a cycle: " + " → ".join(u for u, _ in cycle), column="father_id"))
    for parent, expected in ((father, "M"), (mother, "F")):
        par = people.get(parent)
        if par is not None and par.sex and par.sex != expected:
            problems.append(Problem(f"the patient's {'father' if expected == 'M' else 'mother'} {parent} has sex {par.sex}",
                                    **where(par, "sex")))
    if problems:
        raise InputError(problems)
    return Pedigree(graph, pt.id, father, mother, tuple(sibs), tuple(half_p), tuple(half_m), tuple(kids), tuple(others),
                    ops=ops, virtual=frozenset(virtual))


def _has_cycle(nodes, parents: dict[str, dict[str, str]]) -> bool:
    """Whether the graph (nodes, edges parent -> node) has a directed cycle: Kahn's algorithm. A node on a
    cycle has a parent and a child: when no node has both (a family of two generations), there is none."""
    if not any(u in parents for ps in parents.values() for u in ps):
        return False
    indeg = {n: len(parents.get(n, ())) for n in nodes}
    children: dict[str, list[str]] = {}
    for v, ps in parents.items():
        for u in ps:
            children.setdefault(u, []).append(v)
    ready = [n for n, d in indeg.items() if d == 0]
    seen = 0
    while ready:
        n = ready.pop()
        seen += 1
        for c in children.get(n, ()):
            indeg[c] -= 1
            if indeg[c] == 0:
                ready.append(c)
    return seen < len(indeg)


def generations(ped: Pedigree) -> dict[str, int]:
    """Generation of each node (0 = the oldest), for drawing: longest path from a founder."""
    import networkx as nx

    gen: dict[str, int] = {}
    for node in nx.topological_sort(ped.graph):
        preds = list(ped.graph.predecessors(node))
        gen[node] = 1 + max(gen[p] for p in preds) if preds else 0
    return gen
