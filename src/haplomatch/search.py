"""Registry search: one patient against a registry of unrelated donors, streamed in batches, best N kept.

How it works (and why it is exact)
----------------------------------
The registry (Parquet or CSV) is read with a polars lazy scan in batches (``batch_size`` rows, default
200,000); only the current batch (and, for Parquet, the next one, read meanwhile) and the running best
``top`` donors are held in memory. Its columns are mapped before any row is read, and a CSV's rows with a
wrong number of cells are rejected for that alone (:mod:`haplomatch.registryfile` finds them).

1. **Reading a batch** (:class:`RegistryReader`). Every cell is interpreted by the code that reads family
   files — ``nomenclature.normalise`` and ``hlatyping.parse_cell`` / ``from_gl_text`` for HLA,
   ``kir.from_columns`` / ``parse_gl`` / ``parse_gene_list`` for KIR, ``familyfile``'s cell readers for sex,
   age, ABO, CMV, FCGR3A, availability — but once per *distinct* cell value: cells are mapped to integer
   ids through a 64-bit hash (polars hashes, a numpy open-addressing table maps hashes to ids), and a
   second, independent 64-bit hash is compared on every row (a mismatch, i.e. a collision, falls back to
   exact string matching); each new value is read once and remembered for the whole search. New slot strings
   get their comparison keys from ``compat.slot_keys`` (for a registry's large first batch, the plain allele
   names' rows come from a per-release table that ``slot_keys`` derived once, :mod:`haplomatch.slotcache`).
   A donor whose row has a cell that does not read (an unknown allele, a bad KIR cell,
   sex ``X``) is not ranked: it is counted as rejected with its reason (``rejects``), as a family-file row
   with an error is. A registry prepared by ``haplomatch prepare`` (:mod:`haplomatch.prepared`) already
   holds each row as the ids of its cells: its distinct values are read first, all at once, by the same
   readers (:meth:`RegistryReader.load`), and a batch is only gathered from them (no hashing).
2. **The facts the ranking reads** (:class:`FastFacts`). Only the columns that the exclusion, tier and
   criterion rules read decide the best N, and for one patient they are computed with integer arrays:

   - HLA mismatch counts per locus. Each donor slot is a typing whose comparison keys are known (per
     distinct slot, ``compat.slot_keys``). The counts depend only on which of the four slots (patient 1,
     2, donor 1, 2) can share a key, so a donor slot with exactly one key that the patient does not have is
     renamed ``#1`` (or ``#2`` when it differs from the other donor slot); a key the patient has is kept;
     any other slot (ambiguous, null allele, untyped) is kept as it is. The renaming is injective on the
     keys of each four-slot row, so ``compat``'s exact count (equality patterns, Hall's condition), run by
     ``compat``'s own code on the few distinct renamed rows, gives each donor its exact ranges. A row of two
     ambiguous donor slots is counted on fewer keys with the same Hall conditions (:meth:`FastFacts._reduced`),
     so that rows alike after the reduction are counted once. Grades use
     ``compat``'s expressions; DPB1 TCE categories run ``compat``'s code on one representative donor per
     (renamed row, TCE groups of the donor's DPB1 slots).
   - Donor factors use ``donorfactors.donor_factor_columns``; donor KIR facts run
     ``kirscores.kir_genotype_columns`` once per distinct KIR typing pattern; family-segregation and DSA
     columns are null with their reason, as ``pairfacts.pair_facts`` writes them for an unrelated donor
     without an antibody report.

   :data:`FAST_COLUMNS` lists what the fast path can compute. When the rules need another column (or, with an
   antibody report, order donors on a ``dsa_*`` fact), every batch goes through the general
   ``pairfacts.pair_facts`` instead (exact, slower). A report the order does not read (the ``unrelated`` rules
   only flag DSA) is read by step 4, for the best.
   ``slotfacts`` facts (for the DPB1 TCE groups) are computed only for the slots of donors that need them.
3. **Keeping the best N.** ``ranking.evaluate`` (the compiled rules, sort order and tie-breaks of
   ``haplomatch rank``) ranks the best N so far together with the batch's donors that could still enter:
   a donor strictly after the N-th best known donor on the first sort keys (eligible, tier, first
   criterion) cannot, and is dropped before the sort. On the fast path this is decided before any other
   fact is computed, per *class* of donors (:meth:`FastFacts.classes`: the ids the prefix columns are
   computed from — per locus the counted four-slot row, attribute cell ids, KIR pattern — so donors of one
   class have equal prefix values): the prefix is computed for one donor per class, and a class strictly
   after the N-th best known donor (or, before N are known, after the class at which the batch's donors,
   counted in prefix order, reach N) is dropped; only the rest get the ranking facts. The order is total
   (donor id last), so the best N of the stream are the best N of the whole registry.
4. **The answer.** The best N go through the general ``pairfacts.pair_facts`` (every fact, as for a family)
   and ``ranking.explained`` (explanations). The columns the ranking read are checked to be equal in both
   paths, and the order to be the same: a difference raises (it would be a bug). In a registry kept open in
   shares (:class:`OpenRegistry` ``workers``) each share's process runs steps 1 to 3 on its rows; the opening
   process keeps the best N of the shares' best by the same sort (as step 3 does from batch to batch), then
   runs this step once, on those N, while a share process computes their NK facts (``pair_facts``'s
   ``nk_elsewhere``: the same table).

Rows in = donors ranked + donors rejected (:meth:`SearchResult.summary_line`). What is kept from batch to batch
(the best N, the rejected rows) owns its donor ids (:func:`_owned`), so a registry larger than memory streams.

5. **Many patients** (:class:`OpenRegistry`): a registry read once and kept in memory, with what no patient
   changes computed at opening (the cells' readings, DPB1 TCE groups, comparison-key ids, and the per-slot
   tables that step 4's general facts read: ``compat.remember_slots``, ``nk.remember_slots``) and the compiled
   rules kept after the first search; each search then runs steps 2 to 4 only.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import polars as pl

from haplomatch import compat as _compat
from haplomatch.collector import fewer_collections
from haplomatch.compat import CORE_LOCI, CompatSettings, slot_keys
from haplomatch.errors import HaplomatchError, InputError, Problem
from haplomatch.family import Person
from haplomatch.hlatyping import _TWO, BLANK
from haplomatch.nomenclature import normalise
from haplomatch.persons import KIR_EXTRA_COLUMNS, KIR_GENE_COLUMNS, pair_frame, person_record, schema
from haplomatch.slotfacts import slot_tce_facts

__all__ = [
    "PROFILE_FILES", "FAST_COLUMNS", "DEFAULT_BATCH", "SearchResult", "RegistryLayout", "RegistryReader",
    "FastFacts", "NoDonorReadError", "search_registry", "registry_rules", "needed_columns", "ranking_columns",
    "registry_layout", "OpenRegistry",
]

#: Profiles shipped for registry search (``rules/``); other names are looked up in ``ranking.PROFILES``.
PROFILE_FILES = {"unrelated": "unrelated.yaml"}
DEFAULT_BATCH = 200_000
_DIRS = ("gvh", "hvg", "bi")
_SEG_NULLS = {
    "shared_haplotypes": pl.Int64, "hla_class": pl.String, "class_all_loci": pl.Boolean,
    "class_by_descent": pl.Boolean, "class_partial": pl.Boolean, "shared_labels": pl.String,
    "class_evidence": pl.String, "class_loci_typed": pl.String,
}
_DSA_NULLS = {
    "dsa_max_mfi": pl.Float64, "dsa_c1q": pl.Boolean, "dsa_category": pl.String,
    "dsa_possible_max_mfi": pl.Float64, "dsa_category_if_possible": pl.String,
    "dsa_specificities": pl.List(pl.String),
}
_CONSTANTS: dict[str, tuple[Any, pl.DataType]] = {
    **{c: (None, t) for c, t in {**_SEG_NULLS, **_DSA_NULLS}.items()},
    "dsa_reason": ("no antibody report given (--antibodies)", pl.String),
    "hla_class_reason": ("no family segregation (unrelated or not typed)", pl.String),
    "family_id": (None, pl.String),
}
_TCE_COLUMNS = ("dpb1_tce", "dpb1_tce_possible", "patient_dpb1_tce_groups", "donor_dpb1_tce_groups",
                "dpb1_tce_reason")
_TCE_SCHEMA = {"dpb1_tce": pl.String, "dpb1_tce_possible": pl.List(pl.String), "patient_dpb1_tce_groups": pl.String,
               "donor_dpb1_tce_groups": pl.String, "dpb1_tce_reason": pl.String}
_KIR_FACTS = tuple(f"donor_{c}" for c in (
    "kir_genotype", "kir_cen", "kir_tel", "kir_b_content_score", "kir_b_content_group", "kir_activating_count",
    "kir_activating_functional_count", "kir2ds4", "kir3dl1_class"))
_HLA_SLOTS = tuple(c for c in schema() if c[:1] in "ABCD" and c.rsplit("_", 1)[-1] in ("1", "2"))


@lru_cache(maxsize=1)
def _donor_factor_exprs() -> dict[str, pl.Expr]:
    from haplomatch.donorfactors import donor_factor_columns

    return {e.meta.output_name(): e for e in donor_factor_columns()}


@lru_cache(maxsize=1)
def _grade_exprs() -> dict[str, pl.Expr]:
    return {e.meta.output_name(): e for e in _compat._grade_exprs()}


@lru_cache(maxsize=1)
def _count_columns() -> tuple[str, ...]:
    out = []
    for loc in CORE_LOCI:
        out += [f"typed_{loc}", f"error_{loc}"]
        for d in _DIRS:
            out += [f"{d}_{loc}", f"{d}_{loc}_min", f"{d}_{loc}_max"]
    return tuple(out)


#: The pair facts the fast path computes, each equal to ``pairfacts.pair_facts``'s (tests compare them).
FAST_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys([
    *_donor_factor_exprs(), *_count_columns(), *_grade_exprs(), *_TCE_COLUMNS, *_KIR_FACTS, *_CONSTANTS,
]))


# ------------------------------------------------------------------------------------------------ interning

class _HashTable:
    """64-bit hashes → row numbers, looked up for whole numpy arrays: a direct table on the low bits holds
    the first key of each bucket; the other keys (and hashes not held) are found in the sorted keys."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.uint64)
        self._mask = 0
        self._table = np.full(1, -1, dtype=np.int64)
        self._tkeys = np.zeros(1, dtype=np.uint64)  # the hash held by each bucket
        self._sorted = np.zeros(0, dtype=np.uint64)
        self._order = np.zeros(0, dtype=np.int64)

    def extend(self, keys: np.ndarray) -> None:
        """Append ``keys`` (row numbers continue); the table has at least 8 buckets per key."""
        self.keys = np.concatenate([self.keys, keys.astype(np.uint64)])
        n = len(self.keys)
        size = 1 << max(10, int(n * 8).bit_length())
        self._mask = size - 1
        pos = np.bitwise_and(self.keys.view(np.int64), self._mask)
        # the first row of each key in sorted order; the first row of each bucket in the table
        self._order = np.argsort(self.keys, kind="stable")
        self._sorted = self.keys[self._order]
        self._table = np.full(size, -1, dtype=np.int64)
        self._table[pos[::-1]] = np.arange(n)[::-1]  # the last write wins: the first row of the bucket
        self._tkeys = np.zeros(size, dtype=np.uint64)
        held = self._table >= 0
        self._tkeys[held] = self.keys[self._table[held]]

    def find(self, h: np.ndarray) -> np.ndarray:
        """The row of each hash of ``h`` (the first row holding it), -1 where none."""
        pos = np.bitwise_and(h.view(np.int64), self._mask)
        out = self._table[pos]
        hit = (self._tkeys[pos] == h) & (out >= 0)
        if hit.all():
            return out
        miss = np.nonzero(~hit)[0]
        hm = h[miss]
        if self._sorted.size == 0:
            out[miss] = -1
            return out
        i = np.minimum(np.searchsorted(self._sorted, hm), self._sorted.size - 1)
        out[miss] = np.where(self._sorted[i] == hm, self._order[i], -1)
        return out


class _Interner:
    """Cell values → dense integer ids (0, 1, …) kept across batches; ``parse`` reads each new value once.

    Rows are matched on a 64-bit hash of the value (polars computes it, a numpy hash table maps it to the
    id); a second, independent hash is compared for every row, and a mismatch (a collision) falls back to
    an exact match on the strings."""

    _S1, _S2 = 0x9E3779B1, 0x85EBCA77

    def __init__(self, parse: Callable[[list], list[Any]]) -> None:
        self.parse = parse
        self.keys: list[Any] = []
        self.values: list[Any] = []
        self._table = _HashTable()
        self._h2 = np.zeros(0, dtype=np.uint64)
        self._cache: dict = {}

    def __len__(self) -> int:
        return len(self.keys)

    def cached(self, key, make: Callable[[list], Any]) -> Any:
        """``make(values)``, recomputed only after new values were read."""
        hit = self._cache.get(key)
        if hit is None or hit[0] != len(self.values):
            hit = (len(self.values), make(self.values))
            self._cache[key] = hit
        return hit[1]

    def add(self, s: pl.Series) -> None:
        """Read the values of ``s`` not seen before."""
        new = pl.DataFrame({"h1": s.hash(self._S1), "h2": s.hash(self._S2), "s": s}).unique(
            subset="h1", keep="first", maintain_order=True)
        if len(self):
            new = new.filter(pl.Series(self._table.find(new["h1"].to_numpy()) < 0))
        if new.height == 0:
            return
        keys = new["s"].to_list()
        self.values += self.parse(keys)
        self.keys += keys
        self._table.extend(new["h1"].to_numpy())
        self._h2 = np.concatenate([self._h2, new["h2"].to_numpy()])

    def load(self, keys: list) -> None:
        """Take ``keys`` (distinct, in id order: a prepared registry's dictionary) as the values, read at once.
        Rows are then given by their ids, never looked up by hash."""
        if self.keys:  # pragma: no cover - a reader loads a prepared registry once
            raise RuntimeError("internal error: a prepared dictionary loaded twice")
        self.keys = list(keys)
        self.values = self.parse(self.keys) if self.keys else []

    def lookup(self, e: pl.Expr, name: str) -> list[pl.Expr]:
        """Expressions giving the two hashes of the values of ``e`` (:meth:`find` maps the first to ids)."""
        return [e.hash(self._S1).alias(f"{name}\x00h1"), e.hash(self._S2).alias(f"{name}\x00h2")]

    def find(self, h1: np.ndarray) -> np.ndarray:
        """The ids of the values hashed to ``h1`` (-1: not seen yet)."""
        return self._table.find(h1)

    def ids(self, s: pl.Series) -> np.ndarray:
        """The ids of the values of ``s`` (new values are read first)."""
        return _intern(pl.DataFrame({"v": s}), [("v", self, pl.col("v"))])["v"]

    def _exact(self, s: pl.Series) -> np.ndarray:  # pragma: no cover - only after a hash collision
        known = {x: i for i, x in enumerate(self.keys)}
        new = [x for x in dict.fromkeys(s.to_list()) if x not in known]
        if new:
            self.values += self.parse(new)
            for x in new:
                known[x] = len(self.keys)
                self.keys.append(x)
            extra = pl.Series(new, dtype=s.dtype)
            self._table.extend(extra.hash(self._S1).to_numpy())
            self._h2 = np.concatenate([self._h2, extra.hash(self._S2).to_numpy()])
        return np.array([known[x] for x in s.to_list()], dtype=np.int64)


def _intern(df: pl.DataFrame, items: list[tuple[str, _Interner, pl.Expr]],
            before: Callable[[dict[str, pl.Series]], None] | None = None) -> dict[str, np.ndarray]:
    """The ids of several columns (``items``: name, interner, expression over ``df``) in one polars pass;
    values not seen before are read by their interner first (``before`` sees them all first, by name)."""
    res = df.select([x for name, it, e in items for x in it.lookup(e, name)])
    h1 = {name: res[f"{name}\x00h1"].to_numpy() for name, _, _ in items}
    found = {name: it.find(h1[name]) if len(it) else np.full(df.height, -1, dtype=np.int64) for name, it, _ in items}
    missing = {}
    for name, it, e in items:
        miss = np.flatnonzero(found[name] < 0)
        if miss.size:
            # one row per new hash (the first), so that only distinct values are gathered: in a registry's
            # first batch every row is new; a value whose hash equals another's is caught by the second hash
            at = pl.Series(miss[pl.Series(h1[name][miss]).is_first_distinct().to_numpy()])
            missing[name] = df.select(e.gather(at).alias("v"))["v"].unique(maintain_order=True)
    if missing and before is not None:
        before(missing)
    added: set[int] = set()
    for name, it, e in items:
        if name in missing and id(it) not in added:
            # the columns sharing an interner (a locus's two) add their new values at once, in column order
            new = [missing[n] for n, other, _ in items if other is it and n in missing]
            it.add(new[0] if len(new) == 1 else pl.concat(new))
            added.add(id(it))
    for name, it, e in items:
        if name in missing:
            found[name] = it.find(h1[name])
    out: dict[str, np.ndarray] = {}
    for name, it, e in items:
        ids = found[name]
        if (ids < 0).any() or not np.array_equal(it._h2[ids], res[f"{name}\x00h2"].to_numpy()):  # pragma: no cover
            ids = it._exact(df.select(e.alias("v"))["v"])  # a hash collision
        out[name] = ids
    return out


def _take(values: list, ids: np.ndarray, dtype: pl.DataType, name: str) -> pl.Series:
    """``values[ids]`` as a polars Series."""
    return pl.Series(name, values, dtype=dtype, strict=False).gather(pl.Series(ids))


# ------------------------------------------------------------------------------------------------ registry

_KEY = re.compile(r"[\s._\-]")


def _key(name: str) -> str:
    return _KEY.sub("", name).lower()


@dataclass(frozen=True)
class RegistryLayout:
    """Which registry column holds what (names matched as family-file columns are)."""

    id_col: str
    hla_pair: dict[str, tuple[str, str]]
    hla_single: dict[str, str]
    gl_col: str | None
    kir_cols: tuple[str, ...]
    kir_whole: str | None
    attrs: dict[str, str]
    unknown: tuple[str, ...]


def registry_layout(columns: list[str], source: str = "") -> tuple[RegistryLayout, list[Problem]]:
    """Map registry columns: ``donor_id`` (or ``id``), HLA as ``A_1``/``A_2``… or ``A``… (both alleles) or a
    GL column ``hla``, KIR gene columns (``KIR2DL1``…) or one ``kir`` column, ``age``, ``sex``, ``abo``,
    ``cmv`` and optionally ``available``, ``fcgr3a``, ``weight_kg``, ``parity``. Raises InputError when there
    is no id or no HLA column; returns the warnings (unknown columns)."""
    from haplomatch.familyfile import map_columns

    id_col = next((c for c in columns if _key(c) in ("donorid", "donor", "donorcode")), None)
    rest = [c for c in columns if c != id_col]
    cmap, problems = map_columns(rest)
    if id_col is None:
        id_col = cmap.attributes.get("id")
    keep = [Problem(**{**p.to_dict(), "file": source}) for p in problems
            if not p.message.startswith(("no id column", "no relation column"))]
    if id_col is None:
        keep.append(Problem("no donor id column", file=source, fix="add a column 'donor_id'"))
    gl = cmap.attributes.get("hla")
    if not (cmap.hla_pair or cmap.hla_single or gl):
        keep.append(Problem("no HLA column", file=source, fix="add A_1, A_2, B_1, … (or A, B, …, or a GL column 'hla')"))
    errors = [p for p in keep if p.severity == "error"]
    if errors:
        raise InputError(errors)
    attrs = {k: v for k, v in cmap.attributes.items() if k in _ATTR_FIELDS}
    return RegistryLayout(id_col, dict(cmap.hla_pair), dict(cmap.hla_single), gl, tuple(cmap.kir_genes),
                          cmap.attributes.get("kir"), attrs, tuple(cmap.unknown)), keep


_ATTR_TYPES = {"sex": pl.String, "age": pl.Float64, "weight_kg": pl.Float64, "abo": pl.String, "rh": pl.String,
               "cmv": pl.Boolean, "fcgr3a": pl.String, "available": pl.Boolean, "parity": pl.Int64}
_ATTR_FIELDS = ("sex", "age", "weight_kg", "abo", "cmv", "fcgr3a", "available", "parity")


def _attr_parser(fname: str) -> Callable[[Any], tuple[dict, str | None]]:
    """One attribute cell → ({people-table column: value}, error or None), by the family-file cell readers."""
    from haplomatch import familyfile as ff

    def parse(v: Any) -> tuple[dict, str | None]:
        t = "" if v is None else str(v).strip()
        if isinstance(v, float) and v == int(v):
            t = str(int(v))
        if not t:
            return {}, None
        if fname == "sex":
            if t == "0":
                return {}, None
            s = ff._sex(t)
            return ({"sex": s}, None) if s else ({}, "sex not understood (use M or F)")
        if fname in ("age", "weight_kg"):
            x = ff._number(t)
            ok = x is not None and ((0 <= x < 120) if fname == "age" else (0 < x < 400))
            return ({fname: x}, None) if ok else ({}, f"{fname} is not a number in range")
        if fname == "abo":
            r = ff._abo(t)
            return ({"abo": r[0], "rh": r[1]}, None) if r else ({}, "blood group not understood")
        if fname == "cmv":
            c = ff._cmv(t)
            return ({"cmv": c}, None) if c is not None else ({}, "CMV serostatus not understood")
        if fname == "fcgr3a":
            f = ff._fcgr3a(t)
            return ({"fcgr3a": f}, None) if f else ({}, "FCGR3A-158 genotype not understood")
        if fname == "available":
            low = t.lower()
            a = True if low in ff._YES else False if low in ff._NO else None
            return ({"available": a}, None) if a is not None else ({}, "availability not understood")
        if fname == "parity":
            x = ff._number(t)
            ok = x is not None and x >= 0 and x == int(x)
            return ({"parity": int(x)}, None) if ok else ({}, "parity is not a whole number")
        return {}, None

    return parse


#: From this many new slot strings on (a registry's first batch), plain names' keys come from the cached table.
_CACHED_KEYS_FROM = 1000


@dataclass
class _SlotTable:
    """Normalised slot strings (``A*01:01`` or ``A*01:01/A*01:02``) → id, with their ``compat`` keys and (on
    demand, :meth:`ensure_facts`: only DPB1 TCE facts read them) ``slotfacts`` TCE facts. Id 0 is the untyped
    slot."""

    ref: Any
    settings: CompatSettings
    strings: list[str | None] = field(default_factory=lambda: [None])
    index: dict[str, int] = field(default_factory=dict)
    error: list[str | None] = field(default_factory=lambda: [None])
    simple: list[bool] = field(default_factory=lambda: [False])
    absent: list[bool] = field(default_factory=lambda: [False])
    key: list[str | None] = field(default_factory=lambda: [None])
    all_keys: list[list[str]] = field(default_factory=lambda: [[]])
    tce: dict[str, list] = field(default_factory=lambda: {"tce_v1": [None], "tce_v2": [None], "expressed": [None]})
    keys_table: pl.DataFrame | None = None
    facts: pl.DataFrame | None = None
    has_facts: np.ndarray = field(default_factory=lambda: np.ones(1, dtype=bool))  # id 0 needs none
    _series: pl.Series | None = None
    _kid: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    _kids: dict[str, int] = field(default_factory=dict)

    def key_ids(self) -> tuple[np.ndarray, dict[str, int]]:
        """Per slot id, the id of its one comparison key (-1: none, or several), and key -> id; extended as
        slots are added (the same for every patient: kept for all searches of a registry)."""
        done = len(self._kid)
        if done < len(self.key):
            new = [self._kids.setdefault(k, len(self._kids)) if k is not None else -1 for k in self.key[done:]]
            self._kid = np.concatenate([self._kid, np.array(new, dtype=np.int64)])
        return self._kid, self._kids

    def series(self) -> pl.Series:
        """The slot strings as a polars Series (id order), remade only after new slots."""
        if self._series is None or len(self._series) != len(self.strings):
            self._series = pl.Series(self.strings, dtype=pl.String)
        return self._series

    def ids(self, slots: list[str | None]) -> list[int]:
        new = [s for s in dict.fromkeys(slots) if s and s not in self.index]
        if new:
            self._add(new)
        return [self.index[s] if s else 0 for s in slots]

    def _add(self, new: list[str]) -> None:
        """Append the distinct slot strings ``new`` (not yet held), with their ``compat`` keys (one polars join,
        no per-slot Python work: a registry's first batch names tens of thousands)."""
        k = self._keys(new)
        self.keys_table = k if self.keys_table is None else pl.concat([self.keys_table, k], how="vertical_relaxed")
        keys = pl.col("keys")
        ok = (pl.col("error").is_null() & ~pl.col("absent") & (keys.list.len() == 1)).fill_null(False)
        j = (
            pl.DataFrame({"slot": new}, schema={"slot": pl.String})
            .join(k, on="slot", how="left", maintain_order="left")
            .select("error", ok.alias("ok"), pl.when(ok).then(keys.list.first()).alias("key"),
                    keys.fill_null(pl.lit([], pl.List(pl.String))).alias("keys"),
                    pl.col("absent").is_null().alias("lost"), pl.col("absent").fill_null(False))
        )
        if j["lost"].any():  # pragma: no cover - slot_keys gives every slot a row
            raise RuntimeError("internal error: slot_keys lost a slot")
        first = len(self.strings)
        self.index.update(zip(new, range(first, first + len(new))))
        self.strings += new
        self.error += j["error"].to_list()
        self.simple += j["ok"].to_list()
        self.absent += j["absent"].to_list()
        self.key += j["key"].to_list()
        self.all_keys += j["keys"].to_list()
        for c in ("tce_v1", "tce_v2", "expressed"):
            self.tce[c] += [None] * len(new)
        self.has_facts = np.concatenate([self.has_facts, np.zeros(len(new), dtype=bool)])

    def _keys(self, new: list[str]) -> pl.DataFrame:
        """``compat.slot_keys`` of the slots ``new``: for many, the plain names' rows from the release's cached
        table (:mod:`haplomatch.slotcache`: the same rows), the others by ``slot_keys``."""
        level, null = self.settings.level, self.settings.null_alleles
        if len(new) < _CACHED_KEYS_FROM:
            return slot_keys(self.ref, new, level, null)
        from haplomatch.slotcache import plain_slot_keys

        known = pl.DataFrame({"slot": new}, schema={"slot": pl.String}).join(
            plain_slot_keys(self.ref, level, null), on="slot", how="inner")
        have = set(known["slot"].to_list())
        rest = [s for s in new if s not in have]
        if not rest:
            return known
        return pl.concat([known, slot_keys(self.ref, rest, level, null)], how="vertical_relaxed")

    def ensure_facts(self, ids: np.ndarray) -> np.ndarray:
        """Compute the ``slotfacts`` facts of the slots ``ids`` that have none yet; returns the ids computed."""
        ids = np.asarray(ids, dtype=np.int64)
        todo = np.unique(ids[~self.has_facts[ids]])
        if todo.size == 0:
            return todo
        names = [self.strings[i] for i in todo.tolist()]
        f = slot_tce_facts(self.ref, names)
        self.facts = f if self.facts is None else pl.concat([self.facts, f], how="diagonal_relaxed")
        fb = {r["slot"]: r for r in f.select("slot", "tce_v1", "tce_v2", "expressed").iter_rows(named=True)}
        for i, s in zip(todo.tolist(), names):
            for c in ("tce_v1", "tce_v2", "expressed"):
                self.tce[c][i] = fb.get(s, {}).get(c)
        self.has_facts[todo] = True
        return todo


def _norm_slot(raw: Any, locus: str) -> tuple[str | None, str | None]:
    """One cell of the two-column layout → (normalised slot string or None, error or None), as
    ``hlatyping.parse_cell`` reads it."""
    if raw is None or str(raw).strip().lower() in BLANK:
        return None, None
    raw = str(raw)
    if _TWO.search(raw.strip()):
        return None, "two alleles in one cell of a two-column locus"
    names = [normalise(x, locus) for x in raw.split("/") if x.strip()]
    return "/".join(dict.fromkeys(names)) or None, None


@dataclass
class _Batch:
    """One registry batch, read: per source column the ids of its distinct values (never strings per row)."""

    reader: "RegistryReader"
    n: int
    ids: pl.Series  # donor id per row
    sid: dict[str, tuple[np.ndarray, np.ndarray]]  # locus → slot ids of the two slots (0 = untyped)
    attr: dict[str, tuple[_Interner, np.ndarray]]  # field → its interner and the row ids
    kir: np.ndarray | None  # KIR pattern id per row
    error: np.ndarray  # the row has a cell that does not read
    reason: list[pl.Series]  # per column, the message of rows whose cell does not read

    def column(self, name: str, rows: np.ndarray | None = None) -> pl.Series:
        """A people-table column (``schema()`` name, no HLA) for all rows or some."""
        n = self.n if rows is None else len(rows)
        if name == "id":
            return self.ids if rows is None else self.ids.gather(pl.Series(rows))
        if name == "relation":
            return pl.repeat("unrelated", n, dtype=pl.String, eager=True).alias(name)
        dt = schema()[name]
        src = _ATTR_SOURCE.get(name)
        if src in self.attr:
            it, ids = self.attr[src]
            vals = it.cached(("attr", name), lambda vs: pl.Series(name, [v[0].get(name) for v in vs], dtype=dt,
                                                                  strict=False))
            return vals.gather(pl.Series(ids if rows is None else ids[rows]))
        if name in _KIR_PEOPLE and self.kir is not None:
            it = self.reader._kir
            vals = it.cached(("kir", name), lambda vs: pl.Series(name, [(v[0] or {}).get(name) for v in vs],
                                                                 dtype=dt, strict=False))
            return vals.gather(pl.Series(self.kir if rows is None else self.kir[rows]))
        return pl.repeat(None, n, dtype=dt, eager=True).alias(name)

    def people(self, rows: np.ndarray | None = None) -> pl.DataFrame:
        """Rows as a full people table (``persons.schema()``), HLA slots as normalised slot strings."""
        if rows is not None and len(rows) <= _FEW:
            return self._few(rows)
        strings = self.reader.slots.series()
        cols = []
        for c, dt in schema().items():
            if c in _HLA_SLOTS:
                loc, i = c.rsplit("_", 1)
                if loc in self.sid:
                    ids = self.sid[loc][int(i) - 1]
                    cols.append(strings.gather(pl.Series(ids if rows is None else ids[rows])).alias(c))
                else:
                    cols.append(pl.repeat(None, self.n if rows is None else len(rows), dtype=dt, eager=True).alias(c))
            else:
                cols.append(self.column(c, rows))
        return pl.DataFrame(cols)

    def _few(self, rows: np.ndarray) -> pl.DataFrame:
        """:meth:`people` for a few rows (the best donors of a batch), built from Python values in one go: a
        Series per column would cost more than the rows."""
        n, at = len(rows), rows.tolist()
        strings = self.reader.slots.strings
        data: dict[str, list] = {}
        for c in schema():
            if c in _HLA_SLOTS:
                loc, i = c.rsplit("_", 1)
                ids = self.sid[loc][int(i) - 1] if loc in self.sid else None
                data[c] = [None] * n if ids is None else [strings[k] for k in ids[rows].tolist()]
            elif c == "id":
                data[c] = self.ids.gather(pl.Series(rows)).to_list()
            elif c == "relation":
                data[c] = ["unrelated"] * n
            elif _ATTR_SOURCE.get(c) in self.attr:
                it, ids = self.attr[_ATTR_SOURCE[c]]
                vals = it.cached(("attr-list", c), lambda vs: [v[0].get(c) for v in vs])
                data[c] = [vals[k] for k in ids[at].tolist()]
            elif c in _KIR_PEOPLE and self.kir is not None:
                vals = self.reader._kir.cached(("kir-list", c), lambda vs: [(v[0] or {}).get(c) for v in vs])
                data[c] = [vals[k] for k in self.kir[at].tolist()]
            else:
                data[c] = [None] * n
        return pl.DataFrame(data, schema=schema(), strict=False)

    def rows_between(self, lo: int, hi: int) -> "_Batch":
        """Rows ``lo`` to ``hi`` (0-based, ``hi`` excluded) as a batch of their own, owning their arrays (a share
        of a registry kept in a process, :class:`OpenRegistry`, does not keep the rest of its batch)."""
        if lo == 0 and hi == self.n:
            return self
        cut = slice(lo, hi)
        return dataclasses.replace(
            self, n=hi - lo, ids=pl.Series(self.ids.name, self.ids[cut].to_list(), dtype=pl.String),
            sid={loc: (a[cut].copy(), b[cut].copy()) for loc, (a, b) in self.sid.items()},
            attr={k: (it, ids[cut].copy()) for k, (it, ids) in self.attr.items()},
            kir=None if self.kir is None else self.kir[cut].copy(), error=self.error[cut].copy(),
            reason=[r.slice(lo, hi - lo).rechunk() for r in self.reason])

    def reasons(self) -> pl.Series:
        if not self.reason:
            return pl.repeat(None, self.n, dtype=pl.String, eager=True)
        return pl.DataFrame(self.reason).select(
            pl.concat_str(pl.all(), separator="; ", ignore_nulls=True))[:, 0].replace("", None)


_FEW = 256  # rows from which Batch.people builds its table column by column

_ATTR_SOURCE = {"sex": "sex", "age": "age", "weight_kg": "weight_kg", "abo": "abo", "rh": "abo", "cmv": "cmv",
                "fcgr3a": "fcgr3a", "available": "available", "parity": "parity"}
_KIR_PEOPLE = (*KIR_GENE_COLUMNS, *KIR_EXTRA_COLUMNS)


class RegistryReader:
    """Reads registry batches (:meth:`read`): every distinct cell value is read once, by the family-file
    readers, and remembered across batches."""

    def __init__(self, ref, layout: RegistryLayout, compat: CompatSettings | None = None, *,
                 missing_second: str = "homozygous") -> None:
        from haplomatch.kir import KirAlleleList

        self.ref = ref
        self.layout = layout
        self.missing_second = missing_second
        self.slots = _SlotTable(ref, compat or CompatSettings())
        self.kir_list = KirAlleleList.from_reference(ref)
        self._cells: dict[str, _Interner] = {}
        for loc, (c1, c2) in layout.hla_pair.items():
            it = _Interner(self._pair_cell_parser(loc))
            self._cells[c1] = self._cells[c2] = it  # one table per locus: both columns hold its names
        for loc, c in layout.hla_single.items():
            self._cells[c] = _Interner(self._single_cell_parser(loc))
        if layout.gl_col:
            self._cells[layout.gl_col] = _Interner(self._gl_parser())
        for f, c in layout.attrs.items():
            p = _attr_parser(f)
            self._cells[c] = _Interner(lambda xs, p=p: [p(x) for x in xs])
        self._kir = _Interner(self._kir_parser())
        self._normed: dict[str, dict] = {}  # locus → cell value → normalised (this batch's new values)

    def _prefetch(self, missing: dict[str, pl.Series]) -> None:
        """Resolve the new slot strings of every two-column HLA cell of a batch at once (one slot-table update)."""
        names: list[str] = []
        self._normed = {}
        for loc, (c1, c2) in self.layout.hla_pair.items():
            for c in (c1, c2):
                if c in missing:
                    values = missing[c].to_list()
                    normed = self._normalise(values, loc)
                    self._normed.setdefault(loc, {}).update(zip(values, normed))  # the parser reads them next
                    names += [s for s, e in normed if s and not e]
        if names:
            self.slots.ids(names)

    @staticmethod
    def _normalise(values: list, locus: str) -> list[tuple[str | None, str | None]]:
        # a name already in normal form (upper case, 'L*…', no spaces, lists or HLA- prefix) is kept as it is:
        # nomenclature.normalise would return it unchanged
        v = pl.Series(values, dtype=pl.String)
        plain = (v.str.contains(r"^[A-Z0-9]+\*[^\s/+,;]*$") & ~v.str.starts_with("HLA-")
                 & (v == v.str.to_uppercase())).fill_null(False).to_list()
        return [(x, None) if p else _norm_slot(x, locus) for x, p in zip(values, plain)]

    # -- one distinct cell value → (value, error) --
    def _pair_cell_parser(self, locus: str):
        def parse(values: list) -> list[tuple[int, str | None]]:
            done = self._normed.get(locus, {})
            normed = ([done[v] for v in values] if all(v in done for v in values)
                      else self._normalise(values, locus))
            ids = self.slots.ids([s for s, _ in normed])
            return [(i, e or self.slots.error[i]) for i, (_, e) in zip(ids, normed)]
        return parse

    def _single_cell_parser(self, locus: str):
        from haplomatch.hlatyping import parse_cell
        from haplomatch.persons import slot_strings

        def parse(values: list):
            parsed = []
            for v in values:
                t, probs = parse_cell(None if v is None else str(v), locus, missing_second=self.missing_second)
                parsed.append((slot_strings(t), [p.message for p in probs if p.severity == "error"]))
            self.slots.ids([x for pair, _ in parsed for x in pair])  # one slot-table update for all
            out = []
            for (s1, s2), errs in parsed:
                i1, i2 = self.slots.ids([s1, s2])
                errs = errs + [e for e in (self.slots.error[i1], self.slots.error[i2]) if e]
                out.append(((i1, i2), "; ".join(dict.fromkeys(errs)) or None))
            return out
        return parse

    def _gl_parser(self):
        from haplomatch.hlatyping import from_gl_text
        from haplomatch.persons import slot_strings

        def parse(values: list):
            parsed = []
            for v in values:
                per: dict[str, tuple[str | None, str | None]] = {}
                errs: list[str] = []
                if v is not None and str(v).strip():
                    typed, probs = from_gl_text(str(v), missing_second=self.missing_second)
                    errs += [p.message for p in probs if p.severity == "error"]
                    per = {loc: slot_strings(t) for loc, t in typed.items() if loc in CORE_LOCI}
                parsed.append((per, errs))
            self.slots.ids([x for per, _ in parsed for pair in per.values() for x in pair])
            out = []
            for per, errs in parsed:
                ids = {loc: tuple(self.slots.ids(list(pair))) for loc, pair in per.items()}
                errs = errs + [self.slots.error[i] for pair in ids.values() for i in pair if self.slots.error[i]]
                out.append((ids, "; ".join(dict.fromkeys(errs)) or None))
            return out
        return parse

    def _kir_parser(self):
        from haplomatch import kir as kirmod

        cols, whole = self.layout.kir_cols, self.layout.kir_whole

        def one(text: Any):
            try:
                if whole is not None:
                    cell = "" if text is None else str(text)
                    if not cell.strip():
                        return None, None
                    if "*" in cell or "#" in cell:
                        g = kirmod.parse_gl(cell, release=self.kir_list)
                    else:
                        g = kirmod.parse_gene_list(cell, release=self.kir_list)
                else:
                    cells = _kir_cells(text, len(cols))
                    g = kirmod.from_columns(dict(zip(cols, cells)), release=self.kir_list)
            except InputError as e:
                return None, "; ".join(p.message for p in e.problems)
            rec = person_record(Person(id="", relation="unrelated", kir=g))
            return {c: rec[c] for c in _KIR_PEOPLE}, None

        return lambda xs: [one(x) for x in xs]

    # -- a batch --
    def items(self, batch: pl.DataFrame) -> list[tuple[str, "_Interner", pl.Expr]]:
        """The interned items of a batch: (name, interner, expression); the columns of a locus share one."""
        return cell_items(self.layout, self._cells, self._kir, batch)

    def read(self, batch: pl.DataFrame) -> _Batch:
        """A registry batch, its cells interned (each distinct value read once, by its interner)."""
        ids = _intern(batch, self.items(batch), self._prefetch)
        return self.assemble(batch.height, ids, batch[self.layout.id_col].cast(pl.String))

    def load(self, dictionaries: dict[str, list]) -> None:
        """Read a prepared registry's distinct values (item name → values in id order), once, before its
        batches (:meth:`assemble`): the values of a locus's two columns are one dictionary, named by either."""
        seen: set[int] = set()
        for name, values in dictionaries.items():
            it = self._kir if name == KIR_ITEM else self._cells[name]
            if id(it) in seen:
                continue
            seen.add(id(it))
            loc = next((loc for loc, pair in self.layout.hla_pair.items() if name in pair), None)
            if loc is not None and values:
                self._prefetch({name: pl.Series(values, dtype=pl.String)})
            it.load(values)

    def assemble(self, n: int, ids: dict[str, np.ndarray], ident: pl.Series) -> _Batch:
        """A batch from its items' ids (``ids``, per item name) and its raw donor ids."""
        lay = self.layout
        err = np.zeros(n, dtype=bool)
        reasons: list[pl.Series] = []

        def note(it: _Interner, rows: np.ndarray, column: str) -> None:
            if not it.cached(("anyerr",), lambda vs: any(v[1] is not None for v in vs)):
                return
            bad = it.cached(("err",), lambda vs: np.array([v[1] is not None for v in vs], dtype=bool))[rows]
            if bad.any():
                err[:] |= bad
                msgs = it.cached(("msg", column), lambda vs: [None if v[1] is None else f"[{column}] {v[1]}"
                                                              for v in vs])
                reasons.append(_take(msgs, rows, pl.String, column))

        sid: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for loc, (c1, c2) in lay.hla_pair.items():
            if loc not in CORE_LOCI:
                continue
            it = self._cells[c1]
            note(it, ids[c1], c1)
            note(it, ids[c2], c2)
            arr = it.cached("sid", lambda vals: np.array([v[0] for v in vals], dtype=np.int64))
            s1, s2 = arr[ids[c1]], arr[ids[c2]]
            # as parse_cell: a blank first slot takes the second; a blank second repeats the first (homozygous)
            e1 = s1 == 0
            s1, s2 = np.where(e1, s2, s1), np.where(e1, 0, s2)
            if self.missing_second == "homozygous":
                s2 = np.where(s2 == 0, s1, s2)
            sid[loc] = (s1, s2)
        for loc, c in lay.hla_single.items():
            if loc not in CORE_LOCI:
                continue
            it = self._cells[c]
            note(it, ids[c], c)
            pairs = it.cached("sid", lambda vals: np.array([v[0] for v in vals], dtype=np.int64).reshape(-1, 2))
            sid[loc] = (pairs[ids[c], 0], pairs[ids[c], 1])
        if lay.gl_col:
            it = self._cells[lay.gl_col]
            note(it, ids[lay.gl_col], lay.gl_col)
            for loc in CORE_LOCI:
                if loc not in sid:
                    pairs = it.cached(("sid", loc), lambda vals, loc=loc: np.array(
                        [v[0].get(loc, (0, 0)) for v in vals], dtype=np.int64).reshape(-1, 2))
                    sid[loc] = (pairs[ids[lay.gl_col], 0], pairs[ids[lay.gl_col], 1])
        for loc in CORE_LOCI:
            sid.setdefault(loc, (np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)))
        attr: dict[str, tuple[_Interner, np.ndarray]] = {}
        for f, c in lay.attrs.items():
            note(self._cells[c], ids[c], c)
            attr[f] = (self._cells[c], ids[c])
        kir = ids.get(KIR_ITEM)
        if kir is not None:
            note(self._kir, kir, "KIR")
        if ident.str.contains(r"^\s|\s$").any():  # a copy of the batch's ids only when one needs stripping
            ident = ident.str.strip_chars()
        ident = ident.alias("id")
        bad_id = (ident.is_null() | (ident == "")).to_numpy()
        if bad_id.any():
            err |= bad_id
            reasons.append(pl.select(pl.when(pl.Series(bad_id)).then(pl.lit(f"[{lay.id_col}] empty donor id"))
                                     .otherwise(pl.lit(None, pl.String)).alias("id")).to_series())
        return _Batch(self, n, ident, sid, attr, kir, err, reasons)


#: The item name of the KIR cells (one pattern per row, whatever the KIR columns).
KIR_ITEM = "\x00kir"


def cell_items(layout: RegistryLayout, cells: dict[str, _Interner], kir: _Interner,
               batch: pl.DataFrame) -> list[tuple[str, _Interner, pl.Expr]]:
    """The items a registry batch is interned by (name, interner, expression over the batch): the HLA cells
    of the core loci as text (a locus's two columns share one interner), the attribute cells as they are,
    and the KIR cells as one pattern per row (:func:`_kir_pattern`)."""
    items: list[tuple[str, _Interner, pl.Expr]] = []
    for loc, (c1, c2) in layout.hla_pair.items():
        if loc in CORE_LOCI:
            items += [(c1, cells[c1], pl.col(c1).cast(pl.String)), (c2, cells[c2], pl.col(c2).cast(pl.String))]
    for loc, c in layout.hla_single.items():
        if loc in CORE_LOCI:
            items.append((c, cells[c], pl.col(c).cast(pl.String)))
    if layout.gl_col:
        items.append((layout.gl_col, cells[layout.gl_col], pl.col(layout.gl_col).cast(pl.String)))
    for c in layout.attrs.values():
        items.append((c, cells[c], pl.col(c)))
    if layout.kir_whole is not None:
        items.append((KIR_ITEM, kir, pl.col(layout.kir_whole).cast(pl.String)))
    elif layout.kir_cols:
        items.append((KIR_ITEM, kir, _kir_pattern(batch, layout.kir_cols)))
    return items


def key_interners(layout: RegistryLayout) -> tuple[dict[str, _Interner], _Interner]:
    """Interners that only number the distinct values (nothing is read), shared as :class:`RegistryReader`
    shares its own: for a prepared registry (:mod:`haplomatch.prepared`)."""
    def keep(xs: list) -> list:
        return [None] * len(xs)

    cells: dict[str, _Interner] = {}
    for c1, c2 in layout.hla_pair.values():
        cells[c1] = cells[c2] = _Interner(keep)
    for c in (*layout.hla_single.values(), *([layout.gl_col] if layout.gl_col else []), *layout.attrs.values()):
        cells[c] = _Interner(keep)
    return cells, _Interner(keep)


def _kir_pattern(batch: pl.DataFrame, cols: tuple[str, ...]) -> pl.Expr:
    """An expression standing for a row's KIR cells: an integer (base 3: null, 0, 1 per column) when every KIR
    column is numeric with values 0/1/null, else the cells joined as text. The interner reads each distinct
    pattern once (:func:`_kir_cells` turns it back into cells)."""
    numeric = all(batch.schema[c].is_integer() or batch.schema[c] == pl.Boolean for c in cols)
    if numeric and len(cols) <= 39:
        codes = [pl.col(c).cast(pl.Int64) for c in cols]
        # every value 0, 1 or null: for integers, the smallest at least 0 and the largest at most 1
        lo_hi = batch.select([x for j, e in enumerate(codes)
                              for x in (e.min().alias(f"lo{j}"), e.max().alias(f"hi{j}"))]).row(0)
        ok = all(v is None or 0 <= v <= 1 for v in lo_hi)
        if ok:
            return sum((e.fill_null(-1) + 1) * (3 ** j) for j, e in enumerate(codes)).cast(pl.Int64)
    exprs = []
    for c in cols:
        e = pl.col(c)
        dt = batch.schema[c]
        if dt == pl.Boolean:
            e = e.cast(pl.Int8)
        elif dt.is_float():
            e = pl.when(e == e.round(0)).then(e.cast(pl.Int64).cast(pl.String)).otherwise(e.cast(pl.String))
        exprs.append(e.cast(pl.String).fill_null(""))
    return pl.concat_str(exprs, separator="\x1f")


def _kir_cells(pattern: Any, n: int) -> list[str]:
    """Back from a :func:`_kir_pattern` value to the cells (as text)."""
    if pattern is None:
        return [""] * n
    if isinstance(pattern, int):
        out = []
        for _ in range(n):
            out.append(("", "0", "1")[pattern % 3])
            pattern //= 3
        return out
    return str(pattern).split("\x1f")


# --------------------------------------------------------------------------------------------- fast facts

@dataclass
class _PatientLocus:
    """The patient's two slots at a locus and the comparison keys they can have (key → index)."""

    s1: str
    s2: str
    keys: dict[str, int]


#: Patient keys per locus up to which every renamed row of one-key donor slots is counted ahead
_PRECOUNT_KEYS = 4


class FastFacts:
    """The fast path for one patient (see the module docstring): the facts the ranking reads, for a batch."""

    _DENSE = 16  # renamed slot codes below this use a dense lookup table

    def __init__(self, ref, patient: Person, slots: _SlotTable, settings=None) -> None:
        from haplomatch.pairfacts import FactSettings

        self.ref = ref
        self.settings = settings or FactSettings()
        self.slots = slots
        rec = person_record(patient)
        self.patient_rec = rec
        pids = {loc: slots.ids([rec[f"{loc}_1"], rec[f"{loc}_2"]]) for loc in CORE_LOCI}
        self._pids = pids
        self.loc: dict[str, _PatientLocus] = {}
        for loc in CORE_LOCI:
            keys: dict[str, int] = {}
            for i in pids[loc]:
                for k in slots.all_keys[i]:
                    keys.setdefault(k, len(keys))
            self.loc[loc] = _PatientLocus(rec[f"{loc}_1"] or "", rec[f"{loc}_2"] or "", keys)
        self._quads: dict[str, dict[int, int]] = {loc: {} for loc in CORE_LOCI}
        self._quad_rows: dict[str, list[dict]] = {loc: [] for loc in CORE_LOCI}
        self._dense: dict[str, np.ndarray] = {loc: np.full(self._DENSE * self._DENSE, -1, dtype=np.int64)
                                              for loc in CORE_LOCI}
        self._qa: dict = {}
        self._tce: dict[int, int] = {}
        self._tce_rows: list[dict] = []
        self._tce_table = pl.DataFrame(schema=_TCE_SCHEMA)  # one row per computed (renamed row, TCE groups)
        self._tce_dense = np.full(0, -1, dtype=np.int64)
        self._n_slots = 0
        self.base: dict[str, np.ndarray] = {}
        self.kid = np.zeros(0, dtype=np.int64)
        self._tcl: list[int] = []
        self._tcodes: dict[tuple, int] = {}
        self._kir_table: tuple[int, pl.DataFrame] | None = None
        self._splits: dict[str, dict[int, tuple[list[str], frozenset[str]]]] = {loc: {} for loc in CORE_LOCI}
        self._small_counted = False

    # -- per slot id arrays (grown with the slot table) --
    def _arrays(self) -> None:
        """Per slot id: ``base`` (renamed code of a lone slot: 0 untyped, 1 a key the patient lacks, 3+i the
        patient's key i, -1 another slot), ``kid`` (key id of a one-key slot) and ``tce`` (code of the DPB1
        TCE group and expression). Extended as the slot table grows."""
        n = len(self.slots.strings)
        start = self._n_slots
        if n == start:
            return
        kid, kids = self.slots.key_ids()
        kid = kid[start:n]
        for loc, p in self.loc.items():
            add = np.where(kid >= 0, 1, -1).astype(np.int64)
            for k, i in p.keys.items():
                if k in kids:
                    add[kid == kids[k]] = 3 + i
            if start == 0:
                add[0] = 0
            self.base[loc] = np.concatenate([self.base[loc], add]) if start else add
        self.kid = np.concatenate([self.kid, kid]) if start else kid
        self._tcl += [-1] * (n - start)  # set by _refresh_tce once the slot's facts are known
        self._refresh_tce((np.nonzero(self.slots.has_facts[start:n])[0] + start).tolist())
        self._n_slots = n

    def _refresh_tce(self, ids) -> None:
        """The TCE codes of slots ``ids`` (their facts known)."""
        col = "tce_v2" if self.settings.compat.tce_version == "v2" else "tce_v1"
        g, x, strings = self.slots.tce[col], self.slots.tce["expressed"], self.slots.strings
        for i in ids:
            self._tcl[i] = self._tcodes.setdefault((g[i], x[i]) if strings[i] else ("",), len(self._tcodes))
        self.tce = np.array(self._tcl, dtype=np.int64)

    def _quad_array(self, loc: str, col: str) -> np.ndarray:
        rows = self._quad_rows[loc]
        hit = self._qa.get((loc, col))
        if hit is None or hit[0] != len(rows):
            hit = (len(rows), np.array([r[col] for r in rows], dtype=bool if col == "typed" else np.int64))
            self._qa[(loc, col)] = hit
        return hit[1]

    def _codes(self, loc: str, s1: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The renamed donor slots: 0 untyped, 1/2 a key the patient lacks, 3+i the patient's key i, else
        (ambiguous, null allele, or beside one) 3 + (patient keys) + slot id = the slot as it is."""
        base, kid = self.base[loc], self.kid
        b1, b2 = base[s1], base[s2]  # 0 untyped, 1 key the patient lacks, 3+i patient key i, -1 other
        ok = (b1 >= 0) & (b2 >= 0)
        ns = 3 + len(self.loc[loc].keys)
        c1 = np.where(ok, b1, ns + s1)
        c1[s1 == 0] = 0
        other = (b1 == 1) & (kid[s1] == kid[s2])
        c2 = np.where(ok, np.where((b2 == 1) & ~other, 2, b2), ns + s2)
        c2[s2 == 0] = 0
        return c1, c2

    def _slot_name(self, loc: str, code: int) -> str:
        ns = 3 + len(self.loc[loc].keys)
        if code == 0:
            return ""
        if code in (1, 2):
            return f"\x00#{code}"
        if code < ns:
            return "\x00=" + next(k for k, i in self.loc[loc].keys.items() if i == code - 3)
        return self.slots.strings[code - ns]

    def _reduced(self, loc: str, a: int, b: int) -> tuple[str, str] | None:
        """The donor slots of a renamed row of two typed slots kept as they are (ambiguous: several keys) as
        synthetic slots with fewer keys and the same counts, or None (a slot untyped, not read, or all null).

        The counts depend only on which keys each slot can have, through Hall's condition on the equality
        patterns of the four slots: the size of a union of key sets, compared with at most 4 blocks. Keys the
        patient cannot have fall into three classes (in donor slot 1 only, in 2 only, in both), every key of a
        class in the same slots (untyped slots, wildcards, hold them all); a class counted as at most 4 keys
        leaves every such comparison as it is. So ``A*02`` (hundreds of keys) against ``A*02:01/A*02:05``
        is counted once, with a dozen keys, for every donor whose row reduces to the same."""
        ns = 3 + len(self.loc[loc].keys)
        if a < ns or b < ns:
            return None
        i, j, sl = a - ns, b - ns, self.slots
        if sl.error[i] is not None or sl.error[j] is not None or sl.absent[i] or sl.absent[j]:
            return None
        (p1, f1), (p2, f2) = self._split(loc, i), self._split(loc, j)
        both = len(f1 & f2)

        def tokens(tag: str, n: int) -> list[str]:
            return [f"\x00{tag}{t}" for t in range(min(n, 4))]

        r1 = sorted(p1 + tokens("b", both) + tokens("x", len(f1) - both))
        r2 = sorted(p2 + tokens("b", both) + tokens("y", len(f2) - both))
        return "\x00~" + "\x1f".join(r1), "\x00~" + "\x1f".join(r2)

    def _split(self, loc: str, i: int) -> tuple[list[str], frozenset[str]]:
        """The keys of slot ``i`` the patient has at ``loc``, and the others (remembered per slot)."""
        hit = self._splits[loc].get(i)
        if hit is None:
            pk = self.loc[loc].keys
            ks = set(self.slots.all_keys[i])
            hit = ([k for k in ks if k in pk], frozenset(k for k in ks if k not in pk))
            self._splits[loc][i] = hit
        return hit

    @staticmethod
    def _synthetic_keys(name: str) -> list[str]:
        """The keys of a synthetic slot: ``\\x00=key`` (a patient key), ``\\x00~k1…`` (reduced), ``\\x00#1``."""
        if name.startswith("\x00="):
            return [name[2:]]
        if name.startswith("\x00~"):
            return name[2:].split("\x1f") if len(name) > 2 else []
        return [name]

    def _count_new(self, todo: dict[str, list[tuple[int, int]]]) -> None:
        """Count renamed four-slot rows not seen before (all loci at once), with ``compat``'s own code."""
        frames, synth = [], set()
        for loc, new in todo.items():
            pt = self.loc[loc]
            d1, d2 = [], []
            for a, b in new:
                r = self._reduced(loc, a, b)
                d1.append(r[0] if r else self._slot_name(loc, a))
                d2.append(r[1] if r else self._slot_name(loc, b))
            q = pl.DataFrame({"s_p1": [pt.s1] * len(new), "s_p2": [pt.s2] * len(new), "s_d1": d1, "s_d2": d2},
                             schema={"s_p1": pl.String, "s_p2": pl.String, "s_d1": pl.String, "s_d2": pl.String})
            frames.append(q)
            synth |= {x for x in d1 + d2 if x.startswith("\x00")}
        synth_l = sorted(synth)
        extra = pl.DataFrame({
            "slot": synth_l, "keys": [self._synthetic_keys(x) for x in synth_l],
            "absent": [False] * len(synth_l), "error": [None] * len(synth_l),
        }, schema={"slot": pl.String, "keys": pl.List(pl.String), "absent": pl.Boolean, "error": pl.String})
        allq = pl.concat(frames).unique()
        # only the slots these rows name (the table holds every slot of the registry)
        named = pl.concat([allq[c] for c in ("s_p1", "s_p2", "s_d1", "s_d2")]).unique().alias("slot").to_frame()
        keys = pl.concat([self.slots.keys_table.select("slot", "keys", "absent", "error")
                          .join(named, on="slot", how="semi"), extra], how="vertical_relaxed")
        t = _compat._locus_table(allq, keys, None, self.settings.compat)
        cols = [*[f"{d}_{m}" for d in _DIRS for m in ("min", "max")], "typed", "error"]
        by = {(r["s_p1"], r["s_p2"], r["s_d1"], r["s_d2"]): r
              for r in t.select("s_p1", "s_p2", "s_d1", "s_d2", *cols).iter_rows(named=True)}
        for (loc, new), q in zip(todo.items(), frames):
            for (a, b), x, y in zip(new, q["s_d1"].to_list(), q["s_d2"].to_list()):
                r = by[(self.loc[loc].s1, self.loc[loc].s2, x, y)]
                i = len(self._quad_rows[loc])
                self._quads[loc][(a << 32) | b] = i
                self._quad_rows[loc].append({c: r[c] for c in cols})
                if a < self._DENSE and b < self._DENSE:
                    self._dense[loc][a * self._DENSE + b] = i

    def _lookup(self, loc: str, c1: np.ndarray, c2: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Per donor, the row of the locus's table of counted renamed rows (-1 if not yet counted), and the
        renamed rows not yet counted."""
        D = self._DENSE
        small = (c1 < D) & (c2 < D)
        out = np.full(len(c1), -1, dtype=np.int64)
        if small.all():
            out = self._dense[loc][c1 * D + c2]
        else:
            out[small] = self._dense[loc][c1[small] * D + c2[small]]
            big = ~small
            key = (c1[big] << 32) | c2[big]
            uniq, inv = np.unique(key, return_inverse=True)
            known = self._quads[loc]
            out[big] = np.array([known.get(int(k), -1) for k in uniq.tolist()], dtype=np.int64)[inv]
        miss = out < 0
        if not miss.any():
            return out, []
        todo = np.unique((c1[miss] << 32) | c2[miss])
        return out, [(int(k) >> 32, int(k) & 0xFFFFFFFF) for k in todo.tolist()]

    def _tce_columns(self, s1: np.ndarray, s2: np.ndarray, qidx: np.ndarray, want: list[str]) -> list[pl.Series]:
        """DPB1 TCE facts: ``compat``'s code on one representative per (renamed row, donor slot TCE groups)."""
        done = self.slots.ensure_facts(np.concatenate([s1, s2, np.array(self._pids["DPB1"], dtype=np.int64)]))
        if done.size:
            self._refresh_tce(done.tolist())
        t1, t2 = self.tce[s1], self.tce[s2]
        k = 64 if self.tce.max() < 63 else int(self.tce.max()) + 2
        cls = (qidx * k + t1) * k + t2
        # a dense table answers the classes seen before; the others are found with np.unique
        if cls.size and self._tce_dense.size <= cls.max():
            grown = np.full(int(cls.max()) + 1 + 4096, -1, dtype=np.int64)
            grown[:self._tce_dense.size] = self._tce_dense
            self._tce_dense = grown
        idx = self._tce_dense[cls]
        miss = idx < 0
        if miss.any():
            mc = cls[miss]
            uniq, first = np.unique(mc, return_index=True)
            at = np.nonzero(miss)[0][first]
            new = [(int(c), int(i)) for c, i in zip(uniq.tolist(), at.tolist()) if int(c) not in self._tce]
        else:
            new = []
        if new:
            rows, pt = self._quad_rows["DPB1"], self.loc["DPB1"]
            t = pl.DataFrame([{
                "s_p1": pt.s1, "s_p2": pt.s2,
                "s_d1": self.slots.strings[s1[i]] or "", "s_d2": self.slots.strings[s2[i]] or "",
                **{f"{d}_{m}": rows[qidx[i]][f"{d}_{m}"] for d in ("gvh", "hvg") for m in ("min", "max")},
                "typed": rows[qidx[i]]["typed"],
            } for _, i in new], schema={"s_p1": pl.String, "s_p2": pl.String, "s_d1": pl.String, "s_d2": pl.String,
                                         "gvh_min": pl.Int64, "gvh_max": pl.Int64, "hvg_min": pl.Int64,
                                         "hvg_max": pl.Int64, "typed": pl.Boolean})
            facts = self.slots.facts if self.slots.facts is not None else slot_tce_facts(self.ref, [])
            res = _compat._dpb1_tce(t, facts, self.settings.compat)
            by = {(r["s_d1"], r["s_d2"]): r for r in res.iter_rows(named=True)}
            for (c, _), a, b in zip(new, t["s_d1"].to_list(), t["s_d2"].to_list()):
                self._tce[c] = len(self._tce_rows)
                self._tce_rows.append({x: by[(a, b)][x] for x in _TCE_COLUMNS})
            self._tce_table = pl.DataFrame(self._tce_rows, schema=_TCE_SCHEMA)
        if miss.any():
            for c, i in self._tce.items():
                if c < self._tce_dense.size:
                    self._tce_dense[c] = i
            idx = self._tce_dense[cls]
        return self._tce_table.select(want)[idx].get_columns()

    def _kir_facts(self, batch: _Batch, rows: np.ndarray, want: list[str]) -> list[pl.Series]:
        """Donor KIR facts, computed once per distinct KIR pattern and gathered."""
        from haplomatch import kirscores

        it = batch.reader._kir
        if batch.kir is None:
            table = kirscores.kir_genotype_columns(pl.DataFrame(
                {f"donor_{c}": pl.Series([None], dtype=schema()[c]) for c in _KIR_PEOPLE}), "donor_",
                tel_2ds4=self.settings.nk.tel_2ds4)
            return [pl.repeat(table[c][0], len(rows), dtype=table.schema[c], eager=True).alias(c) for c in want]
        if self._kir_table is None or self._kir_table[0] != len(it):
            people = pl.DataFrame({f"donor_{c}": pl.Series([(v[0] or {}).get(c) for v in it.values],
                                                           dtype=schema()[c]) for c in _KIR_PEOPLE})
            self._kir_table = (len(it), kirscores.kir_genotype_columns(people, "donor_",
                                                                        tel_2ds4=self.settings.nk.tel_2ds4))
        return self._kir_table[1].select(want)[batch.kir[rows]].get_columns()

    def _quad_index(self, batch: _Batch, rows: np.ndarray, loci) -> dict[str, np.ndarray]:
        """Per locus, each donor's row of the table of counted renamed four-slot rows (new rows counted)."""
        qidx: dict[str, np.ndarray] = {}
        codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        todo: dict[str, list[tuple[int, int]]] = {}
        if not self._small_counted:
            # every renamed row of one-key slots (untyped, a key the patient lacks, a patient key) counted at
            # once, so that later batches rarely meet a row not counted (each count is a compat pass)
            self._small_counted = True
            for loc in CORE_LOCI:
                ns = 3 + len(self.loc[loc].keys)
                if ns > _PRECOUNT_KEYS + 3:  # an ambiguous patient typing: too many rows to count ahead
                    continue
                firsts, seconds = [0, 1, *range(3, ns)], [0, 1, 2, *range(3, ns)]
                todo[loc] = [(a, b) for a in firsts for b in seconds if ((a << 32) | b) not in self._quads[loc]]
            todo = {loc: new for loc, new in todo.items() if new}
        # all the batch's rows in order (the common case): its slot arrays as they are, not gathered
        whole = rows.size == batch.n and bool((np.diff(rows) == 1).all()) and (rows.size == 0 or rows[0] == 0)

        def renamed(loc: str) -> tuple[np.ndarray, np.ndarray]:
            s1, s2 = batch.sid[loc]
            return self._codes(loc, s1, s2) if whole else self._codes(loc, s1[rows], s2[rows])

        for loc in loci:
            codes[loc] = renamed(loc)
            qidx[loc], missing = self._lookup(loc, *codes[loc])
            if missing:
                todo[loc] = sorted(set(todo.get(loc, [])) | set(missing)) if loc in todo else missing
        if todo:
            self._count_new(todo)
            for loc in todo:
                if loc in codes:
                    qidx[loc], _ = self._lookup(loc, *codes[loc])
        return qidx

    def classes(self, batch: _Batch, rows: np.ndarray, cols: set[str]) -> np.ndarray | None:
        """A class code per donor of ``rows``: donors of one class have equal values of the columns ``cols``
        (⊆ :data:`FAST_COLUMNS`), as the class combines the ids those columns are computed from (per locus
        the counted four-slot row, the DPB1 TCE codes, the attribute cell ids, the KIR pattern id). None when
        a column reads the donor id (no two donors share a class)."""
        self._arrays()
        grades, dfe, counts = _grade_exprs(), _donor_factor_exprs(), set(_count_columns())
        loci: set[str] = set()
        attrs: set[str] = set()
        kir = tce = False
        for c in cols:
            if c in _CONSTANTS:
                continue
            if c in counts:
                loci.add(c.split("_")[1])
            elif c in grades:
                loci |= {r.split("_")[1] for r in grades[c].meta.root_names()}
            elif c in _TCE_COLUMNS:
                tce = True
                loci.add("DPB1")
            elif c in _KIR_FACTS:
                kir = True
            elif c in dfe:
                for r in dfe[c].meta.root_names():
                    if r.startswith("patient_"):
                        continue
                    name = r[len("donor_"):]
                    if name == "id":
                        return None
                    src = _ATTR_SOURCE.get(name)
                    if src in batch.attr:
                        attrs.add(src)
                    elif name in _KIR_PEOPLE and batch.kir is not None:
                        kir = True
                    # else (relation, a column the registry lacks): the same for every donor
            else:
                return None
        parts: list[tuple[np.ndarray, int]] = []
        qidx = self._quad_index(batch, rows, sorted(loci))
        parts += [(qidx[loc], len(self._quad_rows[loc])) for loc in sorted(loci)]
        if tce:
            s1, s2 = batch.sid["DPB1"][0][rows], batch.sid["DPB1"][1][rows]
            done = self.slots.ensure_facts(np.concatenate([s1, s2, np.array(self._pids["DPB1"], dtype=np.int64)]))
            if done.size:
                self._refresh_tce(done.tolist())
            parts += [(self.tce[s1], len(self._tcodes)), (self.tce[s2], len(self._tcodes))]
        for src in sorted(attrs):
            it, ids = batch.attr[src]
            parts.append((ids[rows], len(it)))
        if kir:
            parts.append((batch.kir[rows], len(batch.reader._kir)))
        code = np.zeros(len(rows), dtype=np.int64)
        card = 1
        for a, k in parts:
            k = max(int(k), 1)
            if card * k >= 2 ** 62:
                _, code = np.unique(code, return_inverse=True)
                card = int(code.max()) + 1 if code.size else 1
            code = code * k + a
            card *= k
        return code

    def facts(self, batch: _Batch, rows: np.ndarray, need: set[str]) -> pl.DataFrame:
        """The columns ``need`` (⊆ :data:`FAST_COLUMNS`) for the donors ``rows`` of ``batch``."""
        self._arrays()
        n = len(rows)
        out: list[pl.Series] = []
        grades = {k: e for k, e in _grade_exprs().items() if k in need}
        # count columns wanted: asked for, or read by a grade or by the DPB1 TCE facts
        counts = {c for c in need if c in set(_count_columns())}
        for e in grades.values():
            counts |= set(e.meta.root_names())
        tce_want = [c for c in _TCE_COLUMNS if c in need]
        if tce_want:
            counts |= {"gvh_DPB1_min", "gvh_DPB1_max", "hvg_DPB1_min", "hvg_DPB1_max", "typed_DPB1"}
        point = set()
        for c in list(counts):
            parts = c.split("_")
            if len(parts) == 2 and parts[0] in _DIRS:  # a point count reads the range
                point.add(c)
                counts |= {f"{c}_min", f"{c}_max"}
        qidx = self._quad_index(batch, rows, [loc for loc in CORE_LOCI
                                              if any(c.split("_")[1] == loc for c in counts)])
        for loc, idx in qidx.items():
            for d in _DIRS:
                for m in ("min", "max"):
                    if f"{d}_{loc}_{m}" in counts:
                        out.append(pl.Series(f"{d}_{loc}_{m}", self._quad_array(loc, f"{d}_{m}")[idx]))
            if f"typed_{loc}" in counts:
                out.append(pl.Series(f"typed_{loc}", self._quad_array(loc, "typed")[idx]))
            if f"error_{loc}" in counts:
                out.append(_take([r["error"] for r in self._quad_rows[loc]], idx, pl.String, f"error_{loc}"))
        if tce_want:
            out += self._tce_columns(batch.sid["DPB1"][0][rows], batch.sid["DPB1"][1][rows], qidx["DPB1"], tce_want)
        kir_want = [c for c in _KIR_FACTS if c in need]
        if kir_want:
            out += self._kir_facts(batch, rows, kir_want)
        df = pl.DataFrame(out) if out else pl.DataFrame({"__n": np.zeros(n, dtype=np.int8)})
        exprs = [pl.when(pl.col(f"{c}_min") == pl.col(f"{c}_max")).then(pl.col(f"{c}_min")).cast(pl.Int64).alias(c)
                 for c in sorted(point)]
        exprs += list(grades.values())
        # donor factors: their inputs (donor_/patient_ people columns), then the expressions
        dfe = {k: e for k, e in _donor_factor_exprs().items() if k in need}
        inputs = set().union(*(set(e.meta.root_names()) for e in dfe.values())) if dfe else set()
        rec = self.patient_rec
        for c in sorted(inputs):
            if c.startswith("patient_"):
                name = c[len("patient_"):]
                df = df.with_columns(pl.lit(rec[name], schema()[name]).alias(c))
            else:
                df = df.with_columns(batch.column(c[len("donor_"):], rows).alias(c))
        exprs += list(dfe.values())
        exprs += [pl.lit(v, dt).alias(c) for c, (v, dt) in _CONSTANTS.items() if c in need]
        if exprs:
            df = df.with_columns(exprs)
        return df.select([c for c in df.columns if c in need])


# ------------------------------------------------------------------------------------------------ rules

def registry_rules(profile: str | None, rules_path=None, columns: dict | None = None, overrides=None):
    """The rule set: a registry profile (``unrelated``), a family profile, or the user's own file."""
    from haplomatch.ranking import rules_for
    from haplomatch.rulefiles import rules_path as shipped
    from haplomatch.rules import load_rules

    if rules_path is None and profile in PROFILE_FILES:
        return load_rules(shipped(PROFILE_FILES[profile]), columns or {}, overrides)
    return rules_for(profile, rules_path, columns, overrides)


def _roots(rules, effects: tuple[str, ...]) -> set[str]:
    out: set[str] = set()
    for r in rules.rules:
        if r.effect in effects:
            out |= set(r.condition().meta.root_names())
            if r.key:
                out |= set(r.key_expr().meta.root_names())
    return out


def needed_columns(rules) -> set[str]:
    """Every pair-fact column the rules read (all effects), with the ranking's tie-breakers."""
    return _roots(rules, ("exclude", "tier", "criterion", "flag")) | {"id", "relation", "donor_age"}


def unused_antibodies(rules) -> str | None:
    """The warning for an antibody report given to rules that do not rank on a donor-specific-antibody fact
    (the ``unrelated`` profile only flags DSA): the DSA are then reported, never silently taken as ranked on."""
    if any(c.startswith("dsa") for c in ranking_columns(rules)):
        return None
    mine = "(a rule file of yours that reads dsa_max_mfi or dsa_category in an exclusion or criterion would rank on them)"
    if any(c.startswith("dsa") for c in needed_columns(rules)):
        return (f"an antibody report was given: the {rules.profile} rules flag donors with donor-specific antibodies "
                f"but do not rank on them {mine}")
    return (f"an antibody report was given, but the {rules.profile} rules read no donor-specific-antibody fact: "
            f"each donor's DSA are in its facts and summary and do not change the ranking {mine}")


def ranking_columns(rules) -> set[str]:
    """The columns that decide the order: exclusions, tiers, criteria, tie-breakers (not flags)."""
    return _roots(rules, ("exclude", "tier", "criterion")) | {"id", "relation", "donor_age"}


def _ordering_rules(rules):
    """The rule set without its flags: the same order, fewer columns to compute."""
    return dataclasses.replace(rules, rules=tuple(r for r in rules.rules if r.effect != "flag"))


# ------------------------------------------------------------------------------------------------ search

@dataclass
class SearchResult:
    """The best donors (ranked and explained), their full pair facts, and the row accounting."""

    patient: str
    profile: str
    release: str
    rules_file: str
    candidates: tuple  # ranking.Candidate, best first
    facts: pl.DataFrame  # general pair facts of the best donors, ranked (``rank``), with the registry ``row``
    rows_in: int
    ranked: int
    rejected: int
    rejects: pl.DataFrame  # row, donor_id, reason (at most ``max_rejects`` rows)
    batches: int
    seconds: float
    path: str  # "fast" or "general"
    warnings: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    #: each batch's seconds, from reading it to keeping its best (the first reads every new cell value)
    batch_seconds: tuple[float, ...] = ()
    #: what was searched: the registry file, or the prepared registry with when and from what it was prepared
    registry: str = ""
    #: why a mismatch count of the best donors is a range and what typing would settle it (as ``rank`` says)
    notes: tuple[str, ...] = ()
    #: peak resident memory (MB) of the largest share process of an ``OpenRegistry(workers=...)`` (None: none)
    worker_peak_mb: float | None = None
    #: the warnings (also in ``warnings``) about this patient's search rather than the registry: an antibody
    #: report the rules do not rank on (shown with the ranking)
    search_warnings: tuple[str, ...] = ()

    def summary_line(self) -> str:
        return (f"{self.registry}: " if self.registry else "") + (
                f"rows in: {self.rows_in:,}; donors ranked: {self.ranked:,}; rejected: {self.rejected:,}; "
                f"best {len(self.candidates)} returned; {self.batches} batch(es) in {self.seconds:.1f} s "
                f"({self.rows_in / max(self.seconds, 1e-9):,.0f} donors/s; {self.path} facts)")


@dataclass(frozen=True)
class _Best:
    """The patient and the best donors as persons: what ``ranking``'s range warnings read of a family."""

    patient: Person
    donors: dict[str, Person]

    def person(self, pid: str) -> Person:
        return self.donors[pid]


def _range_notes(ref, patient: Person, people: pl.DataFrame, facts: pl.DataFrame, compat) -> list[str]:
    """``rank``'s warnings for counts left as ranges, for the best donors: once per locus for the patient's
    typing, per donor for its own (the donors' typings as read, an untyped second slot left open)."""
    from haplomatch.hlatyping import parse_cell
    from haplomatch.ranking import _range_warnings

    donors: dict[str, Person] = {}
    for r in people.iter_rows(named=True):
        hla = {}
        for loc in CORE_LOCI:
            t, _ = parse_cell(r.get(f"{loc}_1"), loc, second=r.get(f"{loc}_2") or "", missing_second="untyped")
            if t is not None:
                hla[loc] = t
        donors[r["id"]] = Person(id=r["id"], relation="unrelated", hla=hla)
    return _range_warnings(ref, _Best(patient, donors), facts, compat)


def _owned(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with its donor ids copied out of the batch they came from: a few rows gathered from a polars text
    column keep that column's whole buffer alive, so the best donors (or rejected rows) kept from every batch
    would keep every batch's ids in memory, and a registry larger than memory would not stream."""
    cols = [c for c in ("id", "donor_id") if c in df.columns and df.schema[c] == pl.String]
    return df.with_columns(pl.Series(c, df[c].to_list(), dtype=pl.String) for c in cols) if cols else df


def _ragged(b: _Batch, ragged: dict[int, int], header: int, start: int) -> _Batch:
    """``b`` with its rows that have a wrong number of cells (``ragged``: 1-based registry row -> cells)
    rejected for that alone: their cells are misplaced, so what they read as says nothing."""
    at = np.array(sorted(ragged), dtype=np.int64) - 1 - start
    error = b.error.copy()
    error[at] = True
    msg: list[str | None] = [None] * b.n
    for k in at.tolist():
        n = ragged[k + 1 + start]
        msg[k] = f"row has {n} cell{'' if n == 1 else 's'}, the header has {header} (a missing or extra separator?)"
    idx = pl.Series(at, dtype=pl.UInt32)
    reason = [s.clone().scatter(idx, None) for s in b.reason] + [pl.Series("\x00cells", msg, dtype=pl.String)]
    return dataclasses.replace(b, error=error, reason=reason)


def _prefix_columns(df: pl.DataFrame, rules) -> tuple[pl.DataFrame, list[tuple[str, bool]]]:
    """``df`` with the first sort keys of ``ranking.evaluate`` (eligible, tier, the first criterion's keys)
    added, and their (name, descending) list."""
    from haplomatch.ranking import NO_TIER

    excl = [r.condition().fill_null(False) for r in rules.rules if r.effect == "exclude"]
    tiers = [pl.when(r.condition().fill_null(False)).then(pl.lit(r.tier)) for r in rules.rules if r.effect == "tier"]
    exprs = [(~pl.any_horizontal(excl) if excl else pl.lit(True)).alias("__p_eligible"),
             (pl.min_horizontal(tiers).fill_null(NO_TIER) if tiers else pl.lit(NO_TIER)).cast(pl.Int64).alias("__p_tier")]
    prefix = [("__p_eligible", True), ("__p_tier", False)]
    if rules.criteria_order:
        first = rules.criteria_order[0]
        for i, r in enumerate(x for x in rules.rules if x.criterion == first):
            name = f"__p_key{i}"
            if r.key:
                exprs.append(pl.when(r.condition()).then(r.key_expr().cast(pl.Float64)).alias(name))
                prefix.append((name, r.order == "desc"))
            else:
                c = r.condition()
                exprs.append(pl.when(c == r.prefer).then(0).when(c.is_null()).then(1).otherwise(2).alias(name))
                prefix.append((name, False))
    return df.with_columns(exprs), prefix


def _after(worst: dict, prefix: list[tuple[str, bool]]) -> pl.Expr:
    """Rows strictly after ``worst`` in ``evaluate``'s order on the prefix columns (nulls last)."""
    def worse(c: str, desc: bool) -> pl.Expr:
        w = worst[c]
        if w is None:
            return pl.lit(False)
        return pl.col(c).is_null() | ((pl.col(c) < w) if desc else (pl.col(c) > w))

    def equal(c: str) -> pl.Expr:
        w = worst[c]
        return pl.col(c).is_null() if w is None else (pl.col(c) == w).fill_null(False)

    expr, eq = pl.lit(False), pl.lit(True)
    for c, desc in prefix:
        expr = expr | (eq & worse(c, desc))
        eq = eq & equal(c)
    return expr


def _prefix_roots(rules) -> set[str]:
    """The pair-fact columns :func:`_prefix_columns` reads (exclusions, tiers, the first criterion)."""
    out = _roots(rules, ("exclude", "tier"))
    if rules.criteria_order:
        for r in rules.rules:
            if r.criterion == rules.criteria_order[0]:
                out |= set(r.condition().meta.root_names())
                if r.key:
                    out |= set(r.key_expr().meta.root_names())
    return out


def _unique(code: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(code)``'s first index, inverse and count of each distinct value (in increasing order), by
    counting when the values are few and small (class codes: no sort of the batch)."""
    m = int(code.max()) + 1 if code.size else 0
    if code.size == 0 or m > 4 * code.size or code.min() < 0:
        _, first, inv, counts = np.unique(code, return_index=True, return_inverse=True, return_counts=True)
        return first, inv.reshape(-1), counts
    counts = np.bincount(code, minlength=m)
    present = np.flatnonzero(counts)
    pos = np.full(m, -1, dtype=np.int64)
    pos[present] = np.arange(present.size)
    first = np.full(m, code.size, dtype=np.int64)
    np.minimum.at(first, code, np.arange(code.size))
    return first[present], pos[code], counts[present]


def _prefilter(fast: FastFacts, b: _Batch, rows: np.ndarray, rules, cols: set[str], kept: pl.DataFrame | None,
               top: int) -> np.ndarray:
    """The donors of ``rows`` that could still enter the best ``top``, found per class of donors with equal
    prefix columns (:meth:`FastFacts.classes`): a class strictly after the N-th best known donor on the prefix
    (``kept``'s last, or else the class where the batch's own donors, counted in prefix order, reach ``top``:
    at least ``top`` donors come before any donor after it) cannot."""
    if rows.size <= top:
        return rows
    cls = fast.classes(b, rows, cols)
    if cls is None:
        return rows
    first, inv, counts = _unique(cls)
    pf, prefix = _prefix_columns(fast.facts(b, rows[first], cols), rules)
    if kept is not None and kept.height >= top:
        worst = _prefix_columns(kept.tail(1), rules)[0].row(0, named=True)
    else:
        order = pf.with_columns(pl.Series("__n", counts)).sort(
            [c for c, _ in prefix], descending=[d for _, d in prefix], nulls_last=True, maintain_order=True)
        at = int(np.searchsorted(np.cumsum(order["__n"].to_numpy()), top))
        worst = order.row(at, named=True)
    ok = ~pf.select(_after(worst, prefix).alias("a"))["a"].to_numpy()
    return rows[ok[inv]]


class NoDonorReadError(InputError):
    """No row of the registry could be read: the problems name the first rows and why; ``rejects`` (row,
    donor_id, reason) holds every rejected row (up to ``max_rejects``), for the rejects file."""

    def __init__(self, problems: list[Problem], rejects: pl.DataFrame) -> None:
        super().__init__(problems)
        self.rejects = rejects


_SHOWN = 20  # rejected rows named in the error when none could be read


def _nothing_read(fname: str, rows_in: int, rejected: int, rejects: list[pl.DataFrame]) -> NoDonorReadError:
    rej = pl.concat(rejects) if rejects else pl.DataFrame(schema={"row": pl.Int64, "donor_id": pl.String,
                                                                   "reason": pl.String})
    if rows_in == 0:
        return NoDonorReadError([Problem("the registry has no donor rows", file=fname)], rej)
    probs = [Problem(f"none of the registry's {rows_in:,} rows could be read; the first:", file=fname,
                     fix="--rejects FILE lists every row and why")]
    probs += [Problem(r["reason"], file=fname, row=r["row"], value=r["donor_id"])
              for r in rej.head(_SHOWN).iter_rows(named=True)]
    if rejected > _SHOWN:
        probs.append(Problem(f"and {rejected - _SHOWN:,} more rows", file=fname))
    return NoDonorReadError(probs, rej)


def _bounds(rows: int, shares: int) -> list[int]:
    """Where each of ``shares`` equal shares of ``rows`` rows begins, and the end. (Equal: the general facts of
    the best, computed by the opening process alone, need every share's best, so they cannot overlap a scan.)"""
    return [round(k * rows / shares) for k in range(shares + 1)]


def _open_prepared(path: Path):
    """The prepared registry at ``path`` (:mod:`haplomatch.prepared`), None for a registry file; refused when
    its source file changed since it was prepared."""
    from haplomatch.prepared import is_prepared, open_prepared

    if not is_prepared(path):
        if path.is_dir():
            raise InputError.one("a directory, not a registry file nor a prepared registry (no manifest.json)",
                                 file=str(path))
        return None
    prepared = open_prepared(path)
    if prepared.source_state() == "changed":
        raise InputError.one(f"the registry {prepared.source} changed since it was prepared ({prepared.created}): "
                             f"a search would not see its donors as they are now", file=str(path),
                             fix=f"prepare it again: haplomatch prepare {prepared.source} --out {path}")
    return prepared


def _check_prepared(prepared, layout: RegistryLayout) -> None:
    """A prepared registry holds the items this version interns for its columns, or it is refused."""
    cells, kir = key_interners(layout)
    names = {n for n, _, _ in cell_items(layout, cells, kir, pl.DataFrame(schema={c: pl.String
                                                                                   for c in prepared.columns}))}
    if prepared.rows and names != set(prepared.items):
        raise InputError.one(f"prepared by another version of haplomatch ({prepared.version}): its columns are "
                             f"not those this version reads", file=str(prepared.path),
                             fix=f"prepare it again: haplomatch prepare {prepared.source} --out {prepared.path}")


class _Opened:
    """A registry opened for reading: its path, columns, layout, warnings, reader, and where its rows come from
    (a registry file, or a prepared registry)."""

    def __init__(self, ref, path: Path, settings, missing_second: str) -> None:
        from haplomatch.registryfile import open_registry

        self.path = path
        self.prepared = _open_prepared(path)
        self.source = open_registry(path) if self.prepared is None else None
        self.columns = list(self.source.columns if self.prepared is None else self.prepared.columns)
        self.layout, probs = registry_layout(self.columns, str(path))
        self.warnings = tuple(str(p) for p in probs)
        if self.prepared is not None:
            _check_prepared(self.prepared, self.layout)
            if self.prepared.source_state() == "missing":
                self.warnings += (f"{path}: prepared on {self.prepared.created} from {self.prepared.source}, which "
                                  f"is no longer there: the donors are the registry as it was then",)
        self.reader = RegistryReader(ref, self.layout, settings.compat, missing_second=missing_second)
        self._loaded = False
        self.rows_seen = 0

    def describe(self) -> str:
        """The registry searched, for the output: a prepared registry says when and from what file."""
        if self.prepared is None:
            return str(self.path)
        p = self.prepared
        return f"{self.path} (prepared {p.created} from {p.source}, {p.rows:,} rows)"

    def batches(self, batch_size: int, lap: Callable[[str], None],
                want: Callable[[int, int], bool] | None = None) -> Iterator[tuple[int, _Batch]]:
        """The rows read, ``batch_size`` at a time, each batch with the number of rows before it (``lap('read')``
        once a batch is read, before its cells). ``want(start, n)`` False: the batch's cells are not read
        (a share of the registry, :class:`OpenRegistry`). ``rows_seen``: the rows of the batches gone through."""
        start = 0
        if self.prepared is None:
            stream: Iterator = self.source.batches(batch_size)
        else:
            stream = (((n, ids, ident), ragged) for ids, ident, n, ragged in self.prepared.batches(batch_size))
        for batch, ragged in stream:
            lap("read")
            n = batch.height if self.prepared is None else batch[0]
            if want is not None and not want(start, n):
                start += n
                self.rows_seen = start
                continue
            if self.prepared is None:
                b = self.reader.read(batch)
            else:
                if not self._loaded:  # every distinct value read once, before any row
                    self.reader.load(self.prepared.dictionaries())
                    self._loaded = True
                b = self.reader.assemble(*batch)
            if ragged:
                b = _ragged(b, ragged, len(self.columns), start)
            yield start, b
            start += b.n
            self.rows_seen = start


class OpenRegistry(_Opened):
    """A registry (file or prepared) read once and kept in memory, for many searches
    (``search_registry(ref, patient, opened)``): each search then skips reading the rows and every
    patient-independent fact of their distinct cells (comparison keys, DPB1 TCE groups, KIR readings).

    About 300 bytes per donor in memory (10^6 donors: 300 MB). Searches share its caches: run one search at a
    time on it.

    ``workers`` > 1 cuts the rows into that many equal shares: this process keeps the first, and each other
    share is read and kept by a process of its own (:mod:`haplomatch.searchworkers`, started at opening, each
    loading the reference release), so a search runs on that many CPUs. Each share keeps its best ``top``; the
    best of those are the best of the registry (the order is total), and this process computes their general
    facts (one other process their NK facts, meanwhile) and explanations. ``close()`` (or ``with``) ends the
    processes. ``share`` (lo, hi, rows) is how such a process opens its rows."""

    def __init__(self, ref, path: str | Path, *, settings=None, missing_second: str = "homozygous",
                 batch_size: int = DEFAULT_BATCH, workers: int = 1,
                 share: tuple[int, int, int] | None = None) -> None:
        from haplomatch.pairfacts import FactSettings

        if workers < 1:
            raise HaplomatchError("workers must be at least 1")
        self.ref = ref
        self.settings = settings or FactSettings()
        self.missing_second = missing_second
        self.workers: tuple = ()
        super().__init__(ref, Path(path), self.settings, missing_second)
        known = share[2] if share is not None else (self.prepared.rows if self.prepared is not None else None)
        bounds = None
        if share is not None:
            bounds = [share[0], share[1]]
        elif workers > 1 and known is not None:  # the other shares' processes read while this one does
            bounds = _bounds(known, workers)
            self._start(bounds, batch_size)
        want = None if bounds is None else (lambda start, n: start < bounds[1] and start + n > bounds[0])
        try:
            with fewer_collections():  # reading every cell makes many small objects, as a search's first batch
                read = list(self.batches(batch_size, lambda name: None, want))
            self.rows = self.rows_seen  # every row of the registry, in every share
            if known is not None and self.rows != known:
                raise HaplomatchError(f"{path}: {self.rows:,} rows, not the {known:,} expected: the registry "
                                      f"changed while it was opened; open it again")
            if bounds is None and workers > 1:  # a registry file: its rows are counted by reading them
                bounds = _bounds(self.rows, workers)
                self._start(bounds, batch_size)
            if bounds is not None:
                lo, hi = bounds[0], bounds[1]
                read = [(max(s, lo), b.rows_between(max(lo - s, 0), min(hi - s, b.n)))
                        for s, b in read if s < hi and s + b.n > lo]
            self.share = (0, self.rows) if bounds is None else (bounds[0], bounds[1])
            self.kept: tuple[_Batch, ...] = tuple(b for _, b in read)
            self.starts: tuple[int, ...] = tuple(s for s, _ in read)  # rows before each kept batch
            # the patient-independent facts of the slots read, once: DPB1 TCE groups, comparison key ids
            dpb1 = [a for b in self.kept for a in b.sid["DPB1"]]
            if dpb1:
                self.reader.slots.ensure_facts(np.unique(np.concatenate(dpb1)))
            self.reader.slots.key_ids()
            # and the per-slot tables that the general facts of each search's best read (``_final``)
            from haplomatch.nk import remember_slots

            held = self.reader.slots.series().drop_nulls()
            _compat.remember_slots(ref, held, self.settings.compat)
            remember_slots(ref, held)
            for w in self.workers:  # each share read (its refusal raised here)
                w.ready()
        except BaseException:
            self.close()
            raise
        self.opened_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.rules_cache: dict[tuple, tuple] = {}

    def _start(self, bounds: list[int], batch_size: int) -> None:
        from haplomatch.searchworkers import ShareWorker

        n = len(bounds) - 1
        self.workers = tuple(ShareWorker(self.ref, self.path, self.settings, self.missing_second, batch_size,
                                         (bounds[k], bounds[k + 1], bounds[-1]), n) for k in range(1, n))

    def close(self) -> None:
        """End the share processes (nothing to do without ``workers``)."""
        for w in self.workers:
            w.close()
        self.workers = ()

    def __enter__(self) -> "OpenRegistry":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        shares = f" in {len(self.workers) + 1} shares, one per process," if self.workers else ""
        return f"{super().describe()}, read into memory{shares} {self.opened_at}"

    def rules_key(self, profile, rules_path, overrides, force_general: bool, antibodies) -> tuple | None:
        """The key under which a search's compiled rules are kept for the next patients (None: not kept, as
        with an antibody report); a rule file of the user's is keyed by its size and modification time."""
        if antibodies is not None:
            return None
        stamp = None
        if rules_path is not None:
            try:
                st = Path(rules_path).stat()
            except OSError:
                return None
            stamp = (str(Path(rules_path).resolve()), st.st_size, st.st_mtime_ns)
        return (profile, stamp, repr(sorted((overrides or {}).items())), force_general)

    def compatible(self, ref, settings, missing_second: str):
        """The settings a search of this registry uses; HaplomatchError when asked for others, or when this
        process holds only a share of the rows (opened in shares and closed: a search would miss the others)."""
        if self.share != (0, self.rows) and not self.workers:
            raise HaplomatchError(f"{self.path}: opened in shares and closed (this process holds rows "
                                  f"{self.share[0] + 1:,} to {self.share[1]:,} of {self.rows:,}): open it again")
        if ref is not self.ref:
            raise HaplomatchError("the registry was opened with another reference release object: open it again")
        if settings is not None and settings != self.settings:
            raise HaplomatchError("the registry was opened with other fact settings: open it again with these")
        if missing_second != self.missing_second:
            raise HaplomatchError(f"the registry was opened with missing_second={self.missing_second!r}")
        return self.settings


@dataclass
class _Share:
    """One share of a search (the whole registry, or one process's rows): its best ``top`` with the facts the
    ranking read, and its row accounting."""

    kept: pl.DataFrame | None  # the best: ranking columns + "__row" (1-based registry row), best first
    people: pl.DataFrame | None  # their people rows, same order, + "__row"
    rows_in: int
    ranked: int
    rejected: int
    rejects: list[pl.DataFrame]
    batches: int
    fast: bool
    timings: dict[str, float]
    per_batch: list[float]


def _scan(ref, patient: Person, opened: "_Opened", settings, *, profile: str, top: int, rules_path, overrides,
          antibodies, force_general: bool, max_rejects: int, batch_size: int = DEFAULT_BATCH,
          progress: Callable[[int, int], None] | None = None) -> "tuple[_Share, _Compiled | None]":
    """Steps 1 to 3 of the module docstring on the rows ``opened`` holds (all, or a share); with the compiled
    rules (None: no row ranked)."""
    from haplomatch.pairfacts import pair_facts
    from haplomatch.persons import people_frame
    from haplomatch.ranking import evaluate

    reader = opened.reader
    patient_df = people_frame([patient])
    fast: FastFacts | None = None
    rules = order_rules = None
    need: set[str] = set()
    pre_cols: set[str] = set()
    use_fast = False
    kept: pl.DataFrame | None = None  # the best so far: ranking columns + "__row"
    kept_people: pl.DataFrame | None = None  # their people rows (for the general facts at the end), same order
    rows_in = ranked = rejected = batches = 0
    rejects: list[pl.DataFrame] = []
    tm: dict[str, float] = {}
    clock = [time.perf_counter()]
    per_batch: list[float] = []

    def lap(name: str) -> None:
        now = time.perf_counter()
        tm[name] = tm.get(name, 0.0) + now - clock[0]
        clock[0] = now

    def general(donors: pl.DataFrame) -> pl.DataFrame:
        return pair_facts(ref, pair_frame(patient_df, donors), None, antibodies, settings)

    began = clock[0]
    stream = (zip(opened.starts, opened.kept) if isinstance(opened, OpenRegistry)
              else opened.batches(batch_size, lap))
    for start, b in stream:
        rows_in += b.n
        batches += 1
        if b.error.any():
            bad = pl.Series(b.error)
            rej = _owned(pl.DataFrame({"row": (np.nonzero(b.error)[0] + 1 + start).astype(np.int64),
                                       "donor_id": b.ids.filter(bad), "reason": b.reasons().filter(bad)}))
            rejected += rej.height
            if sum(r.height for r in rejects) < max_rejects:
                rejects.append(rej)
        rows = np.nonzero(~b.error)[0]
        lap("cells")
        if rows.size == 0:
            per_batch.append(clock[0] - began)
            began = clock[0]
            if progress:
                progress(rows_in, batches)
            continue
        if rules is None and isinstance(opened, OpenRegistry):
            cache_key = opened.rules_key(profile, rules_path, overrides, force_general, antibodies)
            hit = opened.rules_cache.get(cache_key) if cache_key is not None else None
            if hit is not None:  # compiled for an earlier patient: the rules and columns do not depend on one
                rules, order_rules, need, pre_cols, use_fast = hit
                if use_fast:
                    fast = FastFacts(ref, patient, reader.slots, settings)
        if rules is None:
            if not force_general and antibodies is None:
                # the rules compile against the fast columns (their types are pair_facts's) when they read
                # no other column; else (an InputError) against the general pair facts of one donor
                fast = FastFacts(ref, patient, reader.slots, settings)
                try:
                    rules = registry_rules(profile, rules_path,
                                           dict(fast.facts(b, rows[:1], set(FAST_COLUMNS)).schema), overrides)
                except InputError:
                    rules = None
            if rules is None:
                rules = _compile_on(ref, patient, b.people(rows[:1]), profile, rules_path, overrides, antibodies,
                                    settings).rules
            order_rules = _ordering_rules(rules)
            need = ranking_columns(rules)
            pre_cols = _prefix_roots(order_rules)
            # an antibody report changes only the dsa_* facts: the fast path (whose dsa_* are those of no report)
            # serves when the order reads none of them, and the final facts of the best read the report
            use_fast = (not force_general and need <= set(FAST_COLUMNS)
                        and (antibodies is None or not any(c.startswith("dsa") for c in need)))
            if use_fast and fast is None:
                fast = FastFacts(ref, patient, reader.slots, settings)
            if isinstance(opened, OpenRegistry) and cache_key is not None:
                opened.rules_cache[cache_key] = (rules, order_rules, need, pre_cols, use_fast)
        ranked += rows.size
        if use_fast:
            rows = _prefilter(fast, b, rows, order_rules, pre_cols, kept, top)
            facts = fast.facts(b, rows, need)
        else:
            facts = general(b.people(rows))
        facts = facts.with_columns(pl.Series("__row", rows + 1 + start, dtype=pl.Int64))
        lap("facts")
        # drop the donors that cannot enter: strictly after the N-th best known (kept, or a sample's N-th)
        withp, prefix = _prefix_columns(facts, order_rules)
        worst = None
        if kept is not None and kept.height >= top:
            worst = _prefix_columns(kept.tail(1), order_rules)[0].row(0, named=True)
        elif withp.height > 4 * top:
            step = max(1, withp.height // max(2000, 4 * top))
            sample = evaluate(withp.gather_every(step), order_rules)
            if sample.height >= top:
                worst = sample.row(top - 1, named=True)
        if worst is not None:
            withp = withp.filter(~_after(worst, prefix))
        facts = withp.drop([c for c, _ in prefix])
        cand = facts if kept is None else pl.concat([kept, facts.select(kept.columns)], how="vertical_relaxed")
        kept = _owned(evaluate(cand, order_rules).head(top).select(cand.columns))
        # the people rows of the best (for their general facts at the end): of this batch's donors among them,
        # read now (the batch is gone later); of the others, kept
        at = kept["__row"].to_numpy()
        new = at[at > start]
        people = _owned(b.people(new - 1 - start).with_columns(pl.Series("__row", new, dtype=pl.Int64)))
        if kept_people is not None:
            people = pl.concat([kept_people.filter(pl.col("__row").is_in(at[at <= start].tolist())),
                                people.select(kept_people.columns)])
        kept_people = kept.select("__row").join(people, on="__row", how="left", maintain_order="left")
        lap("select")
        per_batch.append(clock[0] - began)
        began = clock[0]
        if progress:
            progress(rows_in, batches)

    compiled = None if rules is None else _Compiled(rules, order_rules, need)
    return _Share(kept, kept_people, rows_in, ranked, rejected, rejects, batches, use_fast, tm, per_batch), compiled


@dataclass(frozen=True)
class _Compiled:
    """A search's compiled rules: all of them, those that order (:func:`_ordering_rules`), the columns read."""

    rules: Any
    order: Any
    need: set[str]


def _compile_on(ref, patient: Person, donors: pl.DataFrame, profile: str, rules_path, overrides, antibodies,
                settings) -> _Compiled:
    """The rules compiled against the general pair facts of ``patient`` and ``donors`` (one donor does)."""
    from haplomatch.pairfacts import pair_facts
    from haplomatch.persons import people_frame

    probe = pair_facts(ref, pair_frame(people_frame([patient]), donors), None, antibodies, settings)
    rules = registry_rules(profile, rules_path, dict(probe.schema), overrides)
    return _Compiled(rules, _ordering_rules(rules), ranking_columns(rules))


def _best(shares: "list[_Share]", compiled: _Compiled, top: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The best ``top`` of the shares' best (each share's, in row order of the shares), ranked as step 3 ranks
    a batch's donors with the best known, and their people rows (``__row``)."""
    from haplomatch.ranking import evaluate

    if len(shares) == 1:
        return shares[0].kept, shares[0].people
    cand = pl.concat([s.kept for s in shares], how="vertical_relaxed")
    kept = evaluate(cand, compiled.order).head(top).select(cand.columns)
    people = pl.concat([s.people for s in shares], how="vertical_relaxed")
    return kept, kept.select("__row").join(people, on="__row", how="left", maintain_order="left")


def _final(ref, patient: Person, kept: pl.DataFrame, kept_people: pl.DataFrame, compiled: _Compiled, antibodies,
           settings, workers=()) -> pl.DataFrame:
    """Step 4: the general pair facts of the best (``row``), ranked; the columns the ranking read checked equal
    to the streamed ones, and the order to the streamed order (a difference is a bug). With share processes
    (``workers``), one computes the NK facts while this one computes the HLA facts."""
    from haplomatch.pairfacts import pair_facts
    from haplomatch.persons import people_frame
    from haplomatch.ranking import evaluate

    donors = kept_people.drop("__row").with_columns(kept["__row"])
    nk_elsewhere = None
    if workers:
        from haplomatch import searchworkers

        pending = workers[0].nk_facts(patient, donors)
        nk_elsewhere = lambda: searchworkers.result(pending, "computing the NK facts of the best")  # noqa: E731
    full = pair_facts(ref, pair_frame(people_frame([patient]), donors), None, antibodies, settings,
                      nk_elsewhere=nk_elsewhere)
    full = full.rename({"donor___row": "row"})
    check = sorted(compiled.need & set(kept.columns))
    a = kept.select(check + ["__row"]).sort("__row")
    g = full.select(check + [pl.col("row").alias("__row")]).sort("__row")
    if not a.equals(g):
        diff = [c for c in check if not a[c].equals(g[c])]
        raise RuntimeError(f"internal error: fast and general pair facts disagree on {diff}")
    full = evaluate(full, compiled.rules)
    if full["id"].to_list() != kept["id"].to_list():
        raise RuntimeError("internal error: the streamed order differs from the order of the best donors")
    return full


@fewer_collections()  # the first batch makes a few hundred thousand small objects (cells read)
def search_registry(ref, patient: Person, registry: "str | Path | OpenRegistry", *, profile: str = "unrelated",
                    top: int = 10, rules_path=None, overrides=None, settings=None, antibodies=None,
                    batch_size: int = DEFAULT_BATCH, force_general: bool = False,
                    max_rejects: int = 100_000, missing_second: str = "homozygous",
                    progress: Callable[[int, int], None] | None = None) -> SearchResult:
    """Rank the donors of ``registry`` for ``patient``; return the best ``top`` (see the module docstring).

    ``registry`` is a registry file, a prepared registry (:mod:`haplomatch.prepared`), or an
    :class:`OpenRegistry` (read once, kept in memory for many searches; ``settings``, ``missing_second``
    and ``batch_size`` are then the ones it was opened with; opened with ``workers``, its shares are searched
    at once, one per process).

    ``force_general`` computes every batch with the general ``pair_facts`` (for tests and comparison).
    ``progress(rows_read, batches)`` is called after each batch (of this process's share). ``SearchResult.timings``
    gives the seconds per phase: ``read`` (scan), ``cells`` (interning and reading cells), ``facts``, ``select``
    (keeping the best), ``final`` (full facts and explanations of the best), ``wait`` (for the other shares'
    processes, once this one's share is done)."""
    from haplomatch.ranking import explained

    t0 = time.perf_counter()
    if top < 1:
        raise HaplomatchError("--top must be at least 1")
    if antibodies is not None:  # a report naming another patient is refused, not applied
        from haplomatch.antibodies import by_patient

        antibodies = by_patient(antibodies, [patient.id]).get(patient.id, [])
    if isinstance(registry, OpenRegistry):
        settings = registry.compatible(ref, settings, missing_second)
        opened = registry
    else:
        from haplomatch.pairfacts import FactSettings

        settings = settings or FactSettings()
        opened = _Opened(ref, Path(registry), settings, missing_second)
    options = dict(profile=profile, top=top, rules_path=rules_path, overrides=overrides, antibodies=antibodies,
                   force_general=force_general, max_rejects=max_rejects)
    others = [w.search(patient, options) for w in getattr(opened, "workers", ())]
    if others:
        from haplomatch import searchworkers
    own, compiled = _scan(ref, patient, opened, settings, batch_size=batch_size, progress=progress, **options)
    clock = time.perf_counter()
    shares, worker_peak = [own], None
    for f in others:
        share, peak = searchworkers.result(f)
        shares.append(share)
        worker_peak = max(worker_peak or 0.0, peak)
    tm = dict(own.timings)
    if others:
        tm["wait"] = time.perf_counter() - clock
        clock = time.perf_counter()
    rows_in, rejected = sum(s.rows_in for s in shares), sum(s.rejected for s in shares)
    rejects = [r for s in shares for r in s.rejects]
    found = [s for s in shares if s.kept is not None]
    if not found:
        raise _nothing_read(str(opened.path), rows_in, rejected, rejects)
    if compiled is None:  # this process's share had no donor that reads: the rules compile on another's donor
        compiled = _compile_on(ref, patient, found[0].people.head(1).drop("__row"), profile, rules_path, overrides,
                               antibodies, settings)
    rules = compiled.rules
    own = (unused,) if antibodies is not None and (unused := unused_antibodies(rules)) else ()
    warnings = [*opened.warnings, *own]
    kept, kept_people = _best(found, compiled, top)
    ranked_full = _final(ref, patient, kept, kept_people, compiled, antibodies, settings,
                         getattr(opened, "workers", ()))
    cands = explained(ranked_full, rules)
    notes = tuple(_range_notes(ref, patient, kept_people.drop("__row"), ranked_full, settings.compat))
    tm["final"] = tm.get("final", 0.0) + time.perf_counter() - clock
    if progress and others:
        progress(rows_in, sum(s.batches for s in shares))
    rej = (pl.concat(rejects).sort("row") if rejects
           else pl.DataFrame(schema={"row": pl.Int64, "donor_id": pl.String, "reason": pl.String}))
    return SearchResult(
        patient.id, rules.profile, ref.label, rules.path, tuple(cands), ranked_full, rows_in,
        sum(s.ranked for s in shares), rejected, rej, sum(s.batches for s in shares), time.perf_counter() - t0,
        "fast" if all(s.fast for s in found) else "general", tuple(warnings), tm,
        tuple(t for s in shares for t in s.per_batch), opened.describe(), notes, worker_peak, own,
    )
