"""The per-release cache of derived facts: a user cache folder, one sub-folder per release key.

Derived tables are never shipped (the release files are CC BY-ND); they are built here, on first use,
and rebuilt by ``haplomatch reference build``. ``HAPLOMATCH_CACHE`` overrides the folder.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from haplomatch.reference.release import Release

#: Bumped when the table layout changes on purpose.
SCHEMA_VERSION = 1
#: The modules whose code derives the cached tables: their text is part of the cache key, so a cache built
#: by other code (an older haplomatch, a local edit) is never reused, even when nobody bumped SCHEMA_VERSION.
DERIVING_MODULES = ("files.py", "names.py", "numbering.py", "facts.py", "cache.py")


def code_digest(folder: Path, names: tuple[str, ...]) -> str:
    """A short digest of the text of the modules ``names`` in ``folder`` (part of a derived table's key)."""
    import hashlib

    h = hashlib.sha256()
    for name in names:
        h.update(name.encode())
        h.update((folder / name).read_bytes())
    return h.hexdigest()[:10]


CODE_DIGEST = code_digest(Path(__file__).resolve().parent, DERIVING_MODULES)
TABLES = ("alleles", "deleted", "kir_alleles", "ser_ser")


def cache_root() -> Path:
    """``$HAPLOMATCH_CACHE``, else the platform's user cache folder + ``haplomatch``."""
    env = os.environ.get("HAPLOMATCH_CACHE")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "haplomatch"


def cache_dir(release: Release) -> Path:
    return cache_root() / f"{release.key}_v{SCHEMA_VERSION}-{CODE_DIGEST}"


def is_built(release: Release) -> bool:
    d = cache_dir(release)
    return (d / "meta.json").is_file() and all((d / f"{t}.parquet").is_file() for t in TABLES)


def write(release: Release, tables: dict[str, pl.DataFrame], seconds: float) -> Path:
    """Write all tables atomically: a half-written cache is never seen by another process."""
    final = cache_dir(release)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=final.parent))
    try:
        for name, df in tables.items():
            df.write_parquet(tmp / f"{name}.parquet")
        meta = {
            "imgthla": release.imgthla,
            "ipdkir": release.ipdkir,
            "checksum": release.checksum,
            "source": str(release.root),
            "schema": SCHEMA_VERSION,
            "code": CODE_DIGEST,
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": round(seconds, 2),
            "rows": {k: v.height for k, v in tables.items()},
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read(release: Release) -> tuple[dict[str, pl.DataFrame], dict]:
    d = cache_dir(release)
    meta = json.loads((d / "meta.json").read_text())
    return {t: pl.read_parquet(d / f"{t}.parquet") for t in TABLES}, meta
