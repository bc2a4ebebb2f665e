"""A prepared registry: a registry's cells stored once as integer codes, so that a search reads integers.

A search of a registry file hashes every cell of every row to find its distinct values (half its time for
10^6 donors). A registry is searched for many patients between updates, so ``haplomatch prepare`` does that
once: it numbers each column's distinct cell values (a dictionary per column, the two columns of a locus
sharing one) and stores, per row, the numbers. Nothing is interpreted: the values are the registry's own
cells, so a prepared registry does not depend on the reference release or on how cells are read; a search
reads the dictionaries with the code that reads registry cells (each distinct value once) and then only
gathers integers. The search's answer is the same as for the file (tests compare both).

A prepared registry is a directory::

    manifest.json          what it is, the source file (path, size, modification time), its columns, rows
    dict-<n>.parquet       one dictionary: column ``v`` (the distinct values in id order)
    rows-<n>.parquet       the rows in order, in parts: ``id`` (the donor id cell), ``i<k>`` (UInt32 id per
                           item), ``cells`` (a CSV row's number of cells when it is not the header's, else null)

A search refuses a prepared registry whose source file is still there but changed (size or modification
time): its donors would not be the registry's.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import polars as pl

from haplomatch.errors import InputError

__all__ = ["FORMAT", "PreparedRegistry", "is_prepared", "open_prepared", "prepare_registry"]

#: Written into the manifest; a prepared registry of another format is refused (prepare it again).
FORMAT = "haplomatch prepared registry, format 1"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class PreparedRegistry:
    """An opened prepared registry (see the module docstring)."""

    path: Path
    source: Path
    source_bytes: int
    source_mtime_ns: int
    created: str
    columns: tuple[str, ...]
    rows: int
    items: dict[str, str]  # item name -> its column in the rows parts
    dicts: dict[str, str]  # item name -> its dictionary file (a locus's two items share one)
    parts: tuple[str, ...]
    version: str

    def source_state(self) -> str:
        """'same', 'changed' or 'missing': the source file now, against what was prepared."""
        try:
            st = self.source.stat()
        except OSError:
            return "missing"
        return "same" if (st.st_size, st.st_mtime_ns) == (self.source_bytes, self.source_mtime_ns) else "changed"

    def dictionaries(self) -> dict[str, list]:
        """Item name -> its dictionary's values (id order); the items sharing a dictionary get one list."""
        out: dict[str, list] = {}
        by_file: dict[str, list] = {}
        for item, f in self.dicts.items():
            if f not in by_file:
                d = pl.read_parquet(self.path / f)
                if "int" in d.columns:  # KIR patterns: integers in some batches, text in others
                    by_file[f] = [i if i is not None else s for i, s in zip(d["int"].to_list(), d["v"].to_list())]
                else:
                    by_file[f] = d["v"].to_list()
            out[item] = by_file[f]
        return out

    def batches(self, batch_size: int) -> Iterator[tuple[dict[str, np.ndarray], pl.Series, int, dict[int, int]]]:
        """The rows in order, up to ``batch_size`` at a time: (ids per item, donor id cells, rows, the rows with
        a wrong number of cells: 1-based registry row -> cells)."""
        from haplomatch.registryfile import _parquet_batches

        start = 0
        if not self.parts:
            return
        for df in _parquet_batches([self.path / p for p in self.parts], batch_size):
            ids = {item: df[col].to_numpy().astype(np.int64) for item, col in self.items.items()}
            bad = df.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("i"), "cells").filter(
                pl.col("cells").is_not_null())
            ragged = {start + 1 + i: c for i, c in zip(bad["i"].to_list(), bad["cells"].to_list())}
            yield ids, df["id"], df.height, ragged
            start += df.height


def is_prepared(path: str | Path) -> bool:
    """Whether ``path`` is a prepared registry (a directory with a manifest)."""
    p = Path(path)
    return p.is_dir() and (p / MANIFEST).is_file()


def open_prepared(path: str | Path) -> PreparedRegistry:
    """Open a prepared registry; InputError naming it when it is not one this version reads."""
    p = Path(path)
    try:
        m = json.loads((p / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError.one(f"not a prepared registry ({e})", file=str(p),
                             fix="prepare it with 'haplomatch prepare REGISTRY --out DIR'") from None
    if m.get("format") != FORMAT:
        raise InputError.one(f"a prepared registry of another format ({m.get('format')!r}; this version reads "
                             f"{FORMAT!r})", file=str(p), fix="prepare the registry again with 'haplomatch prepare'")
    try:
        src = m["source"]
        prepared = PreparedRegistry(p, Path(src["path"]), int(src["bytes"]), int(src["mtime_ns"]), m["created"],
                                    tuple(m["columns"]), int(m["rows"]), dict(m["items"]), dict(m["dicts"]),
                                    tuple(m["parts"]), m.get("haplomatch", ""))
    except (KeyError, TypeError, ValueError) as e:
        raise InputError.one(f"the prepared registry's {MANIFEST} is incomplete ({type(e).__name__}: {e})",
                             file=str(p), fix="prepare the registry again with 'haplomatch prepare'") from None
    missing = [f for f in (*prepared.parts, *set(prepared.dicts.values())) if not (p / f).is_file()]
    if missing:
        raise InputError.one(f"the prepared registry is incomplete: {', '.join(missing[:3])} missing", file=str(p),
                             fix="prepare the registry again with 'haplomatch prepare'")
    return prepared


def prepare_registry(source: str | Path, out: str | Path, *, batch_size: int = 200_000,
                     progress: Callable[[int], None] | None = None) -> PreparedRegistry:
    """Prepare the registry file ``source`` into the directory ``out`` (see the module docstring).

    ``out`` must not exist, or be a prepared registry (it is replaced once the new one is complete). The
    registry's columns are mapped as a search maps them (a registry without a donor id or HLA column is
    refused now rather than at the search); rows that will not read are kept: the search rejects them, each
    with its reason, as it does for the file. ``progress(rows)`` is called after each batch."""
    from haplomatch import __version__
    from haplomatch.registryfile import open_registry
    from haplomatch.search import _intern, cell_items, key_interners, registry_layout

    src, out = Path(source), Path(out)
    if out.exists() and not is_prepared(out):
        raise InputError.one("the output exists and is not a prepared registry: not overwritten", file=str(out),
                             fix="name a new directory")
    if out.resolve() == src.resolve():
        raise InputError.one("the output is the registry itself", file=str(out))
    st0 = _stat(src)
    reg = open_registry(src)
    layout, _ = registry_layout(list(reg.columns), str(src))
    cells, kir = key_interners(layout)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        parts: list[str] = []
        names: dict[str, str] = {}
        dtypes: dict[int, set] = {}
        shared: dict[int, object] = {}  # the interners, each once, in the order first met
        item_of: dict[str, object] = {}
        rows = 0
        for batch, ragged in reg.batches(batch_size):
            items = cell_items(layout, cells, kir, batch)
            ids = _intern(batch, items, None)
            for name, it, e in items:
                names.setdefault(name, f"i{len(names)}")
                shared.setdefault(id(it), it)
                item_of[name] = it
                dtypes.setdefault(id(it), set()).add(batch.select(e.alias("v")).schema["v"])
            cols = {names[n]: pl.Series(names[n], ids[n], dtype=pl.UInt32) for n, _, _ in items}
            at = np.array(sorted(ragged), dtype=np.int64) - 1 - rows
            cells_col = np.full(batch.height, -1, dtype=np.int64)
            cells_col[at] = [ragged[r] for r in sorted(ragged)]
            df = pl.DataFrame([batch[layout.id_col].cast(pl.String).alias("id"), *cols.values(),
                               pl.Series("cells", cells_col, dtype=pl.Int32).replace(-1, None)])
            part = f"rows-{len(parts):05d}.parquet"
            df.write_parquet(tmp / part)
            parts.append(part)
            rows += batch.height
            if progress:
                progress(rows)
        dicts: dict[str, str] = {}
        by_it: dict[int, str] = {}
        for n, it in enumerate(shared.values()):
            f = f"dict-{n:03d}.parquet"
            by_it[id(it)] = f
            kinds = dtypes[id(it)]
            if len(kinds) == 1:
                d = pl.DataFrame({"v": pl.Series("v", it.keys, dtype=next(iter(kinds)), strict=False)})
            else:  # KIR patterns: integers where a batch's KIR columns were all 0/1, text elsewhere
                d = pl.DataFrame({"v": [k if isinstance(k, str) else None for k in it.keys],
                                  "int": [k if isinstance(k, int) else None for k in it.keys]},
                                 schema={"v": pl.String, "int": pl.Int64})
            d.write_parquet(tmp / f)
        for name, it in item_of.items():
            dicts[name] = by_it[id(it)]
        if _stat(src) != st0:
            raise InputError.one("the registry changed while it was being prepared", file=str(src),
                                 fix="prepare it again once it is written")
        manifest = {
            "format": FORMAT, "haplomatch": __version__,
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "source": {"path": str(src.resolve()), "bytes": st0[0], "mtime_ns": st0[1]},
            "columns": list(reg.columns), "rows": rows, "items": {n: names[n] for n in names},
            "dicts": dicts, "parts": parts,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return open_prepared(out)


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError as e:
        msg = "registry file not found" if isinstance(e, FileNotFoundError) else f"cannot read the registry: {e.strerror}"
        raise InputError.one(msg, file=str(path)) from None
    return st.st_size, st.st_mtime_ns
