"""HLA typing names → the set of release alleles each can be.

A typing is parsed into a :class:`Typing` (its kind and normalised key) by pure string rules, then
expanded with joins against the per-allele facts table (``Reference.alleles``). Distinct strings are
parsed once; expansion is a polars join, so a million typings resolve in one vectorised pass.

Accepted forms (WHO nomenclature, Marsh SGE et al. Tissue Antigens 2010;75:291-455; WMDA files):
- WHO v3 names with 1-4 fields, optional ``HLA-`` prefix, optional suffix N L S C A Q: ``A*02:01``;
- v2 names without colons: ``A*0201``, ``B*4402``, ``DPB1*0401`` (checked against the release);
- ``XX`` codes: ``A*02:XX`` = any allele of group 02;
- G and P group names: ``A*01:01:01G``, ``A*01:01P``;
- serology: ``A2``, ``B51``, ``Cw7``, ``DR15``, ``DQ6``; broad antigens (``B5``) expand to their splits
  and associated antigens (rel_ser_ser.txt);
- a bare field string under a known locus (``02:01`` with locus ``A``).

The expression suffix is part of the name at every resolution: ``A*24:02`` does not include
``A*24:02:01:02L`` (whose two-field name is ``A*24:02L``). A name that exists only with a suffix the user
omitted resolves, with a warning. Deleted names renamed by IPD-IMGT/HLA resolve to the new name, with a
warning; other unknown names raise :class:`UnknownAlleleError` with the nearest valid names.
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Iterable, Literal

import polars as pl

from haplomatch.errors import UnknownAlleleError

Kind = Literal["allele", "xx", "g_group", "p_group", "serology", "mac"]

#: Serological locus prefixes as written in typings → the gene whose alleles carry them.
SEROLOGY_LOCI: dict[str, str] = {"A": "A", "B": "B", "CW": "C", "C": "C", "DR": "DRB1", "DQ": "DQB1"}
#: DR51, DR52, DR53 are carried by DRB5, DRB3 and DRB4 (rel_dna_ser.txt), not by DRB1.
DR_BROAD_LOCI: dict[int, str] = {51: "DRB5", 52: "DRB3", 53: "DRB4"}
_SER_DISPLAY = {"A": "A", "B": "B", "CW": "Cw", "C": "Cw", "DR": "DR", "DQ": "DQ"}

_LOCUS = r"[A-Z][A-Z0-9]*"
_V3 = re.compile(rf"^({_LOCUS})\*(\d{{1,4}}(?::\d{{1,4}}){{0,3}})([NLSCAQ])?$")
_XX = re.compile(rf"^({_LOCUS})\*(\d{{1,4}}):XX$")
_G = re.compile(rf"^({_LOCUS})\*(\d{{1,4}}(?::\d{{1,4}}){{1,3}})G$")
_P = re.compile(rf"^({_LOCUS})\*(\d{{1,4}}:\d{{1,4}})P$")
_MAC = re.compile(rf"^({_LOCUS})\*(\d{{1,4}}):([A-Z]{{2,5}})$")
_V2 = re.compile(rf"^({_LOCUS})\*(\d{{4,9}})([NLSCAQ])?$")
_SER = re.compile(r"^(CW|DR|DQ|A|B|C)(\d{1,4})$")
_PLAIN = re.compile(rf"^{_LOCUS}\*\d{{1,4}}(?::\d{{1,4}}){{1,3}}$")
_BARE = re.compile(r"^(\d{1,4}(?::\d{1,4}){0,3}|\d{1,4}:XX)([NLSCAQG]|P)?$")


@dataclass(frozen=True)
class Typing:
    """One typing, parsed: ``key`` is the normalised name that the expansion joins on."""

    text: str
    locus: str
    kind: Kind
    key: str
    nfields: int = 0
    suffix: str = ""
    warnings: tuple[str, ...] = field(default=(), compare=False)


def normalise(text: str, locus: str | None = None) -> str:
    """Trim, drop an ``HLA-`` prefix, upper-case; a bare field string gets ``locus*`` in front."""
    t = text.strip().replace(" ", "")
    if t[:4].upper() == "HLA-":
        t = t[4:]
    t = t.upper()
    if locus and "*" not in t and _BARE.match(t):
        loc = locus.strip().upper()
        if loc.startswith("HLA-"):
            loc = loc[4:]
        t = f"{loc}*{t}"
    return t


def parse(text: str, locus: str | None = None) -> Typing:
    """Classify one typing string (no release lookup yet). Raises UnknownAlleleError if it fits no form."""
    t = normalise(text, locus)
    if m := _XX.match(t):
        return Typing(text, m[1], "xx", f"{m[1]}*{m[2]}", 1)
    if m := _MAC.match(t):
        return Typing(text, m[1], "mac", t)
    if m := _P.match(t):
        return Typing(text, m[1], "p_group", t)
    if m := _G.match(t):
        return Typing(text, m[1], "g_group", t)
    if m := _V2.match(t):  # pre-2010 name without colons: fields read against the release
        return Typing(text, m[1], "allele", t, 0, m[3] or "", ("v2",))
    if m := _V3.match(t):
        fields = m[2].split(":")
        return Typing(text, m[1], "allele", f"{m[1]}*{m[2]}", len(fields), m[3] or "")
    if m := _SER.match(t):
        loc = SEROLOGY_LOCI[m[1]]
        if m[1] == "DR" and int(m[2]) in DR_BROAD_LOCI:
            loc = DR_BROAD_LOCI[int(m[2])]
        return Typing(text, loc, "serology", f"{_SER_DISPLAY[m[1]]}{int(m[2])}")
    raise UnknownAlleleError(text, reason="not an HLA allele name, XX code, G/P group or serological antigen")


def _v2_candidates(locus: str, digits: str) -> list[str]:
    """v3 readings of a v2 digit string: fields of 2 or 3 digits, then 2-digit fields (WHO 2010 renaming)."""
    out: list[str] = []

    def rec(rest: str, fields: list[str]) -> None:
        if not rest:
            if len(fields) >= 2:
                out.append(f"{locus}*" + ":".join(fields))
            return
        if len(fields) >= 4:
            return
        widths = (2, 3) if len(fields) < 2 else (2,)
        for w in widths:
            if len(rest) >= w:
                rec(rest[w:], fields + [rest[:w]])

    rec(digits, [])
    return out


@dataclass(frozen=True)
class Resolution:
    """A resolved typing: the release alleles it can be, and anything the user should know."""

    typing: Typing
    alleles: tuple[str, ...]
    warnings: tuple[str, ...] = ()


#: At most this many resolutions are remembered (a few hundred bytes each).
_RESOLVED_MAX = 1_000_000


class Nomenclature:
    """Resolves typings against one release's allele table (see ``Reference.alleles``)."""

    def __init__(
        self, alleles: pl.DataFrame, deleted: pl.DataFrame, ser_ser: pl.DataFrame,
        mac: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.alleles = alleles
        self.mac = mac
        self._tables = (alleles, deleted, ser_ser)
        self._deleted = {a: (d, r) for a, d, r in deleted.select("allele", "description", "renamed_to").iter_rows()}
        self._children = _antigen_children(ser_ser)
        self.loci = frozenset(alleles["locus"].unique().to_list())
        self._resolved: dict[tuple[str, str | None], "Resolution | UnknownAlleleError"] = {}

    def with_mac(self, mac: dict[str, tuple[str, ...]]) -> "Nomenclature":
        """The same release, with the user's NMDP MAC table (see ``haplomatch.mac``)."""
        return Nomenclature(*self._tables, mac=mac)

    # -- indexes: built once per release, so one lookup per distinct typing is a dict access --------
    @cached_property
    def _prefix_index(self) -> dict[tuple[str, str], list[tuple[str, str]]]:
        """(name_k, suffix) → alleles and (name_k, '*') → (allele, suffix) pairs, for k = 1..4."""
        idx: dict[tuple[str, str], list] = defaultdict(list)
        cols = ["allele", "suffix", "name1", "name2", "name3", "name4"]
        for allele, suffix, *names in self.alleles.select(cols).iter_rows():
            for n in names:
                if n is not None:
                    idx[(n, suffix)].append(allele)
                    idx[(n, "*")].append((allele, suffix))
        return dict(idx)

    @cached_property
    def plain_names(self) -> pl.DataFrame:
        """(``name``, ``allele``): every written-out name of 2-4 fields without suffix (``_PLAIN``) and the
        suffix-less alleles it names: what ``resolve_one`` gives such a name (:meth:`_resolve_plain`), as a
        table, so that many names resolve with one join (``slotfacts.slot_candidates``)."""
        a = self.alleles.filter(pl.col("suffix") == "")
        return (
            pl.concat([a.select(pl.col(f"name{k}").alias("name"), "allele") for k in (2, 3, 4)])
            .filter(pl.col("name").str.contains(_PLAIN.pattern))
            .unique(maintain_order=True)
        )

    @cached_property
    def _group_index(self) -> dict[str, list[str]]:
        idx: dict[str, list[str]] = defaultdict(list)
        for allele, g, p in self.alleles.select("allele", "g_group", "p_group").iter_rows():
            if g:
                idx[g].append(allele)
            if p:
                idx[p].append(allele)
        return dict(idx)

    @cached_property
    def _antigen_index(self) -> dict[tuple[str, str], list[str]]:
        """(locus, antigen) → alleles whose serological equivalent is, or may be, that antigen."""
        idx: dict[tuple[str, str], set[str]] = defaultdict(set)
        for allele, locus, ag, possible in self.alleles.select("allele", "locus", "antigen", "antigens_possible").iter_rows():
            for a in ([ag] if ag else []) + list(possible or []):
                idx[(locus, a)].add(allele)
        return {k: sorted(v) for k, v in idx.items()}

    def _by_prefix(self, key: str, nfields: int, suffix: str) -> list[tuple[str, str]]:
        """(allele, suffix) of every allele named ``key`` at ``nfields`` fields with that suffix; with no
        suffix given and no suffix-less allele, those with any suffix (the caller warns)."""
        self._lookups = getattr(self, "_lookups", 0) + 1
        if self._lookups < 64 and "_prefix_index" not in self.__dict__:
            # a few lookups (one command-line call): filter the table; many: build the index once
            col = f"name{nfields}" if 1 <= nfields <= 4 else "name1"
            rows = self.alleles.filter(pl.col(col) == key).select("allele", "suffix").rows()
            exact = [(a, sfx) for a, sfx in rows if sfx == suffix]
            return exact if (exact or suffix) else rows
        exact = self._prefix_index.get((key, suffix), [])
        if exact or suffix:
            return [(a, suffix) for a in exact]
        return self._prefix_index.get((key, "*"), [])

    def _expand(self, t: Typing) -> tuple[list[str], list[str]]:
        warnings: list[str] = []
        if t.kind == "mac":
            return self._expand_mac(t)
        if t.locus not in self.loci:
            raise UnknownAlleleError(t.text, reason=f"no locus {t.locus} in IPD-IMGT/HLA", suggestions=_near(t.locus, self.loci))
        hits: list[tuple[str, str]]
        if t.kind == "xx":
            hits = self._by_prefix(t.key, 1, "")
        elif t.kind in ("g_group", "p_group"):
            hits = [(a, "") for a in self._group_index.get(t.key, [])]
        elif t.kind == "serology":
            found: set[str] = set()
            for ag in self._with_children(t.key):
                found.update(self._antigen_index.get((t.locus, ag), ()))
            if not found:
                raise UnknownAlleleError(t.text, reason="no allele of the release has this serological equivalent")
            return sorted(found), warnings
        elif "v2" in t.warnings:
            digits = t.key.split("*", 1)[1].rstrip("NLSCAQ")
            as_v3 = self._by_prefix(f"{t.locus}*{digits}", 1, t.suffix) if not digits.startswith("0") else []
            found_v2 = []
            for cand in _v2_candidates(t.locus, digits):
                h = self._by_prefix(cand, cand.count(":") + 1, t.suffix)
                if h:
                    found_v2.append((cand, h))
            if as_v3:
                # a 1-field name with a 3-4 digit first field (DPB1*1575) is a current name, not a v2 one
                found_v2 = [(f"{t.locus}*{digits}", as_v3)] + found_v2
                if len(found_v2) == 1:
                    return sorted(a for a, _ in as_v3), warnings
            if len(found_v2) > 1:
                raise UnknownAlleleError(
                    t.text, reason="this v2 name has several v3 readings; give the v3 name",
                    suggestions=[c + t.suffix for c, _ in found_v2],
                )
            hits = found_v2[0][1] if found_v2 else []
            if found_v2:
                warnings.append(f"{t.text!r} is a pre-2010 (v2) name, read as {found_v2[0][0]}{t.suffix}")
        else:
            hits = self._by_prefix(t.key, t.nfields, t.suffix)
            if hits and not t.suffix and all(sfx for _, sfx in hits):
                warnings.append(
                    f"{t.text!r} exists only with an expression suffix ({', '.join(sorted({sfx for _, sfx in hits}))}); read as such"
                )
        if not hits:
            return self._deleted_or_unknown(t)
        return sorted(a for a, _ in hits), warnings

    def _expand_mac(self, t: Typing) -> tuple[list[str], list[str]]:
        from haplomatch.mac import expand

        if self.mac is None:
            raise UnknownAlleleError(
                t.text, reason="an NMDP multiple allele code needs the NMDP MAC table (give it with --mac-table FILE)"
            )
        locus, rest = t.key.split("*", 1)
        first, code = rest.split(":", 1)
        try:
            names = expand(locus, first, code, self.mac)
        except KeyError:
            raise UnknownAlleleError(t.text, reason=f"code {code} is not in the MAC table given") from None
        out: set[str] = set()
        warnings = [f"{t.text!r} is an NMDP multiple allele code: {'/'.join(names)}"]
        for n in names:
            r = self.resolve_one(n)
            out.update(r.alleles)
            warnings += r.warnings
        return sorted(out), warnings

    def _deleted_or_unknown(self, t: Typing) -> tuple[list[str], list[str]]:
        name = normalise(t.text)
        if name in self._deleted:
            desc, new = self._deleted[name]
            if new:
                inner, w = self._expand(parse(new))
                return inner, [f"{name} was renamed {new} by IPD-IMGT/HLA ({desc})", *w]
            raise UnknownAlleleError(t.text, reason=f"deleted from IPD-IMGT/HLA: {desc}")
        raise UnknownAlleleError(t.text, reason="not in IPD-IMGT/HLA", suggestions=self.suggest(t))

    def suggest(self, t: Typing, n: int = 3) -> list[str]:
        """The nearest valid names at the typing's resolution (by spelling), for error messages."""
        nf = min(max(t.nfields, 1), 4)
        return difflib.get_close_matches(t.key, self._name_list(nf, t.locus), n=n, cutoff=0.6)

    @lru_cache(maxsize=64)  # noqa: B019 - one Nomenclature per release, lives as long as it
    def _name_list(self, nfields: int, locus: str) -> list[str]:
        col = f"name{nfields}"
        return self.alleles.filter(pl.col("locus") == locus)[col].drop_nulls().unique().to_list()

    def _with_children(self, antigen: str) -> list[str]:
        out, todo = {antigen}, [antigen]
        while todo:
            for c in self._children.get(todo.pop(), ()):
                if c not in out:
                    out.add(c)
                    todo.append(c)
        return sorted(out)

    # -- public -------------------------------------------------------------------------------------
    def resolve_one(self, text: str, locus: str | None = None) -> Resolution:
        """The alleles one typing can be. Raises UnknownAlleleError when it names nothing.

        Remembered per (text, locus): a batch of families names the same alleles again and again, and a
        Resolution (or the reason a name is unknown) never changes for one release and MAC table."""
        key = (text, locus)
        hit = self._resolved.get(key)
        if hit is None:
            try:
                hit = self._resolve_plain(text) or self._resolve_full(text, locus)
            except UnknownAlleleError as e:
                hit = e
            if len(self._resolved) < _RESOLVED_MAX:
                self._resolved[key] = hit
        if isinstance(hit, UnknownAlleleError):  # a fresh error each time: no traceback piles up
            raise UnknownAlleleError(hit.name, hit.suggestions, hit.reason)
        return hit

    def _resolve_full(self, text: str, locus: str | None) -> Resolution:
        t = parse(text, locus)
        alleles, warnings = self._expand(t)
        return Resolution(t, tuple(alleles), tuple(warnings))

    def _resolve_plain(self, text: str) -> Resolution | None:
        """A written-out allele name of 2-4 fields without suffix that names suffix-less alleles (most names of
        a batch), straight from the index once it is built; None for anything else. Gives what
        ``_resolve_full`` gives (tested over every such name of the release)."""
        if "_prefix_index" not in self.__dict__ or ":" not in text:
            return None
        exact = self._prefix_index.get((text, ""))
        if not exact or not _PLAIN.match(text):
            return None
        locus, fields = text.split("*", 1)
        return Resolution(Typing(text, locus, "allele", text, fields.count(":") + 1, ""), tuple(sorted(exact)), ())

    def resolve(self, typings: Iterable[str] | pl.Series, locus: str | None = None, *, strict: bool = True) -> "Resolved":
        """Vectorised resolution of many typings.

        Distinct strings are parsed and expanded once: ``Resolved.rows`` has one row per input (``row``,
        ``input``, ``kind``, ``n_alleles``, ``warning``, ``error``) and ``Resolved.candidates`` one row per
        (distinct input, allele). Downstream facts are summarised per distinct input and joined back, so
        a million rows of a few thousand distinct typings cost a few thousand expansions and two joins.
        With ``strict=False`` an unresolvable typing keeps its row, with the reason in ``error``.
        """
        s = typings if isinstance(typings, pl.Series) else pl.Series("input", list(typings), dtype=pl.String)
        s = s.cast(pl.String).alias("input")
        cand_in: list[str] = []
        cand_allele: list[str] = []
        meta: dict[str, list] = {"input": [], "kind": [], "n_alleles": [], "warning": [], "error": []}
        for text in s.unique().drop_nulls().to_list():
            try:
                r = self.resolve_one(text, locus)
            except UnknownAlleleError as e:
                if strict:
                    raise
                vals = (text, None, 0, None, str(e))
            else:
                cand_in += [text] * len(r.alleles)
                cand_allele += r.alleles
                vals = (text, r.typing.kind, len(r.alleles), "; ".join(r.warnings) or None, None)
            for k, v in zip(meta, vals):
                meta[k].append(v)
        per_input = pl.DataFrame(meta, schema={"input": pl.String, "kind": pl.String, "n_alleles": pl.UInt32,
                                               "warning": pl.String, "error": pl.String})
        rows = (
            s.to_frame().with_row_index("row")
            .join(per_input, on="input", how="left", maintain_order="left")
            .with_columns(pl.when(pl.col("input").is_null()).then(pl.lit("empty typing")).otherwise(pl.col("error")).alias("error"))
        )
        candidates = pl.DataFrame({"input": cand_in, "allele": cand_allele}, schema={"input": pl.String, "allele": pl.String})
        return Resolved(rows=rows, candidates=candidates)


@dataclass(frozen=True)
class Resolved:
    """Many typings resolved: per-input ``rows`` and per-distinct-input ``candidates`` (see ``resolve``)."""

    rows: pl.DataFrame
    candidates: pl.DataFrame


_SCHEMA = {"input": pl.String, "allele": pl.String, "kind": pl.String, "warning": pl.String, "error": pl.String}


def _near(x: str, pool: Iterable[str]) -> list[str]:
    return difflib.get_close_matches(x, sorted(pool), n=3, cutoff=0.5)


def _antigen_children(ser_ser: pl.DataFrame) -> dict[str, tuple[str, ...]]:
    """Broad → splits and associated antigens, as antigen names ('B5' → ('B51', 'B52'))."""
    display = {"A": "A", "B": "B", "Cw": "Cw", "DR": "DR", "DQ": "DQ"}
    out: dict[str, tuple[str, ...]] = {}
    for locus, broad, splits, assoc in ser_ser.iter_rows():
        p = display.get(locus)
        if p:
            out[p + broad] = tuple(p + c for c in list(splits) + list(assoc))
    return out
