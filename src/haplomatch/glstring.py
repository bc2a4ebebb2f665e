"""GL String and GL String Code: read and write typings as an immutable tree (syntax only).

Grammar: Milius RP et al., Tissue Antigens 2013;82:106-12 (GL String 1.0), extended by Mack SJ et al.,
HLA 2023;102:206-12 (GL String 1.1, the ``?`` delimiter). Code prefix: https://glstring.org/syntax-1.1.html
(``namespace#version#glstring``, namespaces ``hla`` and ``kir``).

Delimiters, loosest first (the split order of :data:`OPERATORS`)::

    ?  possible gene locations (paralog ambiguity)   -> ParalogAmbiguity   GL String 1.1, precedence 0
    ^  multilocus unphased genotype                 -> MultiLocus
    |  genotype list (genotype ambiguity)           -> GenotypeList
    +  genotype (gene copies)                        -> Genotype
    ~  phased alleles (haplotype)                    -> Haplotype
    /  allele list (allele ambiguity)                -> AlleleList

``?`` binds loosest of all, *below* ``^``: the GL String 1.1 precedence table numbers it 0 and ``^`` 1
(also how the immunogenetr R package splits strings). There are no parentheses in GL String, so a
tree is well formed only when every child is of a strictly tighter kind than its parent and every
composite node has at least two children: that is what makes ``parse(write(x)) == x`` hold.

This module checks syntax only. Whether a name exists in a release is another module's job.
Character positions in messages are 1-based and count from the start of the text as given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from haplomatch.errors import InputError, Problem

__all__ = [
    "Allele", "AlleleList", "Haplotype", "Genotype", "GenotypeList", "MultiLocus", "ParalogAmbiguity",
    "Node", "GLString", "OPERATORS", "NAMESPACES", "parse", "write", "loci", "alleles",
    "genotypes_by_locus", "allele_name_problems",
]

NAMESPACES = ("hla", "kir")
_PRESENCE_CALLS = ("NEG", "POS")  # DKMS KIR presence/absence typing: only meaningful for KIR genes


# ----------------------------------------------------------------------------------------------- tree


@dataclass(frozen=True)
class Allele:
    """One allele name exactly as written (``HLA-`` kept or not), so writing gives back the input."""

    name: str

    def __post_init__(self) -> None:
        # A node that could not be written and read back would break the round trip silently.
        if not isinstance(self.name, str):
            raise TypeError(f"Allele name must be a str, got {type(self.name).__name__}")
        bad = allele_name_problems(self.name)
        if bad:
            raise ValueError(f"invalid allele name {self.name!r}: {bad[0]}")

    @property
    def locus(self) -> str:
        """Gene without ``HLA-`` ("A", "DRB1", "KIR2DL1"): the key the rest of the engine groups by."""
        return _locus_of(self.name)


@dataclass(frozen=True)
class _Composite:
    """Shared checks: items is a tuple of >= 2 strictly tighter nodes (else the text is ambiguous)."""

    items: tuple

    def __post_init__(self) -> None:
        items = tuple(self.items) if isinstance(self.items, (list, tuple)) else self.items
        if not isinstance(items, tuple):
            raise TypeError(f"{type(self).__name__}.items must be a tuple of nodes")
        object.__setattr__(self, "items", items)
        if len(items) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two items, got {len(items)}")
        mine = _LEVEL[type(self)]
        for child in items:
            if type(child) not in _LEVEL or _LEVEL[type(child)] <= mine:
                raise TypeError(
                    f"{type(self).__name__} cannot hold {type(child).__name__}: GL String has no "
                    "parentheses, so a child must bind tighter than its parent"
                )


@dataclass(frozen=True)
class AlleleList(_Composite):
    """``/``: the typing cannot tell these alleles apart."""


@dataclass(frozen=True)
class Haplotype(_Composite):
    """``~``: alleles known to be in phase (on one chromosome)."""


@dataclass(frozen=True)
class Genotype(_Composite):
    """``+``: the gene copies found (usually the two chromosomes)."""


@dataclass(frozen=True)
class GenotypeList(_Composite):
    """``|``: the typing cannot tell these genotypes apart (phase unknown)."""


@dataclass(frozen=True)
class MultiLocus(_Composite):
    """``^``: unphased genotypes of different loci."""


@dataclass(frozen=True)
class ParalogAmbiguity(_Composite):
    """``?`` (GL String 1.1): the sequences cannot be assigned to one of several paralogous genes."""


Node = Union[Allele, AlleleList, Haplotype, Genotype, GenotypeList, MultiLocus, ParalogAmbiguity]

#: Delimiters and their node types, loosest first: the parser splits on them in this order.
OPERATORS: tuple[tuple[str, type], ...] = (
    ("?", ParalogAmbiguity),
    ("^", MultiLocus),
    ("|", GenotypeList),
    ("+", Genotype),
    ("~", Haplotype),
    ("/", AlleleList),
)
_LEVEL: dict[type, int] = {cls: i for i, (_, cls) in enumerate(OPERATORS)} | {Allele: len(OPERATORS)}
_SYMBOL: dict[type, str] = {cls: op for op, cls in OPERATORS}
_OPERATOR_CHARS = frozenset(op for op, _ in OPERATORS)


@dataclass(frozen=True)
class GLString:
    """A parsed GL string; namespace and version are set only when it came with a GL String Code prefix."""

    namespace: str | None
    version: str | None
    root: Node

    def __post_init__(self) -> None:
        if (self.namespace is None) != (self.version is None):
            raise ValueError("namespace and version are given together or not at all")
        if self.namespace is not None and self.namespace not in NAMESPACES:
            raise ValueError(f"unknown namespace {self.namespace!r}; expected one of {NAMESPACES}")
        if type(self.root) not in _LEVEL:
            raise TypeError(f"root must be a GL String node, got {type(self.root).__name__}")

    def __str__(self) -> str:
        return write(self)


# ------------------------------------------------------------------------------------ allele names

_LOCUS_RE = re.compile(r"[A-Z][A-Z0-9]*\Z")
_FIELD_RE = re.compile(r"[A-Z0-9]+\Z")
_VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]*\Z")


def _locus_of(name: str) -> str:
    bare = name[4:] if name.startswith("HLA-") else name
    return bare.split("*", 1)[0]


def allele_name_problems(name: str) -> list[str]:
    """What is wrong with an allele name's syntax (empty list if nothing), in words a person can act on.

    Accepted: ``[HLA-]GENE*FIELD[:FIELD...]`` with upper-case letters and digits, which covers full and
    low resolution names, expression suffixes, XX and NMDP codes, WMDA codes and KIR names; ``NEG`` /
    ``POS`` presence calls only for genes starting with ``KIR``.
    """
    if not name:
        return ["empty allele name"]
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "*:-"))})
    if bad:
        return ["illegal character(s) " + ", ".join(repr(c) for c in bad)]
    stars = name.count("*")
    if stars == 0:  # first: a word such as 'garbage' is not an allele name in upper case either
        return ["has no '*' between gene and allele (expected e.g. HLA-A*01:01 or KIR2DL1*001)"]
    if any(c.islower() for c in name):
        return ["has lower-case letters; HLA and KIR names are upper case"]
    if stars > 1:
        return ["has more than one '*'"]
    prefixed = name.startswith("HLA-")
    bare = name[4:] if prefixed else name
    if "-" in bare:
        return ["'-' is allowed only in the 'HLA-' prefix"]
    locus, allele = bare.split("*", 1)
    if not locus:
        return ["has no gene name before '*'"]
    if not _LOCUS_RE.match(locus):
        return [f"gene name {locus!r} must be letters and digits starting with a letter"]
    if prefixed and locus.startswith("KIR"):
        return ["KIR genes take no 'HLA-' prefix"]
    if not allele:
        return ["has nothing after '*'"]
    if not all(_FIELD_RE.match(f) for f in allele.split(":")):
        return ["has an empty field (':' at the start, at the end or doubled)"]
    if allele in _PRESENCE_CALLS and not locus.startswith("KIR"):
        return [f"presence call {allele!r} is allowed only for KIR genes"]
    return []


# ------------------------------------------------------------------------------------------- parse


def parse(text: str, *, source: dict | None = None) -> GLString:
    """Read a GL string or GL String Code; raise :class:`InputError` listing every problem found.

    Whitespace around operators and ``#`` is tolerated and dropped; anywhere else it is an error (it
    usually hides a missing operator). ``source`` gives the Problem location fields (file, row, column).
    """
    where = {k: v for k, v in (source or {}).items() if k in ("file", "row", "column")}
    if not isinstance(text, str):
        raise InputError([Problem(f"a GL string must be text, got {type(text).__name__}", **where)])
    problems: list[Problem] = []

    def report(message: str, fix: str | None = None) -> None:
        problems.append(Problem(message, value=text, fix=fix, **where))

    namespace, version, body, offset = _split_code(text, report)
    tokens = _tokenize(body, offset, namespace, report)
    if not problems and not tokens:
        report("empty GL string" if offset == 0 else
               f"empty GL string after the code prefix: nothing follows the '#' at character {offset}")
    if problems:
        raise InputError(problems)
    return GLString(namespace, version, _build([t for t, _ in tokens], 0))


def _split_code(text: str, report) -> tuple[str | None, str | None, str, int]:
    """Separate an optional ``namespace#version#`` prefix; return (namespace, version, body, body offset)."""
    hashes = [i for i, c in enumerate(text) if c == "#"]
    if not hashes:
        return None, None, text, 0
    if len(hashes) == 1:
        report(f"GL String Code is incomplete: needs three '#'-separated parts (namespace#version#glstring) "
               f"but the '#' at character {hashes[0] + 1} is the only one",
               fix="write e.g. hla#3.58.0#HLA-A*01:01+HLA-A*02:01")
        return None, None, "", len(text)
    if len(hashes) > 2:
        report(f"GL String Code has more than three '#'-separated parts: unexpected '#' at character "
               f"{hashes[2] + 1}", fix="use the form namespace#version#glstring")
        return None, None, "", len(text)
    a, b = hashes
    ns_raw, ver_raw = text[:a], text[a + 1:b]
    ns, ver = ns_raw.strip(), ver_raw.strip()
    ns_at = len(ns_raw) - len(ns_raw.lstrip()) + 1
    ver_at = a + 2 + len(ver_raw) - len(ver_raw.lstrip())
    ok = True
    if not ns:
        report(f"GL String Code has an empty namespace before the '#' at character {a + 1}",
               fix="start with hla# or kir#")
        ok = False
    elif ns not in NAMESPACES:
        report(f"unknown GL String Code namespace {ns!r} at character {ns_at}; expected 'hla' or 'kir'",
               fix="namespaces are lower case" if ns.lower() in NAMESPACES else None)
        ok = False
    if not ver:
        report(f"GL String Code has an empty version between the '#' at characters {a + 1} and {b + 1}",
               fix="give the IPD-IMGT/HLA or IPD-KIR release, e.g. 3.58.0")
        ok = False
    elif not _VERSION_RE.match(ver):
        illegal = [i for i, c in enumerate(ver) if not (c.isascii() and (c.isalnum() or c in "._-"))]
        bad = illegal[0] if illegal else 0  # no illegal character: it starts with '.', '_' or '-'
        what = f"has illegal character {ver[bad]!r}" if illegal else f"starts with {ver[0]!r}"
        report(f"GL String Code version {ver!r} {what} at character {ver_at + bad}; "
               "expected a release like 3.58.0 or a date like 2023-06-07")
        ok = False
    return (ns, ver, text[b + 1:], b + 1) if ok else (None, None, text[b + 1:], b + 1)


def _tokenize(body: str, offset: int, namespace: str | None, report) -> list[tuple[str, int]]:
    """Flat token list [name, op, name, ...] with 0-based positions; reports bad characters and operands."""
    tokens: list[tuple[str, int]] = []  # (text, position in the full text)
    illegal: set[int] = set()  # indexes of name tokens already reported: skip the name checks
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c.isspace():
            i += 1
        elif c in _OPERATOR_CHARS:
            tokens.append((c, offset + i))
            i += 1
        else:
            start = i
            while i < n and not body[i].isspace() and body[i] not in _OPERATOR_CHARS:
                ch = body[i]
                if not (ch.isascii() and (ch.isalnum() or ch in "*:-")):
                    report(f"illegal character {ch!r} at character {offset + i + 1}; allele names use "
                           "letters, digits, '*', ':' and '-', operators are / ~ + | ^ ?")
                    illegal.add(len(tokens))
                i += 1
            if tokens and tokens[-1][0] not in _OPERATOR_CHARS:
                prev = tokens[-1][0]
                report(f"missing operator between {prev!r} and {body[start:i]!r} at character "
                       f"{offset + start + 1}; whitespace is allowed only around operators")
                illegal.add(len(tokens))  # one message per mistake: do not also judge the fragment
            tokens.append((body[start:i], offset + start))
    for k, (tok, at) in enumerate(tokens):
        if tok in _OPERATOR_CHARS:
            if k == 0:
                report(f"GL string starts with operator {tok!r} at character {at + 1}; "
                       "an allele name must come before it")
            elif tokens[k - 1][0] in _OPERATOR_CHARS:
                prev, pat = tokens[k - 1]
                report(f"empty operand between {prev!r} at character {pat + 1} and {tok!r} at character "
                       f"{at + 1}; an allele name must come between them")
            if k == len(tokens) - 1:
                report(f"GL string ends with operator {tok!r} at character {at + 1}; "
                       "an allele name must follow it")
        elif k not in illegal:
            for msg in allele_name_problems(tok):
                fix = f"write {tok.upper()!r}" if "lower-case" in msg else None
                report(f"allele name {tok!r} at character {at + 1}: {msg}", fix=fix)
            if namespace == "kir" and (tok.startswith("HLA-") or not _locus_of(tok).startswith("KIR")):
                report(f"allele name {tok!r} at character {at + 1} is not a KIR gene, but the GL String "
                       "Code namespace is 'kir'")
            elif namespace == "hla" and _locus_of(tok).startswith("KIR"):
                report(f"allele name {tok!r} at character {at + 1} is a KIR gene, but the GL String Code "
                       "namespace is 'hla'", fix="use the kir# namespace for KIR typings")
    return tokens


def _build(tokens: list[str], level: int) -> Node:
    """Split a validated flat token list on the loosest operator left; no parentheses, so that is all."""
    if level == len(OPERATORS):
        return Allele(tokens[0])
    op, cls = OPERATORS[level]
    parts: list[list[str]] = [[]]
    for tok in tokens:
        if tok == op:
            parts.append([])
        else:
            parts[-1].append(tok)
    if len(parts) == 1:
        return _build(tokens, level + 1)
    return cls(tuple(_build(p, level + 1) for p in parts))


# ------------------------------------------------------------------------------------------- write


def write(gl: GLString | Node, *, prefix: bool = True) -> str:
    """Canonical text: no spaces, names as they were, the code prefix only if known and wanted."""
    if isinstance(gl, GLString):
        body = _write(gl.root)
        if prefix and gl.namespace is not None and gl.version is not None:
            return f"{gl.namespace}#{gl.version}#{body}"
        return body
    return _write(gl)


def _write(node: Node) -> str:
    if isinstance(node, Allele):
        return node.name
    return _SYMBOL[type(node)].join(_write(child) for child in node.items)


# ----------------------------------------------------------------------------------------- helpers


def _root(gl: GLString | Node) -> Node:
    return gl.root if isinstance(gl, GLString) else gl


def _walk(node: Node):
    if isinstance(node, Allele):
        yield node
    else:
        for child in node.items:
            yield from _walk(child)


def alleles(gl: GLString | Node) -> tuple[str, ...]:
    """Every allele name in reading order, repeats kept (a homozygous genotype names one allele twice)."""
    return tuple(a.name for a in _walk(_root(gl)))


def loci(gl: GLString | Node) -> tuple[str, ...]:
    """Distinct genes named, in order of first appearance, without ``HLA-`` ("A", "KIR2DL1")."""
    return tuple(dict.fromkeys(a.locus for a in _walk(_root(gl))))


def genotypes_by_locus(gl: GLString | Node, *, source: dict | None = None) -> dict[str, Node]:
    """Split a ``^`` multilocus string into its per-locus parts, keyed by locus.

    A part that spans several loci (phased haplotypes, ``A*01~B*08+A*02~B*44``) is keyed by its loci
    joined with ``~`` ("A~B"). A locus in two ``^`` parts is an error: which part would be its typing?
    A top-level ``?`` is an error too: which gene the alleles belong to is exactly what it leaves open.
    """
    root = _root(gl)
    where = {k: v for k, v in (source or {}).items() if k in ("file", "row", "column")}
    text = write(gl)
    if isinstance(root, ParalogAmbiguity):
        raise InputError([Problem(
            "cannot split by locus: '?' leaves open which paralogous gene the alleles belong to",
            value=text, fix="resolve the gene assignment first", **where)])
    parts = root.items if isinstance(root, MultiLocus) else (root,)
    out: dict[str, Node] = {}
    seen: dict[str, int] = {}
    problems: list[Problem] = []
    for k, part in enumerate(parts, start=1):
        part_loci = loci(part)
        for locus in part_loci:
            if locus in seen:
                problems.append(Problem(
                    f"locus {locus} appears in '^' parts {seen[locus]} and {k}; a multilocus GL string "
                    "gives each locus once", value=text, fix=f"merge the {locus} typings into one part",
                    **where))
            else:
                seen[locus] = k
        out["~".join(part_loci)] = part
    if problems:
        raise InputError(problems)
    return out
