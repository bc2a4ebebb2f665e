"""Seeded simulation of families and of a registry of unrelated donors, with the truth kept beside the data.

Feeds the property tests of segregation (issue 4, item 5) and the batch benchmarks (issue 8, item 4). Every
function is pure: randomness comes from a ``random.Random`` seeded from the caller's ``seed`` (one generator
per family, seeded ``"<seed>:<family index>"``, so family *i* is the same whatever ``n`` is; one per registry
chunk of :data:`REGISTRY_CHUNK` donors). Same seed and options → the same families and byte-identical files.

Assumptions (all of them; none is a population model)
-----------------------------------------------------
HLA alleles
    Each founder haplotype carries, at each locus of A, C, B, DRB1, DQB1, DPB1 (chromosomal order), a 2-field
    name drawn **uniformly** from the release's expressed 2-field names of that locus: ``name2`` of the
    alleles whose ``suffix`` is empty (no N/L/S/C/A/Q allele is ever used, so every 2-field name drawn stands
    for expressed alleles only). There is no allele-frequency or linkage-disequilibrium model: IPD-IMGT/HLA
    carries no frequencies, and uniform draws over ~1,500–6,000 names per locus make chance sharing between
    unrelated founders rare. ``homozygous_rate`` (a founder's second haplotype repeats the first's allele at a
    locus) and ``shared_rate`` (a founder haplotype takes an allele already drawn for another founder of the
    family) put back the homozygosity and identity by state that make real families ambiguous.
Transmission
    Mendelian: each parent passes one of its two haplotypes (probability 1/2). A crossover happens in an
    interval between adjacent loci with the probability of :meth:`SimOptions.interval_probabilities`:
    ``recombination_rate`` in ``recombination_interval`` (default DQB1–DPB1), or spread evenly over all
    intervals when the interval is ``None``, or per interval from ``recombination_map``. Crossovers in
    different intervals are independent (no interference); two in one meiosis are possible but rare.
KIR (chromosome 19, unlinked to HLA)
    Each founder haplotype carries one KIR haplotype made of a centromeric and a telomeric motif, passed whole
    (no KIR recombination). Gene contents: the A haplotype is RULES.md 3.1 (3DL3, 2DL3, 2DP1, 2DL1, 3DP1,
    2DL4, 3DL1, 2DS4, 3DL2; the framework genes 3DL3, 3DP1, 2DL4, 3DL2 on every haplotype). B motifs carry
    the B-defining genes of RULES.md 3.1, arranged as the structures Cen-B1, Cen-B2 and Tel-B1 named by Hou L
    et al., Genes Immun 2012;13:47-58 (PMID 21796155); the centromeric 2DL2–2DL5B–2DS3 and telomeric
    3DS1–2DL5A–2DS5–2DS1 linkages are those of Vierra-Green C et al., PLoS One 2012;7:e47491 (Table 4). That
    Cen-B2 lacks 2DP1 and 2DL1 is from the KIR literature as remembered, not re-checked here. Motif
    frequencies (Cen: A1 0.70, B1 0.20, B2 0.10; Tel: A1 0.78, B1 0.22) are illustrative, chosen so that the
    A haplotype has frequency ≈ 0.55 and the A/A genotype ≈ 30 %, the share reported across 95 populations in
    the review of Middleton D & Gonzelez F, Immunology 2010;129:8-19 (seen through a secondary copy). KIR2DS4
    is written present without the full-length / deletion split.
Donor attributes (illustrative values, not taken from a cited source)
    Sex: implied by the relation, else 1/2. ABO and RhD are inherited (Mendelian) from allele frequencies
    A 0.28, B 0.08, O 0.64 and D 0.60, d 0.40; FCGR3A-158 likewise with V 0.35, F 0.65. CMV seropositive with
    probability min(0.9, 0.3 + 0.006 × age). Available: the patient never; others with ``available_rate``.
    Ages: patient 1–60 years (20–60 with children of their own; at most 35 with grandparents), siblings
    within ±10 years of the patient, a mother 18–40 years older than her oldest child (capped at 95), a father
    18–45 (capped at 99), grandparents 18–35 years older than the parent (capped at 110), the patient's
    children 0 to patient age − 18. Registry donors: age uniform 18–60, sex 1/2, HLA slots drawn
    independently (no haplotypes), KIR from two haplotypes as above.
Typing as written
    The true genotype is written at 2 fields; with ``low_resolution_rate`` a cell is written at 1 field
    (``A*01+A*24``), except when a first field has 4 digits (DPB1*1575 would read as the v2 name
    DPB1*15:75): such a cell stays at 2 fields. With ``error_rate`` each written allele is, independently, replaced by another name of
    the same locus at the same resolution that is neither of the cell's true names (so every recorded error
    changes the genotype, not just the order). Missing parents are dropped from the file, or kept with their
    HLA and KIR cells blank (``missing_mode``).

Labels (the truth)
------------------
Each person has two haplotypes, the one from their father first. Their names: father ``a`` (from his father)
and ``b``; mother ``c``, ``d``; paternal grandfather ``e``, ``f``; paternal grandmother ``g``, ``h``; maternal
grandfather ``i``, ``j``; maternal grandmother ``k``, ``l``; the father's other partner (mother of paternal
half-siblings) ``s``, ``t``; the mother's other partner ``u``, ``v``; the patient's partner ``p``, ``q``;
anyone else ``<id>:pat``, ``<id>:mat``. Per locus, a haplotype records which of the transmitting parent's
two haplotypes it copies (``origin``: a child of the father and mother carries ``a``/``b`` and ``c``/``d``) and
the founder haplotype it descends from (``founder``), so identity by descent (IBD) between any two people is
exact. Ids in the file: ``P`` (patient), ``F``, ``M``, ``S1``… (siblings), ``H1``… (half-siblings), ``C1``…
(the patient's children), ``PGF``, ``PGM``, ``MGF``, ``MGM``; partners ``XF``, ``XM``, ``XP`` are never
written.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import polars as pl

from haplomatch.collector import fewer_collections
from haplomatch.kir import GENES

if TYPE_CHECKING:
    from haplomatch.reference import Reference

__all__ = [
    "LOCI", "KIR_CEN", "KIR_TEL", "REGISTRY_CHUNK", "AllelePool", "SimOptions", "Haplotype", "Crossover",
    "TypingError", "SimPerson", "SimulatedFamily", "intervals", "simulate_family", "iter_families",
    "simulate_families", "family_frame", "truth_frame", "write_families", "write_truth", "iter_registry",
    "simulate_registry", "write_registry", "write_frames", "kir_genes", "write_simulated_families",
    "default_workers",
]

#: The simulated HLA loci, in chromosomal order (telomere of 6p → centromere).
LOCI: tuple[str, ...] = ("A", "C", "B", "DRB1", "DQB1", "DPB1")

#: KIR centromeric / telomeric motifs → genes (see the module docstring for sources) and their frequencies.
KIR_CEN: dict[str, tuple[str, ...]] = {
    "cA01": ("KIR3DL3", "KIR2DL3", "KIR2DP1", "KIR2DL1", "KIR3DP1"),
    "cB01": ("KIR3DL3", "KIR2DS2", "KIR2DL2", "KIR2DL5B", "KIR2DS3", "KIR2DP1", "KIR2DL1", "KIR3DP1"),
    "cB02": ("KIR3DL3", "KIR2DS2", "KIR2DL2", "KIR2DL5B", "KIR2DS3", "KIR3DP1"),
}
KIR_TEL: dict[str, tuple[str, ...]] = {
    "tA01": ("KIR2DL4", "KIR3DL1", "KIR2DS4", "KIR3DL2"),
    "tB01": ("KIR2DL4", "KIR3DS1", "KIR2DL5A", "KIR2DS5", "KIR2DS1", "KIR3DL2"),
}
_CEN_FREQ = {"cA01": 0.70, "cB01": 0.20, "cB02": 0.10}
_TEL_FREQ = {"tA01": 0.78, "tB01": 0.22}
_KIR_HAPS: tuple[str, ...] = tuple(f"{c}~{t}" for c in KIR_CEN for t in KIR_TEL)
_KIR_HAP_W: tuple[float, ...] = tuple(_CEN_FREQ[c] * _TEL_FREQ[t] for c in KIR_CEN for t in KIR_TEL)
_KIR_HAP_GENES: dict[str, frozenset[str]] = {
    h: frozenset(KIR_CEN[h.split("~")[0]] + KIR_TEL[h.split("~")[1]]) for h in _KIR_HAPS}

_ABO_FREQ = {"A": 0.28, "B": 0.08, "O": 0.64}
_RH_FREQ = {"D": 0.60, "d": 0.40}
_FC_FREQ = {"V": 0.35, "F": 0.65}

#: Registry donors are generated (and seeded) in chunks of this many rows: the output does not depend on
#: memory or on how the caller consumes it.
REGISTRY_CHUNK = 100_000
#: Families are turned into tables this many at a time when written.
_FAMILY_BATCH = 2_000

_FOUNDER_NAMES = {
    "F": ("a", "b"), "M": ("c", "d"), "PGF": ("e", "f"), "PGM": ("g", "h"), "MGF": ("i", "j"),
    "MGM": ("k", "l"), "XF": ("s", "t"), "XM": ("u", "v"), "XP": ("p", "q"),
}
_MISSING = ("none", "father", "mother", "one", "both")


def intervals(loci: Sequence[str] = LOCI) -> tuple[str, ...]:
    """The intervals between adjacent loci, named ``"DQB1-DPB1"``."""
    return tuple(f"{a}-{b}" for a, b in zip(loci, loci[1:]))


def kir_genes(kir_haplotypes: Iterable[str]) -> frozenset[str]:
    """The KIR genes present on any of the given KIR haplotypes (``"cA01~tA01"``)."""
    out: frozenset[str] = frozenset()
    for h in kir_haplotypes:
        out |= _KIR_HAP_GENES[h]
    return out


# ------------------------------------------------------------------------------------------------ values


@dataclass(frozen=True)
class AllelePool:
    """The names simulation draws from: per locus the expressed 2-field names and their 1-field prefixes
    (those with at most 3 digits: ``DPB1*1575`` would read as the v2 name DPB1*15:75), sorted, so the draws
    depend only on the release and the seed."""

    release: str
    two_field: dict[str, tuple[str, ...]] = field(hash=False)
    one_field: dict[str, tuple[str, ...]] = field(hash=False)

    @classmethod
    def from_reference(cls, ref: "Reference", loci: Sequence[str] = LOCI) -> "AllelePool":
        names = (
            ref.alleles.filter((pl.col("suffix") == "") & pl.col("locus").is_in(list(loci)))
            .select("locus", "name2").unique().sort("locus", "name2")
        )
        two: dict[str, tuple[str, ...]] = {}
        one: dict[str, tuple[str, ...]] = {}
        for locus in loci:
            n2 = tuple(names.filter(pl.col("locus") == locus)["name2"].to_list())
            if not n2:
                raise ValueError(f"the release has no expressed alleles at locus {locus}")
            two[locus] = n2
            # a 1-field name with a 4-digit first field (DPB1*1575) reads as a v2 name (DPB1*15:75): never written
            one[locus] = tuple(sorted({f for f in (n.split(":")[0] for n in n2) if len(f.split("*")[1]) <= 3}))
        return cls(ref.release.imgthla, two, one)


@dataclass(frozen=True)
class SimOptions:
    """What a simulated family looks like. Rates are probabilities in [0, 1].

    - ``siblings``: full siblings of the patient; ``half_siblings``: each the child of the father or of the
      mother (1/2) with another partner; ``patient_children``; ``grandparents``: all four, typed.
    - ``missing_parents``: ``none``, ``father``, ``mother``, ``one`` (father or mother, 1/2) or ``both``
      (siblings only), in a share ``missing_rate`` of the families; ``missing_mode``: ``drop`` the rows or
      keep them ``untyped`` (HLA and KIR blank).
    - ``recombination_rate`` per meiosis, in ``recombination_interval`` (``"DQB1-DPB1"``; ``None`` = evenly
      over all intervals); or ``recombination_map`` = explicit ``(interval, probability)`` pairs.
    - ``error_rate`` per written allele; ``low_resolution_rate`` per written cell (1 field);
      ``homozygous_rate`` and ``shared_rate`` per founder haplotype and locus (see the module docstring).
    - ``kir``: simulate and write KIR genes; ``loci``: a subset of :data:`LOCI`, kept in chromosomal order.
    """

    siblings: int = 3
    half_siblings: int = 0
    patient_children: int = 0
    grandparents: bool = False
    missing_parents: Literal["none", "father", "mother", "one", "both"] = "none"
    missing_mode: Literal["drop", "untyped"] = "drop"
    missing_rate: float = 1.0
    recombination_rate: float = 0.0
    recombination_interval: str | None = "DQB1-DPB1"
    recombination_map: tuple[tuple[str, float], ...] = ()
    error_rate: float = 0.0
    low_resolution_rate: float = 0.0
    homozygous_rate: float = 0.0
    shared_rate: float = 0.0
    available_rate: float = 0.9
    kir: bool = True
    loci: tuple[str, ...] = LOCI

    def __post_init__(self) -> None:
        for name in ("siblings", "half_siblings", "patient_children"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a whole number ≥ 0, not {v!r}")
        for name in ("missing_rate", "recombination_rate", "error_rate", "low_resolution_rate",
                     "homozygous_rate", "shared_rate", "available_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {v!r}")
        if self.missing_parents not in _MISSING:
            raise ValueError(f"missing_parents must be one of {', '.join(_MISSING)}")
        if self.missing_mode not in ("drop", "untyped"):
            raise ValueError("missing_mode must be 'drop' or 'untyped'")
        loci = tuple(self.loci)
        if not loci or any(x not in LOCI for x in loci) or len(set(loci)) != len(loci):
            raise ValueError(f"loci must be distinct loci among {', '.join(LOCI)}")
        object.__setattr__(self, "loci", tuple(x for x in LOCI if x in loci))
        known = intervals(self.loci)
        if self.recombination_interval is not None and self.recombination_interval not in known and (
                self.recombination_rate > 0 or self.recombination_interval not in intervals(LOCI)):
            raise ValueError(f"recombination interval {self.recombination_interval!r} is not one of "
                             f"{', '.join(known)}")
        for iv, p in self.recombination_map:
            if iv not in known:
                raise ValueError(f"recombination interval {iv!r} is not one of {', '.join(known)}")
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"recombination probability for {iv} must be between 0 and 1")

    def interval_probabilities(self) -> tuple[float, ...]:
        """Probability of a crossover per meiosis in each interval of :func:`intervals`."""
        ivs = intervals(self.loci)
        if self.recombination_map:
            m = dict(self.recombination_map)
            return tuple(float(m.get(iv, 0.0)) for iv in ivs)
        if self.recombination_rate == 0.0 or not ivs:
            return tuple(0.0 for _ in ivs)
        if self.recombination_interval is None:
            return tuple(self.recombination_rate / len(ivs) for _ in ivs)
        return tuple(self.recombination_rate if iv == self.recombination_interval else 0.0 for iv in ivs)


@dataclass(frozen=True, slots=True)
class Haplotype:
    """One HLA haplotype (per locus of the family's loci) and the KIR haplotype inherited with it from the
    same parent. ``origin``: per locus, the name of the transmitting parent's haplotype copied (None for a
    founder); ``founder``: per locus, the founder haplotype the allele descends from."""

    alleles: tuple[str, ...]
    origin: tuple[str, ...] | None
    founder: tuple[str, ...]
    kir: str | None = None  # "cA01~tA01"
    kir_origin: str | None = None
    kir_founder: str | None = None


@dataclass(frozen=True, slots=True)
class Crossover:
    """A recombination in the meiosis of ``parent`` that gave ``person`` its ``side`` haplotype: the
    transmitted haplotype copies ``before`` up to the interval and ``after`` beyond it."""

    person: str
    parent: str
    side: Literal["paternal", "maternal"]
    interval: str
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class TypingError:
    """A written allele replaced by another: ``slot`` 1 or 2 of the ``locus`` cell of ``person``."""

    person: str
    locus: str
    slot: int
    original: str
    written: str


@dataclass(frozen=True, slots=True)
class SimPerson:
    """One simulated person, their truth, and what the family file says about them."""

    id: str
    relation: str
    sex: str
    age: int
    father: str | None  # true parents (may be partners who are not in the file)
    mother: str | None
    names: tuple[str, str]  # names of this person's paternal and maternal haplotypes
    paternal: Haplotype
    maternal: Haplotype
    abo: str  # "A+"
    cmv: bool
    fcgr3a: str  # VV/VF/FF
    available: bool
    in_file: bool
    typed: bool
    file_father_id: str | None  # the links as written (None when that parent has no row)
    file_mother_id: str | None
    cells: tuple[str | None, ...]  # the HLA cells as written, per locus (None = blank)
    errors: tuple[TypingError, ...] = ()
    crossovers: tuple[Crossover, ...] = ()
    abo_genotype: tuple[str, str] = ("O", "O")
    rh_genotype: tuple[str, str] = ("D", "D")
    fcgr3a_genotype: tuple[str, str] = ("V", "F")

    @property
    def kir_genes(self) -> frozenset[str] | None:
        if self.paternal.kir is None or self.maternal.kir is None:
            return None
        return kir_genes((self.paternal.kir, self.maternal.kir))

    def genotype(self, locus_index: int) -> tuple[str, str]:
        return self.paternal.alleles[locus_index], self.maternal.alleles[locus_index]


@dataclass(frozen=True)
class SimulatedFamily:
    """A family: every simulated person (in the file or not) with the truth, in a fixed order."""

    id: str
    loci: tuple[str, ...]
    kir: bool
    people: tuple[SimPerson, ...]

    @property
    def intervals(self) -> tuple[str, ...]:
        return intervals(self.loci)

    @property
    def patient(self) -> SimPerson:
        return next(p for p in self.people if p.relation == "patient")

    def person(self, pid: str) -> SimPerson:
        return next(p for p in self.people if p.id == pid)

    @property
    def in_file(self) -> tuple[SimPerson, ...]:
        return tuple(p for p in self.people if p.in_file)

    @property
    def crossovers(self) -> tuple[Crossover, ...]:
        return tuple(c for p in self.people for c in p.crossovers)

    @property
    def errors(self) -> tuple[TypingError, ...]:
        return tuple(e for p in self.people for e in p.errors)

    def ibd(self, a: str, b: str) -> tuple[int, ...]:
        """Per locus, how many haplotypes ``a`` and ``b`` share identical by descent (0, 1 or 2)."""
        pa, pb = self.person(a), self.person(b)
        return tuple(_ibd(pa.paternal.founder[i], pa.maternal.founder[i], pb.paternal.founder[i],
                          pb.maternal.founder[i]) for i in range(len(self.loci)))


def _ibd(x1: str, x2: str, y1: str, y2: str) -> int:
    if (x1 == y1 and x2 == y2) or (x1 == y2 and x2 == y1):
        return 2
    return 1 if x1 in (y1, y2) or x2 in (y1, y2) else 0


# ------------------------------------------------------------------------------------------------ families


class _Ind:
    """A person while the family is being built (mutable; frozen into SimPerson at the end)."""

    __slots__ = ("id", "relation", "sex", "age", "father", "mother", "names", "pat", "mat", "abo", "rh", "fc",
                 "crossovers")

    def __init__(self, pid: str, relation: str, sex: str, names: tuple[str, str]) -> None:
        self.id, self.relation, self.sex, self.names = pid, relation, sex, names
        self.age = 0
        self.father: str | None = None
        self.mother: str | None = None
        self.pat: Haplotype
        self.mat: Haplotype
        self.abo: tuple[str, str]
        self.rh: tuple[str, str]
        self.fc: tuple[str, str]
        self.crossovers: list[Crossover] = []


def _cumulative(weights: Iterable[float]) -> tuple[float, ...]:
    out, s = [], 0.0
    for w in weights:
        s += w
        out.append(s)
    return tuple(x / s for x in out)


_KIR_CUM = _cumulative(_KIR_HAP_W)
_ABO_ALLELES, _ABO_CUM = tuple(_ABO_FREQ), _cumulative(_ABO_FREQ.values())
_RH_D = _RH_FREQ["D"]
_FC_V = _FC_FREQ["V"]


class _Context:
    """Everything a family draw needs that depends only on the pool and the options (built once per run)."""

    def __init__(self, pool: AllelePool, options: SimOptions) -> None:
        self.options = options
        self.loci = options.loci
        self.L = len(self.loci)
        self.names = [pool.two_field[loc] for loc in self.loci]
        self.names_n = [(nm, len(nm)) for nm in self.names]
        self.ones = [pool.one_field[loc] for loc in self.loci]
        self.one_set = [frozenset(pool.one_field[loc]) for loc in self.loci]
        self.intervals = intervals(self.loci)
        self.probs = options.interval_probabilities()
        self.recombination = [(i, p) for i, p in enumerate(self.probs) if p > 0.0]


class _Sim:
    """Draws for one family: a seeded generator and the run's context."""

    def __init__(self, rng: random.Random, ctx: _Context) -> None:
        self.rng = rng
        self.rnd = rng.random
        self.ctx = ctx
        self.options = ctx.options
        self.drawn: list[list[str]] = [[] for _ in range(ctx.L)]  # alleles used by founders, per locus

    def _allele(self, i: int) -> str:
        o, rnd = self.options, self.rnd
        if o.shared_rate and self.drawn[i] and rnd() < o.shared_rate:
            d = self.drawn[i]
            return d[int(rnd() * len(d))]
        names = self.ctx.names[i]
        return names[int(rnd() * len(names))]

    def founder(self, pid: str, relation: str, sex: str) -> _Ind:
        rnd, o, ctx = self.rnd, self.options, self.ctx
        L = ctx.L
        ind = _Ind(pid, relation, sex, _FOUNDER_NAMES[pid])
        if o.shared_rate:
            first = [self._allele(i) for i in range(L)]
        else:
            first = [nm[int(rnd() * n)] for nm, n in ctx.names_n]
        if o.homozygous_rate or o.shared_rate:
            h = o.homozygous_rate
            second = [first[i] if (h and rnd() < h) else self._allele(i) for i in range(L)]
        else:
            second = [nm[int(rnd() * n)] for nm, n in ctx.names_n]
        if o.shared_rate:
            for i in range(L):
                self.drawn[i] += (first[i], second[i])
        n1, n2 = ind.names
        if o.kir:
            ind.pat = Haplotype(tuple(first), None, (n1,) * L, _KIR_HAPS[bisect_right(_KIR_CUM, rnd())], None, n1)
            ind.mat = Haplotype(tuple(second), None, (n2,) * L, _KIR_HAPS[bisect_right(_KIR_CUM, rnd())], None, n2)
        else:
            ind.pat = Haplotype(tuple(first), None, (n1,) * L)
            ind.mat = Haplotype(tuple(second), None, (n2,) * L)
        ind.abo = (_ABO_ALLELES[bisect_right(_ABO_CUM, rnd())], _ABO_ALLELES[bisect_right(_ABO_CUM, rnd())])
        ind.rh = ("D" if rnd() < _RH_D else "d", "D" if rnd() < _RH_D else "d")
        ind.fc = ("V" if rnd() < _FC_V else "F", "V" if rnd() < _FC_V else "F")
        return ind

    def meiosis(self, parent: _Ind, child: _Ind, side: Literal["paternal", "maternal"]) -> Haplotype:
        rnd, ctx = self.rnd, self.ctx
        haps = (parent.pat, parent.mat)
        names = parent.names
        h = 0 if rnd() < 0.5 else 1
        switches = [i for i, p in ctx.recombination if rnd() < p]  # crossover after locus index i
        if not switches:
            src = haps[h]
            alleles, origin, founder = src.alleles, (names[h],) * ctx.L, src.founder
        else:
            alleles, origin, founder = (), (), ()
            start = 0
            for i in switches + [ctx.L - 1]:
                src = haps[h]
                alleles += src.alleles[start:i + 1]
                founder += src.founder[start:i + 1]
                origin += (names[h],) * (i + 1 - start)
                if i < ctx.L - 1:
                    child.crossovers.append(Crossover(child.id, parent.id, side, ctx.intervals[i], names[h],
                                                      names[1 - h]))
                    h ^= 1
                start = i + 1
        if self.options.kir:
            k = 0 if rnd() < 0.5 else 1
            return Haplotype(alleles, origin, founder, haps[k].kir, names[k], haps[k].kir_founder)
        return Haplotype(alleles, origin, founder)

    def child(self, pid: str, relation: str, sex: str, father: _Ind, mother: _Ind) -> _Ind:
        rnd = self.rnd
        names = _FOUNDER_NAMES.get(pid) or (f"{pid}:pat", f"{pid}:mat")
        ind = _Ind(pid, relation, sex, names)
        ind.father, ind.mother = father.id, mother.id
        ind.pat = self.meiosis(father, ind, "paternal")
        ind.mat = self.meiosis(mother, ind, "maternal")
        ind.abo = (father.abo[rnd() < 0.5], mother.abo[rnd() < 0.5])
        ind.rh = (father.rh[rnd() < 0.5], mother.rh[rnd() < 0.5])
        ind.fc = (father.fc[rnd() < 0.5], mother.fc[rnd() < 0.5])
        return ind

    def randint(self, lo: int, hi: int) -> int:
        return lo + int(self.rnd() * (hi - lo + 1))

    def sex(self) -> str:
        return "M" if self.rnd() < 0.5 else "F"


_ABO_TEXT = {(a, b, r, s): ("AB" if {a, b} == {"A", "B"} else "A" if "A" in (a, b) else "B" if "B" in (a, b)
                            else "O") + ("+" if "D" in (r, s) else "-")
             for a in "ABO" for b in "ABO" for r in "Dd" for s in "Dd"}
_FC_TEXT = {("V", "V"): "VV", ("V", "F"): "VF", ("F", "V"): "VF", ("F", "F"): "FF"}


def _abo_text(abo: tuple[str, str], rh: tuple[str, str]) -> str:
    return _ABO_TEXT[abo[0], abo[1], rh[0], rh[1]]


def _fc_text(fc: tuple[str, str]) -> str:
    return _FC_TEXT[fc[0], fc[1]]


def simulate_family(index: int, seed: int, options: SimOptions, pool: AllelePool, *,
                    _ctx: _Context | None = None) -> SimulatedFamily:
    """Family number ``index`` (0-based) of the run seeded ``seed``; its id is ``FAM`` + index + 1 (7 digits)."""
    ctx = _ctx if _ctx is not None else _Context(pool, options)
    rng = random.Random(f"{seed}:{index}")
    o = options
    sim = _Sim(rng, ctx)
    rnd = sim.rnd
    # -- who is in the family
    half_sides = ["paternal" if rnd() < 0.5 else "maternal" for _ in range(o.half_siblings)]
    missing: set[str] = set()
    if o.missing_parents != "none" and rnd() < o.missing_rate:
        which = o.missing_parents
        if which == "one":
            which = "father" if rnd() < 0.5 else "mother"
        missing = {"father": {"F"}, "mother": {"M"}, "both": {"F", "M"}}[which]
    # -- genomes, top down
    if o.grandparents:
        pgf, pgm = sim.founder("PGF", "paternal grandfather", "M"), sim.founder("PGM", "paternal grandmother", "F")
        mgf, mgm = sim.founder("MGF", "maternal grandfather", "M"), sim.founder("MGM", "maternal grandmother", "F")
        father = sim.child("F", "father", "M", pgf, pgm)
        mother = sim.child("M", "mother", "F", mgf, mgm)
    else:
        father, mother = sim.founder("F", "father", "M"), sim.founder("M", "mother", "F")
    psex = sim.sex()
    patient = sim.child("P", "patient", psex, father, mother)
    people: list[_Ind] = [patient, father, mother]
    sibs: list[_Ind] = []
    for k in range(o.siblings):
        sx = sim.sex()
        sibs.append(sim.child(f"S{k + 1}", "brother" if sx == "M" else "sister", sx, father, mother))
    partners: dict[str, _Ind] = {}
    halves: list[_Ind] = []
    for k, side in enumerate(half_sides):
        sx = sim.sex()
        if side == "paternal":
            if "XF" not in partners:
                partners["XF"] = sim.founder("XF", "unrelated", "F")
            halves.append(sim.child(f"H{k + 1}", "half-sibling", sx, father, partners["XF"]))
        else:
            if "XM" not in partners:
                partners["XM"] = sim.founder("XM", "unrelated", "M")
            halves.append(sim.child(f"H{k + 1}", "half-sibling", sx, partners["XM"], mother))
    kids: list[_Ind] = []
    if o.patient_children:
        partner = partners["XP"] = sim.founder("XP", "unrelated", "F" if psex == "M" else "M")
        fa, mo = (patient, partner) if psex == "M" else (partner, patient)
        for k in range(o.patient_children):
            sx = sim.sex()
            kids.append(sim.child(f"C{k + 1}", "son" if sx == "M" else "daughter", sx, fa, mo))
    people += sibs + halves + kids
    if o.grandparents:
        people += [pgf, pgm, mgf, mgm]
    people += list(partners.values())
    # -- ages (see the module docstring)
    lo = 20 if o.patient_children else 1
    hi = 35 if o.grandparents else 60
    patient.age = sim.randint(lo, max(lo, hi))
    for p in sibs + halves:
        p.age = max(0, patient.age + sim.randint(-10, 10))
    for p in kids:
        p.age = sim.randint(0, max(0, patient.age - 18))
    oldest: dict[str, int] = {}
    for p in people:
        for par in (p.father, p.mother):
            if par is not None and oldest.get(par, -1) < p.age:
                oldest[par] = p.age
    for p in (mother, father, *partners.values()):
        gap, cap = (40, 95) if p.sex == "F" else (45, 99)
        p.age = min(cap, oldest[p.id] + sim.randint(18, gap))
    if o.grandparents:
        for p, child in ((pgf, father), (pgm, father), (mgf, mother), (mgm, mother)):
            p.age = min(110, child.age + sim.randint(18, 35))
    # -- the file as written
    in_file = {p.id for p in people if p.id[0] != "X"}
    if o.missing_mode == "drop":
        in_file -= missing
    typed = in_file - missing
    out: list[SimPerson] = []
    no_cells: tuple[str | None, ...] = (None,) * ctx.L
    ar = o.available_rate
    for p in people:
        cmv = rnd() < min(0.9, 0.3 + 0.006 * p.age)
        available = p is not patient and rnd() < ar
        if p.id in typed:
            cells, errors = _write_cells(sim, p)
        else:
            cells, errors = no_cells, ()
        out.append(SimPerson(
            p.id, p.relation, p.sex, p.age, p.father, p.mother, p.names, p.pat, p.mat, _abo_text(p.abo, p.rh),
            cmv, _fc_text(p.fc), available, p.id in in_file, p.id in typed,
            p.father if p.father in in_file else None, p.mother if p.mother in in_file else None,
            cells, errors, tuple(p.crossovers), p.abo, p.rh, p.fc,
        ))
    return SimulatedFamily(f"FAM{index + 1:07d}", ctx.loci, o.kir, tuple(out))


def _write_cells(sim: _Sim, p: _Ind) -> tuple[tuple[str | None, ...], tuple[TypingError, ...]]:
    o, ctx, rnd = sim.options, sim.ctx, sim.rnd
    pa, ma = p.pat.alleles, p.mat.alleles
    lr, er = o.low_resolution_rate, o.error_rate
    if not lr and not er:
        return tuple([f"{a}+{b}" for a, b in zip(pa, ma)]), ()
    cells: list[str | None] = []
    errors: list[TypingError] = []
    for i in range(ctx.L):
        a1, a2 = pa[i], ma[i]
        if lr and rnd() < lr:
            b1, b2 = a1.split(":", 1)[0], a2.split(":", 1)[0]
            one = ctx.one_set[i]
            if b1 in one and b2 in one:
                a1, a2 = b1, b2
                pool = ctx.ones[i]
            else:
                pool = ctx.names[i]
        else:
            pool = ctx.names[i]
        w1, w2 = a1, a2
        if er and rnd() < er and len(pool) > 2:
            w1 = pool[int(rnd() * len(pool))]
            while w1 == a1 or w1 == a2:
                w1 = pool[int(rnd() * len(pool))]
            errors.append(TypingError(p.id, ctx.loci[i], 1, a1, w1))
        if er and rnd() < er and len(pool) > 2:
            w2 = pool[int(rnd() * len(pool))]
            while w2 == a1 or w2 == a2:
                w2 = pool[int(rnd() * len(pool))]
            errors.append(TypingError(p.id, ctx.loci[i], 2, a2, w2))
        cells.append(f"{w1}+{w2}")
    return tuple(cells), tuple(errors)


def _pool(pool: AllelePool | None, ref: "Reference | None") -> AllelePool:
    if pool is not None:
        return pool
    if ref is None:
        from haplomatch.reference import load_reference

        ref = load_reference()
    return AllelePool.from_reference(ref)


def iter_families(n: int, seed: int, options: SimOptions = SimOptions(), *, ref: "Reference | None" = None,
                  pool: AllelePool | None = None) -> Iterator[SimulatedFamily]:
    """The families one at a time (constant memory): family i is :func:`simulate_family` (i, seed)."""
    if n < 0:
        raise ValueError("n must be ≥ 0")
    pool = _pool(pool, ref)
    ctx = _Context(pool, options)
    for i in range(n):
        yield simulate_family(i, seed, options, pool, _ctx=ctx)


def simulate_families(n: int, seed: int, options: SimOptions = SimOptions(), *, ref: "Reference | None" = None,
                      pool: AllelePool | None = None) -> list[SimulatedFamily]:
    """``n`` seeded families (see the module docstring for every assumption)."""
    with fewer_collections():
        return list(iter_families(n, seed, options, ref=ref, pool=pool))


# ------------------------------------------------------------------------------------------------ tables

_ATTR_COLUMNS = ("family_id", "id", "relation", "father_id", "mother_id", "sex", "age", "abo", "cmv", "fcgr3a",
                 "available")


def _family_schema(loci: Sequence[str], kir: bool) -> dict[str, pl.DataType]:
    schema: dict[str, pl.DataType] = {c: pl.String for c in _ATTR_COLUMNS}
    schema["age"] = pl.Int64
    schema |= {loc: pl.String for loc in loci}
    if kir:
        schema |= {g: pl.Int8 for g in GENES}
    return schema


def family_frame(families: Iterable[SimulatedFamily]) -> pl.DataFrame:
    """The rows of the family file (persons in the file only), in the documented family-file format."""
    families = list(families)
    if not families:
        return pl.DataFrame(schema=_family_schema(LOCI, True))
    loci, kir = families[0].loci, families[0].kir
    schema = _family_schema(loci, kir)
    no_kir = (None,) * len(GENES) if kir else ()
    kir_cache: dict[tuple[str, str], tuple[int, ...]] = {}
    rows = []
    for fam in families:
        if fam.loci != loci or fam.kir != kir:
            raise ValueError("families simulated with different loci or KIR settings cannot share one file")
        for p in fam.people:
            if not p.in_file:
                continue
            if kir and p.typed:
                key = (p.paternal.kir, p.maternal.kir)
                genes = kir_cache.get(key)
                if genes is None:
                    present = kir_genes(key)
                    genes = kir_cache[key] = tuple(int(g in present) for g in GENES)
            else:
                genes = no_kir
            rows.append((fam.id, p.id, p.relation, p.file_father_id, p.file_mother_id, p.sex, p.age, p.abo,
                         "pos" if p.cmv else "neg", p.fcgr3a, "yes" if p.available else "no") + p.cells + genes)
    columns = list(zip(*rows))
    return pl.DataFrame({c: pl.Series(c, v, dtype=t) for (c, t), v in zip(schema.items(), columns)})


_TRUTH_SCHEMA: dict[str, pl.DataType] = {
    "family_id": pl.String, "id": pl.String, "relation": pl.String, "father": pl.String, "mother": pl.String,
    "in_file": pl.Boolean, "typed": pl.Boolean, "locus": pl.String,
    "paternal_allele": pl.String, "maternal_allele": pl.String,
    "paternal_label": pl.String, "maternal_label": pl.String,
    "paternal_founder": pl.String, "maternal_founder": pl.String,
    "ibd_with_patient": pl.Int8, "written": pl.String, "error_slots": pl.String,
    "paternal_crossover": pl.String, "maternal_crossover": pl.String,
    "recombinant": pl.Boolean, "hla_ibd_min": pl.Int8, "hla_ibd_max": pl.Int8,
    "haplotype_names": pl.String,
}


def truth_frame(families: Iterable[SimulatedFamily]) -> pl.DataFrame:
    """The truth, one row per person (in the file or not) and locus, plus one row with ``locus`` = ``KIR``
    when KIR was simulated (alleles = KIR haplotypes ``cA01~tA01``).

    Columns: ``family_id``, ``id``, ``relation``, ``father``/``mother`` (true parents, partners included),
    ``in_file``, ``typed``, ``locus``, ``paternal_allele``/``maternal_allele`` (true 2-field alleles; the
    paternal one came from the father), ``paternal_label``/``maternal_label`` (which of the parent's two
    haplotypes, e.g. ``a``/``c``; null for founders), ``paternal_founder``/``maternal_founder`` (founder
    haplotype of descent), ``ibd_with_patient`` (0–2 at this locus), ``written`` (the cell in the file, null
    if blank or not in the file), ``error_slots`` (``"1"``, ``"2"`` or ``"1,2"`` when the written cell was
    corrupted, else null), ``paternal_crossover``/``maternal_crossover`` (intervals of the crossovers in the
    meiosis that made that haplotype, ``;``-joined, else null), ``recombinant`` (either), ``hla_ibd_min`` /
    ``hla_ibd_max`` (over the HLA loci: 2/2 = HLA-identical by descent, ≥1 = haploidentical), and
    ``haplotype_names`` (this person's own two haplotype names, ``a,b``)."""
    # person-level facts once per person, locus-level facts once per row; polars repeats the former
    per = {c: [] for c in _PERSON_TRUTH}
    loc_cols = {c: [] for c in _LOCUS_TRUTH}
    row_person: list[int] = []
    k = 0
    for fam in families:
        pt = fam.patient
        L = len(fam.loci)
        n = L + 1 if fam.kir else L
        loci = fam.loci + ("KIR",) if fam.kir else fam.loci
        ptf, ptm = pt.paternal.founder, pt.maternal.founder
        none_l = (None,) * L
        for p in fam.people:
            pat, mat = p.paternal, p.maternal
            ibd = [_ibd(pat.founder[i], mat.founder[i], ptf[i], ptm[i]) for i in range(L)]
            per["family_id"].append(fam.id)
            per["id"].append(p.id)
            per["relation"].append(p.relation)
            per["father"].append(p.father)
            per["mother"].append(p.mother)
            per["in_file"].append(p.in_file)
            per["typed"].append(p.typed)
            per["paternal_crossover"].append(
                ";".join(c.interval for c in p.crossovers if c.side == "paternal") or None if p.crossovers else None)
            per["maternal_crossover"].append(
                ";".join(c.interval for c in p.crossovers if c.side == "maternal") or None if p.crossovers else None)
            per["recombinant"].append(bool(p.crossovers))
            per["hla_ibd_min"].append(min(ibd))
            per["hla_ibd_max"].append(max(ibd))
            per["haplotype_names"].append(",".join(p.names))
            written: tuple[str | None, ...] = p.cells if p.in_file else none_l
            if p.errors:
                err: dict[str, list[str]] = {}
                for e in p.errors:
                    err.setdefault(e.locus, []).append(str(e.slot))
                errs: list[str | None] = [",".join(err[loc]) if loc in err else None for loc in fam.loci]
            else:
                errs = [None] * L
            pa, ma = list(pat.alleles), list(mat.alleles)
            plab = list(pat.origin) if pat.origin is not None else [None] * L
            mlab = list(mat.origin) if mat.origin is not None else [None] * L
            pf, mf = list(pat.founder), list(mat.founder)
            if fam.kir:
                ibd.append(_ibd(pat.kir_founder, mat.kir_founder, pt.paternal.kir_founder, pt.maternal.kir_founder))
                written += (None,)
                errs.append(None)
                pa.append(pat.kir)
                ma.append(mat.kir)
                plab.append(pat.kir_origin)
                mlab.append(mat.kir_origin)
                pf.append(pat.kir_founder)
                mf.append(mat.kir_founder)
            loc_cols["locus"].extend(loci)
            loc_cols["paternal_allele"].extend(pa)
            loc_cols["maternal_allele"].extend(ma)
            loc_cols["paternal_label"].extend(plab)
            loc_cols["maternal_label"].extend(mlab)
            loc_cols["paternal_founder"].extend(pf)
            loc_cols["maternal_founder"].extend(mf)
            loc_cols["ibd_with_patient"].extend(ibd)
            loc_cols["written"].extend(written)
            loc_cols["error_slots"].extend(errs)
            row_person.extend((k,) * n)
            k += 1
    persons = pl.DataFrame({c: pl.Series(c, v, dtype=_TRUTH_SCHEMA[c]) for c, v in per.items()})
    rows = pl.DataFrame({c: pl.Series(c, v, dtype=_TRUTH_SCHEMA[c]) for c, v in loc_cols.items()})
    repeated = persons[pl.Series(row_person, dtype=pl.UInt32)] if k else persons
    return pl.concat([repeated, rows], how="horizontal").select(list(_TRUTH_SCHEMA))


_PERSON_TRUTH = ("family_id", "id", "relation", "father", "mother", "in_file", "typed", "paternal_crossover",
                 "maternal_crossover", "recombinant", "hla_ibd_min", "hla_ibd_max", "haplotype_names")
_LOCUS_TRUTH = tuple(c for c in _TRUTH_SCHEMA if c not in _PERSON_TRUTH)


# ------------------------------------------------------------------------------------------------ writing


def _format(path: Path) -> str:
    ext = path.suffix.lower()
    if ext in (".parquet", ".pq"):
        return "parquet"
    if ext in (".tsv", ".tab"):
        return "tsv"
    if ext == ".csv":
        return "csv"
    raise ValueError(f"cannot tell the format of {path.name!r}: use .csv, .tsv or .parquet")


def write_frames(frames: Iterable[pl.DataFrame], path: str | Path, schema: dict[str, pl.DataType]) -> int:
    """Write tables one after another into one file (CSV, TSV or Parquet by extension) without holding
    them all: CSV/TSV are appended; for Parquet, the tables go to Arrow IPC parts in a temporary folder
    beside the file and are then streamed into it. Returns the number of rows written."""
    path = Path(path)
    fmt = _format(path)
    rows = 0
    if fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        with open(path, "wb") as fh:
            header = True
            for df in frames:
                df.write_csv(fh, separator=sep, include_header=header)
                header = False
                rows += df.height
            if header:
                pl.DataFrame(schema=schema).write_csv(fh, separator=sep)
        return rows
    tmp = Path(tempfile.mkdtemp(prefix=".simulate-", dir=path.parent))
    try:
        parts = []
        for k, df in enumerate(frames):
            part = tmp / f"part-{k:06d}.arrow"
            df.write_ipc(part)
            parts.append(part)
            rows += df.height
        if not parts:
            pl.DataFrame(schema=schema).write_parquet(path)
        else:
            pl.scan_ipc(parts).sink_parquet(path, maintain_order=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def _batches(families: Iterable[SimulatedFamily], size: int = _FAMILY_BATCH) -> Iterator[list[SimulatedFamily]]:
    batch: list[SimulatedFamily] = []
    for f in families:
        batch.append(f)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def write_families(families: Iterable[SimulatedFamily], path: str | Path, *,
                   truth: str | Path | None = None) -> int:
    """Write the family file (CSV/TSV/Parquet by extension; a ``family_id`` column, HLA cells
    ``A*01:01+A*02:01``, KIR gene columns 1/0) and, with ``truth``, the truth table, in one pass over
    ``families`` (which may be an iterator: memory stays bounded). Returns the rows written."""
    it = iter(families)
    first = next(it, None)
    if first is None:
        schema = _family_schema(LOCI, True)
        if truth is not None:
            write_frames([], truth, _TRUTH_SCHEMA)
        return write_frames([], path, schema)
    schema = _family_schema(first.loci, first.kir)

    def chain() -> Iterator[SimulatedFamily]:
        yield first
        yield from it

    tmp = Path(tempfile.mkdtemp(prefix=".simulate-truth-", dir=Path(truth).parent)) if truth is not None else None
    spilled: list[Path] = []

    def frames() -> Iterator[pl.DataFrame]:
        for b in _batches(chain()):
            if tmp is not None:  # one pass, two outputs: the truth of each batch waits on disk
                part = tmp / f"t-{len(spilled):06d}.arrow"
                truth_frame(b).write_ipc(part)
                spilled.append(part)
            yield family_frame(b)

    try:
        with fewer_collections():
            rows = write_frames(frames(), path, schema)
        if truth is not None:
            _join_parts(spilled, truth)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


def _join_parts(parts: list[Path], path: str | Path) -> None:
    """The truth parts (Arrow IPC files, in order) → one file, streamed."""
    if parts and _format(Path(path)) == "parquet":
        pl.scan_ipc(parts).sink_parquet(path, maintain_order=True)
    else:
        write_frames((pl.read_ipc(p) for p in parts), path, _TRUTH_SCHEMA)


_WORKER: dict = {}


def _worker_init(pool: AllelePool, options: SimOptions) -> None:
    _WORKER["ctx"] = (pool, options, _Context(pool, options))


def _worker_chunk(args: tuple[int, int, int, bool]) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    start, stop, seed, with_truth = args
    pool, options, ctx = _WORKER["ctx"]
    with fewer_collections():
        fams = [simulate_family(i, seed, options, pool, _ctx=ctx) for i in range(start, stop)]
        return family_frame(fams), (truth_frame(fams) if with_truth else None)


def write_simulated_families(n: int, seed: int, path: str | Path, options: SimOptions = SimOptions(), *,
                             truth: str | Path | None = None, ref: "Reference | None" = None,
                             pool: AllelePool | None = None, workers: int = 1) -> int:
    """Simulate ``n`` families and write them (and the truth) in batches, on ``workers`` processes. The
    files do not depend on ``workers``: each family has its own seed and batches are written in order.
    Returns the rows written to the family file. Worker processes are started with ``spawn``: a script
    that calls this with ``workers > 1`` needs the usual ``if __name__ == "__main__":`` guard."""
    if workers <= 1 or n <= 2 * _FAMILY_BATCH:  # below that, starting processes costs more than it saves
        return write_families(iter_families(n, seed, options, ref=ref, pool=pool), path, truth=truth)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = _pool(pool, ref)
    schema = _family_schema(options.loci, options.kir)
    tasks = [(a, min(n, a + _FAMILY_BATCH), seed, truth is not None) for a in range(0, n, _FAMILY_BATCH)]
    tmp = Path(tempfile.mkdtemp(prefix=".simulate-truth-", dir=Path(truth).parent)) if truth is not None else None
    spilled: list[Path] = []
    try:
        # spawn, not fork: a forked child of a process whose polars thread pool is running can deadlock
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                 initargs=(pool, options)) as ex:
            def frames() -> Iterator[pl.DataFrame]:
                for fam_df, truth_df in ex.map(_worker_chunk, tasks):
                    if tmp is not None and truth_df is not None:
                        part = tmp / f"t-{len(spilled):06d}.arrow"
                        truth_df.write_ipc(part)
                        spilled.append(part)
                    yield fam_df

            rows = write_frames(frames(), path, schema)
        if truth is not None:
            _join_parts(spilled, truth)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


def default_workers() -> int:
    """Processes used by the command line when not told: the CPUs available, at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def write_truth(families: Iterable[SimulatedFamily], path: str | Path) -> int:
    """Write :func:`truth_frame` (CSV/TSV/Parquet by extension), in batches."""
    with fewer_collections():
        return write_frames((truth_frame(b) for b in _batches(families)), path, _TRUTH_SCHEMA)


# ------------------------------------------------------------------------------------------------ registry


def _registry_schema(loci: Sequence[str], kir: bool) -> dict[str, pl.DataType]:
    schema: dict[str, pl.DataType] = {"donor_id": pl.String}
    for loc in loci:
        schema[f"{loc}_1"] = pl.String
        schema[f"{loc}_2"] = pl.String
    if kir:
        schema |= {g: pl.Int8 for g in GENES}
    schema |= {"age": pl.Int64, "sex": pl.String, "abo": pl.String, "cmv": pl.String}
    return schema


def _abo_phenotypes() -> tuple[tuple[str, ...], tuple[float, ...]]:
    """ABO/RhD phenotype probabilities under Hardy-Weinberg with the module's allele frequencies."""
    probs: dict[str, float] = {}
    for a1, f1 in _ABO_FREQ.items():
        for a2, f2 in _ABO_FREQ.items():
            for r1, g1 in _RH_FREQ.items():
                for r2, g2 in _RH_FREQ.items():
                    k = _abo_text((a1, a2), (r1, r2))
                    probs[k] = probs.get(k, 0.0) + f1 * f2 * g1 * g2
    keys = tuple(sorted(probs))
    return keys, tuple(probs[k] for k in keys)


def iter_registry(n: int, seed: int, *, ref: "Reference | None" = None, pool: AllelePool | None = None,
                  kir: bool = True, loci: Sequence[str] = LOCI) -> Iterator[pl.DataFrame]:
    """Unrelated donors in chunks of :data:`REGISTRY_CHUNK` rows (chunk k seeded ``"registry:<seed>:<k>"``)."""
    if n < 0:
        raise ValueError("n must be ≥ 0")
    loci = tuple(x for x in LOCI if x in loci)
    pool = _pool(pool, ref)
    schema = _registry_schema(loci, kir)
    abo_keys, abo_w = _abo_phenotypes()
    cen_names, cen_w = tuple(KIR_CEN), tuple(_CEN_FREQ[c] for c in KIR_CEN)
    tel_names, tel_w = tuple(KIR_TEL), tuple(_TEL_FREQ[t] for t in KIR_TEL)
    ncen, ntel = len(cen_names), len(tel_names)
    # gene presence per code of the two haplotypes' motifs ((cen1, cen2), (tel1, tel2))
    kir_map = {g: {((a * ncen + b) * ntel + c) * ntel + d: int(
        g in KIR_CEN[cen_names[a]] or g in KIR_CEN[cen_names[b]] or g in KIR_TEL[tel_names[c]]
        or g in KIR_TEL[tel_names[d]]) for a in range(ncen) for b in range(ncen) for c in range(ntel)
        for d in range(ntel)} for g in GENES}
    cmv_p = [min(0.9, 0.3 + 0.006 * a) for a in range(121)]
    for k, start in enumerate(range(0, n, REGISTRY_CHUNK)):
        m = min(REGISTRY_CHUNK, n - start)
        rng = random.Random(f"registry:{seed}:{k}")
        cols: dict[str, pl.Series] = {}
        cols["donor_id"] = pl.Series("donor_id", [f"D{i:08d}" for i in range(start + 1, start + m + 1)],
                                     dtype=pl.String)
        for loc in loci:
            names = pool.two_field[loc]
            cols[f"{loc}_1"] = pl.Series(f"{loc}_1", rng.choices(names, k=m), dtype=pl.String)
            cols[f"{loc}_2"] = pl.Series(f"{loc}_2", rng.choices(names, k=m), dtype=pl.String)
        if kir:
            c1 = rng.choices(range(ncen), weights=cen_w, k=m)
            c2 = rng.choices(range(ncen), weights=cen_w, k=m)
            t1 = rng.choices(range(ntel), weights=tel_w, k=m)
            t2 = rng.choices(range(ntel), weights=tel_w, k=m)
            code = pl.Series("kir", [((a * ncen + b) * ntel + c) * ntel + d for a, b, c, d in zip(c1, c2, t1, t2)],
                             dtype=pl.Int32)
            for g in GENES:
                cols[g] = code.replace_strict(kir_map[g], return_dtype=pl.Int8).alias(g)
        ages = rng.choices(range(18, 61), k=m)
        cols["age"] = pl.Series("age", ages, dtype=pl.Int64)
        cols["sex"] = pl.Series("sex", rng.choices(("M", "F"), k=m), dtype=pl.String)
        cols["abo"] = pl.Series("abo", rng.choices(abo_keys, weights=abo_w, k=m), dtype=pl.String)
        r = rng.random
        cols["cmv"] = pl.Series("cmv", ["pos" if r() < cmv_p[a] else "neg" for a in ages], dtype=pl.String)
        yield pl.DataFrame([cols[c] for c in schema])


def simulate_registry(n: int, seed: int, *, ref: "Reference | None" = None, pool: AllelePool | None = None,
                      kir: bool = True, loci: Sequence[str] = LOCI) -> pl.DataFrame:
    """``n`` unrelated donors: ``donor_id``, ``<locus>_1``/``<locus>_2`` HLA slots, KIR gene columns (1/0),
    ``age``, ``sex``, ``abo``, ``cmv``. The same rows as :func:`write_registry` writes."""
    loci = tuple(x for x in LOCI if x in loci)
    chunks = list(iter_registry(n, seed, ref=ref, pool=pool, kir=kir, loci=loci))
    if not chunks:
        return pl.DataFrame(schema=_registry_schema(loci, kir))
    return pl.concat(chunks, rechunk=False)


def write_registry(n: int, seed: int, path: str | Path, *, ref: "Reference | None" = None,
                   pool: AllelePool | None = None, kir: bool = True, loci: Sequence[str] = LOCI) -> int:
    """Write ``n`` registry donors chunk by chunk (CSV/TSV/Parquet by extension); returns rows written."""
    loci = tuple(x for x in LOCI if x in loci)
    return write_frames(iter_registry(n, seed, ref=ref, pool=pool, kir=kir, loci=loci), path,
                        _registry_schema(loci, kir))
