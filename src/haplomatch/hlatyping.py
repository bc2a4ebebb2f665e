"""HLA typings of one person at one locus, read from the cells labs export.

A locus typing is a list of genotype alternatives (GL ``|``); each genotype has two slots (``+``); each slot
is a list of possible typings (GL ``/``). An empty slot means "not typed" (any allele). Cells accepted
(issue 3): ``A*01:01+A*02:01``, ``A*01:01, A*02:01``, ``01:01/02:01`` (one ambiguous slot), bare fields under a
locus column, serology, XX, G/P, MAC codes, ``HLA-`` prefixes, and one allele per column (``A_1``/``A_2``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import dataclass
from typing import Literal

from haplomatch.errors import Problem, UnknownAlleleError
from haplomatch.nomenclature import Nomenclature, normalise

#: What a blank or '-' second allele means. 'homozygous' (default) repeats the first allele, with a
#: warning in the output; 'untyped' leaves the slot open (any allele); 'error' refuses the row.
MissingSecond = Literal["homozygous", "untyped", "error"]
MISSING_SECOND_DEFAULT: MissingSecond = "homozygous"

BLANK = frozenset({"", "-", "--", "na", "n/a", "nt", "nd", "?", "none", "blank"})
_TWO = re.compile(r"\s*[+,;]\s*")

Slot = tuple[str, ...]
Genotype = tuple[Slot, Slot]


@dataclass(frozen=True)
class LocusTyping:
    """A person's typing at one locus: genotype alternatives, each of two slots of possible typings."""

    locus: str
    genotypes: tuple[Genotype, ...]
    text: str = ""
    assumed_homozygous: bool = False

    @property
    def typed(self) -> bool:
        return any(s for g in self.genotypes for s in g)

    def names(self) -> tuple[str, ...]:
        """Every typing name that appears, in order, without duplicates."""
        seen: dict[str, None] = {}
        for g in self.genotypes:
            for slot in g:
                for n in slot:
                    seen.setdefault(n, None)
        return tuple(seen)

    def gl(self) -> str:
        """The typing as a GL string (``/``, ``+``, ``|``); an open slot is written ``<locus>*XX``."""
        def slot(s: Slot) -> str:
            return "/".join(s) if s else f"{self.locus}*XX"
        return "|".join(f"{slot(a)}+{slot(b)}" for a, b in self.genotypes)


def typing_of(locus: str, genotypes: tuple[Genotype, ...], text: str, assumed_homozygous: bool) -> LocusTyping:
    """``LocusTyping(locus, genotypes, text, assumed_homozygous)`` without the generated ``__init__`` (a
    frozen dataclass sets each field through ``object.__setattr__``; a batch makes millions). Equal to, hashes
    and prints as the constructed one (tested)."""
    t = object.__new__(LocusTyping)
    object.__setattr__(t, "__dict__", {"locus": locus, "genotypes": genotypes, "text": text,
                                       "assumed_homozygous": assumed_homozygous})
    return t


@lru_cache(maxsize=1 << 16)
def _slot(text: str, locus: str) -> Slot:
    """One slot's names, normalised (remembered: the same few thousand names recur across a batch)."""
    return tuple(normalise(x, locus) for x in text.split("/") if x.strip())


def parse_cell(
    value: str | None, locus: str, *, second: str | None = None, missing_second: MissingSecond = MISSING_SECOND_DEFAULT,
    source: dict | None = None,
) -> tuple[LocusTyping | None, list[Problem]]:
    """Read one locus from one cell (``second`` given: the two-column layout). Returns the typing (None
    when the locus is not typed at all) and the problems found (errors and warnings), never raising."""
    src = dict(source or {})
    problems: list[Problem] = []
    first = (value or "").strip()
    other = None if second is None else second.strip()
    if first.lower() in BLANK and (other is None or other.lower() in BLANK):
        return None, problems
    if other is not None:
        if first.lower() in BLANK:
            first, other = other, ""
        if _TWO.search(first) or _TWO.search(other):
            problems.append(Problem("two alleles in one cell of a two-column locus", value=first + " | " + other,
                                    fix=f"put one allele in each of the two {locus} columns", **src))
            return None, problems
        slots = [first, other]
    else:
        if "|" in first:
            genos = []
            for alt in first.split("|"):
                parts = _TWO.split(alt.strip())
                if len(parts) != 2 or not all(p.strip() for p in parts):
                    problems.append(Problem("each '|' alternative needs two alleles joined by '+'", value=first, **src))
                    return None, problems
                genos.append((_slot(parts[0], locus), _slot(parts[1], locus)))
            return LocusTyping(locus, tuple(genos), first), problems
        slots = [p for p in _TWO.split(first)]
        if len(slots) > 2:
            problems.append(Problem(f"more than two alleles for {locus}", value=first,
                                    fix="give at most two alleles, joined by '+'", **src))
            return None, problems
        if len(slots) == 1:
            slots.append("")
    a, b = slots
    if a.strip().lower() in BLANK:
        a, b = b, a
    homo = False
    if b.strip().lower() in BLANK:
        if missing_second == "error":
            problems.append(Problem(f"only one {locus} allele", value=first, severity="error",
                                    fix="give the second allele, or repeat the first if homozygous", **src))
            return None, problems
        if missing_second == "homozygous":
            b, homo = a, True
            problems.append(Problem(f"only one {locus} allele: read as homozygous (setting missing_second=homozygous)",
                                    value=first, severity="warning",
                                    fix="repeat the allele if homozygous, or type the second allele", **src))
        else:
            b = ""
            problems.append(Problem(f"only one {locus} allele: the second is taken as untyped", value=first,
                                    severity="warning", **src))
    text = first if other is None else f"{first}+{other}"
    return LocusTyping(locus, ((_slot(a, locus), _slot(b, locus)),), text, homo), problems


def check_names(typing: LocusTyping, nomenclature: Nomenclature, source: dict | None = None) -> list[Problem]:
    """Every name of the typing resolves in the release (errors name the value and nearest names); the
    warnings of resolution (renamed alleles, v2 names, MAC expansion) are passed on."""
    problems: list[Problem] = []
    src = dict(source or {})
    for name in typing.names():
        problems += name_problems(name, typing.locus, nomenclature, src)
    return problems


def name_problems(name: str, locus: str, nomenclature: Nomenclature, src: dict) -> list[Problem]:
    """The problems of one name in a column of ``locus`` (see :func:`check_names`)."""
    if not name.upper().startswith(locus.upper() + "*") and "*" in name:
        return [Problem(f"allele of another locus in the {locus} column", value=name, **src)]
    try:
        r = nomenclature.resolve_one(name)
    except UnknownAlleleError as e:
        fix = f"did you mean {', '.join(e.suggestions)}?" if e.suggestions else None
        return [Problem(e.reason or "unknown typing", value=name, fix=fix, **src)]
    problems = []
    if r.typing.kind != "serology" and r.typing.locus != locus:
        problems.append(Problem(f"allele of locus {r.typing.locus} in the {locus} column", value=name, **src))
    elif r.typing.kind == "serology" and r.typing.locus != locus:
        problems.append(Problem(f"antigen of locus {r.typing.locus} in the {locus} column", value=name, **src))
    for w in r.warnings:
        problems.append(Problem(w, value=name, severity="warning", **src))
    return problems


_PLAIN_NAME = r"[A-Z0-9]+\*[A-Z0-9:]+"  # upper case, a locus and '*', no prefix, list, space or separator
_PLAIN_PAIR = re.compile(rf"\s*({_PLAIN_NAME})\s*\+\s*({_PLAIN_NAME})\s*")


def simple_cell(value: str, locus: str, second: str | None = None) -> LocusTyping | None:
    """The typing of a cell in the two commonest forms, ``X+Y`` (one column) or ``X`` and ``Y`` (two
    columns), both present; None for any other form. Gives exactly what :func:`parse_cell` gives such a
    cell (which has no problem), cheaply: a batch reads millions of them."""
    if second is None:
        m = _PLAIN_PAIR.fullmatch(value)
        if m:  # two names already in normal form (``normalise`` keeps them as they are)
            return LocusTyping(locus, (((m[1],), (m[2],)),), value.strip(), False)
    first = value.strip()
    if second is None:
        if first.count("+") != 1 or "|" in first or "," in first or ";" in first:
            return None
        a, b = first.split("+")
        a, b = a.strip(), b.strip()
        text = first
    else:
        a, b = first, second.strip()
        if any(c in a or c in b for c in "+,;") or "|" in a:
            return None
        text = f"{a}+{b}"
    if not a or not b or a.lower() in BLANK or b.lower() in BLANK:
        return None
    return LocusTyping(locus, ((_slot(a, locus), _slot(b, locus)),), text, False)


def from_gl_text(text: str, *, missing_second: MissingSecond = MISSING_SECOND_DEFAULT,
                 source: dict | None = None) -> tuple[dict[str, LocusTyping], list[Problem]]:
    """A whole HLA typing written as one GL string (``A*01:01+A*02:01^B*08:01+B*44:02``) → per-locus typings.

    Phase given with ``~`` across loci is not used by the unphased readers: the loci are split and a warning
    says so (segregation infers phase from the family)."""
    from haplomatch import glstring as gls
    from haplomatch.errors import InputError

    src = dict(source or {})
    try:
        gl = gls.parse(text, source=src)
        parts = gls.genotypes_by_locus(gl, source=src)
    except InputError as e:
        return {}, list(e.problems)
    out: dict[str, LocusTyping] = {}
    problems: list[Problem] = []
    for key, node in parts.items():
        if "~" in key:
            problems.append(Problem(f"phased haplotypes ({key}) are read unphased", value=text, severity="warning", **src))
            for locus in key.split("~"):
                try:
                    part = _project(node, locus)
                except _Partial:
                    problems.append(Problem(f"{locus} is given in some '|' alternatives and not in others",
                                            value=text, fix=f"give {locus} in every alternative", **src))
                    continue
                t, p = _locus_from_node(part, locus, missing_second, text, src)
                problems += p
                if t:
                    out[locus] = t
            continue
        locus = key.removeprefix("HLA-")
        t, p = _locus_from_node(node, locus, missing_second, text, src)
        problems += p
        if t:
            out[locus] = t
    return out, problems


class _Partial(Exception):
    """A locus in some alternatives of a genotype list and not in others: its typing is not known."""


def _project(node, locus: str):
    """The part of a phased (~) node that belongs to one locus (None: none)."""
    from haplomatch import glstring as gls

    if isinstance(node, gls.Allele):
        return node if node.locus == locus else None
    kept = [x for x in (_project(i, locus) for i in node.items) if x is not None]
    if isinstance(node, gls.GenotypeList) and 0 < len(kept) < len(node.items):
        raise _Partial(locus)
    if isinstance(node, gls.Haplotype) or len(kept) < 2:
        return kept[0] if kept else None
    return type(node)(tuple(kept))


def _locus_from_node(node, locus: str, missing_second: MissingSecond, text: str, src: dict):
    from haplomatch import glstring as gls

    def slot(n) -> Slot:
        if isinstance(n, gls.Allele):
            return (normalise(n.name),)
        return tuple(normalise(a.name) for a in n.items)

    alts = node.items if isinstance(node, gls.GenotypeList) else (node,)
    if len(alts) == 1 and isinstance(alts[0], (gls.Allele, gls.AlleleList)):  # one allele (or list) given
        return parse_cell("/".join(slot(alts[0])), locus, missing_second=missing_second, source=src)
    genos: list[Genotype] = []
    for g in alts:
        if isinstance(g, gls.Genotype) and len(g.items) == 2:
            genos.append((slot(g.items[0]), slot(g.items[1])))
        elif isinstance(g, (gls.Allele, gls.AlleleList)):  # as parse_cell reads a cell with '|'
            return None, [Problem(f"each '|' alternative of {locus} needs two alleles joined by '+'", value=text,
                                  **src)]
        else:
            return None, [Problem(f"cannot read the {locus} part as a genotype of two alleles", value=text, **src)]
    return LocusTyping(locus, tuple(genos), text), []
