"""NMDP multiple allele codes (MAC): the user's code table, read as NMDP publishes it.

NMDP distributes ``numer.v3.txt`` / ``alpha.v3.txt``: a header, then one tab-separated line per code,
``CODE<TAB>SUBTYPE`` (alpha.v3 has a leading ``*`` or blank column). A *generic* code lists second fields
(``AB = 01/02``: ``B*08:AB`` = B*08:01/B*08:02); an *allele-specific* code lists full field strings
(``ASXJP = 08:01/08:19N/08:109/08:173``) (RULES 7.6; py-ard PR #65). The table is versionless and not
redistributed here: pass your copy with ``--mac-table FILE``.
"""

from __future__ import annotations

import re
from pathlib import Path

from haplomatch.errors import InputError, Problem

_LINE = re.compile(r"^\*?\s*([A-Z]{2,5})\s+([0-9A-Z:/]+)\s*$")


def read_mac_table(path: str | Path) -> dict[str, tuple[str, ...]]:
    """Code → its subtypes. Header and comment lines are skipped; a malformed data line is an error."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise InputError.one(f"cannot read the MAC table: {e.strerror}", file=str(path)) from e
    table: dict[str, tuple[str, ...]] = {}
    problems = []
    for i, raw in enumerate(lines, 1):
        line = raw.strip().strip('"')
        if not line or line.upper().startswith(("LAST UPDATED", "CODE", "*\tCODE", "* CODE")) or line.startswith("#"):
            continue
        m = _LINE.match(raw.strip())
        if not m:
            problems.append(Problem("not a MAC table line (CODE<TAB>SUBTYPE)", file=str(path), row=i, value=raw))
            continue
        table[m[1]] = tuple(s for s in m[2].split("/") if s)
    if problems:
        raise InputError(problems)
    if not table:
        raise InputError.one("the MAC table has no codes", file=str(path))
    return table


def expand(locus: str, first_field: str, code: str, table: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """``B``, ``08``, ``AB`` → ``('B*08:01', 'B*08:02')``. Raises KeyError for an unknown code."""
    subtypes = table[code]
    return tuple(f"{locus}*{s}" if ":" in s else f"{locus}*{first_field}:{s}" for s in subtypes)
