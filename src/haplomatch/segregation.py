"""Family segregation: the four parental HLA haplotypes, who inherited which, and haploidentity.

The search is exact. Each child of the patient's parents has, at every locus, an inheritance state (which of
the father's haplotypes a/b and which of the mother's c/d it carries); half-siblings and the patient's own
children carry one known parent's haplotype. Given the joint state of all of them at a locus, the parental
haplotype alleles at that locus are chosen freely (from a typed parent's own alleles in either phase, or from
the alleles seen in the family when a parent is untyped), so the best cost of every joint state is computed
exactly per locus. A Viterbi pass over the loci in chromosomal order then finds every joint inheritance path of
minimal cost, where a cost is paid per recombination and per allele left unexplained (a named setting: by
default one recombination costs less than one unexplained allele, and two recombinations more, so a single
crossover is preferred to calling a typing error, and a typing error to a double crossover, which is
essentially never seen within the MHC). All co-optimal solutions are kept; if they disagree on a relative's
sharing with the patient, that relative's class is "undetermined" and the output says so.

Relatives outside the patient's sibship and its parents (grandparents, aunts, uncles, cousins, half-siblings
whose shared parent is not named, unrelated people) are compared with the patient's inferred haplotypes by
state: they carry a haplotype if every typed locus has a compatible allele, and never more haplotypes than the
alleles they share with the patient's typing at each class locus; the evidence says that descent is not
proven. Alleles are compared at the resolution both sides have: two typings match when the sets of release
alleles they can be intersect. A member of the sibship carries the patient's allele also through a parent
whose two haplotypes carry the same allele there (in every explanation of the data), never beyond the alleles
shared by state.

A screen segregates many families whose loci look alike up to the allele names. The fast computation codes
each locus (genotypes as indices of their distinct slot strings, with which of those strings match as bits:
all the computation reads of the strings) and keeps, per coded locus, its cost tables and the answers that
follow from them, per coded family (and per equal numbers) the search's solutions, and per coded family with
the same members, parents and patient's sex the interpretation with people as places and alleles as value
indices (:class:`_Template`), which the family's own ids, relations and allele names are put back into; a
family then pays for what is new in it. :func:`family_relationships` gives a screen what it reads
(relationships, recombinants, conflicts, notes) without naming every parental haplotype's alleles. The reference computation (``SegregationSettings(fast=False)``) builds every locus from its
definition and searches every family anew (it shares only the small pure steps after the search: labels,
sharings, relationship texts, pedigree roles), and tests compare the two.
"""

from __future__ import annotations

import itertools
import math
import re
import weakref
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from haplomatch.errors import InputError, Problem, UnknownAlleleError
from haplomatch.family import HLA_LOCI, Family
from haplomatch.hlatyping import LocusTyping
from haplomatch.nomenclature import Nomenclature
from haplomatch.pedigree import Pedigree, pedigree_roles

#: The loci whose sharing defines the class (DPB1 is reported, but often recombined away).
CLASS_LOCI = ("A", "C", "B", "DRB1", "DQB1")
Klass = Literal["HLA-identical", "haploidentical", "mismatched", "undetermined"]


@dataclass(frozen=True)
class SegregationSettings:
    """Costs of the search (named settings; see the module docstring for why 1 and 1.5)."""

    recombination_cost: float = 1.0
    unexplained_cost: float = 1.5
    max_solutions: int = 64
    max_states: int = 1 << 18
    max_configs: int = 1 << 16
    #: "auto" picks the faster exact search; "joint" / "config" force one (both exact; tests compare them)
    mode: str = "auto"
    #: False: compute the tables and the joint search from their definition, without the fast paths (slow;
    #: the answers are the same, which tests check)
    fast: bool = True


@dataclass(frozen=True)
class Conflict:
    """A typing that no inheritance explains: who, where, which alleles, and the likely causes."""

    person: str
    loci: tuple[str, ...]
    side: str  # "father", "mother" or "both"
    alleles: tuple[str, ...]
    message: str
    causes: tuple[str, ...]


@dataclass(frozen=True)
class Recombinant:
    person: str
    side: str  # "paternal" or "maternal"
    between: tuple[str, str]  # the two typed loci around the crossover

    @property
    def text(self) -> str:
        return f"{self.person}: {self.side} recombination between {self.between[0]} and {self.between[1]}"


@dataclass(frozen=True)
class PersonHaplotypes:
    """A person's two haplotypes as parental labels per locus (a/b from the father, c/d from the mother)."""

    id: str
    paternal: tuple[str | None, ...]
    maternal: tuple[str | None, ...]


@dataclass(frozen=True)
class Relationship:
    """How a relative relates to the patient, with the evidence."""

    id: str
    relation: str
    shared: int | None  # haplotypes shared with the patient (0, 1, 2) on the class loci
    klass: Klass
    shared_haplotypes: tuple[str, ...]  # labels, e.g. ("a",) or ("a", "c")
    all_loci: bool | None  # the class holds at every locus typed in both
    loci_typed: tuple[str, ...]
    partial: bool  # typed at fewer loci than the patient: the class holds "on the loci typed"
    by_descent: bool  # established by segregation (True) or by allele state only (False)
    evidence: str
    possibilities: tuple[str, ...] = ()  # when undetermined: the classes the solutions allow


@dataclass(frozen=True)
class Segregation:
    family_id: str | None
    loci: tuple[str, ...]
    haplotypes: dict[str, dict[str, tuple[str, ...]]]  # label → locus → possible alleles
    persons: tuple[PersonHaplotypes, ...]
    relationships: tuple[Relationship, ...]
    unique: bool
    n_solutions: int
    recombinants: tuple[Recombinant, ...]
    conflicts: tuple[Conflict, ...]
    cost: float
    notes: tuple[str, ...] = field(default=())
    #: the loci where the phase is open: some parental haplotype may carry more than one allele there
    phase_open: tuple[str, ...] = ()

    def relationship(self, pid: str) -> Relationship:
        return next(r for r in self.relationships if r.id == pid)


@dataclass(frozen=True)
class Relationships:
    """What a batch screen reads of a segregation (:func:`family_relationships`): ``Segregation``'s fields
    but the parental haplotypes' alleles and each person's haplotype labels, equal to ``segregate``'s."""

    family_id: str | None
    loci: tuple[str, ...]
    relationships: tuple[Relationship, ...]
    unique: bool
    n_solutions: int
    recombinants: tuple[Recombinant, ...]
    conflicts: tuple[Conflict, ...]
    cost: float
    notes: tuple[str, ...] = field(default=())
    phase_open: tuple[str, ...] = ()  # as Segregation's

    def relationship(self, pid: str) -> Relationship:
        return next(r for r in self.relationships if r.id == pid)


# ---------------------------------------------------------------------------------------------------------
class _Matcher:
    """Compatibility of typings at the resolution both have (their candidate allele sets intersect)."""

    #: pairs remembered per nomenclature before the memory is cleared (a screen meets millions of pairs)
    MAX_PAIRS = 1 << 20

    def __init__(self, nomenclature: Nomenclature) -> None:
        self.nom = nomenclature
        self._sets: dict[str, frozenset[str]] = {}
        self._pairs: dict[tuple[str, str], bool] = {}
        self._two_field: dict[str, bool] = {}  # slot string -> more than one two-field name possible
        #: slot string -> the first two fields shared by all its candidate alleles (None: not all alike)
        self._groups: dict[str, str | None] = {}

    def alleles(self, slot: str) -> frozenset[str]:
        if slot not in self._sets:
            found: set[str] = set()
            for name in slot.split("/"):
                try:
                    found.update(self.nom.resolve_one(name).alleles)
                except UnknownAlleleError:
                    found.add(name)
            if len(self._sets) > self.MAX_PAIRS:
                self._sets.clear()
                self._groups.clear()
            self._sets[slot] = frozenset(found)
            groups = {":".join(a.split(":", 2)[:2]) for a in found}
            self._groups[slot] = groups.pop() if len(groups) == 1 else None
        return self._sets[slot]

    def match(self, x: str | None, y: str | None) -> bool:
        if x is None or y is None:
            return True
        if x == y:
            return True
        key = (x, y)
        hit = self._pairs.get(key)
        if hit is None:
            if len(self._pairs) > self.MAX_PAIRS:
                self._pairs.clear()
            hit = self._pairs[key] = self._pairs[(y, x)] = bool(self.alleles(x) & self.alleles(y))
        return hit


    def relation(self, values: list[str]) -> int:
        """The match relation between distinct slot strings as bits, pair (i, j) for i < j at bit
        j (j - 1) / 2 + i: what match() says, with the candidate sets looked up once per string. Two sets
        of which one is small are compared directly (isdisjoint walks the smaller one); pairs of large
        sets (low-resolution typings) are remembered as match() remembers them."""
        # strings whose candidates each share their first two fields, different for each string, share no
        # allele (the usual family: distinct high-resolution typings); checked without the sets
        groups = [self._groups.get(v) for v in values]
        if None not in groups and len(set(groups)) == len(groups):
            return 0
        bits = 0
        bit = 1
        known = self._sets
        sets = [known.get(v) or self.alleles(v) for v in values]
        size = sum(map(len, sets))
        if size <= 256 and len(frozenset().union(*sets)) == size:
            return 0  # no two sets share an allele (the usual family: distinct high-resolution typings)
        for j in range(1, len(values)):
            sj = sets[j]
            for i in range(j):
                si = sets[i]
                if len(si) <= 32 or len(sj) <= 32:
                    hit = not si.isdisjoint(sj)
                else:
                    hit = self.match(values[i], values[j])
                if hit:
                    bits |= bit
                bit <<= 1
        return bits


#: one matcher per nomenclature, so that a loop over many families resolves each slot string once
_MATCHERS: "weakref.WeakKeyDictionary[Nomenclature, _Matcher]" = weakref.WeakKeyDictionary()


def _matcher(nomenclature: Nomenclature) -> _Matcher:
    try:
        m = _MATCHERS.get(nomenclature)
        if m is None:
            m = _MATCHERS[nomenclature] = _Matcher(nomenclature)
        return m
    except TypeError:  # not weakly referable or hashable: a matcher for this call only
        return _Matcher(nomenclature)


def _is_typed(t: LocusTyping) -> bool:
    """LocusTyping.typed (some slot of some genotype names a typing), without its generator."""
    for a, b in t.genotypes:
        if a or b:
            return True
    return False


def _genotypes(t: LocusTyping | None) -> list[tuple[str | None, str | None]]:
    """Genotype alternatives as pairs of slot strings (None = open slot)."""
    if t is None:
        return []
    gs = t.genotypes
    if not any(a or b for a, b in gs):  # not t.typed
        return []
    return [(("/".join(a) or None), ("/".join(b) or None)) for a, b in gs]


@dataclass
class _Member:
    id: str
    kind: str  # full, half_p, half_m, grandchild
    radix: int


class _LocusData:
    """One locus of the search: the parental options and every member's cost table over (F, M, [patient
    state,] own state). The fast computations also keep what the interpretation reuses: the genotypes of the
    nuclear family, and for typed parents with full siblings only (``base``) each member's costs under the
    first option, from which every table follows (option (fi, mi) reads state s ^ (2 fi + mi))."""

    __slots__ = ("fopts", "mopts", "_tables", "total", "gts", "prep", "base", "memo")

    def __init__(self, fopts, mopts, tables=None, gts=None, base=None) -> None:
        self.fopts: list[tuple[str | None, str | None]] = fopts
        self.mopts: list[tuple[str | None, str | None]] = mopts
        self._tables: list[np.ndarray] | None = tables
        self.total: np.ndarray | None = None  # (F, M, *joint shape), when it was computed
        self.gts: dict[str, list[tuple[str | None, str | None]]] | None = gts
        self.prep: tuple | None = None  # what _joint_costs_fast needs
        self.base: list[list[float]] | None = base  # per member, the costs of its 4 states
        #: answers that depend only on the locus's coded structure (see _code_loci), shared by every locus of
        #: every family with the same structure: best options per joint state, per-locus choices, ...
        self.memo: dict = {}

    @property
    def tables(self) -> list[np.ndarray]:
        if self._tables is None:
            tables = self.memo.get("tables")
            if tables is None:
                perm = _XOR[: len(self.fopts), : len(self.mopts)]
                tables = self.memo["tables"] = [row[perm] for row in np.array(self.base, dtype=float)]
                for t in tables:
                    t.flags.writeable = False
            self._tables = tables
        return self._tables

    def best_options(self, members, state: tuple[int, ...]) -> tuple[float, list[tuple[int, int]]]:
        """The least cost of one joint state and the (father option, mother option) pairs reaching it, in C
        order."""
        key = ("options", state)
        hit = self.memo.get(key)
        if hit is None:
            low, pairs = self._best_options(members, state)
            hit = self.memo[key] = (low, tuple(pairs))
        return hit

    def _best_options(self, members, state: tuple[int, ...]) -> tuple[float, list[tuple[int, int]]]:
        if self.base is not None:
            rows = self.base
            subs = []
            for fi in range(len(self.fopts)):
                for mi in range(len(self.mopts)):
                    o = (fi << 1) | mi
                    c = 0
                    for r, s in zip(rows, state):
                        c += r[s ^ o]
                    subs.append((fi, mi, c))
            low = min(c for _, _, c in subs)
            return low, [(fi, mi) for fi, mi, c in subs if abs(c - low) < 1e-9]
        if self.total is not None:
            sub = self.total[(slice(None), slice(None)) + tuple(state)]
        else:
            sub = _alpha_costs(members, self.tables, state)
        low = sub.min()
        fis, mis = np.nonzero(np.abs(sub - low) < 1e-9)
        return float(low), list(zip(fis.tolist(), mis.tolist()))


_XOR = np.array([[[s ^ ((fi << 1) | mi) for s in range(4)] for mi in range(2)] for fi in range(2)])


def _minplus_axis(d: np.ndarray, t: np.ndarray, axis: int) -> np.ndarray:
    dm = np.moveaxis(d, axis, -1)
    out = np.min(dm[..., :, None] + t, axis=-2)
    return np.moveaxis(out, -1, axis)


def _step_binary(d: np.ndarray, R: float) -> np.ndarray:
    """One Viterbi step of _joint_search over every member at once, as the min-plus product with each
    member's _transition: a full child's state is two bits (the father's and the mother's haplotype) and its
    transition costs R per bit that changes, a one-parent child's is one bit, so the product splits into one
    min(stay, flip + R) per bit. ``d`` has one axis of length 2 per bit. Exact costs: the same numbers."""
    for ax in range(d.ndim):
        d = np.minimum(d, d[_FLIPS[ax]] + R)
    return d


#: _FLIPS[ax]: the index that reverses axis ax (as np.flip, without its argument checks)
_FLIPS = [(slice(None),) * ax + (slice(None, None, -1),) for ax in range(64)]


def _exact(settings: SegregationSettings) -> bool:
    """Whether every sum of costs is exact in floating point (costs are multiples of 1/1024 of moderate size):
    then any order of summation gives the same number and ties are exact, so the fast computations give
    exactly the numbers of the reference one. Other settings use the reference computation."""
    for c in (settings.recombination_cost, settings.unexplained_cost):
        try:
            x = float(c) * 1024
        except (TypeError, ValueError):
            return False
        if not (math.isfinite(x) and x.is_integer() and 0 <= x < 2 ** 30):
            return False
    return True


def _parent_options(gts, free) -> list[tuple[str | None, str | None]]:
    """A parent's haplotype pairs at a locus: either phase of each genotype; an open slot or an untyped
    parent takes any value seen in the family, or None (a haplotype no typed person shows)."""
    if not gts:
        return list(itertools.product(free, repeat=2))
    opts: list[tuple[str | None, str | None]] = []
    for x, y in gts:
        xs = [x] if x is not None else free
        ys = [y] if y is not None else free
        for u in xs:
            for w in ys:
                for o in ((u, w), (w, u)):
                    if o not in opts:
                        opts.append(o)
    return opts


def segregate(family: Family, nomenclature: Nomenclature, settings: SegregationSettings = SegregationSettings(),
              pedigree: Pedigree | None = None) -> Segregation:
    """Infer the family's haplotypes (see the module docstring). Raises InputError on an unusable pedigree."""
    return _named(*_interpreted(family, nomenclature, settings, pedigree), settings, full=True)


def family_relationships(family: Family, nomenclature: Nomenclature,
                         settings: SegregationSettings = SegregationSettings(),
                         pedigree: Pedigree | None = None) -> Relationships:
    """:func:`segregate`'s relationships, recombinants, conflicts and notes, without naming the parental
    haplotypes' alleles and each person's labels (a screen of 10^5 families reads only these)."""
    return _named(*_interpreted(family, nomenclature, settings, pedigree), settings, full=False)


def _interpreted(family: Family, nomenclature: Nomenclature, settings: SegregationSettings,
                 pedigree: Pedigree | None) -> tuple:
    """The search and its interpretation (a template, see _Template) with what naming it reads."""
    ped = pedigree or pedigree_roles(family)
    people = {p.id: p for p in family.people}
    pt = people[ped.patient]
    hla = pt.hla
    loci = tuple([loc for loc in HLA_LOCI if (t := hla.get(loc)) is not None and _is_typed(t)])
    if not loci:
        raise InputError([Problem("the patient has no HLA typing", file=pt.source_file, row=pt.source_row)])
    m = _matcher(nomenclature)
    members = [_Member(ped.patient, "full", 4)] + [_Member(s, "full", 4) for s in ped.siblings]
    members += [_Member(s, "half_p", 2) for s in ped.paternal_half_siblings]
    members += [_Member(s, "half_m", 2) for s in ped.maternal_half_siblings]
    members += [_Member(s, "grandchild", 2) for s in ped.children]
    shape = tuple(mb.radix for mb in members)
    n_states = math.prod(shape) if len(shape) < 31 else int(np.prod(shape))  # (as numpy's int64 for many)
    fast = settings.fast and _exact(settings)

    if fast:
        locus_data, is_nuclear, keys = _shared_loci(loci, ped, members, people, m, settings.unexplained_cost)
        # the interpretation reads the family through its coded loci, the members' kinds, the parents'
        # presence and typing and (for the patient's children's labels only) the patient's sex (see
        # _Template): one template per such family
        fkey = (settings, keys, loci, tuple(mb.kind for mb in members), pt.sex if ped.children else None,
                *((n in people, _typed_anywhere(people.get(n))) for n in (ped.father, ped.mother)))
        tpl = _TEMPLATES.get(fkey)
        if tpl is None:
            # the search reads the loci's numbers only, which their coded structures fix
            key = (settings, keys)
            found = _SEARCHES.get(key)
            if found is None:
                paths, best, overflow = _search(members, shape, n_states, locus_data,
                                                locus_data if is_nuclear else None, settings, fast)
                found = (tuple(map(tuple, paths)), best, overflow)
                if len(_SEARCHES) >= _SHARED_MAX:
                    _SEARCHES.clear()
                _SEARCHES[key] = found
            paths, best, overflow = found
            paths = _merge_mirrors(paths, members, ped, people)
            tpl = _template(family, people, ped, members, loci, locus_data, paths, best, overflow, m, settings)
            if len(_TEMPLATES) >= _SHARED_MAX:
                _TEMPLATES.clear()
            _TEMPLATES[fkey] = tpl
    else:
        locus_data = [_locus_reference(locus, ped, members, people, m, settings.unexplained_cost) for locus in loci]
        paths, best, overflow = _search(members, shape, n_states, locus_data, None, settings, fast)
        paths = _merge_mirrors(paths, members, ped, people)
        tpl = _template(family, people, ped, members, loci, locus_data, paths, best, overflow, m, settings)
    return family, people, ped, members, loci, locus_data, tpl, m


def _typed_anywhere(p) -> bool:
    """A person in the family with some HLA locus typed (None: not in the family)."""
    return p is not None and any(t is not None and _is_typed(t) for t in p.hla.values())


def _code_loci(loci, ids: list[str], people: dict, m: _Matcher) -> list[tuple]:
    """Each locus of a family in integer codes: every distinct slot string gets the index of its first
    appearance (in the order of ``ids``: father, mother, members; as _locus_fast numbers its values), and
    the key is the genotypes as index pairs (-1: open slot) with the match relation between the distinct
    values as bits. The fast builders use slot strings only through string equality and _Matcher.match, so
    everything they compute for a locus is a function of this key (and of the members' kinds and the cost):
    ambiguous typings (allele lists, XX codes, mixed resolutions) are covered exactly by the match bits.
    Per locus: the values in index order, the genotypes by person id (as _genotypes), and the key."""
    hlas = [people[pid].hla if pid in people else {} for pid in ids]
    out = []
    for locus in loci:
        gts: dict[str, list[tuple[str | None, str | None]]] = {}
        index: dict[str, int] = {}
        struct = []
        for pid, hla in zip(ids, hlas):
            t = hla.get(locus)
            if t is not None and len(t.genotypes) == 1:  # _genotypes(t), inline for the common case
                a, b = t.genotypes[0]
                if a or b:
                    x, y = "/".join(a) or None, "/".join(b) or None
                    gts[pid] = [(x, y)]
                    struct.append(((-1 if x is None else index.setdefault(x, len(index)),
                                    -1 if y is None else index.setdefault(y, len(index))),))
                else:
                    gts[pid] = []
                    struct.append(())
                continue
            g = gts[pid] = _genotypes(t)
            struct.append(tuple((-1 if x is None else index.setdefault(x, len(index)),
                                 -1 if y is None else index.setdefault(y, len(index))) for x, y in g))
        values = list(index)
        out.append((values, gts, (tuple(struct), m.relation(values))))
    return out


#: per coded locus (see _code_loci): the options as value indices, the cost tables and what depends on them
#: alone (a screen meets the same few hundred structures in every family)
_SHARED: dict[tuple, tuple] = {}
_SHARED_MAX = 1 << 15
#: a number per entry of _SHARED, never reused (the entries stand for their keys in _SEARCHES' keys)
_SERIALS = itertools.count()


#: the search's answer (paths, cost, overflow) per (settings, coded loci): a screen meets the same families
#: of structures again and again
_SEARCHES: dict[tuple, tuple] = {}


def _search(members, shape, n_states, locus_data, nuclear, settings, fast):
    """The exact search (joint Viterbi, its constant-path shortcuts, or the configuration search): the
    solutions (joint state per locus), their cost, and whether there were more than max_solutions."""
    sizes = [len(ld.fopts) * len(ld.mopts) for ld in locus_data]
    n_configs = math.prod(sizes)  # exact; as a float (as it was) where a float cannot hold it exactly
    if n_configs >= 1 << 53:
        n_configs = int(np.prod(sizes, dtype=float))
    if settings.mode == "joint" or (settings.mode == "auto" and (
            n_states <= 4096 or (n_states <= settings.max_states and n_configs > settings.max_configs))):
        shortcut = fast and settings.recombination_cost > 0
        found = None
        if shortcut and nuclear is not None:
            found = _constant_paths_nuclear(locus_data, settings)
        elif shortcut and all(mb.kind == "full" for mb in members):
            picks = [_locus_choices(ld, li == 0) for li, ld in enumerate(locus_data)]
            found = _kept_constant_paths([x for x, _ in picks], [c for _, c in picks], len(members), settings)
        if found is not None:
            paths, best, overflow = found
        elif fast:
            costs = [_joint_costs_fast(ld, members, shape) for ld in locus_data]
            short = shortcut and any(mb.kind != "full" for mb in members)
            # the fast joint search reads the costs, the shape and the settings only
            key = (settings, shape, short, tuple([c.tobytes() for c in costs]))
            found = _JOINT.get(key)
            if found is None:
                paths, best, overflow = _joint_search(members, shape, locus_data, settings, costs, fast=True,
                                                      shortcut=short)
                if len(_JOINT) >= _SHARED_MAX:
                    _JOINT.clear()
                found = _JOINT[key] = (tuple(map(tuple, paths)), best, overflow)
            paths, best, overflow = found
        else:
            paths, best, overflow = _joint_search(members, shape, locus_data, settings, None, fast=False)
    elif n_configs <= settings.max_configs:
        paths, best, overflow = _config_search(members, locus_data, settings)
    else:
        raise InputError([Problem(
            f"the family is too large for the exact search ({n_states} joint inheritance states, {n_configs:.0f} "
            "parental phase configurations): type the parents, or split the family", column="relation")])
    return paths, best, overflow


#: the fast joint search's answers per (settings, shape, shortcut, costs per locus as bytes), and
#: _constant_paths's per its arguments: loci of different coded structures often have the same numbers
_JOINT: dict[tuple, tuple] = {}
_CONSTANT: dict[tuple, tuple | None] = {}


def _kept_constant_paths(least: list[float], choices: list, k: int, settings):
    """_constant_paths, kept per its arguments (the choices are frozensets, as the loci's memos keep them)."""
    key = (tuple(least), tuple(choices), k, settings)
    try:
        return _CONSTANT[key]
    except KeyError:
        pass
    found = _constant_paths(least, choices, k, settings)
    if found is not None:
        paths, best, overflow = found
        found = (tuple(map(tuple, paths)), best, overflow)
    if len(_CONSTANT) >= _SHARED_MAX:
        _CONSTANT.clear()
    _CONSTANT[key] = found
    return found


def _clear_kept() -> None:
    """Forget every answer kept across families (tests use it to start from nothing)."""
    for kept in (_SHARED, _SEARCHES, _TEMPLATES, _SOLUTIONS, _LABELS, _RELATIONSHIPS, _TRANS_TO, _JOINT,
                 _CONSTANT):
        kept.clear()


def _shared_loci(loci, ped, members, people, m: _Matcher, U: float) -> tuple[list[_LocusData], bool, tuple]:
    """The loci of the fast computation, whether they are _nuclear_fast's (typed parents, full siblings), and
    their keys (the serial numbers of their coded structures with the members' kinds and the cost).

    Each locus is built once per coded structure (by _nuclear_fast or _locus_fast on the first family that
    has it) and kept with its options as value indices; a later family with the same structure gets the same
    numbers with its own strings put back, and shares the memo of answers that depend on the structure only
    (best options per joint state, per-locus choices, joint costs, sharing by state)."""
    ids = [ped.father, ped.mother] + [mb.id for mb in members]
    coded = _code_loci(loci, ids, people, m)
    kinds = tuple(mb.kind for mb in members)
    nuclear = ped.father in people and ped.mother in people and all(k == "full" for k in kinds)
    if nuclear:
        for _, _, (st, _) in coded:
            if len(st[0]) != 1 or len(st[1]) != 1 or -1 in st[0][0] or -1 in st[1][0]:
                nuclear = False
                break
    tag = "nuclear" if nuclear else "tables"
    out = []
    keys = []
    for locus, (values, gts, key) in zip(loci, coded):
        full_key = (tag, U, kinds, key)
        entry = _SHARED.get(full_key)
        if entry is None:
            if nuclear:
                (ld,) = _nuclear_fast([locus], ped, members, people, m, U)  # type: ignore[misc]
            else:
                ld = _locus_fast(locus, ped, members, people, m, U)
            entry = _abstract(ld, values) + (next(_SERIALS),)
            if len(_SHARED) >= _SHARED_MAX:
                _SHARED.clear()
            _SHARED[full_key] = entry
        fo, mo, tables, base, prep, memo, serial = entry
        keys.append(serial)
        val: list[str | None] = values + [None]
        ld = _LocusData(_Named(fo, val), _Named(mo, val), tables, gts=gts, base=base)
        if prep is not None:
            ld.prep = prep + (values,)
        ld.memo = memo
        out.append(ld)
    return out, nuclear, tuple(keys)


class _Named:
    """A parent's options at a kept locus, as value indices, read as this family's slot strings (an untyped
    parent has one option per pair of values: most are never read)."""

    __slots__ = ("codes", "val")

    def __init__(self, codes: tuple[tuple[int, int], ...], val: list[str | None]) -> None:
        self.codes = codes
        self.val = val

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, i: int) -> tuple[str | None, str | None]:
        a, b = self.codes[i]
        return self.val[a], self.val[b]

    def __iter__(self):
        val = self.val
        return iter([(val[a], val[b]) for a, b in self.codes])


def _abstract(ld: _LocusData, values: list[str]) -> tuple:
    """A freshly built locus with its strings taken out: options as value indices (None: the index after the
    last value, as _locus_fast's), read-only tables and base costs, prep without the values, a memo."""
    index = {v: i for i, v in enumerate(values)}
    none = len(values)

    def code(opts):
        return tuple((none if a is None else index[a], none if b is None else index[b]) for a, b in opts)

    tables = ld._tables
    if tables is not None:
        for t in tables:
            t.flags.writeable = False
    base = None if ld.base is None else tuple(tuple(r) for r in ld.base)
    prep = None if ld.prep is None else ld.prep[:-1]
    return code(ld.fopts), code(ld.mopts), tables, base, prep, {}


def _nuclear_fast(loci, ped, members, people, m: _Matcher, U: float) -> list[_LocusData] | None:
    """The common case, or None: full siblings only, both parents in the file and typed at every locus with
    one genotype and no open slot. The options of a parent are then its genotype in either phase, and each
    member's table follows from its costs under the first option (``base``): option (fi, mi) reads state
    s ^ (2 fi + mi). The costs of every member at every locus are computed at once from, per distinct slot
    string, whether it matches each of the four parental values."""
    father, mother = people.get(ped.father), people.get(ped.mother)
    if father is None or mother is None or any(mb.kind != "full" for mb in members):
        return None
    out: list[_LocusData] = []
    match = m.match
    Uf = float(U)
    for locus in loci:
        gf, gm = _genotypes(father.hla.get(locus)), _genotypes(mother.hla.get(locus))
        if len(gf) != 1 or len(gm) != 1 or None in gf[0] or None in gm[0]:
            return None
        (f0, f1), (m0, m1) = gf[0], gm[0]
        # per slot string: whether it is left unexplained (1) by the father's value 0, 1, the mother's 0, 1
        miss: dict[str | None, tuple[int, ...]] = {None: (0, 0, 0, 0)}  # an open slot is explained by anything
        rows_of: dict[tuple[str | None, str | None], list[int]] = {}  # per genotype, the counts of the 4 states
        gts = {ped.father: gf, ped.mother: gm}
        base: list[list[float]] = []
        for mb in members:
            g = gts[mb.id] = _genotypes(people[mb.id].hla.get(locus))
            best = None
            for gt in g:
                row = rows_of.get(gt)
                if row is None:
                    x, y = gt
                    mx = miss.get(x)
                    if mx is None:
                        mx = miss[x] = (not match(x, f0), not match(x, f1), not match(x, m0), not match(x, m1))
                    my = miss.get(y)
                    if my is None:
                        my = miss[y] = (not match(y, f0), not match(y, f1), not match(y, m0), not match(y, m1))
                    # state s: the father's value s >> 1 and the mother's s & 1, either orientation of the genotype
                    row = rows_of[gt] = [min(mx[0] + my[2], my[0] + mx[2]), min(mx[0] + my[3], my[0] + mx[3]),
                                         min(mx[1] + my[2], my[1] + mx[2]), min(mx[1] + my[3], my[1] + mx[3])]
                best = row if best is None else [min(a, b) for a, b in zip(best, row)]
            base.append([0.0] * 4 if best is None else [c * Uf for c in best])
        ld = _LocusData([(f0, f1)] if f0 == f1 else [(f0, f1), (f1, f0)],
                        [(m0, m1)] if m0 == m1 else [(m0, m1), (m1, m0)], gts=gts)
        ld.base = base
        out.append(ld)
    return out


def _constant_paths_nuclear(locus_data: list[_LocusData], settings):
    """_constant_paths for the typed-parents case, every locus from the members' base costs: under option
    o = 2 fi + mi a member's state s costs base[s ^ o], so its least cost is the same under every option and
    its best states are those under the first option, each XOR o (the patient is held in state 0 at the first
    locus, whose cost is then base[o])."""
    least: list[float] = []
    choices: list[set[tuple[int, ...]]] = []
    for li, ld in enumerate(locus_data):
        key = ("nuclear choices", li == 0)
        hit = ld.memo.get(key)
        if hit is None:
            low, sets = _nuclear_choices(ld, li == 0)
            hit = ld.memo[key] = (low, frozenset(sets))
        least.append(hit[0])
        choices.append(hit[1])
    return _kept_constant_paths(least, choices, len(locus_data[0].base), settings)


def _nuclear_choices(ld: _LocusData, first: bool) -> tuple[float, set[tuple[int, ...]]]:
    """One locus of _constant_paths_nuclear: the least cost of a joint state, and the members' best states
    (as bits) per option reaching it."""
    lows, bests = [], []
    for r in ld.base:
        low = min(r)
        lows.append(low)
        bests.append((r[0] == low) | (r[1] == low) << 1 | (r[2] == low) << 2 | (r[3] == low) << 3)
    nF, nM = len(ld.fopts), len(ld.mopts)
    per = []
    for o in range(4):
        if o >> 1 >= nF or o & 1 >= nM:
            continue
        perm = _XOR_MASK[o]
        if first:  # the patient is in state 0 (haplotypes a and c) at the first locus
            cost = ld.base[0][o]
            for low in lows[1:]:
                cost += low
            masks = (1,) + tuple([perm[mk] for mk in bests[1:]])
        else:
            cost = 0
            for low in lows:
                cost += low
            masks = tuple([perm[mk] for mk in bests])
        per.append((cost, masks))
    low = min(c for c, _ in per)
    return low, {mk for c, mk in per if c == low}


#: _XOR_MASK[o][mask]: the set of states {s ^ o : s in mask}, as bits
_XOR_MASK = [[sum(1 << (s ^ o) for s in range(4) if mask >> s & 1) for mask in range(16)] for o in range(4)]


def _locus_choices(ld: _LocusData, first: bool) -> tuple[float, set[tuple[int, ...]]]:
    """Full siblings only: the least cost of a joint state at one locus, and per parental option reaching it
    each member's best states (as bits) -- the joint states reaching it are the products of those."""
    key = ("choices", first)
    hit = ld.memo.get(key)
    if hit is None:
        low, sets = _locus_choices_of(ld, first)
        hit = ld.memo[key] = (low, frozenset(sets))
    return hit


def _locus_choices_of(ld: _LocusData, first: bool) -> tuple[float, set[tuple[int, ...]]]:
    nO = len(ld.fopts) * len(ld.mopts)
    T = np.stack([t.reshape(nO, 4) for t in ld.tables], axis=1)  # (options, members, states), a new array
    if first:
        T[:, 0, 1:] = np.inf  # the patient is in state 0 at the first locus
    low = T.min(axis=2)
    cost = low.sum(axis=1)
    least = cost.min()
    good = cost == least
    masks = ((T[good] == low[good][:, :, None]) * _BITS).sum(axis=2)
    return float(least), set(map(tuple, masks.tolist()))


_BITS = np.array([1, 2, 4, 8])


def _constant_paths(least: list[float], choices: list[set[tuple[int, ...]]], k: int, settings,
                    limit: int = 1 << 14):
    """The joint search's answer when some joint state is optimal at every locus on its own (else None).

    A path costs at least the sum over loci of the least cost of a joint state there (``least``; at the
    first locus with the patient in state 0), and reaches it only by staying in one joint state (any change
    pays a recombination, cost > 0) that is optimal at every locus: then those states are exactly the
    solutions, listed as the backtracking lists them (C order). Given a parental option the members are
    independent, so the optimal joint states at a locus are, per option reaching the least cost, the product
    of each member's best states (``choices``: per locus, the per-member state sets as bits)."""
    current = {(1,) + (15,) * (k - 1)}  # the patient stays in state 0 (haplotypes a and c)
    for options in choices:
        if len(options) > 256:
            return None
        nxt = set()
        for prod in current:
            for mk in options:
                q = tuple([a & b for a, b in zip(prod, mk)])
                if all(q):
                    nxt.add(q)
        if not nxt or len(nxt) > 64:
            return None
        current = nxt
    states: set[tuple[int, ...]] = set()
    for prod in current:
        size = 1
        for a in prod:
            size *= bin(a).count("1")
        if len(states) + size > limit:
            return None
        states.update(itertools.product(*[[s for s in range(4) if a >> s & 1] for a in prod]))
    ordered = sorted(states)
    best = 0.0
    for x in least:
        best += x
    paths = [[st] * len(choices) for st in ordered[: settings.max_solutions]]
    return paths, best, len(ordered) > settings.max_solutions


def _locus_reference(locus, ped, members, people, m: _Matcher, U: float) -> _LocusData:
    """The cost tables at one locus, computed directly from their definition (the reference computation)."""

    def typing(pid: str) -> LocusTyping | None:
        p = people.get(pid)
        return p.hla.get(locus) if p is not None else None

    ids = [ped.father, ped.mother] + [mb.id for mb in members]
    values: list[str] = []
    for pid in ids:
        for g in _genotypes(typing(pid)):
            for v in g:
                if v is not None and v not in values:
                    values.append(v)
    free = values + [None]  # None as a parental value: a haplotype no typed person shows ('?')
    fopts, mopts = _parent_options(_genotypes(typing(ped.father)), free), _parent_options(_genotypes(typing(ped.mother)), free)

    # value match, with None (unseen haplotype) matching no typed allele
    def vm(slot: str | None, val: str | None) -> bool:
        return slot is None or (val is not None and m.match(slot, val))

    def geno_cost(pid: str, u: str | None, w: str | None) -> float:
        gts = _genotypes(typing(pid))
        if not gts:
            return 0.0
        best = 2
        for x, y in gts:
            best = min(best, (not vm(x, u)) + (not vm(y, w)), (not vm(y, u)) + (not vm(x, w)))
        return best * U

    def one_hap_cost(pid: str, u: str | None) -> float:
        gts = _genotypes(typing(pid))
        if not gts:
            return 0.0
        return 0.0 if any(vm(x, u) or vm(y, u) for x, y in gts) else U

    tables = []  # per member: array over (F, M, [patient state,] own state)
    for mb in members:
        if mb.kind == "full":
            t = np.array([[[geno_cost(mb.id, fo[s >> 1], mo[s & 1]) for s in range(4)] for mo in mopts] for fo in fopts])
        elif mb.kind == "half_p":
            t = np.array([[[one_hap_cost(mb.id, fo[b]) for b in range(2)] for mo in mopts] for fo in fopts])
        elif mb.kind == "half_m":
            t = np.array([[[one_hap_cost(mb.id, mo[b]) for b in range(2)] for mo in mopts] for fo in fopts])
        else:  # the patient's child: carries the patient's paternal (0) or maternal (1) haplotype
            t = np.array([[[[one_hap_cost(mb.id, fo[sp >> 1] if b == 0 else mo[sp & 1]) for b in range(2)]
                            for sp in range(4)] for mo in mopts] for fo in fopts])
        tables.append(t)
    return _LocusData(fopts, mopts, tables)


_P4 = np.array([0, 0, 1, 1])  # state s of a full child: father's haplotype s >> 1, mother's s & 1
_Q4 = np.array([0, 1, 0, 1])


def _locus_fast(locus, ped, members, people, m: _Matcher, U: float) -> _LocusData:
    """The same tables as _locus_reference (same options in the same order, same numbers), built with array
    operations from one small slot × value match matrix instead of a match call per table cell."""
    gts: dict[str, list] = {}
    for pid in [ped.father, ped.mother] + [mb.id for mb in members]:
        p = people.get(pid)
        gts[pid] = _genotypes(p.hla.get(locus) if p is not None else None)
    index: dict[str, int] = {}
    for g in gts.values():  # insertion order: father, mother, members (as the reference)
        for x, y in g:
            for v in (x, y):
                if v is not None and v not in index:
                    index[v] = len(index)
    values = list(index)
    free = values + [None]
    W = len(free)
    NONE = W - 1
    fopts, mopts = _parent_options(gts[ped.father], free), _parent_options(gts[ped.mother], free)
    every_pair = np.stack(np.divmod(np.arange(W * W), W), axis=1)  # the options of an untyped parent, by index

    def option_index(gt, opts) -> np.ndarray:
        if not gt:
            return every_pair
        return np.array([[NONE if v is None else index[v] for v in o] for o in opts], dtype=np.intp)

    fa, ma = option_index(gts[ped.father], fopts), option_index(gts[ped.mother], mopts)
    nF, nM = len(fopts), len(mopts)

    # ok[slot, value]: a typed slot is explained by a parental value (an open slot by anything; the unseen
    # value None explains no typed slot). Only the columns of values some parental option takes are needed.
    ok = [[False] * W for _ in range(W)]
    ok[NONE] = [True] * W
    if gts[ped.father] and gts[ped.mother]:
        cols = sorted(set(fa.ravel().tolist()) | set(ma.ravel().tolist()))
    else:
        cols = range(W)
    pairs = m._pairs
    for j in cols:
        if j == NONE:
            continue
        vj = values[j]
        for i, vi in enumerate(values):
            if i == j:
                ok[i][j] = True
                continue
            hit = pairs.get((vi, vj))
            ok[i][j] = m.match(vi, vj) if hit is None else hit
    miss = 1.0 - np.array(ok, dtype=float)  # 1 where the slot is left unexplained

    k = len(members)
    tables: list[np.ndarray] = [None] * k  # type: ignore[list-item]
    # full children: all genotype alternatives at once, then the best alternative per child
    rows_x, rows_y, owners = [], [], []
    hv: dict[int, np.ndarray] = {}  # one-haplotype cost per parental value (half-siblings, the patient's children)
    for i, mb in enumerate(members):
        g = gts[mb.id]
        if mb.kind == "full":
            for x, y in g:
                rows_x.append(NONE if x is None else index[x])
                rows_y.append(NONE if y is None else index[y])
                owners.append(i)
            if not g:
                tables[i] = np.zeros((nF, nM, 4))
        elif g:
            slots = [NONE if v is None else index[v] for pair in g for v in pair]
            hv[i] = U * miss[slots].min(axis=0)
        else:
            tables[i] = np.zeros((nF, nM) + ((4, 2) if mb.kind == "grandchild" else (2,)))
    if rows_x:
        mx, my = miss[rows_x], miss[rows_y]  # (genotypes, W)
        ui, wi = fa[:, _P4], ma[:, _Q4]  # (F, 4), (M, 4): the father's and mother's value in each state
        c = np.minimum(mx[:, ui][:, :, None, :] + my[:, wi][:, None, :, :],
                       my[:, ui][:, :, None, :] + mx[:, wi][:, None, :, :])  # (genotypes, F, M, 4)
        starts = [j for j in range(len(owners)) if j == 0 or owners[j] != owners[j - 1]]
        if len(starts) < len(owners):
            c = np.minimum.reduceat(c, starts, axis=0)
        c = c * U
        for j, s in enumerate(starts):
            tables[owners[s]] = c[j]
    for i, h in hv.items():
        kind = members[i].kind
        if kind == "half_p":
            tables[i] = np.repeat(h[fa][:, None, :], nM, axis=1)
        elif kind == "half_m":
            tables[i] = np.repeat(h[ma][None, :, :], nF, axis=0)
        else:
            t = np.empty((nF, nM, 4, 2))
            t[:, :, :, 0] = h[fa[:, _P4]][:, None, :]
            t[:, :, :, 1] = h[ma[:, _Q4]][None, :, :]
            tables[i] = t
    ld = _LocusData(fopts, mopts, tables, gts=gts)
    ld.prep = (fa, ma, miss, hv, NONE, not gts[ped.father], not gts[ped.mother], U, values)
    return ld


def _joint_costs_fast(ld: _LocusData, members, shape) -> np.ndarray:
    """The cost of every joint state at one locus (the minimum over the parental options), as
    _totals(...).min() of the reference (read-only: it is shared by the loci of the same structure). Where a
    parent is untyped (any pair of values), the minimum is taken per value: the children who received its
    first haplotype and those who received its second constrain the two values independently, so min over
    (u, w) = min over u + min over w."""
    hit = ld.memo.get("joint costs")
    if hit is None:
        costs = _joint_costs_of(ld, members, shape)
        costs.flags.writeable = False
        if ld.total is not None:
            ld.total.flags.writeable = False
        hit = ld.memo["joint costs"] = (costs, ld.total)
    if hit[1] is not None:
        ld.total = hit[1]
    return hit[0]


def _joint_costs_of(ld: _LocusData, members, shape) -> np.ndarray:
    if ld.prep is None or not (ld.prep[5] or ld.prep[6]):  # both parents typed: few options

        ld.total = _totals(members, shape, ld.tables)
        return ld.total.reshape(-1, *shape).min(axis=0)
    fa, ma, miss, hv, NONE, f_free, m_free, U, values = ld.prep
    index = {v: i for i, v in enumerate(values)}
    # The mother if she is untyped (else the father) is the free parent; the other one's options are
    # enumerated. Per option o of the enumerated parent: cost = P + min_v Q[0][..., v] + min_v Q[1][..., v],
    # P what does not depend on the free parent, Q[h] what depends on the value v of its haplotype h.
    sep_m = m_free
    oa = fa if sep_m else ma
    nO, W, k = len(oa), miss.shape[0], len(members)
    P = np.zeros((nO,) + shape)
    Q = np.zeros((2, nO) + shape + (W,))
    gts = ld.gts
    for i, mb in enumerate(members):
        g = gts[mb.id]
        if not g:
            continue
        if mb.kind == "full":
            xs = [NONE if x is None else index[x] for x, _ in g]
            ys = [NONE if y is None else index[y] for _, y in g]
            mx, my = miss[xs], miss[ys]  # (genotypes, W)
            # G[o, e, v]: the child's cost when it has haplotype e of the enumerated parent (option o) and the
            # value v from the free parent (the genotype cost is symmetric in the two parental values)
            G = np.minimum(mx[:, oa][:, :, :, None] + my[:, None, None, :],
                           my[:, oa][:, :, :, None] + mx[:, None, None, :]).min(axis=0) * U
            for s in range(4):
                e, f = (s >> 1, s & 1) if sep_m else (s & 1, s >> 1)
                sel = [slice(None)] * (1 + k)
                sel[1 + i] = s
                Q[(f,) + tuple(sel)] += G[:, e, :].reshape([nO] + [1] * (k - 1) + [W])
            continue
        h = hv[i]
        if mb.kind in ("half_p", "half_m"):
            enumerated = (mb.kind == "half_p") == sep_m  # the half-sibling's parent is the enumerated one
            for b in range(2):
                sel = [slice(None)] * (1 + k)
                sel[1 + i] = b
                if enumerated:
                    P[tuple(sel)] += h[oa[:, b]].reshape([nO] + [1] * (k - 1))
                else:
                    Q[(b,) + tuple(sel)] += h
        else:  # the patient's child: b = 0 the patient's paternal haplotype, b = 1 the maternal one
            for sp in range(4):
                for b in range(2):
                    from_father = b == 0
                    bit = sp >> 1 if from_father else sp & 1
                    sel = [slice(None)] * (1 + k)
                    sel[1] = sp
                    sel[1 + i] = b
                    if from_father == sep_m:  # the enumerated parent's haplotype
                        P[tuple(sel)] += h[oa[:, bit]].reshape([nO] + [1] * (k - 2))
                    else:
                        Q[(bit,) + tuple(sel)] += h
    return (P + Q[0].min(axis=-1) + Q[1].min(axis=-1)).min(axis=0)


def _totals(members, shape, tables) -> np.ndarray:
    """Cost of every (father option, mother option, joint state) at one locus."""
    nF, nM = tables[0].shape[:2]
    total = np.zeros((nF, nM) + shape)
    for i, (mb, t) in enumerate(zip(members, tables)):
        sh = [nF, nM] + [1] * len(shape)
        if mb.kind == "grandchild":
            sh[2] = 4
        sh[2 + i] = mb.radix
        total = total + t.reshape(sh)
    return total


def _alpha_costs(members, tables, state: tuple[int, ...]) -> np.ndarray:
    """Cost of each (father option, mother option) for one joint state at one locus."""
    acc = 0.0
    for i, (mb, t) in enumerate(zip(members, tables)):
        acc = acc + (t[:, :, state[0], state[i]] if mb.kind == "grandchild" else t[:, :, state[i]])
    return acc


def _transition(mb: _Member, R: float) -> np.ndarray:
    if mb.radix == 4:
        return np.array([[R * bin(a ^ b).count("1") for b in range(4)] for a in range(4)])
    return np.array([[0.0 if a == b else R for b in range(2)] for a in range(2)])


#: _joint_search's recombination costs into one joint state, per (shape, recombination cost, state)
_TRANS_TO: dict[tuple, np.ndarray] = {}


def _joint_search(members, shape, locus_data, settings, costs=None, fast=False, shortcut=False):
    """Viterbi over loci on the joint inheritance state of all children (exact; any parental typing).

    Solutions are listed as the backtracking finds them: by last state, then the state before, and so on
    (each in C order), at most max_solutions of them. ``shortcut`` (exact costs, recombination cost > 0):
    when some joint state is optimal at every locus on its own, the solutions are exactly those states held
    at every locus (a path costs at least the sum of the per-locus minima, and only a path without a
    change of state pays no recombination), listed in the same order, and the Viterbi pass is not needed."""
    R = settings.recombination_cost
    if costs is None:
        costs = [_totals(members, shape, ld.tables).reshape(-1, *shape).min(axis=0) for ld in locus_data]
    if shortcut:
        keep = costs[0][0] == costs[0][0].min()  # the patient's state at the first locus is 0 (a, c)
        best = float(costs[0][0].min())
        for c in costs[1:]:
            low = c.min()
            keep &= c[0] == low
            best += float(low)
        if keep.any():
            states = [(0,) + tuple(int(x) for x in st) for st in zip(*np.nonzero(keep))]
            overflow = len(states) > settings.max_solutions
            return [[st] * len(costs) for st in states[: settings.max_solutions]], best, overflow
    trans = [_transition(mb, R) for mb in members] if not fast else None  # the fast path: on demand
    first = costs[0].copy()
    mask = np.full(shape, np.inf)
    mask[(0,) + (slice(None),) * (len(shape) - 1)] = 0.0  # label the patient's haplotypes a and c
    d = [first + mask]
    bits = tuple(2 for r in shape for _ in range(r.bit_length() - 1))  # radix 4: two bits, 2: one
    for li in range(1, len(costs)):
        prev = d[-1]
        if fast:
            prev = _step_binary(prev.reshape(bits), R).reshape(shape)
        else:
            for ax, t in enumerate(trans):
                prev = _minplus_axis(prev, t, ax)
        d.append(prev + costs[li])
    best = float(d[-1].min())
    eps = 1e-9
    paths: list[list[tuple[int, ...]]] = []
    overflow = False

    def trans_to(target: tuple[int, ...]) -> np.ndarray:
        if fast:
            key = (shape, R, target)
            hit = _TRANS_TO.get(key)
            if hit is None:
                if len(_TRANS_TO) >= _SHARED_MAX:
                    _TRANS_TO.clear()
                hit = _TRANS_TO[key] = trans_from(target)
                hit.flags.writeable = False
            return hit
        return trans_from(target)

    def trans_from(target: tuple[int, ...]) -> np.ndarray:
        acc = np.zeros(shape)
        for ax, t in enumerate(trans or [_transition(mb, R) for mb in members]):
            sh = [1] * len(shape)
            sh[ax] = t.shape[0]
            acc = acc + t[:, target[ax]].reshape(sh)
        return acc

    def walk(li: int, state: tuple[int, ...], tail: list[tuple[int, ...]]) -> None:
        nonlocal overflow
        if len(paths) > settings.max_solutions:
            overflow = True
            return
        if li == 0:
            paths.append([state] + tail)
            return
        pred = d[li - 1] + trans_to(state) + costs[li][state]
        for prev_state in zip(*np.nonzero(np.abs(pred - d[li][state]) < eps)):
            walk(li - 1, tuple(int(x) for x in prev_state), [state] + tail)

    for end in zip(*np.nonzero(np.abs(d[-1] - best) < eps)):
        walk(len(costs) - 1, tuple(int(x) for x in end), [])
    if len(paths) > settings.max_solutions:
        paths = paths[: settings.max_solutions]
        overflow = True
    return paths, best, overflow


def _config_search(members, locus_data, settings):
    """Exact search for large sibships of typed parents: enumerate the parental options at every locus
    (phase of a typed parent; few per locus), and for each configuration find each child's best inheritance
    path independently (children are independent given their parents' haplotypes). Vectorised over configs."""
    R = settings.recombination_cost
    L = len(locus_data)
    sizes = [len(ld.fopts) * len(ld.mopts) for ld in locus_data]
    grids = np.stack(np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij"), -1).reshape(-1, L)
    # units: the patient with his/her own children (their costs depend on the patient's state), then each other child
    kids = [i for i, mb in enumerate(members) if mb.kind == "grandchild"]
    units = [[0] + kids] + [[i] for i, mb in enumerate(members) if i != 0 and mb.kind != "grandchild"]

    def unit_tables(unit):
        """Per locus: cost array (n_alpha, unit states) and the unit's state shape."""
        shapes = tuple(members[i].radix for i in unit)
        out = []
        for ld in locus_data:
            f, mo, tables = ld.fopts, ld.mopts, ld.tables
            nA = len(f) * len(mo)
            acc = np.zeros((len(f), len(mo)) + shapes)
            for j, i in enumerate(unit):
                t = tables[i]
                sh = [len(f), len(mo)] + [1] * len(shapes)
                if members[i].kind == "grandchild":
                    sh[2] = 4
                sh[2 + j] = members[i].radix
                acc = acc + t.reshape(sh)
            out.append(acc.reshape(nA, -1))
        trans = np.zeros((int(np.prod(shapes)),) * 2)
        for a, sa in enumerate(itertools.product(*[range(r) for r in shapes])):
            for b, sb in enumerate(itertools.product(*[range(r) for r in shapes])):
                trans[a, b] = sum(_transition(members[i], R)[x, y] for i, x, y in zip(unit, sa, sb))
        return out, trans, shapes

    def viterbi(cfg: np.ndarray, ut, keep: bool):
        costs, trans, shapes = ut
        d = costs[0][cfg[:, 0]].copy()
        if ut is prepared[0]:
            d[:, [k for k, st in enumerate(itertools.product(*[range(r) for r in shapes])) if st[0] != 0]] = np.inf
        hist = [d] if keep else None
        for li in range(1, L):
            d = np.min(d[:, :, None] + trans[None], axis=1) + costs[li][cfg[:, li]]
            if keep:
                hist.append(d)
        return d, hist

    prepared = [unit_tables(u) for u in units]
    # the first pass (no history) runs all single-child units at once: one array op per locus
    total = viterbi(grids, prepared[0], False)[0].min(axis=1)
    singles = prepared[1:]
    if singles:
        groups: dict[int, list] = {}
        for ut in singles:
            groups.setdefault(ut[1].shape[0], []).append(ut)
        for n, group in groups.items():
            costs = [np.stack([ut[0][li] for ut in group]) for li in range(L)]  # (U, nA, n)
            trans = np.stack([ut[1] for ut in group])  # (U, n, n)
            d = costs[0][:, grids[:, 0]]
            for li in range(1, L):
                # min over the previous state, unrolled (n ≤ 4): much faster than a reduction on a small axis
                nxt = d[:, :, 0:1] + trans[:, None, 0, :]
                for k in range(1, n):
                    np.minimum(nxt, d[:, :, k:k + 1] + trans[:, None, k, :], out=nxt)
                d = nxt + costs[li][:, grids[:, li]]
            total = total + d.min(axis=2).sum(axis=0)
    best = float(total.min())
    chosen = grids[np.abs(total - best) < 1e-9]
    paths: list[list[tuple[int, ...]]] = []
    overflow = False
    for cfg in chosen:
        per_unit = []
        for ut, unit in zip(prepared, units):
            d, hist = viterbi(cfg[None, :], ut, True)
            costs, trans, shapes = ut
            states = list(itertools.product(*[range(r) for r in shapes]))
            found: list[list[int]] = []

            def walk(li, k, tail):
                if len(found) > settings.max_solutions:
                    return
                if li == 0:
                    found.append([k] + tail)
                    return
                pred = hist[li - 1][0] + trans[:, k] + costs[li][cfg[li], k]
                for j in np.nonzero(np.abs(pred - hist[li][0, k]) < 1e-9)[0]:
                    walk(li - 1, int(j), [k] + tail)

            for k in np.nonzero(np.abs(hist[-1][0] - hist[-1][0].min()) < 1e-9)[0]:
                walk(L - 1, int(k), [])
            per_unit.append([[states[k] for k in path] for path in found])
        for combo in itertools.product(*per_unit):
            joint = []
            for li in range(L):
                st = [0] * len(members)
                for unit, upath in zip(units, combo):
                    for i, x in zip(unit, upath[li]):
                        st[i] = x
                joint.append(tuple(st))
            if joint not in paths:
                paths.append(joint)
            if len(paths) > settings.max_solutions:
                overflow = True
                return paths[: settings.max_solutions], best, overflow
    return paths, best, overflow


def _merge_mirrors(paths, members, ped, people):
    """With neither parent typed, which haplotypes are paternal cannot be told: a solution and its mirror
    (father ↔ mother) are one answer. Keep one of each pair."""
    if (ped.paternal_half_siblings or ped.maternal_half_siblings or _typed_anywhere(people.get(ped.father))
            or _typed_anywhere(people.get(ped.mother))):
        return paths

    def mirror(path):
        return [tuple(((x & 1) << 1) | (x >> 1) if mb.radix == 4 else 1 - x for x, mb in zip(st, members))
                for st in path]

    canon = {tuple(min(tuple(p), tuple(mirror(p)))) for p in paths}
    return [list(p) for p in sorted(canon)]


# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Template:
    """What the interpretation says of a family with its people as places (0 father, 1 mother, 2… the members
    in order: patient, siblings, …) and its slot strings as value indices per locus (the index after the last
    value: no value). It follows from the coded loci, the members' kinds, the search's solutions, the parents'
    presence and typing and, when the patient's children are members, the patient's sex (their labels say
    which of the patient's haplotypes is paternal), so a family with the same ones gets the same template
    (``_TEMPLATES``); :func:`_named` puts the family's own ids, relations and strings back."""

    haps: tuple[tuple[str, tuple[tuple[int, ...], ...]], ...]  # label → per locus, the possible values' indices
    persons: tuple[tuple[tuple[str | None, ...], tuple[str | None, ...]], ...]  # labels per member, in order
    recombinants: tuple[tuple[int, str, tuple[str, str]], ...]  # member place, side, loci around the switch
    members: tuple[tuple, ...]  # per member after the patient: _relationship_parts' answer
    parents: tuple[tuple[int, str, tuple[str, ...]], ...]  # place, label, loci typed (parents in the family)
    path0: tuple  # the first solution (the conflicts are read on it)
    no_conflicts: bool  # every typed allele explained on it (the conflicts' texts name the family's own)
    n_solutions: int
    best: float
    overflow: bool
    open_at: tuple[int, ...]  # the loci (as indices) where some haplotype may carry more than one value


#: per coded family (see segregate): the interpretation's template
_TEMPLATES: dict[tuple, _Template] = {}


def _value_codes(ld: _LocusData) -> tuple[tuple, tuple, list[str | None]]:
    """A locus's parental options as value indices and the values they index (None last)."""
    if isinstance(ld.fopts, _Named):
        return ld.fopts.codes, ld.mopts.codes, ld.fopts.val
    values = list(dict.fromkeys(v for opts in (ld.fopts, ld.mopts) for o in opts for v in o if v is not None))
    index = {v: i for i, v in enumerate(values)}
    none = len(values)

    def code(opts):
        return tuple((none if a is None else index[a], none if b is None else index[b]) for a, b in opts)

    return code(ld.fopts), code(ld.mopts), values + [None]


def _typed_at(family, loci, locus_data) -> dict[str, set[str]]:
    gts0 = locus_data[0].gts
    if gts0 is not None:  # the fast computations: the genotypes of the nuclear family at every locus, kept
        return {pid: {loc for loc, ld in zip(loci, locus_data) if ld.gts[pid]} for pid in gts0}
    return {p.id: {loc for loc, t in p.hla.items() if t is not None and _is_typed(t)} for p in family.people}


def _template(family, people: dict, ped, members, loci, locus_data, paths, best, overflow, m: _Matcher,
              settings) -> _Template:
    pt = people[ped.patient]
    idx = {mb.id: i for i, mb in enumerate(members)}
    typed_at = _typed_at(family, loci, locus_data)
    options: dict[tuple[int, tuple[int, ...]], tuple[float, list[tuple[int, int]]]] = {}

    def best_options(li: int, st: tuple[int, ...]) -> tuple[float, list[tuple[int, int]]]:
        """The least cost of joint state st at locus li, and the (father option, mother option) pairs that
        reach it, in C order."""
        hit = options.get((li, st))
        if hit is None:
            hit = options[(li, st)] = locus_data[li].best_options(members, st)
        return hit

    # parental haplotype alleles per solution (the first solution is reported; others widen the sets)
    haps: dict[str, list[set[int]]] = {h: [set() for _ in loci] for h in "abcd"}
    codes = [_value_codes(ld) for ld in locus_data]
    for path in paths:
        for li in range(len(loci)):
            ld = locus_data[li]
            fcodes, mcodes, _ = codes[li]
            # the values are sets: each father (mother) option reaching the state counts once, however many
            # options of the other parent it pairs with (an untyped parent's options are many)
            key = ("option sides", path[li])
            sides = ld.memo.get(key)
            if sides is None:
                pairs = best_options(li, path[li])[1]
                sides = ld.memo[key] = (tuple(dict.fromkeys(fi for fi, _ in pairs)),
                                        tuple(dict.fromkeys(mi for _, mi in pairs)))
            for fi in sides[0]:
                for lab, val in zip("ab", fcodes[fi]):
                    haps[lab][li].add(val)
            for mi in sides[1]:
                for lab, val in zip("cd", mcodes[mi]):
                    haps[lab][li].add(val)

    # person haplotype labels (first solution)
    path0 = paths[0]
    kinds = tuple(mb.kind for mb in members)
    cols = tuple(idx[mb.id] for mb in members)  # each member's place in a joint state (by id, as it was)
    persons = _labels(tuple(path0), kinds, cols, pt.sex)

    # recombinants (first solution), located between the typed loci around the switch
    recombinants = []
    for i, mb in enumerate(members):
        if all(st[i] == path0[0][i] for st in path0):
            continue  # the same state at every locus: no switch
        typed = [li for li, loc in enumerate(loci) if loc in typed_at[mb.id]]
        for side, fn in (("paternal", lambda s: s >> 1 if mb.radix == 4 else s), ("maternal", lambda s: s & 1)):
            if mb.radix == 2 and side == "maternal":
                continue
            for a, b in zip(typed, typed[1:]):
                if fn(path0[a][idx[mb.id]]) != fn(path0[b][idx[mb.id]]):
                    side_name = side if mb.kind in ("full", "half_p") else ("maternal" if mb.kind == "half_m" else "from the patient")
                    recombinants.append((2 + i, side_name, (loci[a], loci[b])))

    # relationships: what each member shares with the patient, per explanation. An explanation is a solution
    # (a joint inheritance path) with, at each locus, one of the parental options that reach its cost (they
    # are independent from locus to locus). Besides what a member inherited, it carries the patient's allele
    # from a parent whose two haplotypes carry the same allele in that explanation (_option_alike). Per
    # explanation, not on the union of the values each haplotype may carry: when the phase is open (no parent
    # typed, every child heterozygous for the same alleles) a haplotype may carry either allele, yet in each
    # explanation both of one parent's may carry the same one (an HLA-identical sibling was called
    # haploidentical, a haploidentical one mismatched).
    alike = [_option_alike(ld, codes[li], m) for li, ld in enumerate(locus_data)]
    explanations = []
    for path in paths:
        per_locus = []
        for li in range(len(loci)):
            fa, ma = alike[li]
            key = ("alike pairs", path[li])
            pairs = locus_data[li].memo.get(key)
            if pairs is None:
                pairs = locus_data[li].memo[key] = tuple(sorted({(fa[fi], ma[mi])
                                                                 for fi, mi in best_options(li, path[li])[1]}))
            per_locus.append(pairs)
        explanations.append(tuple(per_locus))
    # what _sharing says depends on the paths, the members' kinds and places, the homozygous parents per
    # explanation and the number of loci only: kept across families
    key = (tuple(map(tuple, paths)), kinds, cols, tuple(explanations), len(loci))
    shared = _SOLUTIONS.get(key)
    if shared is None:
        per: dict[str, set] = {}
        for path, per_locus in zip(paths, explanations):
            if math.prod(map(len, per_locus)) > _MAX_EXPLANATIONS:
                # (never met in practice) a parent counts as homozygous at a locus only where every option
                # says so: never more sharing than some explanation gives
                per_locus = [((all(f for f, _ in c), all(h for _, h in c)),) for c in per_locus]
            for choice in itertools.product(*per_locus):
                hom_f = [f for f, _ in choice]
                hom_m = [h for _, h in choice]
                for mb in members[1:]:
                    per.setdefault(mb.id, set()).add(_sharing(mb, path, loci, idx, hom_f, hom_m))
        if len(_SOLUTIONS) >= _SHARED_MAX:
            _SOLUTIONS.clear()
        # by place in members (ids are names: the same structure recurs under other names)
        shared = _SOLUTIONS[key] = tuple(frozenset(per[mb.id]) if i else None for i, mb in enumerate(members))
    pt_loci = frozenset(loci)
    rows = [_ibs_rows(ld, members, pt, people, loc, m) for ld, loc in zip(locus_data, loci)]
    member_parts = []
    for i, mb in enumerate(members[1:], 1):
        ibs = {loc: row[i] for loc, row in zip(loci, rows)}
        member_parts.append(_relationship_of(shared[i], loci, pt_loci, ibs,
                                             tuple(loc for loc in loci if loc in typed_at[mb.id])))
    parents = []
    for place, (n, lab) in enumerate(((ped.father, "a"), (ped.mother, "c"))):
        if n in people:
            parents.append((place, lab, tuple(loc for loc in loci if loc in typed_at[n])))
    nones = [len(c[2]) - 1 for c in codes]  # the unseen value, left out as _sorted_values leaves out None
    hap_values = tuple((h, tuple(tuple(s - {none}) for s, none in zip(per_locus, nones)))
                       for h, per_locus in haps.items())
    open_at = tuple(li for li in range(len(loci)) if any(len(per[li]) > 1 for _, per in hap_values))
    return _Template(hap_values, persons, tuple(recombinants), tuple(member_parts), tuple(parents), tuple(path0),
                     not _family_conflicts(people, ped, members, loci, locus_data, path0, m, settings), len(paths),
                     best, overflow, open_at)


def _family_conflicts(people: dict, ped, members, loci, locus_data, path0, m: _Matcher, settings) -> list[Conflict]:
    return _conflicts(ped, members, loci, locus_data, path0, people, m,
                      (lambda li, st: locus_data[li].best_options(members, st))
                      if settings.fast and settings.unexplained_cost > 0 else None)


def _named(family, people: dict, ped, members, loci, locus_data, tpl: _Template, m: _Matcher, settings,
           full: bool) -> Segregation | Relationships:
    """The family's Segregation from its template: its ids, relations and slot strings put back; the notes,
    the conflicts and the relatives compared by state are the family's own. Not ``full``: its Relationships
    (the haplotypes' alleles are named only for relatives compared by state)."""
    pt = people[ped.patient]
    ids = [ped.father, ped.mother] + [mb.id for mb in members]

    def typed_anywhere(n: str) -> bool:  # (read for parents in the family only)
        return _typed_anywhere(people.get(n))

    notes: list[str] = []
    if all(ped.is_virtual(n) or not typed_anywhere(n) for n in (ped.father, ped.mother)):
        notes.append("no parent is typed: which haplotypes are paternal (a, b) and which maternal (c, d) cannot be told")
    if ped.is_virtual(ped.father) or ped.is_virtual(ped.mother):
        missing = [w for w, n in (("father", ped.father), ("mother", ped.mother)) if ped.is_virtual(n)]
        notes.append(f"{' and '.join(missing)} not in the file: their haplotypes are reconstructed from the children")
    for w, n in (("father", ped.father), ("mother", ped.mother)):
        p = people.get(n)
        if p is not None and not typed_anywhere(n):
            notes.append(f"the {w} ({n}) is not typed: haplotypes reconstructed from the children")

    haplotypes: dict[str, dict[str, tuple[str, ...]]] = {}
    if full or ped.others:
        vals = [_value_codes(ld)[2] for ld in locus_data]
        for h, per_locus in tpl.haps:
            per = haplotypes[h] = {}
            for loc, val, idx in zip(loci, vals, per_locus):  # as _sorted_values: names in order, without None
                per[loc] = (val[idx[0]],) if len(idx) == 1 else tuple(sorted([val[i] for i in idx]))
    recombinants = [Recombinant(ids[place], side, between) for place, side, between in tpl.recombinants]
    conflicts = [] if tpl.no_conflicts else _family_conflicts(people, ped, members, loci, locus_data, tpl.path0, m,
                                                              settings)
    rels = []
    coarse = _coarse(ids, people, loci, locus_data, m)
    for mb, (named, evidence, fields, possibilities) in zip(members[1:], tpl.members):
        p = people[mb.id]
        rel = Relationship(p.id, p.relation, *fields, p.id + evidence if named else evidence, possibilities)
        rels.append(_resolution_said(rel, pt, p, loci, m) if coarse else rel)
    for place, lab, typed in tpl.parents:
        n = ids[place]
        rels.append(Relationship(
            n, people[n].relation, 1, "haploidentical", (lab,), True, typed, len(typed) < len(loci), True,
            f"a parent passes one haplotype to every child: the patient inherited haplotype {lab} from {n}"
            + ("" if typed else " (parent untyped: haploidentity by descent, not checked by typing)")))
    if ped.others:
        pat_hap = {loc: haplotypes["a"][loc] for loc in loci}
        mat_hap = {loc: haplotypes["c"][loc] for loc in loci}
        for oid in ped.others:
            rels.append(_resolution_said(_by_state(people[oid], pat_hap, mat_hap, pt, loci, m), pt, people[oid],
                                         loci, m))
    order: dict[str, int] = {}
    for i, x in enumerate(family.people):
        order.setdefault(x.id, i)
    rels.sort(key=lambda r: order[r.id] if r.id in people else 99)
    unique = not tpl.overflow and all(r.klass != "undetermined" for r in rels if r.by_descent)
    if tpl.overflow:
        notes.append(f"more than {settings.max_solutions} equally good solutions: the family does not determine them")
    phase = tuple(loci[li] for li in tpl.open_at)
    if not full:
        return Relationships(family.id, loci, tuple(rels), unique, tpl.n_solutions, tuple(recombinants),
                             tuple(conflicts), tpl.best, tuple(notes), phase)
    persons = [PersonHaplotypes(mb.id, pat, mat) for mb, (pat, mat) in zip(members, tpl.persons)]
    for n, labs in ((ped.father, ("a", "b")), (ped.mother, ("c", "d"))):
        persons.insert(0 if n == ped.father else 1, PersonHaplotypes(n, (labs[0],) * len(loci), (labs[1],) * len(loci)))
    return Segregation(
        family.id, loci, haplotypes, tuple(persons), tuple(rels), unique, tpl.n_solutions, tuple(recombinants),
        tuple(conflicts), tpl.best, tuple(notes), phase,
    )


#: _labels's answers
_LABELS: dict[tuple, tuple] = {}


def _labels(path0: tuple, kinds: tuple[str, ...], cols: tuple[int, ...], sex) -> tuple:
    """Each member's haplotype labels per locus (paternal, maternal) on one solution, the member of kind
    kinds[k] reading place cols[k] of the joint state; they depend on these and the patient's sex only, so
    they are kept across families."""
    key = (path0, kinds, cols, sex)
    hit = _LABELS.get(key)
    if hit is not None:
        return hit
    out = []
    for kind, i in zip(kinds, cols):
        pat, mat = [], []
        for st in path0:
            s = st[i]
            if kind == "full":
                pat.append("ab"[s >> 1])
                mat.append("cd"[s & 1])
            elif kind == "half_p":
                pat.append("ab"[s])
                mat.append(None)
            elif kind == "half_m":
                pat.append(None)
                mat.append("cd"[s])
            else:
                sp = st[0]
                lab = "ab"[sp >> 1] if s == 0 else "cd"[sp & 1]
                (pat if sex == "M" else mat).append(lab)
                (mat if sex == "M" else pat).append(None)
        out.append((tuple(pat), tuple(mat)))
    if len(_LABELS) >= _SHARED_MAX:
        _LABELS.clear()
    hit = _LABELS[key] = tuple(out)
    return hit


#: per (paths, members' kinds, homozygous loci of each parent, number of loci): each member's sharings
_SOLUTIONS: dict[tuple, tuple] = {}


#: explanations of one solution (products of the parental options per locus that differ in who is
#: homozygous) read one by one, at most
_MAX_EXPLANATIONS = 4096


def _option_alike(ld: _LocusData, codes: tuple, m: _Matcher) -> tuple[tuple[bool, ...], tuple[bool, ...]]:
    """Per father option and per mother option of a locus: whether its two haplotypes carry the same
    allele, at the resolution both values have (as alleles are compared everywhere: their candidate sets
    intersect). The unseen value (None), which no typed child carries, is set aside. Kept in the locus's memo."""
    hit = ld.memo.get("option alike")
    if hit is None:
        fcodes, mcodes, values = codes

        def alike(option: tuple[int, int]) -> bool:
            x, y = values[option[0]], values[option[1]]
            return x is None or y is None or m.match(x, y)

        hit = ld.memo["option alike"] = (tuple(map(alike, fcodes)), tuple(map(alike, mcodes)))
    return hit


def _sharing(mb: _Member, path, loci, idx, hom_f, hom_m) -> tuple[tuple[str, ...], ...]:
    """Per locus, the labels of the patient's haplotypes this member carries: by descent (lower case), or
    because the parent is homozygous there (both of the parent's haplotypes carry the same allele: upper case,
    after those by descent; :func:`_relationship_parts` compares these with the alleles shared by state).
    Each locus's labels follow from the member's kind, the patient's and the member's states and the two
    homozygosity flags alone: kept (``_LABS``)."""
    col, kind = idx[mb.id], mb.kind
    out = []
    for li in range(len(loci)):
        key = (kind, path[li][0], path[li][col], hom_f[li], hom_m[li])
        labs = _LABS.get(key)
        if labs is None:
            labs = _LABS[key] = _labs(*key)
        out.append(labs)
    return tuple(out)


#: _labs's answers (a few hundred keys at most: kind, two states, two flags)
_LABS: dict[tuple, tuple[str, ...]] = {}


def _labs(kind: str, sp: int, s: int, hom_f: bool, hom_m: bool) -> tuple[str, ...]:
    """One locus of :func:`_sharing`: the patient in state ``sp``, the member in state ``s``."""
    pat, mat = "ab"[sp >> 1], "cd"[sp & 1]
    if kind == "full":
        same_p, same_m = (s >> 1) == (sp >> 1), (s & 1) == (sp & 1)
        return tuple(lab for lab, ok in ((pat, same_p), (mat, same_m)) if ok) + tuple(
            lab.upper() for lab, ok in ((pat, not same_p and hom_f), (mat, not same_m and hom_m)) if ok)
    if kind == "half_p":
        return (pat,) if s == (sp >> 1) else (pat.upper(),) if hom_f else ()
    if kind == "half_m":
        return (mat,) if s == (sp & 1) else (mat.upper(),) if hom_m else ()
    return (pat,) if s == 0 else (mat,)


def _classify(counts: dict[str, int]) -> tuple[int | None, Klass, bool]:
    core = [c for loc, c in counts.items() if loc in CLASS_LOCI] or list(counts.values())
    if not core:
        return None, "undetermined", False
    low = min(core)
    klass: Klass = "HLA-identical" if low == 2 else "haploidentical" if low == 1 else "mismatched"
    return low, klass, min(counts.values()) == max(counts.values())


def _ibs(a, b, locus: str, m: _Matcher, gts: dict | None = None) -> int | None:
    """How many alleles two people share by state at a locus (best pairing of their slots; None if untyped).
    ``gts``: the genotypes at the locus already computed, by person id."""
    if gts is not None and a.id in gts and b.id in gts:
        ga, gb = gts[a.id], gts[b.id]
    else:
        ga, gb = _genotypes(a.hla.get(locus)), _genotypes(b.hla.get(locus))
    if not ga or not gb:
        return None
    best = 0
    match = m.match
    for x1, x2 in ga:
        for y1, y2 in gb:
            a = match(x1, y1) + match(x2, y2)
            if a == 2:
                return 2
            b = match(x1, y2) + match(x2, y1)
            best = max(best, a, b)
    return best


def _ibs_rows(ld: _LocusData, members, pt, people, locus: str, m: _Matcher) -> tuple[int | None, ...]:
    """_ibs of the patient and each member (by place; the patient's own place None) at one locus, kept in
    the locus's memo: it depends on their genotypes through string equality and matching only, so on the
    locus's coded structure."""
    hit = ld.memo.get("ibs")
    if hit is None:
        hit = ld.memo["ibs"] = (None,) + tuple(_ibs(pt, people[mb.id], locus, m, ld.gts) for mb in members[1:])
    return hit


def _sorted_values(vals: set) -> tuple[str, ...]:
    """The values of a haplotype at a locus, in order, without the unseen value (None)."""
    if len(vals) == 1:
        (v,) = vals
        return () if v is None else (v,)
    return tuple(sorted([v for v in vals if v is not None]))


_COUNT_NAMES = {0: "none", 1: "one", 2: "both"}


#: _relationship's answers without the person: they depend on the sharing per solution, the loci, the
#: sharing by state and the loci typed only (few combinations recur in a screen)
_RELATIONSHIPS: dict[tuple, tuple] = {}


def _relationship_of(solutions: set, loci, pt_loci, ibs: dict | None, typed: tuple[str, ...]) -> tuple:
    """_relationship_parts, kept across families."""
    key = (frozenset(solutions), tuple(loci), frozenset(pt_loci), tuple(ibs.items()) if ibs else None, typed)
    parts = _RELATIONSHIPS.get(key)
    if parts is None:
        if len(_RELATIONSHIPS) >= _SHARED_MAX:
            _RELATIONSHIPS.clear()
        parts = _RELATIONSHIPS[key] = _relationship_parts(solutions, loci, pt_loci, ibs, typed)
    return parts


def _relationship_parts(solutions: set, loci, pt_loci, ibs: dict | None, typed: tuple[str, ...]):
    """What _relationship says of anyone with these inputs: whether the evidence begins with the person's id,
    the evidence after it, the Relationship's fields between relation and evidence, and its possibilities."""
    capped: set[str] = set()
    # never claim more sharing at a locus than the typed alleles show: by descent, more would be an allele
    # left unexplained there (a conflict, said below); through a homozygous parent (upper-case labels, after
    # those by descent), the parent's two alleles were alike only at the resolution of some typing (its
    # candidate alleles meet both) and the member's own allele is another one
    capped_solutions = set()
    for sol in solutions:
        new, inherited = [], set()
        for loc, labs in zip(loci, sol):
            k = ibs.get(loc) if ibs else None
            if k is not None and len(labs) > k:
                if sum(lab.islower() for lab in labs) > k:
                    capped.add(loc)
                labs = labs[:k]
            new.append(tuple(lab.lower() for lab in labs))
            if loc in typed:
                inherited.add(tuple(lab for lab in labs if lab.islower()))
        # whether what the member inherited changes along the loci (a crossover), beside the sharing
        capped_solutions.add((tuple(new), len(inherited) > 1))
    solutions = capped_solutions
    partial = len(typed) < len(pt_loci)
    if not typed:
        return True, " is not HLA typed", (None, "undetermined", (), None, typed, True, False), ()
    outcomes = set()
    for sol, crossed in solutions:
        labels = {loc: labs for loc, labs in zip(loci, sol) if loc in typed}
        counts = {loc: len(labs) for loc, labs in labels.items()}
        core = [labels[loc] for loc in typed if loc in CLASS_LOCI] or list(labels.values())
        shared_labels = tuple(sorted(set.intersection(*(set(x) for x in core)))) if core else ()
        outcomes.add((_classify(counts), tuple(counts.items()), shared_labels, crossed))
    klasses = {o[0][1] for o in outcomes}
    if len(klasses) > 1:
        return (False, "the typings fit several inheritances equally well (" + ", ".join(sorted(klasses))
                + "): type the parents or more loci to settle it",
                (None, "undetermined", (), None, typed, partial, True), tuple(sorted(klasses)))
    labels_seen = {o[2] for o in outcomes}
    (shared, klass, all_loci), counts, labels, crossed = sorted(outcomes)[0]
    if len(labels_seen) > 1:
        labels = ()
    counts_d = dict(counts)
    names = _COUNT_NAMES
    ev = " inherited " + ", ".join([f"{names[c]} at {loc}" for loc, c in counts_d.items()]) + " of the patient's haplotypes"
    if labels:
        ev += f" (shares {' and '.join(labels)})"
    if not all_loci:
        diff = [loc for loc, c in counts_d.items() if c != shared]
        ev += f"; differs at {', '.join(diff)} " + (
            "(recombination)" if crossed else
            "(no crossover: both haplotypes of a parent carry the same allele at some loci)")
    if partial:
        ev += f"; on the loci typed only ({', '.join(typed)})"
    if capped:
        ev += f"; the alleles at {', '.join(sorted(capped, key=loci.index))} do not fit the inheritance (see conflicts)"
    return True, ev, (shared, klass, labels, all_loci, typed, partial, True), ()


def _two_field_ambiguous(t: LocusTyping | None, m: _Matcher) -> bool:
    """Whether a typing leaves more than one protein (two-field name) possible: several genotypes, an allele
    list whose names differ at two fields, or a name that is not one (one field, XX or MAC code, G or P group,
    serology). Alleles are then compared at the resolution typed, not proven equal. (Kept on the typing, and
    per name on the matcher: a screen asks it of every relative at every class locus.)"""
    if t is None:
        return False
    hit = t.__dict__.get("_two_field_ambiguous")
    if hit is None:
        gs = t.genotypes
        hit = len(gs) > 1
        if not hit:
            for slot in gs[0]:
                if len(slot) == 1:
                    hit = _name_ambiguous(slot[0], m)
                elif slot:
                    hit = (len({":".join(n.split(":")[:2]) for n in slot}) > 1
                           or any(_name_ambiguous(n, m) for n in slot))
                if hit:
                    break
        t.__dict__["_two_field_ambiguous"] = hit  # (not a field: equality, hashing and replace() ignore it)
    return hit


#: an allele name of two numeric fields or more, with an optional expression suffix: one protein
_FIELDS2 = re.compile(r"(?:HLA-)?[A-Z0-9]+\*\d+:\d+(?::\d+)*[LSCAQN]?\Z")


def _name_ambiguous(name: str, m: _Matcher) -> bool:
    """One name (or a '/' list joined) that leaves more than one two-field name possible (kept per name)."""
    hit = m._two_field.get(name)
    if hit is None:
        hit = m._two_field[name] = not _FIELDS2.match(name) and len(
            {":".join(a.split(":")[:2]) for a in m.alleles(name)}) > 1
    return hit


def _coarse(ids: list[str], people: dict, loci, locus_data, m: _Matcher) -> bool:
    """Whether some typing of the nuclear family (parents, patient, members) at a class locus leaves more than
    one protein possible (:func:`_two_field_ambiguous`). The usual family has none, and nothing more is asked:
    the fast computation reads the family's distinct slot strings per locus, which it already has."""
    in_family = [pid for pid in ids if pid in people]
    for loc, ld in zip(loci, locus_data):
        if loc not in CLASS_LOCI:
            continue
        if isinstance(ld.fopts, _Named):
            values, genotypes = ld.fopts.val, ld.gts.values()
        else:
            genotypes = [_genotypes(people[pid].hla.get(loc)) for pid in in_family]
            values = {x for gts in genotypes for g in gts for x in g}
        if any(len(gts) > 1 for gts in genotypes) or any(v is not None and _name_ambiguous(v, m) for v in values):
            return True
    return False


def _resolution_said(r: Relationship, pt, p, loci, m: _Matcher) -> Relationship:
    """A shared haplotype (or two) claimed where the patient's or the relative's typing at a class locus
    leaves more than one protein possible: the evidence says which loci were compared at the resolution typed
    and what typing would confirm the class (low resolution, XX codes, allele lists, serology)."""
    if r.klass != "HLA-identical" and r.klass != "haploidentical":
        return r
    low, who = [], set()
    for loc in r.loci_typed:
        if loc in CLASS_LOCI:
            a, b = _two_field_ambiguous(pt.hla.get(loc), m), _two_field_ambiguous(p.hla.get(loc), m)
            if a or b:
                low.append(loc)
                who.update(x.id for x, y in ((pt, a), (p, b)) if y)
    if not low:
        return r
    names = " and ".join(x.id for x in (pt, p) if x.id in who)
    return replace(r, evidence=r.evidence + f"; {', '.join(low)} compared at the resolution typed ({names} not typed "
                   "at two fields there): typing at two fields would confirm the class")


def _carries(p, hap: dict[str, tuple[str, ...]], loci, m: _Matcher) -> tuple[bool | None, tuple[str, ...]]:
    """Whether person p carries a haplotype by state (every locus typed in both has a compatible allele)."""
    compared = []
    for loc in loci:
        vals = hap.get(loc) or ()
        gts = _genotypes(p.hla.get(loc))
        if not vals or not gts:
            continue
        compared.append(loc)
        if not any(m.match(x, v) or m.match(y, v) for x, y in gts for v in vals):
            return False, tuple(compared)
    return (True if compared else None), tuple(compared)


def _by_state(p, pat_hap, mat_hap, pt, loci, m: _Matcher) -> Relationship:
    """A relative outside the nuclear family: which of the patient's haplotypes it carries by allele state,
    never more than the alleles it shares with the patient's own typing at each locus (a haplotype's possible
    alleles join the family's solutions, which may disagree on the phase: a grandfather was found to carry
    haplotype a through an allele a had in another solution than the one where it had his others)."""
    cp, lp = _carries(p, pat_hap, loci, m)
    cm, lm = _carries(p, mat_hap, loci, m)
    typed = tuple(loc for loc in loci if p.hla.get(loc) is not None and p.hla[loc].typed)
    if not typed:
        return Relationship(p.id, p.relation, None, "undetermined", (), None, (), True, False, f"{p.id} is not HLA typed")
    shared = int(bool(cp)) + int(bool(cm))
    labels = tuple(lab for lab, c in (("a", cp), ("c", cm)) if c)
    ev = (f"{p.id} ({p.relation}) carries the alleles of the patient's haplotype(s) {', '.join(labels) or 'none'} "
          f"on the loci typed ({', '.join(typed)}): by allele state, descent not proven by the pedigree")
    if shared:
        ibs = {loc: k for loc in typed if loc in CLASS_LOCI and (k := _ibs(pt, p, loc, m)) is not None}
        low = min(ibs.values(), default=shared)
        if low < shared:
            at = ", ".join(loc for loc, k in ibs.items() if k == low)
            shared, labels = low, labels if low == len(labels) else ()
            ev = (f"{p.id} ({p.relation}) shares {_COUNT_NAMES[low]} of the patient's alleles at {at}: "
                  f"{'one haplotype at most' if low == 1 else 'no haplotype'} on the loci typed ({', '.join(typed)}), "
                  "by allele state, descent not proven by the pedigree")
    klass: Klass = "HLA-identical" if shared == 2 else "haploidentical" if shared == 1 else "mismatched"
    return Relationship(p.id, p.relation, shared, klass, labels, None, typed, len(typed) < len(loci), False, ev)


def _conflicts(ped, members, loci, locus_data, path, people, m: _Matcher, best_options=None) -> list[Conflict]:
    """Unexplained alleles of the best solution, grouped per person and parental side."""
    found: dict[tuple[str, str], list[tuple[str, str]]] = {}
    idx = {mb.id: i for i, mb in enumerate(members)}

    def ok(slot, val):
        return slot is None or (val is not None and m.match(slot, val))

    for li, locus in enumerate(loci):
        ld = locus_data[li]
        st = path[li]
        if best_options is not None:
            low, pairs = best_options(li, tuple(st))
            if low == 0:  # every typed allele is explained (unexplained_cost > 0)
                continue
            fi, mi = pairs[0]
        else:
            sub = _alpha_costs(members, ld.tables, st)
            fi, mi = (int(x[0]) for x in np.nonzero(np.abs(sub - sub.min()) < 1e-9))
        fo, mo = ld.fopts[fi], ld.mopts[mi]
        sp = st[0]
        for mb in members:
            gts = ld.gts[mb.id] if ld.gts is not None else _genotypes(people[mb.id].hla.get(locus))
            if not gts:
                continue
            s = st[idx[mb.id]]
            if mb.kind != "full":
                # one parent known (a half-sibling's father or mother, a child's parent the patient): one of
                # the member's alleles comes from that parent's haplotype, the other from someone not typed
                u = (fo[s] if mb.kind == "half_p" else mo[s] if mb.kind == "half_m"
                     else fo[sp >> 1] if s == 0 else mo[sp & 1])
                if not any(ok(x, u) or ok(y, u) for x, y in gts):
                    side = {"half_p": "father", "half_m": "mother"}.get(mb.kind, "patient")
                    found.setdefault((mb.id, side), []).append(
                        (locus, " or ".join(dict.fromkeys(a for g in gts for a in g if a)) or "?"))
                continue
            u, w = fo[s >> 1], mo[s & 1]
            best = None
            for x, y in gts:
                for a, b in ((x, y), (y, x)):
                    miss = (not ok(a, u), not ok(b, w))
                    if best is None or sum(miss) < sum(best[0]):
                        best = (miss, a, b)
            (mp, mm), a, b = best
            if mp:
                found.setdefault((mb.id, "father"), []).append((locus, a or "?"))
            if mm:
                found.setdefault((mb.id, "mother"), []).append((locus, b or "?"))
    out = []
    patient_side = {"M": "father", "F": "mother"}.get(people[ped.patient].sex or "", "both")
    for (pid, side), items in found.items():
        loci_hit = tuple(loc for loc, _ in items)
        alleles = tuple(al for _, al in items)
        if side == "patient":  # a child of the patient: the patient is its father or mother
            if len(items) >= 2:
                msg = (f"{pid} shares no haplotype with the patient, its parent, at {', '.join(loci_hit)}: "
                       f"{', '.join(alleles)} cannot come from the patient")
                causes = ("not the patient's child", "sample swap", "typing errors at several loci")
            else:
                msg = f"{pid}: {alleles[0]} at {loci_hit[0]} is in neither haplotype of the patient, its parent"
                causes = ("typing error (re-type the sample)", "a recombination or mutation within the locus",
                          "sample swap")
            out.append(Conflict(pid, loci_hit, patient_side, alleles, msg, causes))
            continue
        if len(items) >= 2:
            msg = (f"{pid} shares no haplotype with the {side} at {', '.join(loci_hit)}: "
                   f"{', '.join(alleles)} cannot come from the {side}")
            causes = ("non-paternity" if side == "father" else "non-maternity", "sample swap",
                      "typing errors at several loci")
        else:
            msg = f"{pid}: {alleles[0]} at {loci_hit[0]} is in neither haplotype of the {side}"
            causes = ("typing error (re-type the sample)", "a recombination or mutation within the locus", "sample swap")
            parent = people.get(ped.father if side == "father" else ped.mother)
            if parent is None or parent.hla.get(loci_hit[0]) is None or not parent.hla[loci_hit[0]].typed:
                # an untyped parent is rebuilt from the children: two children's crossovers (cost 2 R) can
                # look like one unexplained allele (cost U < 2 R)
                causes = causes[:1] + (f"crossovers in two children from the untyped {side} (type the {side} to "
                                       "tell)",) + causes[1:]
        out.append(Conflict(pid, loci_hit, side, alleles, msg, causes))
    return out
