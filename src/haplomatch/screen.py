"""Batch screening: many families (HLA laboratories screen thousands at once), one row per candidate donor.

Input: family files (CSV, TSV, Parquet; README "Input format") with a ``family_id`` column, or one file per
family. Output: one row per (patient, candidate) with the candidate's rank *within its family*, eligibility,
the exclusion rules that fired (``excluded_by``), the one-line ``summary`` and the documented pair facts
(``pairfacts.documented_columns``: the glossary's, per-locus counts and their ranges included) — the same
values ``haplomatch rank`` gives for the family.

How the work is split
    Reading (``familyfile.read_family_file``, every problem located) and segregation
    (``segregation.family_relationships``: ``segregate``'s relationships, conflicts and notes) run per family:
    a loop over families. Pair facts and ranking run once over the
    pairs of many families (``chunk``, default 5,000, bounds the memory of the wide pair-facts table): one pair
    table (``persons.pair_frame`` on ``family_id``), one ``pairfacts.pair_facts`` call, one ``ranking.evaluate``
    sort; the rank within each family is the position in that global order, taken per family by a stable sort
    on the family (``evaluate``'s order is total inside a family: candidate id is the last key). ``excluded_by``
    and ``summary`` are polars expressions over the rule columns, equal to what ``ranking.explain`` /
    ``ranking.summary`` give one candidate at a time. With ``workers`` > 1, the files are cut into parts of
    whole families (a family never straddles two parts), each part screened in its own process, and the
    parts joined in order: ranks are relative within a family, so the output is the same. A part's
    candidates come back as an Arrow IPC file in a temporary directory (through the pipe when there is none).

Row accounting (every input row is in exactly one place)
    - a **candidate** row of the output: a family member other than the patient, in a screened family;
    - a **patient**: the patient row of a screened family (the reference of its pairs, not a candidate:
      each output row names its patient in ``patient_id``); a screened family with no other member adds a
      patient and no candidate;
    - a **rejected** row, in the rejects table with file, row, column, value and reason: a row with an error;
      *every* row of a family in which any row has an error, of a family whose pedigree or segregation fails,
      or (by default) of a family with a Mendelian conflict (``reject_conflicts``; ``haplomatch rank`` ranks
      such a family with a warning); every row of a file with a file-level error (an unusable header).
      A rejected family is never ranked partially: ranks are relative within the family.

    rows in = candidates out + patients + rejected rows. The rejects table has one line per problem; a row
    rejected only because of its family has one line naming the family's first problem.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import polars as pl

from haplomatch.errors import HaplomatchError, InputError, Problem

if TYPE_CHECKING:  # annotations only (familyfile is imported where it is used)
    from haplomatch.familyfile import PeopleTable

__all__ = ["ScreenResult", "screen_files", "rank_in_groups", "excluded_by_expr", "summary_expr",
           "write_table", "flatten_for_csv", "REJECT_SCHEMA"]

REJECT_SCHEMA = {"file": pl.String, "row": pl.Int64, "family_id": pl.String, "column": pl.String,
                 "value": pl.String, "message": pl.String}
_PATIENT_COUNT = re.compile(r"^(?:family (?P<fid>.+?)|the family) has \d+ patients")


@dataclass
class ScreenResult:
    """Candidates (one row each, ranked within their family), rejects, and the row accounting."""

    candidates: pl.DataFrame
    rejects: pl.DataFrame
    rows_in: int
    patients: int
    rejected: int
    families: int  # families screened
    families_rejected: int
    profile: str
    rules_file: str
    release: str
    warnings: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    patient_ids: tuple[str, ...] = ()  # of the screened families
    worker_peak_mb: float | None = None  # peak resident memory of the largest worker process (None: no workers)

    @property
    def candidates_out(self) -> int:
        return self.candidates.height

    def check(self) -> None:
        """rows in = candidates out + patients + rejected (raises AssertionError otherwise)."""
        assert self.rows_in == self.candidates_out + self.patients + self.rejected, (
            f"row accounting: {self.rows_in} in != {self.candidates_out} candidates + {self.patients} patients "
            f"+ {self.rejected} rejected")

    def summary_line(self) -> str:
        return (f"rows in: {self.rows_in:,}; candidates out: {self.candidates_out:,}; patients: {self.patients:,}; "
                f"rejected: {self.rejected:,} (families screened: {self.families:,}, rejected: "
                f"{self.families_rejected:,})")


# ------------------------------------------------------------------------------------------ ranking helpers

def rank_in_groups(facts: pl.DataFrame, rules, group: str) -> pl.DataFrame:
    """``ranking.evaluate`` once over all rows, then the rank within each ``group`` (1 = best): ``evaluate``'s
    global order, restricted to one group, is the order ``evaluate`` gives that group alone. Rows stay in
    ``evaluate``'s order (the caller orders them once: moving the rows of a wide table costs)."""
    from haplomatch.ranking import evaluate

    ranked = evaluate(facts, rules).drop("rank")
    return ranked.with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(group).alias("rank"))


def excluded_by_expr(rules) -> pl.Expr:
    """The exclusion rules that fired (ids, in rule order), as ``ranking.explain`` lists them."""
    from haplomatch.ranking import _col

    from haplomatch.listexpr import label_list

    return label_list([(pl.col(_col(r)).fill_null(False), r.id) for r in rules.rules if r.effect == "exclude"])


def summary_expr(excluded: pl.Expr) -> pl.Expr:
    """``ranking.summary`` (and the ``; EXCLUDED (…)`` tail of ``rank_facts``) as one expression."""
    def col(c: str) -> pl.Expr:
        return pl.col(c)

    def txt(e: pl.Expr) -> pl.Expr:
        return e.cast(pl.String)

    mfi = col("dsa_max_mfi")
    parts = [
        pl.coalesce(col("hla_class"), pl.when(col("relation") == "unrelated").then(pl.lit("unrelated")),
                    pl.lit("class unknown")),
        pl.when(col("grade8_bi_text").is_not_null() & (col("grade8_bi_text") != ""))
        .then(pl.lit("HLA ") + col("grade8_bi_text") + pl.lit(" bidirectional")),
        pl.when(col("dsa_category").is_not_null() & (col("dsa_category") != ""))
        .then(pl.lit("DSA ") + col("dsa_category") + pl.when(mfi.is_not_null() & (mfi != 0))
              .then(pl.lit(" ") + txt(mfi.cast(pl.Int64)) + pl.lit(" MFI")).otherwise(pl.lit(""))),
        pl.lit("KIR-HLA mismatch ") + pl.coalesce(txt(col("rl_count")), pl.lit("?")),
        pl.when(col("donor_kir_b_content_group").is_not_null() & (col("donor_kir_b_content_group") != ""))
        .then(pl.lit("KIR B ") + col("donor_kir_b_content_group")),
        pl.when(col("donor_age").is_not_null())
        .then((txt(col("donor_age").cast(pl.Int64)) + pl.lit(" y ") + col("donor_sex").fill_null(""))
              .str.strip_chars()),
        pl.when(col("abo_relation").is_not_null() & (col("abo_relation") != ""))
        .then(pl.lit("ABO ") + col("abo_relation")),
        pl.when(col("cmv_pairing").is_not_null() & (col("cmv_pairing") != ""))
        .then(pl.lit("CMV ") + col("cmv_pairing")),
    ]
    base = pl.concat_str(parts, separator="; ", ignore_nulls=True)
    return base + pl.when(excluded.list.len() > 0).then(
        pl.lit("; EXCLUDED (") + excluded.list.join(", ") + pl.lit(")")).otherwise(pl.lit(""))


# --------------------------------------------------------------------------------------------- output

def flatten_for_csv(df: pl.DataFrame) -> pl.DataFrame:
    """Lists joined with ``|`` (as ``haplomatch rank --format csv``); structs, and lists of them, as JSON."""
    out = []
    for c, dt in df.schema.items():
        e = pl.col(c)
        if isinstance(dt, pl.List) and isinstance(dt.inner, pl.Struct):
            e = pl.lit("[") + e.list.eval(pl.element().struct.json_encode()).list.join(",") + pl.lit("]")
        elif isinstance(dt, pl.List) and isinstance(dt.inner, pl.List):
            # a list of lists (e.g. possible ligand sets): inner lists joined with ',', outer with '|'
            e = e.list.eval(pl.element().list.eval(pl.element().cast(pl.String)).list.join(",")).list.join("|")
        elif isinstance(dt, pl.List):
            e = e.list.eval(pl.element().cast(pl.String)).list.join("|")
        elif isinstance(dt, pl.Struct):
            e = e.struct.json_encode()
        out.append(e.alias(c))
    return df.select(out)


def write_table(df: pl.DataFrame, path: str | Path) -> None:
    """Parquet (``.parquet``/``.pq``), TSV (``.tsv``/``.tab``) or CSV, by the file extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        df.write_parquet(path)
    elif suffix in (".tsv", ".tab"):
        flatten_for_csv(df).write_csv(path, separator="\t")
    else:
        flatten_for_csv(df).write_csv(path)


# --------------------------------------------------------------------------------------------- reading

@dataclass
class _FileRead:
    file: str
    index: int
    rows: int
    row_family: dict[int, str | None]  # data row -> family id (rows that could be read)
    families: list  # Family (clean members only)
    row_problems: dict[int, list[Problem]]
    family_problems: dict[str | None, list[Problem]]
    file_problems: list[Problem]
    warnings: dict[str | None, list[str]]
    people: PeopleTable | None = None  # the people table of the rows read


def _count_lines(path: Path) -> int:
    """Data rows of a file whose table could not be read (header not counted)."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pl.scan_parquet(path).select(pl.len()).collect().item()
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except (OSError, pl.exceptions.PolarsError):
        return 0
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return max(0, len(lines) - 1)


@dataclass
class _Source:
    """A file's table (or a part of it holding whole families), or why it could not be read."""

    file: str
    index: int
    table: tuple[pl.DataFrame, list[Problem]] | None
    error: list[Problem] | None = None
    rows: int = 0  # data rows of an unreadable file
    stored: str | None = None  # the table's rows in this Arrow IPC file instead (sent to a worker process)


def _stored(src: _Source, folder: str, name: str) -> _Source:
    """``src`` with its table's rows written to an Arrow IPC file in ``folder``, for a worker process to read
    (a part's rows pickled through the pipe: ~20 MB per 5,000 families, ~0.08 s of this process's CPU to
    pickle and ~0.05 s of the worker's to unpickle, per part); ``src`` itself when it cannot be written."""
    if src.table is None:
        return src
    import os

    path = os.path.join(folder, name)
    try:
        src.table[0].write_ipc(path)
    except OSError:
        return src
    return replace(src, table=(src.table[0].clear(), src.table[1]), stored=path)


def _restored(src: _Source) -> _Source:
    """A source sent by :func:`_stored`, with its rows read back (and their file removed)."""
    if src.stored is None:
        return src
    import io
    import os

    with open(src.stored, "rb") as fh:
        table = pl.read_ipc(io.BytesIO(fh.read()))  # in memory: the file goes now
    os.remove(src.stored)
    return replace(src, table=(table, src.table[1]), stored=None)


def _open_source(path: Path, index: int) -> _Source:
    from haplomatch.familyfile import read_table

    fname = str(path)
    try:
        return _Source(fname, index, read_table(path))
    except InputError as e:
        return _Source(fname, index, None, list(e.problems) or [Problem("file not read", file=fname)],
                       _count_lines(path))


def _read_file(src: _Source, nomenclature, settings) -> _FileRead:
    from haplomatch.familyfile import ROW, map_columns, read_families_and_table

    fname, index = src.file, src.index
    if src.table is None:
        return _FileRead(fname, index, src.rows, {}, [], {}, {}, list(src.error or []), {})
    table, tproblems = src.table
    malformed = [p for p in tproblems if p.row is not None]
    rows = table.height + len(malformed)
    cmap, _ = map_columns([c for c in table.columns if c != ROW])
    fcol = cmap.attributes.get("family_id")
    fam = _row_families(table, fcol) if fcol else [None] * table.height
    row_family = dict(zip(table[ROW].to_list(), fam))
    try:
        families, problems, people = read_families_and_table(fname, nomenclature, settings, strict=False,
                                                             table=src.table)
    except InputError as e:
        return _FileRead(fname, index, rows, row_family, [], {}, {}, list(e.problems), {})
    row_problems: dict[int, list[Problem]] = defaultdict(list)
    family_problems: dict[str | None, list[Problem]] = defaultdict(list)
    file_problems: list[Problem] = []
    warnings: dict[str | None, list[str]] = defaultdict(list)
    for p in problems:
        if p.severity != "error":
            warnings[row_family.get(p.row) if p.row is not None else "\x00file"].append(str(p))
            continue
        if p.row is not None:
            row_problems[p.row].append(p)
            continue
        m = _PATIENT_COUNT.match(p.message)
        if m:
            family_problems[m.group("fid") if m.group("fid") is not None else None].append(p)
        else:
            file_problems.append(p)
    return _FileRead(fname, index, rows, row_family, families, dict(row_problems), dict(family_problems),
                     file_problems, dict(warnings), people)


# --------------------------------------------------------------------------------------------- screen

def _reject_rows(out: list[dict], fname: str, rows: Iterable[int], fid: str | None, row_problems: dict,
                 reason: Problem | None) -> None:
    """One reject line per problem of each row; a row without a problem of its own gets ``reason``."""
    for r in rows:
        own = row_problems.get(r, [])
        for p in own:
            out.append({"file": fname, "row": r, "family_id": fid, "column": p.column, "value": p.value,
                        "message": p.message + (f" ({p.fix})" if p.fix else "")})
        if not own and reason is not None:
            out.append({"file": fname, "row": r, "family_id": fid, "column": reason.column, "value": reason.value,
                        "message": reason.message})


def _seg_one(family, nomenclature, settings, reject_conflicts: bool):
    """Segregate one family: (segregation rows, warnings) or (None, problems)."""
    from haplomatch.pairfacts import segregation_rows
    from haplomatch.segregation import family_relationships

    try:
        seg = family_relationships(family, nomenclature, settings.segregation)
    except HaplomatchError as e:
        probs = list(getattr(e, "problems", ())) or [Problem(str(e))]
        return None, [Problem("segregation failed: " + p.message, column=p.column, value=p.value) for p in probs]
    except Exception as e:  # a bug must not take a batch of thousands down; the family is rejected, loudly
        return None, [Problem(f"internal error in segregation (please report): {type(e).__name__}: {e}")]
    conflicts = [f"{c.message} (likely: {', '.join(c.causes)})" for c in seg.conflicts]
    if conflicts and reject_conflicts:
        return None, [Problem("Mendelian conflict: " + text, column=",".join(c.loci) or None)
                      for c, text in zip(seg.conflicts, conflicts)]
    warns = conflicts + [r.text for r in seg.recombinants] + list(seg.notes)
    if seg.phase_open:
        from haplomatch.ranking import phase_open_text

        warns.append(phase_open_text(seg.phase_open))
    return segregation_rows(None, seg), warns


def _segregate_all(families: list, nom, settings, reject_conflicts: bool,
                   progress: Callable[[int, int], None] | None) -> list:
    """``_seg_one`` for every family, in order."""
    out = []
    for k, f in enumerate(families):
        out.append(_seg_one(f, nom, settings, reject_conflicts))
        if progress:
            progress(k + 1, len(families))
    return out


# --------------------------------------------------------------------------------- parts and processes

def _family_keys(src: _Source) -> list | None:
    """The family of each row of a source that may be split (a readable table with a family_id column and
    no file-level problem), else None."""
    from haplomatch.familyfile import ROW, map_columns

    if src.table is None:
        return None
    table, tproblems = src.table
    cmap, cproblems = map_columns([c for c in table.columns if c != ROW])
    fcol = cmap.attributes.get("family_id")
    if not fcol or "id" not in cmap.attributes or any(p.row is None and p.severity == "error"
                                                      for p in tproblems + cproblems):
        return None
    return _family_column(table, fcol)


def _row_families(table: pl.DataFrame, fcol: str) -> list[str | None]:
    """Each row's family id (an empty cell: None)."""
    return _family_column(table, fcol).to_list()


def _family_column(table: pl.DataFrame, fcol: str) -> pl.Series:
    return table[fcol].cast(pl.String).str.strip_chars().replace("", None)


def _units(sources: list[_Source]) -> list[tuple[_Source, int]]:
    """Each source cut into pieces of whole families: (piece, number of families). The first piece of a
    file keeps the file's own reading problems (malformed rows), so each is counted once."""
    out = []
    for src in sources:
        keys = _family_keys(src)
        if keys is None:
            out.append((src, 1))
            continue
        table, tproblems = src.table
        # families numbered by first appearance (an empty id is one family too), with their rows
        fams = keys.to_frame("k").with_row_index("i").group_by("k", maintain_order=True).agg("i")
        n_fam = fams.height
        if n_fam <= 1:
            out.append((src, max(1, n_fam)))
            continue
        # one piece per family would be too fine: pieces of up to _PIECE families, in file order
        # (piece g holds families g*_PIECE … (g+1)*_PIECE - 1)
        group = (fams.with_row_index("f").select((pl.col("f") // _PIECE).alias("__piece"), "i").explode("i")
                 .sort("i")["__piece"])
        if group.is_sorted():  # each piece's rows are consecutive (the usual file): slices, not copies
            counts = group.value_counts(sort=False).sort("__piece")["count"].to_list()
            starts = [0, *itertools.accumulate(counts)]
            pieces = [table.slice(a, c) for a, c in zip(starts, counts)]
        else:
            pieces = [p.drop("__piece") for p in table.with_columns(group).partition_by("__piece", maintain_order=True)]
        for g, part in enumerate(pieces):
            n = min(_PIECE, n_fam - g * _PIECE)
            out.append((_Source(src.file, src.index, (part, tproblems if g == 0 else [])), n))
    return out


def _parts(units: list[tuple[_Source, int]], size: int) -> list[tuple[list[_Source], int]]:
    """Consecutive pieces packed into parts of about ``size`` families (order kept)."""
    parts: list[tuple[list[_Source], int]] = []
    cur: list[_Source] = []
    n = 0
    for src, k in units:
        cur.append(src)
        n += k
        if n >= size:
            parts.append((cur, n))
            cur, n = [], 0
    if cur:
        parts.append((cur, n))
    return [(_joined(srcs), n) for srcs, n in parts]


def _joined(sources: list[_Source]) -> list[_Source]:
    """Consecutive pieces of one file in a part joined into one source: a source's reading has fixed costs
    (~0.1 s of a worker's ~4 s per 5,000 families when they came as ten pieces of 500)."""
    runs: list[list[_Source]] = []
    for src in sources:
        last = runs[-1][-1] if runs else None
        if (last is not None and src.table is not None and last.table is not None and src.file == last.file
                and src.index == last.index and last.stored is None and src.stored is None):
            runs[-1].append(src)
        else:
            runs.append([src])
    return [run[0] if len(run) == 1 else replace(
        run[0], table=(pl.concat([s.table[0] for s in run]), [p for s in run for p in s.table[1]]))
        for run in runs]


_PIECE = 500  # families per piece of a file
_MIN_PART = 250  # families per part sent to a process, at least (a process costs a reference load)
_WORKER: dict = {}


def _worker_init(root) -> None:
    import atexit

    from haplomatch.reference import load_reference

    _WORKER["ref"] = load_reference(root)
    atexit.register(_exit_at_once)


def _exit_at_once() -> None:
    """A worker ends without freeing its objects one by one: after a large screen its memos hold millions,
    and the interpreter's teardown took ~1.5 s of the screen's wall time (the results are already sent)."""
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # pragma: no cover - a closed stream
            pass
    os._exit(0)


def _worker_warm() -> None:
    """Import what a part needs and build the name index, while the main process is still reading the files
    (a large batch needs them in every process)."""
    import haplomatch.familyfile  # noqa: F401
    import haplomatch.pairfacts  # noqa: F401
    import haplomatch.ranking  # noqa: F401

    _ = _WORKER["ref"].nomenclature._prefix_index


def _pool(ref, workers: int):
    """``workers`` processes, started now (each warms up). Each gets a share of the CPUs for polars' own
    threads (one each when the processes fill the machine): polars threads of several processes on the same
    CPUs wait on one another (on 2 CPUs, 10^5 families: ~3 s of ~65 s saved, and the pair facts ~15 % faster).
    A ``POLARS_MAX_THREADS`` set by the user is kept."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    ex = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init, initargs=(ref.release.root,))
    mine = "POLARS_MAX_THREADS" not in os.environ
    if mine:  # a spawned process reads its environment when it starts, before it imports polars
        os.environ["POLARS_MAX_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    try:
        for _ in range(workers):  # the processes start now (one per submit), each warming up
            ex.submit(_worker_warm)
    finally:
        if mine:
            del os.environ["POLARS_MAX_THREADS"]
    return ex


_PRESTART_BYTES = 4_000_000  # inputs this large (~3,000 families) start the processes before reading


def _worker_part(sources: list[_Source], opts: dict, spill: str | None = None) -> "tuple[ScreenResult, str | None]":
    """Screen a part in a worker. With ``spill`` (a directory) the candidates are written there as an Arrow
    IPC file and sent as its name (:func:`_unspilled` reads them back): 20 MB per 5,000 families through a
    pipe, pickled and unpickled, kept each worker idle ~0.1 s between parts."""
    ref = _WORKER["ref"]
    sources = [_restored(src) for src in sources]
    result = replace(_screen_sources(ref, sources, ref.nomenclature, progress=None, **opts),
                     worker_peak_mb=_peak_resident_mb())
    if spill is None:
        return result, None
    import os

    path = os.path.join(spill, f"part-{os.getpid()}-{next(_SPILLED)}.arrow")
    try:
        result.candidates.write_ipc(path)
    except OSError:  # no room or no access: the result goes through the pipe after all
        try:
            os.remove(path)
        except OSError:
            pass
        return result, None
    return replace(result, candidates=result.candidates.clear()), path


_SPILLED = itertools.count()


def _unspilled(sent: "tuple[ScreenResult, str | None]") -> "ScreenResult":
    """A worker's result with its candidates read back (and their file removed)."""
    import io
    import os

    result, path = sent
    if path is None:
        return result
    with open(path, "rb") as fh:
        candidates = pl.read_ipc(io.BytesIO(fh.read()))  # in memory: the file goes now
    os.remove(path)
    return replace(result, candidates=candidates)


def _peak_resident_mb() -> float | None:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across fork and exec)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _merge(results: list["ScreenResult"]) -> "ScreenResult":
    """One result from the results of consecutive parts (order kept; counts added)."""
    cands = [r.candidates for r in results if r.candidates.height]
    rej = [r.rejects for r in results if r.rejects.height]
    tm: dict[str, float] = {}
    for r in results:
        for k, v in r.timings.items():
            tm[k] = tm.get(k, 0.0) + v
    named = [r for r in results if r.rules_file] or results
    return ScreenResult(
        pl.concat(cands, how="diagonal_relaxed") if cands else _empty_candidates(),
        pl.concat(rej) if rej else pl.DataFrame(schema=REJECT_SCHEMA),
        sum(r.rows_in for r in results), sum(r.patients for r in results), sum(r.rejected for r in results),
        sum(r.families for r in results), sum(r.families_rejected for r in results), named[0].profile,
        named[0].rules_file, results[0].release, tuple(dict.fromkeys(w for r in results for w in r.warnings)), tm,
        tuple(i for r in results for i in r.patient_ids),
        max((r.worker_peak_mb for r in results if r.worker_peak_mb is not None), default=None))


def screen_files(ref, paths: list[str | Path], *, profile: str = "haplo-hsct", rules_path=None, overrides=None,
                 antibodies=None, settings=None, nomenclature=None, read_settings=None,
                 reject_conflicts: bool = True, progress: Callable[[int, int], None] | None = None,
                 workers: int = 1, chunk: int = 5_000) -> ScreenResult:
    """Screen the families of ``paths`` (see the module docstring). ``antibodies``: ``Antibody`` values from
    ``antibodies.read_antibodies``, each with the ``patient_id`` of its patient (ids must then name one
    patient among the screened families). ``progress(done, total)`` counts families.

    With ``workers`` > 1 the files are cut into parts of whole families, screened in that many processes
    and joined in order: the result is the same as with one (ranks are relative within a family). Pair facts
    and ranking run in one vectorised pass per ``chunk`` families (memory: the pair-facts table is wide)."""
    from haplomatch.familyfile import Settings as ReadSettings

    t0 = time.perf_counter()
    nom = nomenclature or ref.nomenclature
    pool = None
    if workers > 1 and nom is ref.nomenclature and sum(_size(Path(p)) for p in paths) >= _PRESTART_BYTES:
        pool = _pool(ref, workers)  # its processes start while this one reads
    try:
        sources = [_open_source(Path(p), i) for i, p in enumerate(paths)]
        opts = dict(profile=profile, rules_path=rules_path, overrides=overrides, antibodies=antibodies,
                    settings=settings, read_settings=read_settings or ReadSettings(),
                    reject_conflicts=reject_conflicts, chunk=chunk)
        parts = []
        if workers > 1 and nom is ref.nomenclature:  # a MAC table given on the command line stays in this process
            units = _units(sources)
            total = sum(k for _, k in units)
            parts = _parts(units, max(_MIN_PART, min(chunk, -(-total // (workers * 4)))))
    except BaseException:
        if pool is not None:  # started early, not needed after all
            pool.shutdown(cancel_futures=True)
        raise
    if len(parts) < 2:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        result = _screen_sources(ref, sources, nom, progress=progress, **opts)
    else:
        done, results = 0, []
        t_split = time.perf_counter() - t0
        with pool or _pool(ref, workers) as ex, contextlib.ExitStack() as stack:
            try:
                spill = stack.enter_context(tempfile.TemporaryDirectory(prefix="haplomatch-screen-"))
            except OSError:  # no temporary directory: the results go through the pipe
                spill = None
            futures = []
            for i, (srcs, _) in enumerate(parts):
                if spill is not None:  # the part's rows go as files too
                    srcs = [_stored(src, spill, f"in-{i}-{j}.arrow") for j, src in enumerate(srcs)]
                futures.append(ex.submit(_worker_part, srcs, opts, spill))
            for fut, (_, k) in zip(futures, parts):
                results.append(_unspilled(fut.result()))
                done += k
                if progress:
                    progress(done, total)
        t_merge = time.perf_counter()
        result = _merge(results)
        # this process's own work (the phases above are summed over the worker processes)
        result.timings.update(main_split=t_split, main_merge=time.perf_counter() - t_merge)
    if antibodies is not None:  # ids must be unique over all parts, not only within one
        _check_antibodies(antibodies, list(result.patient_ids))
        if unknown := _unscreened(antibodies, result.patient_ids):
            result = replace(result, warnings=(*result.warnings, unknown))
    first = {}
    for src in sources:
        first.setdefault(src.file, len(first))
    rej = result.rejects.with_columns(
        pl.col("file").replace_strict(first, default=len(first), return_dtype=pl.Int64).alias("__f")
    ).sort(["__f", "row"], maintain_order=True, nulls_last=False).drop("__f")
    result = replace(result, rejects=rej, timings={**result.timings, "wall": time.perf_counter() - t0})
    result.check()
    return result


def _screen_sources(ref, sources: list[_Source], nom, **kw) -> ScreenResult:
    from haplomatch.collector import collected_after

    with collected_after():
        return _screen_sources_now(ref, sources, nom, **kw)


def _screen_sources_now(ref, sources: list[_Source], nom, *, profile, rules_path, overrides, antibodies, settings,
                        read_settings, reject_conflicts, progress, chunk) -> ScreenResult:
    """The screen of some sources in this process: reading, segregation per family, then pair facts and
    ranking per ``chunk`` families."""
    from haplomatch.pairfacts import SEGREGATION_SCHEMA, FactSettings, documented_columns, pair_facts
    from haplomatch.persons import pair_frame
    from haplomatch.search import needed_columns, registry_rules, unused_antibodies

    t0 = time.perf_counter()
    tm: dict[str, float] = {}
    clock = [t0]

    def lap(name: str) -> None:
        now = time.perf_counter()
        tm[name] = tm.get(name, 0.0) + now - clock[0]
        clock[0] = now

    settings = settings or FactSettings()
    rejects: list[dict] = []
    rows_in = rejected_rows = families_rejected = 0
    warnings: list[str] = []
    todo = []  # (family key, file read, family)
    for src in sources:
        fr = _read_file(src, nom, read_settings)
        rows_in += fr.rows
        all_rows = sorted(set(fr.row_family) | set(fr.row_problems))
        if fr.file_problems:
            p = fr.file_problems[0]
            reason = Problem("file rejected: " + "; ".join(x.message for x in fr.file_problems), column=p.column)
            if all_rows:
                _reject_rows(rejects, fr.file, all_rows, None, fr.row_problems, reason)
            else:
                rejects.append({"file": fr.file, "row": None, "family_id": None, "column": p.column,
                                "value": p.value, "message": reason.message})
            rejected_rows += fr.rows
            families_rejected += len({fr.row_family.get(r) for r in all_rows}) if all_rows else 0
            continue
        by_family: dict[str | None, list[int]] = defaultdict(list)
        for r, f in fr.row_family.items():
            by_family[f].append(r)
        # rows that could not be read at all (wrong number of cells): no family is known for them
        for r in sorted(set(fr.row_problems) - set(fr.row_family)):
            _reject_rows(rejects, fr.file, [r], None, fr.row_problems, None)
            rejected_rows += 1
        fams = {f.id: f for f in fr.families}
        for fid, rows in by_family.items():
            errs = [p for r in rows for p in fr.row_problems.get(r, [])] + fr.family_problems.get(fid, [])
            fam = fams.get(fid)
            if fam is not None and not errs and sum(p.relation == "patient" for p in fam.people) != 1:
                errs = [Problem("the family has no patient row", column="relation")]
            if errs or fam is None:
                first = errs[0] if errs else Problem("family could not be read")
                row_txt = f" (row {first.row})" if first.row is not None else ""
                reason = Problem(f"family {fid or ''} rejected: {first.message}{row_txt}".replace("family  ", "family "),
                                 column=first.column)
                fam_level = fr.family_problems.get(fid, [])
                _reject_rows(rejects, fr.file, sorted(rows), fid,
                             {r: fr.row_problems.get(r, []) for r in rows},
                             Problem(fam_level[0].message, column=fam_level[0].column) if fam_level else reason)
                rejected_rows += len(rows)
                families_rejected += 1
                continue
            todo.append(((fr.index, fid), fr, fam, sorted(rows)))
        warnings += [w for ws in fr.warnings.values() for w in ws]
    lap("read")

    # segregation: a loop over families (in worker processes when asked and worth it)
    seg_by_family, fam_warnings = {}, {}
    screened = []
    results = _segregate_all([fam for _, _, fam, _ in todo], nom, settings, reject_conflicts, progress)
    for (key, fr, fam, rows), (frame, extra) in zip(todo, results):
        if frame is None:
            for r in rows:
                for p in extra:
                    rejects.append({"file": fr.file, "row": r, "family_id": fam.id, "column": p.column,
                                    "value": p.value, "message": p.message})
            rejected_rows += len(rows)
            families_rejected += 1
        else:
            fkey = f"{key[0]}\x1f{key[1] or ''}"
            for r in frame:
                r["family_id"] = fkey
            seg_by_family[fkey] = frame
            fam_warnings[fkey] = "; ".join(dict.fromkeys(extra + fr.warnings.get(fam.id, []))) or None
            screened.append((fkey, fr, fam))
    lap("segregation")

    patients = len(screened)
    base = _empty_candidates()
    if not screened:
        return _finish(base, rejects, rows_in, patients, rejected_rows, 0, families_rejected, profile, "",
                       ref.label, warnings, tm)

    patient_ids = tuple(fam.patient.id for _, _, fam in screened)
    if antibodies is not None:
        antibodies = _check_antibodies(antibodies, list(patient_ids))
    # one people table, one pair table, one pair-facts pass over the families (``chunk`` families at a time,
    # so that memory stays bounded: the pair-facts table has hundreds of columns)
    rules = None
    outs = []
    for c0 in range(0, len(screened), chunk):
        part = screened[c0:c0 + chunk]
        persons, fkeys, order, files, fids = [], [], [], [], []
        for n, (fkey, fr, fam) in enumerate(part, start=c0):
            for j, p in enumerate(fam.people):
                persons.append(p)
                fkeys.append(fkey)
                order.append(n * 100_000 + j)
                files.append(fr.file)
                fids.append(fam.id)
        people = _people(part, persons).with_columns(
            pl.Series("family_id", fkeys, dtype=pl.String), pl.Series("__ord", order, dtype=pl.Int64),
            pl.Series("__file", files, dtype=pl.String), pl.Series("__fid", fids, dtype=pl.String))
        pairs = pair_frame(people.filter(pl.col("relation") == "patient"),
                           people.filter(pl.col("relation") != "patient"), on="family_id").sort("donor___ord")
        seg = pl.DataFrame([r for k in dict.fromkeys(fkeys) for r in seg_by_family[k]], schema=SEGREGATION_SCHEMA)
        lap("tables")
        if pairs.height == 0:
            continue
        if antibodies is not None:
            facts = _facts_with_antibodies(ref, pairs, seg, antibodies, settings)
        else:
            facts = pair_facts(ref, pairs, seg, None, settings)
        lap("pair_facts")
        _add_range_notes(ref, facts, {fkey: fam for fkey, _, fam in part}, fam_warnings, settings.compat)
        if rules is None:
            if rules_path is None and profile not in (None, "haplo-hsct", "nk-cell-therapy"):
                rules = registry_rules(profile, None, dict(facts.schema), overrides)
            else:
                from haplomatch.ranking import rules_for

                rules = rules_for(profile, rules_path, dict(facts.schema), overrides)
            if antibodies is not None and (unused := unused_antibodies(rules)):
                warnings.append(unused)
        # ranked on the columns the rules and the summary read (every sort moves every column); the other
        # documented facts are gathered once, in the final order
        keep = (needed_columns(rules) | set(summary_expr(pl.col("excluded_by")).meta.root_names())
                | {"id", "relation", "donor___file", "donor___fid", "patient_id", "family_id", "patient___ord"})
        narrow = facts.select([c for c in facts.columns if c in keep]).with_row_index("__at")
        ranked = rank_in_groups(narrow, rules, "family_id").sort(["patient___ord", "rank"])
        documented = documented_columns(facts.columns)
        rest = [c for c in documented if c not in ranked.columns]
        ranked = pl.concat([ranked, facts.select(rest).gather(ranked["__at"])], how="horizontal")
        excluded = excluded_by_expr(rules)
        out = ranked.with_columns(excluded.alias("excluded_by")).with_columns(
            summary_expr(pl.col("excluded_by")).alias("summary"),
            pl.col("family_id").replace_strict(list(fam_warnings), list(fam_warnings.values()), default=None,
                                               return_dtype=pl.String).alias("family_warnings"),
        )
        glossary = [k for k in documented if k not in ("id", "relation")]
        outs.append(out.select(
            pl.col("donor___file").alias("file"), pl.col("donor___fid").alias("family_id"),
            pl.col("patient_id"), "rank", "id", "relation", "eligible", "tier", "excluded_by", "summary",
            "family_warnings", *glossary,
        ))
        lap("ranking")
    if not outs:
        return _finish(base, rejects, rows_in, patients, rejected_rows, patients, families_rejected, profile, "",
                       ref.label, warnings, tm, patient_ids)
    return _finish(pl.concat(outs, how="diagonal_relaxed"), rejects, rows_in, patients, rejected_rows,
                   len(screened), families_rejected, rules.profile, rules.path, ref.label, warnings, tm, patient_ids)


def _add_range_notes(ref, facts: pl.DataFrame, families: dict, fam_warnings: dict, compat) -> None:
    """``rank``'s warnings for mismatch counts left as ranges (why, and what typing would settle it), added to
    the ``family_warnings`` of the families that have such a candidate (few: the others cost one filter)."""
    from haplomatch.compat import CORE_LOCI
    from haplomatch.ranking import _range_warnings

    ranged = pl.any_horizontal([pl.col(f"{d}_{loc}").is_null() & pl.col(f"{d}_{loc}_min").is_not_null()
                                for d in ("gvh", "hvg") for loc in CORE_LOCI if f"{d}_{loc}_min" in facts.columns]
                               or [pl.lit(False)])
    hit = facts.filter(ranged)
    if hit.height == 0:
        return
    for (fkey,), rows in hit.group_by("family_id", maintain_order=True):
        notes = _range_warnings(ref, families[fkey], rows, compat)
        if notes:
            fam_warnings[fkey] = "; ".join(dict.fromkeys(
                ([fam_warnings[fkey]] if fam_warnings.get(fkey) else []) + notes))


def _empty_candidates() -> pl.DataFrame:
    return pl.DataFrame(schema={"file": pl.String, "family_id": pl.String, "patient_id": pl.String,
                                "rank": pl.Int64, "id": pl.String, "relation": pl.String, "eligible": pl.Boolean,
                                "tier": pl.Int64, "excluded_by": pl.List(pl.String), "summary": pl.String,
                                "family_warnings": pl.String})


def _finish(out, rejects, rows_in, patients, rejected_rows, families, families_rejected, profile, rules_file,
            release, warnings, tm, patient_ids=()) -> ScreenResult:
    rej = pl.DataFrame(rejects, schema=REJECT_SCHEMA) if rejects else pl.DataFrame(schema=REJECT_SCHEMA)
    res = ScreenResult(out, rej, rows_in, patients, rejected_rows, families, families_rejected, profile,
                       rules_file, release, tuple(dict.fromkeys(warnings)), tm, tuple(patient_ids))
    res.check()
    return res


def _check_antibodies(antibodies, patient_ids: list[str]) -> list:
    """Every antibody names its patient, and that id names one screened patient only."""
    from collections import Counter

    abs_ = list(antibodies)
    missing = [a.specificity for a in abs_ if not a.patient_id]
    if missing:
        raise InputError.one("in batch screening every antibody needs the patient_id of its patient "
                             f"(missing for {', '.join(missing[:5])})", column="patient_id")
    count = Counter(patient_ids)
    dup = sorted({a.patient_id for a in abs_ if count[a.patient_id] > 1})
    if dup:
        raise InputError.one(f"patient id(s) {', '.join(dup)} name the patient of more than one family: the antibody "
                             "report cannot say whose antibodies they are (make patient ids unique)", column="patient_id")
    return abs_


def _unscreened(antibodies, patient_ids) -> str | None:
    """The warning for antibodies whose patient_id names no screened patient (a mistyped id would otherwise
    leave that patient's donors unchecked without a word; a report may also cover patients not screened)."""
    screened = set(patient_ids)
    missing = [pid for pid in dict.fromkeys(a.patient_id for a in antibodies) if pid not in screened]
    if not missing:
        return None
    n = sum(a.patient_id in missing for a in antibodies)
    return (f"{n:,} antibod{'y' if n == 1 else 'ies'} of the report name{'s' if n == 1 else ''} "
            f"{len(missing):,} patient id(s) that no screened family has ({', '.join(missing[:5])}"
            f"{f' and {len(missing) - 5:,} more' if len(missing) > 5 else ''}): not used (a rejected family's "
            "patient, or a patient not in these files; check the ids)")


def _people(part: list, persons: list) -> pl.DataFrame:
    """The people table of ``persons`` (the people of ``part``'s families, in order): rows of the tables the
    reader made (one per file piece), else ``people_frame``."""
    from haplomatch.persons import people_frame

    tables, at, n = [], {}, 0
    for _, fr, _ in part:
        if fr.people is None:
            return people_frame(persons)
        if id(fr) not in at:
            at[id(fr)] = (n, fr.people)
            tables.append(fr.people)
            n += len(fr.people.people)
    rows: list[int] = []
    for _, fr, fam in part:
        offset, table = at[id(fr)]
        found = table.rows(fam.people)
        if found is None:
            return people_frame(persons)
        rows += [offset + r for r in found]
    frame = tables[0].frame if len(tables) == 1 else pl.concat([t.frame for t in tables])
    return frame[rows] if rows else frame.clear()


def _facts_with_antibodies(ref, pairs: pl.DataFrame, seg: pl.DataFrame, antibodies, settings) -> pl.DataFrame:
    """Pair facts with DSA for the patients the report names (by patient id), without for the others."""
    from haplomatch.pairfacts import pair_facts

    named = list({a.patient_id for a in antibodies})
    with_ab = pairs.filter(pl.col("patient_id").is_in(named))
    without = pairs.filter(~pl.col("patient_id").is_in(named))
    parts = []
    if with_ab.height:
        parts.append(pair_facts(ref, with_ab, seg, antibodies, settings, by_patient_id=True))
    if without.height:
        parts.append(pair_facts(ref, without, seg, None, settings).with_columns(
            pl.lit("the antibody report has no antibodies for this patient").alias("dsa_reason")))
    return pl.concat(parts, how="diagonal_relaxed").sort("donor___ord")
