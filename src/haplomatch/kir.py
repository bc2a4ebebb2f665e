"""KIR genotypes as laboratories write them → one :class:`KirGenotype` per person.

Four input forms are read, each by a pure function that raises only :class:`InputError` (carrying every
:class:`Problem` found, located by the optional ``source`` dict with ``file``/``row``/``column``):

- one cell of presence/absence (:func:`parse_presence`): ``1/0``, ``+/-``, ``POS/NEG``, ``present/absent``,
  ``yes/no``, ``P/A``, ``true/false`` (any case); blank, ``NT``, ``ND``, ``?``, ``NA`` → not typed;
- one cell of allele-level typing as DKMS exports it (:func:`parse_alleles`): ``/`` separates possible
  alleles of one copy, ``+`` the copies of the gene, ``|`` alternative genotypes, ``NEG`` = absent,
  ``POS`` = present with alleles untyped, ``NEW`` = an allele not yet named. Examples from the DKMS
  CTUtools R package (bosefalk/CTUtools, ``R/kir.R``, ``tests/testthat/``): ``004+003|006+010``,
  ``008+008+008``, ``001|001+002``, ``002B/005A/010B/021A`` (the combined 2DL5 column). Codes have 3, 5
  or 7 digits (IPD-KIR names have no colons) and are checked against the IPD-KIR release;
- a whole typing as one GL string in the ``kir`` namespace (:func:`parse_gl`);
- a list of the genes found present (:func:`parse_gene_list`);
and a row of per-gene columns, each cell in either form (:func:`from_columns`).

Genes. IPD-KIR 2.13.0 names 17 genes (:data:`GENES`). A gene nobody typed is ``"unknown"``, never absent.
Three further *column keys* name what labs report that is not one IPD-KIR gene (:func:`canonical_gene`):

- ``KIR2DL5`` (a ``2DL5`` column): KIR2DL5A or KIR2DL5B, the lab did not say which. ``NEG`` makes both
  absent; ``POS`` says at least one is present and leaves each unknown (``KirGenotype.kir2dl5_any``);
  allele codes decide per gene: a suffix ``A``/``B`` (DKMS ``005A``) or a code that exists in only one of
  the two genes names the gene; a gene is present when every alternative has a copy that can only be
  it, absent when no option can be it, otherwise unknown.
- ``KIR2DS4N`` (``2DS4N``, ``2DS4del``, ``2DS4 null``): the KIR2DS4 alleles with the 22-bp exon-5
  deletion (frameshift → truncated, non-membrane protein; Tissue Antigens 2002,
  doi:10.1034/j.1399-0039.2002.600307.x; Hum Immunol 2007;68:128-34, PMID 17321903), reported
  separately by DKMS (RULES 3.2).
- ``KIR2DS4FL`` (``2DS4FL``, ``2DS4 full``): the full-length (membrane) KIR2DS4 alleles.

A plain ``2DS4`` means "any KIR2DS4" — except when the same typing also reports ``2DS4N`` and no
``2DS4FL``: then, as in DKMS exports, plain ``2DS4`` is the full-length variant (unless its own alleles
include a deletion allele, which shows the lab meant "any"). Which allele carries the deletion is
:data:`KIR2DS4_DELETION_PROTEINS` / :data:`KIR2DS4_FULL_LENGTH_PROTEINS` (checked on the IPD-KIR
sequences; see there).

Allele names in :attr:`GeneCall.alleles` are the codes after ``*`` as written (``"001"``, ``"00101"``,
``"013N"``); in a combined 2DL5 call they carry the gene letter when it is known (``"005A"``).
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from haplomatch.errors import InputError, Problem

__all__ = [
    "GENES", "KIR2DL5_EITHER", "KIR2DS4_NULL", "KIR2DS4_FULL", "COLUMN_KEYS",
    "KIR2DS4_DELETION_PROTEINS", "KIR2DS4_FULL_LENGTH_PROTEINS", "kir2ds4_variant",
    "PRESENT_WORDS", "ABSENT_WORDS", "UNKNOWN_WORDS",
    "GeneCall", "KirGenotype", "KirAlleleList",
    "canonical_gene", "parse_presence", "parse_alleles", "parse_gl", "parse_gene_list", "from_columns",
]

Status = Literal["present", "absent", "unknown"]
Alleles = tuple[tuple[tuple[str, ...], ...], ...]

#: The 17 genes of IPD-KIR 2.13.0 (Allelelist.txt), in the usual order of reports.
GENES: tuple[str, ...] = (
    "KIR2DL1", "KIR2DL2", "KIR2DL3", "KIR2DL4", "KIR2DL5A", "KIR2DL5B", "KIR2DS1", "KIR2DS2", "KIR2DS3",
    "KIR2DS4", "KIR2DS5", "KIR2DP1", "KIR3DL1", "KIR3DL2", "KIR3DL3", "KIR3DS1", "KIR3DP1",
)
#: Column key: KIR2DL5A or KIR2DL5B, not said which.
KIR2DL5_EITHER = "KIR2DL5"
#: Column key: the KIR2DS4 deletion (null, "2DS4N") variant.
KIR2DS4_NULL = "KIR2DS4N"
#: Column key: the full-length KIR2DS4 variant.
KIR2DS4_FULL = "KIR2DS4FL"
COLUMN_KEYS: tuple[str, ...] = GENES + (KIR2DL5_EITHER, KIR2DS4_NULL, KIR2DS4_FULL)

#: KIR2DS4 proteins (first 3 digits) whose alleles carry the 22-bp exon-5 deletion. Source: the IPD-KIR
#: nucleotide sequences, github.com/ANHIG/IPDKIR ``fasta/KIR2DS4_nuc.fasta`` (commit 37eef62, alleles
#: up to *022): these alleles read ``…CTGCAGCTCC|ATCTATCCAGGG…`` where full-length ones read
#: ``…CTGCAGCTCC CGGAGCTCCTATGACATGTACC ATCTATCCAGGG…`` (coding length 893 vs 915 nt), and their
#: proteins end early (``SCSSIYPGKGRPMNV…`` then stop, ``fasta/KIR2DS4_prot.fasta``). *018: the
#: nucleotide sequence has the deletion; an older protein file shows an in-frame 8-residue gap instead.
KIR2DS4_DELETION_PROTEINS: frozenset[str] = frozenset(
    {"003", "004", "006", "007", "008", "009", "010", "012", "013", "018"})
#: KIR2DS4 proteins with the full-length reading frame (same source). *023 and *024 (new in 2.13.0) are in
#: neither set: their sequences were not available to check, so their variant is unknown.
KIR2DS4_FULL_LENGTH_PROTEINS: frozenset[str] = frozenset(
    {"001", "011", "014", "015", "016", "017", "019", "020", "021", "022"})

#: Presence/absence words (compared upper-case, spaces trimmed).
PRESENT_WORDS: frozenset[str] = frozenset({"1", "+", "POS", "POSITIVE", "PRESENT", "YES", "P", "TRUE"})
ABSENT_WORDS: frozenset[str] = frozenset({"0", "-", "NEG", "NEGATIVE", "ABSENT", "NO", "A", "FALSE"})
UNKNOWN_WORDS: frozenset[str] = frozenset({"", "NT", "ND", "?", "NA", "N/A", "NOT TESTED", "UNKNOWN"})
_ACCEPTED = "1/0, +/-, POS/NEG, present/absent, yes/no, P/A, true/false; blank, NT, ND, ? or NA for not typed"

#: Genes that segregate as alleles of one locus; a code typed under the wrong one is a common slip.
_ALLELIC_PARTNER = {"KIR3DL1": "KIR3DS1", "KIR3DS1": "KIR3DL1", "KIR2DL2": "KIR2DL3", "KIR2DL3": "KIR2DL2",
                    "KIR2DL5A": "KIR2DL5B", "KIR2DL5B": "KIR2DL5A"}

_WHERE_KEYS = ("file", "row", "column")
_CODE = re.compile(r"^([0-9]{3}|[0-9]{5}|[0-9]{7})([NQ])?$")
_CODE_2DL5 = re.compile(r"^([0-9]{3}|[0-9]{5}|[0-9]{7})([NQ])?([AB])?$")
_GENE = re.compile(r"^([23]D[LSP][0-9])([AB])?(.*)$")
_NULL_SUFFIXES = {"N", "NULL", "DEL", "DELETED", "DELETION", "Δ"}
_FULL_SUFFIXES = {"FL", "FULL", "FULLLENGTH"}


# ------------------------------------------------------------------------------------------------ values


@dataclass(frozen=True)
class GeneCall:
    """What a typing says about one gene.

    ``gene`` is a name from :func:`canonical_gene`: one of :data:`GENES`, or a column key (``KIR2DL5``,
    ``KIR2DS4N``, ``KIR2DS4FL``) on calls read from such a column. ``alleles`` is empty when only presence
    was typed; else a tuple of genotype alternatives (``|``), each a tuple of copies (``+``), each a tuple
    of possible allele codes (``/``). An alternative with no copies means "absent" in that alternative.
    ``copies`` is the gene copy number when known (0 when absent).
    """

    gene: str
    status: Status
    alleles: Alleles = ()
    copies: int | None = None

    @property
    def present(self) -> bool | None:
        return {"present": True, "absent": False, "unknown": None}[self.status]


@dataclass(frozen=True)
class KirGenotype(Mapping):
    """A person's KIR genotype: gene → :class:`GeneCall` for all 17 genes (untyped genes are unknown).

    ``kir2ds4_full_length`` / ``kir2ds4_null``: whether a full-length / a deletion (2DS4N) KIR2DS4 is
    present (None = not known). ``kir2dl5_any``: whether KIR2DL5A or KIR2DL5B is present; ``kir2dl5``
    keeps the combined 2DL5 call when the typing gave one. Look genes up in any accepted spelling.
    """

    calls: tuple[GeneCall, ...]
    kir2ds4_full_length: bool | None = None
    kir2ds4_null: bool | None = None
    kir2dl5_any: bool | None = None
    kir2dl5: GeneCall | None = None

    @classmethod
    def untyped(cls) -> "KirGenotype":
        return cls(tuple(GeneCall(g, "unknown") for g in GENES))

    def __getitem__(self, gene: str) -> GeneCall:
        key = canonical_gene(gene) if isinstance(gene, str) else None
        if key not in GENES:
            raise KeyError(gene)
        return self.calls[GENES.index(key)]

    def __iter__(self) -> Iterator[str]:
        return iter(GENES)

    def __len__(self) -> int:
        return len(GENES)

    def present(self, gene: str) -> bool | None:
        """True / False / None (not typed). Also answers ``2DS4N``, ``2DS4FL`` and ``2DL5`` (A or B)."""
        key = canonical_gene(gene) if isinstance(gene, str) else None
        if key == KIR2DS4_NULL:
            return self.kir2ds4_null
        if key == KIR2DS4_FULL:
            return self.kir2ds4_full_length
        if key == KIR2DL5_EITHER:
            return self.kir2dl5_any
        return self[gene].present

    def status(self, gene: str) -> Status:
        return self[gene].status

    @property
    def typed(self) -> tuple[str, ...]:
        """Genes whose status is known."""
        return tuple(c.gene for c in self.calls if c.status != "unknown")


# ---------------------------------------------------------------------------------------- gene names


@lru_cache(maxsize=4096)
def canonical_gene(name: str) -> str | None:
    """A gene or column name in any usual spelling → its key in :data:`COLUMN_KEYS`, else None.

    ``KIR2DL1``, ``2DL1``, ``kir2dl1``, ``kir_2DL1``, ``KIR-2DL1`` → ``KIR2DL1``; ``2DL5`` → ``KIR2DL5``
    (A or B, unsaid); ``2DS4N``, ``2DS4del``, ``2DS4 null`` → ``KIR2DS4N``; ``2DS4FL``, ``2DS4 full`` →
    ``KIR2DS4FL``.
    """
    if not isinstance(name, str):
        return None
    s = re.sub(r"[\s_\-.]+", "", name.strip()).upper()
    if s.startswith("KIR"):
        s = s[3:]
    m = _GENE.match(s)
    if not m:
        return None
    base, letter, rest = m.groups()
    if letter:
        gene = f"KIR{base}{letter}"
        return gene if gene in GENES and not rest else None
    if base == "2DL5":
        return KIR2DL5_EITHER if not rest else None
    if base == "2DS4" and rest:
        if rest in _NULL_SUFFIXES:
            return KIR2DS4_NULL
        if rest in _FULL_SUFFIXES:
            return KIR2DS4_FULL
        return None
    gene = f"KIR{base}"
    return gene if gene in GENES and not rest else None


def kir2ds4_variant(code: str) -> Literal["full_length", "deletion"] | None:
    """The KIR2DS4 variant of an allele code (``003``, ``0030101``, ``KIR2DS4*003``), None if not known."""
    code = code.split("*", 1)[-1].strip()
    protein = code[:3]
    if protein in KIR2DS4_DELETION_PROTEINS:
        return "deletion"
    if protein in KIR2DS4_FULL_LENGTH_PROTEINS:
        return "full_length"
    return None


# --------------------------------------------------------------------------------------- allele list


@dataclass(frozen=True)
class KirAlleleList:
    """The codes of each gene in one IPD-KIR release: a code is valid when some allele starts with it."""

    version: str
    prefixes: Mapping[str, frozenset[str]]

    @classmethod
    def from_names(cls, names: Iterable[str], version: str = "") -> "KirAlleleList":
        by_gene: dict[str, set[str]] = {}
        for name in names:
            gene, _, code = name.partition("*")
            m = re.match(r"^([0-9]+)([A-Z]?)$", code)
            if not m:
                continue
            digits, suffix = m.groups()
            out = by_gene.setdefault(gene, set())
            for n in (3, 5, 7):
                if len(digits) >= n:
                    out.add(digits[:n])
                    if suffix:
                        out.add(digits[:n] + suffix)
        return cls(version, {g: frozenset(v) for g, v in by_gene.items()})

    @classmethod
    def from_reference(cls, ref) -> "KirAlleleList":
        return cls.from_names(ref.kir_alleles["allele"].to_list(), str(getattr(ref.release, "ipdkir", "")))

    @property
    def genes(self) -> tuple[str, ...]:
        return tuple(sorted(self.prefixes))

    def valid(self, gene: str, code: str) -> bool:
        return code in self.prefixes.get(gene, ())

    def nearest(self, gene: str, code: str, n: int = 5) -> list[str]:
        """Valid codes of ``gene`` closest to ``code`` (same length; by spelling and by number)."""
        digits = re.sub(r"[^0-9]", "", code)
        pool = self.prefixes.get(gene, frozenset())
        cands = sorted(c for c in pool if c.isdigit() and len(c) == len(digits)) or \
            sorted(c for c in pool if c.isdigit() and len(c) == 3)
        if not cands:
            return []
        picked = difflib.get_close_matches(digits, cands, n=3, cutoff=0.6)
        if digits:
            target = int(digits.ljust(len(cands[0]), "0")[: len(cands[0])])
            picked += sorted(cands, key=lambda c: (abs(int(c) - target), c))[:3]
        out = list(dict.fromkeys(picked))[:n]
        return sorted(out)


_LISTS: dict[int, tuple[object, KirAlleleList]] = {}


def _release_list() -> KirAlleleList:
    from haplomatch.reference import load_reference

    ref = load_reference()
    hit = _LISTS.get(id(ref))
    if hit is None or hit[0] is not ref:
        hit = (ref, KirAlleleList.from_reference(ref))
        _LISTS[id(ref)] = hit
    return hit[1]


# ------------------------------------------------------------------------------------------- helpers


def _where(source: Mapping | None, **override) -> dict:
    out = {k: source[k] for k in _WHERE_KEYS if source and source.get(k) is not None}
    out.update({k: v for k, v in override.items() if v is not None})
    return out


def _cell_text(value) -> str:
    """A cell as text: None/NaN → blank; 1.0 → '1'; strings trimmed."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer():
            return str(int(value))
    return str(value).strip()


def _target_genes(key: str) -> tuple[str, ...]:
    if key == KIR2DL5_EITHER:
        return ("KIR2DL5A", "KIR2DL5B")
    if key in (KIR2DS4_NULL, KIR2DS4_FULL):
        return ("KIR2DS4",)
    return (key,)


def _release_label(rel: KirAlleleList) -> str:
    return f"IPD-KIR {rel.version}" if rel.version else "the IPD-KIR release"


_NEG, _POS = object(), object()


class _Reader:
    """Reads one gene's allele string, collecting problems instead of stopping at the first."""

    def __init__(self, rel: KirAlleleList, problems: list[Problem], where: dict, *, names_required: bool = False):
        self.rel, self.problems, self.where, self.names_required = rel, problems, where, names_required

    def problem(self, message: str, value: str, fix: str | None = None) -> None:
        self.problems.append(Problem(message, value=value, fix=fix, **self.where))

    def option(self, token: str, key: str):
        """One allele option → its code (str), or _NEG/_POS, or None after a problem."""
        tok = token.strip()
        up = tok.upper()
        targets = _target_genes(key)
        letter = ""
        if "*" in tok:
            name, _, code = tok.partition("*")
            named = canonical_gene(name)
            if named is None:
                self.problem(f"{name.strip()!r} is not a KIR gene name", tok, "write e.g. KIR2DL1*001")
                return None
            named_genes = _target_genes(named)
            if not set(named_genes) <= set(targets):
                self.problem(f"a {named} allele in the {key} typing", tok)
                return None
            if key == KIR2DL5_EITHER and named in ("KIR2DL5A", "KIR2DL5B"):
                letter = named[-1]
            code = code.strip().upper()
        else:
            if self.names_required and up not in ("NEG", "POS", "NEW"):
                self.problem("a GL string names each allele with its gene", tok, f"write e.g. {targets[0]}*{tok}")
                return None
            code = up
        if code == "NEG":
            return _NEG
        if code == "POS":
            return _POS
        if code == "NEW":
            return "NEW"
        m = (_CODE_2DL5 if key == KIR2DL5_EITHER else _CODE).match(code)
        if not m:
            self.problem(f"not a KIR allele code in the {key} typing: codes have 3, 5 or 7 digits "
                         "(001, 00101, 0010101), or write NEG, POS or NEW", tok)
            return None
        digits, suffix = m.group(1), m.group(2) or ""
        if key == KIR2DL5_EITHER:
            if m.group(3):
                if letter and letter != m.group(3):
                    self.problem(f"{tok} names two different genes", tok)
                    return None
                letter = m.group(3)
            genes = (f"KIR2DL5{letter}",) if letter else targets
            valid = [g for g in genes if self.rel.valid(g, digits + suffix)]
            if not valid:
                self._unknown_code(genes, digits + suffix, tok)
                return None
            return digits + suffix + (valid[0][-1] if len(valid) == 1 else "")
        gene = targets[0]
        if not self.rel.valid(gene, digits + suffix):
            self._unknown_code((gene,), digits + suffix, tok)
            return None
        if key in (KIR2DS4_NULL, KIR2DS4_FULL):
            variant = kir2ds4_variant(digits)
            if key == KIR2DS4_NULL and variant == "full_length":
                self.problem(f"KIR2DS4*{digits + suffix} is a full-length allele, not a 2DS4N (deletion) one", tok,
                             "put it in the 2DS4 column")
                return None
            if key == KIR2DS4_FULL and variant == "deletion":
                self.problem(f"KIR2DS4*{digits + suffix} carries the 22-bp deletion (2DS4N), it is not full-length",
                             tok, "put it in the 2DS4N column")
                return None
        return digits + suffix

    def _unknown_code(self, genes: tuple[str, ...], code: str, tok: str) -> None:
        near: list[str] = []
        for g in genes:
            sfx = g[-1] if len(genes) > 1 else ""
            near += [c + sfx for c in self.rel.nearest(g, code)]
        others = [g for g in self.rel.genes if g not in genes and self.rel.valid(g, code)]
        # the allelic partner first (3DL1 ↔ 3DS1, 2DL2 ↔ 2DL3, 2DL5A ↔ 2DL5B), then by similar names
        partner = _ALLELIC_PARTNER.get(genes[0])
        others = sorted(others, key=lambda g: (g != partner, -difflib.SequenceMatcher(None, g, genes[0]).ratio()))[:4]
        label = "/".join(f"{g}*{code}" for g in genes)
        msg = f"{label} is not an allele of {_release_label(self.rel)}"
        if near:
            msg += "; nearest valid codes: " + ", ".join(near)
        if others:
            msg += f" ({code} exists for " + ", ".join(others) + ")"
        self.problem(msg, tok, "check the code against the IPD-KIR allele list")

    def call(self, text: str, key: str) -> GeneCall | None:
        """A whole allele string for gene ``key`` → GeneCall, or None if it had problems."""
        s = text.strip()
        up = s.upper()
        if up in UNKNOWN_WORDS:
            return GeneCall(key, "unknown")
        if "^" in s or "~" in s:
            self.problem("one gene's typing cannot hold ^ or ~ (those join genes in a whole GL string)", s)
            return None
        n_before = len(self.problems)
        alternatives: list[tuple[tuple[str, ...], ...]] = []
        saw_pos = False
        for alt in s.split("|"):
            copies: list[tuple[str, ...]] = []
            for copy in alt.split("+"):
                opts: list[str] = []
                parts = copy.split("/")
                for part in parts:
                    if not part.strip():
                        self.problem("an empty allele between the separators / + |", s)
                        continue
                    got = self.option(part, key)
                    if got is _NEG or got is _POS:
                        if len(parts) > 1 or (got is _POS and (len(alt.split("+")) > 1 or "|" in s)):
                            self.problem(f"{part.strip()} must stand alone, not among alleles", s)
                        elif got is _POS:
                            saw_pos = True
                        continue   # a NEG copy: this haplotype lacks the gene
                    if got is not None:
                        opts.append(got)
                if opts:
                    copies.append(tuple(dict.fromkeys(opts)))
            alternatives.append(tuple(copies))
        if len(self.problems) > n_before:
            return None
        if saw_pos:
            return GeneCall(key, "present")
        if all(not a for a in alternatives):
            return GeneCall(key, "absent", copies=0)
        counts = {len(a) for a in alternatives}
        copies_n = counts.pop() if len(counts) == 1 else None
        status: Status = "present" if all(alternatives) else "unknown"
        return GeneCall(key, status, tuple(alternatives), copies_n)


def _presence(text: str, key: str, problems: list[Problem], where: dict) -> GeneCall | None:
    up = text.strip().upper()
    if up in PRESENT_WORDS:
        return GeneCall(key, "present")
    if up in ABSENT_WORDS:
        return GeneCall(key, "absent", copies=0)
    if up in UNKNOWN_WORDS:
        return GeneCall(key, "unknown")
    problems.append(Problem(f"not a presence/absence value for {key}; accepted: {_ACCEPTED}",
                            value=text, **where))
    return None


def _key_or_problem(gene: str, problems: list[Problem], where: dict) -> str | None:
    key = canonical_gene(gene)
    if key is None:
        problems.append(Problem("not a KIR gene name", value=gene if isinstance(gene, str) else repr(gene),
                                fix="use an IPD-KIR name such as KIR2DL1, 2DS4N or 2DL5", **where))
    return key


def _raise(problems: list[Problem]) -> None:
    if problems:
        raise InputError(problems)


# ------------------------------------------------------------------------------------ cell parsers


def parse_presence(value: str, gene: str, source: Mapping | None = None) -> GeneCall:
    """One presence/absence cell for ``gene`` (any spelling of :func:`canonical_gene`) → GeneCall.

    Accepted: 1/0, +/-, POS/NEG, positive/negative, present/absent, yes/no, P/A, true/false (any case);
    blank, NT, ND, ?, NA, N/A → unknown. Absent gives ``copies=0``; present leaves copies unknown.
    """
    problems: list[Problem] = []
    where = _where(source)
    key = _key_or_problem(gene, problems, where)
    call = _presence(_cell_text(value), key, problems, where) if key else None
    _raise(problems)
    return call


def parse_alleles(value: str, gene: str, source: Mapping | None = None, *,
                  release: KirAlleleList | None = None) -> GeneCall:
    """One allele-level cell for ``gene`` as DKMS writes it → GeneCall.

    ``001+002`` two copies; ``001/002+003|004+005`` alternatives of copies of options; ``NEG`` absent;
    ``POS`` present, alleles untyped; ``NEW`` an allele not yet named; full names (``KIR2DL1*001``) too.
    Codes are checked against ``release`` (default: the IPD-KIR list of the loaded reference).
    """
    problems: list[Problem] = []
    where = _where(source)
    key = _key_or_problem(gene, problems, where)
    call = None
    if key:
        call = _Reader(release or _release_list(), problems, where).call(_cell_text(value), key)
    _raise(problems)
    return call


def _parse_cell(value, key: str, rel: KirAlleleList, problems: list[Problem], where: dict) -> GeneCall | None:
    """Presence/absence if the cell is one of those words, else an allele string."""
    text = _cell_text(value)
    up = text.upper()
    if up in PRESENT_WORDS or up in ABSENT_WORDS or up in UNKNOWN_WORDS:
        return _presence(text, key, problems, where)
    return _Reader(rel, problems, where).call(text, key)


# ------------------------------------------------------------------------------------------ assembly


def _tri(call: GeneCall | None) -> bool | None:
    return None if call is None else call.present


def _agree(a: bool | None, b: bool | None) -> bool | None:
    return a if a is not None else b


def _all_or_none(values: list[bool | None]) -> bool | None:
    return values[0] if values and all(v == values[0] for v in values) else None


def _dl5_genes(code: str, rel: KirAlleleList) -> set[str]:
    if code == "NEW":
        return {"KIR2DL5A", "KIR2DL5B"}
    if code[-1] in "AB":
        return {f"KIR2DL5{code[-1]}"}
    return {g for g in ("KIR2DL5A", "KIR2DL5B") if rel.valid(g, code)} or {"KIR2DL5A", "KIR2DL5B"}


def _from_alleles(call: GeneCall, may_be, certainly) -> Status:
    """Status of one gene/variant inside a call's alleles: present if every alternative has a copy whose
    options all certainly are it; absent if no option may be it; else unknown."""
    if all(any(all(certainly(o) for o in copy) for copy in alt) for alt in call.alleles):
        return "present"
    if not any(may_be(o) for alt in call.alleles for copy in alt for o in copy):
        return "absent"
    return "unknown"


def _project_2dl5(comb: GeneCall, gene: str, rel: KirAlleleList) -> tuple[Alleles, int | None]:
    """One gene's share of a combined 2DL5 typing, when every copy names its gene; else nothing."""
    if not comb.alleles:
        return (), None
    alts = []
    for alt in comb.alleles:
        mine = []
        for copy in alt:
            genes = set().union(*(_dl5_genes(o, rel) for o in copy))
            if len(genes) != 1:
                return (), None
            if genes == {gene}:
                mine.append(tuple(o[:-1] if o[-1] in "AB" else o for o in copy))
        alts.append(tuple(mine))
    counts = {len(a) for a in alts}
    return tuple(alts), (counts.pop() if len(counts) == 1 else None)


def _variants(call: GeneCall) -> tuple[bool | None, bool | None]:
    """(full-length present, deletion present) read from a 2DS4 call's alleles or status."""
    if call.status == "absent":
        return False, False
    if not call.alleles:
        return None, None
    v = kir2ds4_variant
    full = _from_alleles(call, lambda o: v(o) != "deletion", lambda o: v(o) == "full_length")
    dele = _from_alleles(call, lambda o: v(o) != "full_length", lambda o: v(o) == "deletion")
    as_bool = {"present": True, "absent": False, "unknown": None}
    return as_bool[full], as_bool[dele]


def _combine(gene: str, parts: list[GeneCall]) -> GeneCall:
    """Copies from separate columns (2DS4 full-length + 2DS4N) → one call for the gene."""
    if any(p.status == "present" for p in parts):
        status: Status = "present"
    elif all(p.status == "absent" for p in parts):
        status = "absent"
    else:
        status = "unknown"
    copies = sum(p.copies for p in parts) if all(p.copies is not None for p in parts) else None
    alleles: Alleles = ()
    if all(p.alleles or p.status == "absent" for p in parts) and any(p.alleles for p in parts):
        with_alleles = [p.alleles for p in parts if p.alleles]
        alleles = tuple(tuple(itertools.chain.from_iterable(combo)) for combo in itertools.product(*with_alleles))
    return GeneCall(gene, status, alleles, copies)


def _assemble(entries: list[tuple[str, GeneCall, dict]], rel: KirAlleleList, problems: list[Problem]) -> KirGenotype:
    by_key: dict[str, tuple[GeneCall, dict]] = {}
    for key, call, where in entries:
        if key in by_key and by_key[key][0] != call:
            problems.append(Problem(f"{key} is given twice with different results", value=None, **where))
            continue
        by_key[key] = (call, where)

    def get(key: str) -> GeneCall | None:
        hit = by_key.get(key)
        return hit[0] if hit else None

    def conflict(msg: str, key: str) -> None:
        where = by_key[key][1] if key in by_key else {}
        problems.append(Problem(msg, **where))

    calls = {g: get(g) or GeneCall(g, "unknown") for g in GENES}

    # KIR2DL5: separate A/B calls win; the combined call fills in and is checked against them.
    comb = get(KIR2DL5_EITHER)
    if comb is not None:
        from_comb: dict[str, Status] = {}
        for g in ("KIR2DL5A", "KIR2DL5B"):
            if comb.status == "absent":
                from_comb[g] = "absent"
            elif comb.alleles:
                from_comb[g] = _from_alleles(comb, lambda o, g=g: g in _dl5_genes(o, rel),
                                             lambda o, g=g: _dl5_genes(o, rel) == {g})
            else:
                from_comb[g] = "unknown"
            own = get(g)
            if own is None:
                alleles, copies = _project_2dl5(comb, g, rel) if from_comb[g] != "absent" else ((), 0)
                calls[g] = GeneCall(g, from_comb[g], alleles, copies)
            elif "unknown" not in (own.status, from_comb[g]) and own.status != from_comb[g]:
                conflict(f"{g} is {own.status} but the 2DL5 typing says {from_comb[g]}", KIR2DL5_EITHER)
        if comb.status == "present" and calls["KIR2DL5A"].status == calls["KIR2DL5B"].status == "absent":
            conflict("2DL5 is present but KIR2DL5A and KIR2DL5B are both absent", KIR2DL5_EITHER)
    a, b = calls["KIR2DL5A"].present, calls["KIR2DL5B"].present
    dl5_any = True if (a or b or _tri(comb)) else (False if (a is False and b is False) else None)

    # KIR2DS4: plain, full-length and null calls.
    plain, full, null = get("KIR2DS4"), get(KIR2DS4_FULL), get(KIR2DS4_NULL)
    if plain is not None and null is not None and full is None:
        # DKMS reports 2DS4 (full-length) and 2DS4N separately; a plain column holding a deletion allele
        # shows the other convention (plain = any KIR2DS4).
        if not any(kir2ds4_variant(o) == "deletion" for alt in plain.alleles for c in alt for o in c):
            full, plain = GeneCall(KIR2DS4_FULL, plain.status, plain.alleles, plain.copies), None
            by_key[KIR2DS4_FULL] = (full, by_key["KIR2DS4"][1])
    fl, nl = _tri(full), _tri(null)
    if plain is not None:
        p_fl, p_nl = _variants(plain)
        for mine, theirs, label, key in ((fl, p_fl, "full-length", KIR2DS4_FULL), (nl, p_nl, "2DS4N", KIR2DS4_NULL)):
            if mine is not None and theirs is not None and mine != theirs:
                conflict(f"the {label} KIR2DS4 call contradicts the 2DS4 typing", key)
        fl, nl = _agree(fl, p_fl), _agree(nl, p_nl)
        if plain.status == "present" and fl is False and nl is False:
            conflict("KIR2DS4 is present but both its variants are absent", "KIR2DS4")
    if plain is not None and plain.status != "unknown":
        gene_call = GeneCall("KIR2DS4", plain.status, plain.alleles, plain.copies)
    elif full is not None or null is not None:
        gene_call = _combine("KIR2DS4", [c for c in (full, null) if c is not None])
        if gene_call.status == "unknown" and (fl is False and nl is False):
            gene_call = GeneCall("KIR2DS4", "absent", copies=0)
    else:
        gene_call = calls["KIR2DS4"]
    if gene_call.status == "absent":
        fl, nl = _agree(fl, False), _agree(nl, False)
    calls["KIR2DS4"] = gene_call

    return KirGenotype(tuple(calls[g] for g in GENES), kir2ds4_full_length=fl, kir2ds4_null=nl,
                       kir2dl5_any=dl5_any, kir2dl5=comb)


# ------------------------------------------------------------------------------------ whole typings


def from_columns(values: Mapping[str, str], source: Mapping | None = None, *,
                 release: KirAlleleList | None = None) -> KirGenotype:
    """A row's KIR columns (column name → cell) → KirGenotype.

    Columns are named by gene in any spelling of :func:`canonical_gene`; each cell is presence/absence
    when it is one of those words, else an allele string. Genes without a column are unknown. All problems
    of the row are raised together, each located at its column.
    """
    problems: list[Problem] = []
    rel = release or _release_list()
    entries: list[tuple[str, GeneCall, dict]] = []
    for column, cell in values.items():
        where = _where(source, column=str(column))
        key = canonical_gene(column) if isinstance(column, str) else None
        if key is None:
            problems.append(Problem("column name is not a KIR gene", value=str(column),
                                    fix="name KIR columns by gene, e.g. KIR2DL1, 2DS4N, 2DL5", **where))
            continue
        call = _parse_cell(cell, key, rel, problems, where)
        if call is not None:
            entries.append((key, call, where))
    genotype = _assemble(entries, rel, problems)
    _raise(problems)
    return genotype


def parse_gl(text: str, source: Mapping | None = None, *, release: KirAlleleList | None = None) -> KirGenotype:
    """A whole KIR typing as one GL string → KirGenotype. Genes it does not mention are unknown.

    ``KIR2DL1*001+KIR2DL1*002^KIR3DL1*005+KIR3DL1*005^KIR2DS4*003``, optionally prefixed
    ``kir#2.13.0#`` (GL String Code). ``^`` separates genes, ``|`` genotype alternatives, ``+`` copies,
    ``/`` possible alleles; ``KIR3DL1*NEG`` = absent, ``KIR3DL1*POS`` = present. A block may mix only
    KIR2DL5A and KIR2DL5B (read as a 2DL5 typing). Phased haplotypes (``~``) and GL 1.1 ``?`` are refused.
    """
    problems: list[Problem] = []
    where = _where(source)
    rel = release or _release_list()
    s = _cell_text(text)
    m = re.match(r"^([^#]*)#([^#]*)#(.*)$", s, re.S)
    if m:
        if m.group(1).strip().lower() != "kir":
            problems.append(Problem(f"GL String Code namespace {m.group(1)!r} is not 'kir'", value=s, **where))
        s = m.group(3).strip()
    entries: list[tuple[str, GeneCall, dict]] = []
    if not s:
        problems.append(Problem("empty KIR GL string", value=text, **where))
    elif "#" in s or "~" in s or "?" in s:
        problems.append(Problem("not a KIR GL string this reader takes: # only in a kir#version# prefix; "
                                "phased haplotypes (~) and ? are not supported", value=text, **where))
    else:
        seen: set[str] = set()
        for block in s.split("^"):
            key = _gl_block_gene(block, problems, where)
            if key is None:
                continue
            genes = set(_target_genes(key))
            if seen & genes:
                problems.append(Problem(f"{key} appears in more than one ^ block", value=block, **where))
                continue
            seen |= genes
            call = _Reader(rel, problems, where, names_required=True).call(block, key)
            if call is not None:
                entries.append((key, call, where))
    genotype = _assemble(entries, rel, problems)
    _raise(problems)
    return genotype


def _gl_block_gene(block: str, problems: list[Problem], where: dict) -> str | None:
    """The gene a ``^`` block is about, from its allele names."""
    if not block.strip():
        problems.append(Problem("an empty gene between ^ separators", value=block, **where))
        return None
    names = set()
    for tok in re.split(r"[|+/]", block):
        tok = tok.strip()
        if not tok:
            continue
        if "*" not in tok:
            problems.append(Problem("a GL string names each allele with its gene, e.g. KIR2DL1*001",
                                    value=tok, **where))
            return None
        names.add(tok.partition("*")[0])
    keys = {canonical_gene(n) for n in names}
    if None in keys or not keys:
        bad = sorted(n for n in names if canonical_gene(n) is None)
        problems.append(Problem("not a KIR gene name" + (f": {', '.join(bad)}" if bad else ""), value=block, **where))
        return None
    if keys & {KIR2DS4_NULL, KIR2DS4_FULL}:
        problems.append(Problem("2DS4N/2DS4FL are report columns, not GL gene names; write KIR2DS4*<code>",
                                value=block, **where))
        return None
    if len(keys) == 1:
        return keys.pop()
    if keys <= {"KIR2DL5A", "KIR2DL5B", KIR2DL5_EITHER}:
        return KIR2DL5_EITHER
    problems.append(Problem("one ^ block holds one gene; found " + ", ".join(sorted(keys)), value=block, **where))
    return None


def parse_gene_list(text: str, source: Mapping | None = None, *,
                    typed_genes: Iterable[str] | None = None) -> KirGenotype:
    """A list of the genes found present (``KIR2DL1, KIR2DL3, 2DS4N, 3DL1``; commas, semicolons or spaces).

    Listed genes are present. A gene not listed is **absent only if it was typed**: ``typed_genes`` names
    the genes the lab tested (any spelling); by default all 17, i.e. the list is taken as a complete
    gene-content report, which is what a lab's list usually is. Genes outside ``typed_genes`` and not
    listed stay unknown. ``2DL5`` in the list means A or B (both unknown, at least one present).

    KIR2DS4: when the list (or ``typed_genes``) uses ``2DS4N``/``2DS4FL``, the lab separates the variants:
    plain ``2DS4`` is the full-length one (DKMS convention) and an unlisted variant is absent. Otherwise a
    listed ``2DS4`` says only that some KIR2DS4 is present. So the most common German genotype (RULES 3.2)
    ``2DL1 2DL3 2DL4 2DP1 2DS4N 3DL1 3DL2 3DL3 3DP1`` has KIR2DS4 present as the null variant only.
    """
    problems: list[Problem] = []
    where = _where(source)
    listed: set[str] = set()
    for tok in re.split(r"[,;\s]+", _cell_text(text)):
        if not tok:
            continue
        key = canonical_gene(tok)
        if key is None:
            problems.append(Problem("not a KIR gene name", value=tok,
                                    fix="list genes like KIR2DL1, 2DS4N, 3DL1", **where))
        else:
            listed.add(key)
    typed: set[str] = set()
    given_typed = list(GENES) if typed_genes is None else list(typed_genes)
    typed_keys: set[str] = set()
    for name in given_typed:
        key = canonical_gene(name)
        if key is None:
            problems.append(Problem("not a KIR gene name in typed_genes", value=str(name), **where))
            continue
        typed_keys.add(key)
        typed |= set(_target_genes(key))
    _raise(problems)

    entries: list[tuple[str, GeneCall, dict]] = []
    for gene in GENES:
        if gene in ("KIR2DS4", "KIR2DL5A", "KIR2DL5B"):
            continue
        if gene in listed:
            entries.append((gene, GeneCall(gene, "present"), where))
        elif gene in typed:
            entries.append((gene, GeneCall(gene, "absent", copies=0), where))

    # KIR2DL5: a listed combined 2DL5 leaves A and B to what is listed separately.
    if KIR2DL5_EITHER in listed:
        entries.append((KIR2DL5_EITHER, GeneCall(KIR2DL5_EITHER, "present"), where))
    for gene in ("KIR2DL5A", "KIR2DL5B"):
        if gene in listed:
            entries.append((gene, GeneCall(gene, "present"), where))
        elif gene in typed and KIR2DL5_EITHER not in listed:
            entries.append((gene, GeneCall(gene, "absent", copies=0), where))

    # KIR2DS4 and its variants.
    separates = bool((listed | typed_keys) & {KIR2DS4_NULL, KIR2DS4_FULL})
    plain_listed = "KIR2DS4" in listed
    if separates:
        full_present = KIR2DS4_FULL in listed or plain_listed
        null_present = KIR2DS4_NULL in listed
        if "KIR2DS4" in typed:
            entries.append((KIR2DS4_FULL, GeneCall(KIR2DS4_FULL, "present" if full_present else "absent",
                                                   copies=None if full_present else 0), where))
            entries.append((KIR2DS4_NULL, GeneCall(KIR2DS4_NULL, "present" if null_present else "absent",
                                                   copies=None if null_present else 0), where))
        else:
            if full_present:
                entries.append((KIR2DS4_FULL, GeneCall(KIR2DS4_FULL, "present"), where))
            if null_present:
                entries.append((KIR2DS4_NULL, GeneCall(KIR2DS4_NULL, "present"), where))
    elif plain_listed:
        entries.append(("KIR2DS4", GeneCall("KIR2DS4", "present"), where))
    elif "KIR2DS4" in typed:
        entries.append(("KIR2DS4", GeneCall("KIR2DS4", "absent", copies=0), where))

    genotype = _assemble(entries, _EMPTY_LIST, problems)
    _raise(problems)
    return genotype


_EMPTY_LIST = KirAlleleList("", {})
