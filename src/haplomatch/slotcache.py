"""The comparison keys of every plain allele name of a release, cached on disk (registry search's first batch).

A registry names tens of thousands of distinct alleles, nearly all written out (``A*02:01:01``: a plain name,
``Nomenclature.plain_names``). Their ``compat.slot_keys`` rows depend only on the release, the comparison
level and the null-allele rule, so they are derived once, on the user's machine, by ``slot_keys`` itself
(the release files are never shipped derived), and kept beside the release's other derived tables
(``reference.cache``): later searches join the names instead of resolving each.

The file name holds a digest of the code that derives the table (this module, ``compat``, ``slotfacts``,
``nomenclature``): a table written by other code (an older haplomatch, a local edit) is never read. The
release's own tables are covered by the cache folder, whose name holds the release key and their code digest.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import polars as pl

from haplomatch.reference.cache import code_digest

__all__ = ["DERIVING_MODULES", "CODE_DIGEST", "plain_slot_keys", "table_path"]

#: The modules whose code derives the table (``slot_keys`` and what it calls on the plain names).
DERIVING_MODULES = ("slotcache.py", "compat.py", "slotfacts.py", "nomenclature.py")
_SCHEMA = {"slot": pl.String, "keys": pl.List(pl.String), "absent": pl.Boolean, "error": pl.String}


CODE_DIGEST = code_digest(Path(__file__).resolve().parent, DERIVING_MODULES)
_MEMO: dict[tuple[str, str, str], pl.DataFrame] = {}


def table_path(ref, level: str, null_alleles: str) -> Path:
    """Where the table of ``ref``'s release for these settings lives."""
    return Path(ref.cache_path) / f"plain_slot_keys-{level}-{null_alleles}-{CODE_DIGEST}.parquet"


def plain_slot_keys(ref, level: str = "two_field", null_alleles: str = "wmda") -> pl.DataFrame:
    """``compat.slot_keys`` of every plain name of the release (``slot``, ``keys``, ``absent``, ``error``):
    read from the cache, else derived and written there (atomically; a cache that cannot be written is
    only a slower first search)."""
    path = table_path(ref, level, null_alleles)
    hit = _MEMO.get((str(path), level, null_alleles))
    if hit is not None:
        return hit
    table = None
    if path.is_file():
        try:
            table = pl.read_parquet(path)
        except Exception:  # noqa: BLE001 - a damaged file is derived again
            table = None
        if table is not None and dict(table.schema) != _SCHEMA:
            table = None
    if table is None:
        table = _derive(ref, level, null_alleles)
        _write(table, path)
    _MEMO[(str(path), level, null_alleles)] = table
    return table


def _derive(ref, level: str, null_alleles: str) -> pl.DataFrame:
    from haplomatch.compat import slot_keys

    names = ref.nomenclature.plain_names["name"].unique().sort().to_list()
    return slot_keys(ref, names, level, null_alleles).select(list(_SCHEMA))


def _write(table: pl.DataFrame, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".plain_slot_keys-", suffix=".parquet", dir=path.parent)
        os.close(fd)
        try:
            table.write_parquet(tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass
