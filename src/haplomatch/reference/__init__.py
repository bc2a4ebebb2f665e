"""The reference release and the facts derived from it: load once, query as polars tables.

``load_reference()`` opens the release folder, builds the derived tables into the cache if needed, and
returns a :class:`Reference`. Everything downstream (nomenclature, ligands, matching) reads from it, so
one family on the command line and a million registry rows use the same facts.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from haplomatch.reference import cache
from haplomatch.reference.release import Release, open_release

if TYPE_CHECKING:
    from haplomatch.nomenclature import Nomenclature

__all__ = ["Reference", "load_reference", "build_reference", "Release", "open_release"]


@dataclass(frozen=True)
class Reference:
    """A release and its derived tables. ``alleles`` has one row per IPD-IMGT/HLA allele."""

    release: Release
    alleles: pl.DataFrame
    deleted: pl.DataFrame
    kir_alleles: pl.DataFrame
    ser_ser: pl.DataFrame
    cache_path: Path
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def label(self) -> str:
        """Release label printed with every result, e.g. 'IPD-IMGT/HLA 3.58.0; IPD-KIR 2.13.0'."""
        return f"IPD-IMGT/HLA {self.release.imgthla}; IPD-KIR {self.release.ipdkir}"

    @cached_property
    def nomenclature(self) -> "Nomenclature":
        """Typing names → release alleles, for this release."""
        from haplomatch.nomenclature import Nomenclature

        return Nomenclature(self.alleles, self.deleted, self.ser_ser)

    @cached_property
    def two_field(self) -> pl.DataFrame:
        """One row per 2-field name (protein), facts summarised over its alleles."""
        from haplomatch.reference.views import summarise

        return summarise(self.alleles, "name2")

    @cached_property
    def p_group(self) -> pl.DataFrame:
        """One row per P group (same protein over the antigen-recognition domain)."""
        from haplomatch.reference.views import summarise

        return summarise(self.alleles.filter(pl.col("p_group").is_not_null()), "p_group")


def build_reference(release: Release) -> Path:
    """Derive every table from the release files and write them to the cache; returns the cache folder."""
    from haplomatch.reference import facts, files

    t0 = time.perf_counter()
    tables = {
        "alleles": facts.build_allele_facts(release),
        "deleted": facts.build_deleted(release),
        "kir_alleles": facts.build_kir_alleles(release),
        "ser_ser": files.read_rel_ser_ser(release.path("imgthla/wmda/rel_ser_ser.txt")),
    }
    return cache.write(release, tables, time.perf_counter() - t0)


_LOADED: dict[tuple[str, str], Reference] = {}


def load_reference(root: str | os.PathLike[str] | None = None, *, rebuild: bool = False) -> Reference:
    """Open a release (default: $HAPLOMATCH_REFERENCE, else the shipped one), building its cache on first use."""
    release = open_release(root)
    key = (release.key, str(cache.cache_root()))
    if not rebuild and key in _LOADED:
        return _LOADED[key]
    if rebuild or not cache.is_built(release):
        build_reference(release)
    tables, meta = cache.read(release)
    ref = Reference(release=release, cache_path=cache.cache_dir(release), meta=meta, **tables)
    _LOADED[key] = ref
    return ref
