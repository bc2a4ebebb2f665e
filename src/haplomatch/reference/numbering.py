"""Place IPD-IMGT/HLA class I protein sequences (FASTA) on IMGT numbering, and read residues there.

The 3.58.0 class I alignments are too large to ship and the FASTA files carry no coordinates: a
full-length sequence starts at leader residue −24, but about a third are exon-2+3 partials that start
where sequencing did (mostly mature residue 2), and some alleles carry insertions or deletions. So each
sequence is anchored to the locus reference (the first FASTA record) by the 6-mers it shares with it:
a 6-mer occurring once in the reference gives an anchor ``offset = ref_index − query_index``.

* One offset for every anchor (the usual case, checked cheaply): the sequence is the reference with
  substitutions, read at that offset.
* Several offsets: runs of anchors are chained colinearly (each offset change costs
  ``_CHAIN_PENALTY``, so a stray 6-mer cannot fake an indel), and between two runs the indel is put
  where most residues agree with the reference, rightmost on ties (3' rule of HGVS, which also matches
  IMGT's placement in the leader duplication of B*51:329Q). Residues after the last anchor keep its
  offset: after a frameshift IMGT writes the aberrant translation ungapped.
* Residues before the first anchor keep its offset (a partial that starts later) unless an indel among
  them gains more than ``_INDEL_PENALTY`` identities; nothing can precede −24, so more residues than the
  reference has there means a leader insertion.
* No anchor at all (a few short null alleles): one starting with Met starts at the initiator (−24);
  otherwise the best ungapped offset if clearly best, else nothing (all null).

Checked against the official IMGT alignments of releases 3.45–3.55 (tests/test_numbering_oracle.py): the
same residues at −21 and 76–83 for every allele unchanged since. Elsewhere an indel inside a repeat or an
aberrant frameshift translation may sit a residue or two from where IMGT put it.
IMGT numbering: the 24-residue leader is −24…−1 and the mature protein starts at 1; there is no 0.
Only the reference's residues are numbered: an insertion in another allele takes no number.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from operator import eq

import polars as pl

#: The residues the engine reads: −21 (HLA-B leader, M/T), 76 and 77–83 (Bw4/Bw6, C1/C2, residue 80).
POSITIONS: tuple[int, ...] = (-21, 76, 77, 78, 79, 80, 81, 82, 83)

_K = 6  # anchor length: unique in a ~365-residue reference, yet short enough to fit between variants
_CHAIN_PENALTY = 1.5  # cost of an offset change in the anchor chain: drops isolated stray anchors
_INDEL_PENALTY = 3  # identities an indel before the first anchor must gain over reading it straight
_PREFIX_SHIFT = 30  # largest indel considered before the first anchor
_STOP = "X"  # stop codon in the IPD-IMGT/HLA protein FASTA
_FAR = -(10**9)  # start of the first placement segment
_MARKED = re.compile(b"\x01+")  # runs of marked 6-mer starts, in a one-byte-per-residue mask

# A placement is a sorted list of (reference_index, offset): from that reference index on, the residue
# is query[index − offset]; offset None means the allele has a deletion there.
_Placement = list[tuple[int, int | None]]


def column_name(pos: int) -> str:
    """Column for an IMGT position: ``-21`` → ``r_m21``, ``80`` → ``r80`` (a '-' is not a safe column name)."""
    return f"r_m{-pos}" if pos < 0 else f"r{pos}"


def residues_at(
    fasta: pl.DataFrame, positions: Sequence[int] = POSITIONS, leader_length: int = 24
) -> pl.DataFrame:
    """Residue of every sequence at each IMGT position: columns ``allele`` and one String per position.

    ``fasta`` is a ``read_fasta`` table whose first row is the full-length locus reference (starting at
    leader residue −``leader_length``). A value is null where the sequence does not cover the position,
    has a deletion there, lies after a stop (``X``; the stop itself is reported) or cannot be placed.
    Identical protein sequences (alleles differing only outside the protein) are placed once.
    """
    positions = list(positions)
    names = [column_name(p) for p in positions]
    schema = {"allele": pl.String, **{c: pl.String for c in names}}
    if fasta.height == 0:
        return pl.DataFrame(schema=schema)
    seqs: list[str] = fasta["sequence"].to_list()
    ref = seqs[0]
    targets = [_ref_index(p, leader_length, len(ref)) for p in positions]
    index = _unique_kmers(ref)
    placed: dict[str, tuple[str | None, ...]] = {}
    for s in seqs:
        if s not in placed:
            placed[s] = _residues(s, ref, index, targets)
    columns = list(zip(*map(placed.__getitem__, seqs))) or [()] * len(names)
    data = {"allele": fasta["allele"].to_list(), **{c: list(col) for c, col in zip(names, columns)}}
    return pl.DataFrame(data, schema=schema)


def _ref_index(pos: int, leader_length: int, ref_length: int) -> int:
    """Index in the reference sequence of IMGT position ``pos`` (no position 0, leader negative)."""
    if pos == 0:
        raise ValueError("IMGT numbering has no position 0")
    if pos < -leader_length:
        raise ValueError(f"position {pos} lies before the {leader_length}-residue leader")
    t = pos + leader_length if pos < 0 else pos + leader_length - 1
    if t >= ref_length:
        raise ValueError(f"position {pos} lies beyond the reference sequence ({ref_length} residues)")
    return t


def _unique_kmers(ref: str) -> dict[str, int]:
    """6-mers occurring exactly once in the reference → their start index (repeats cannot anchor)."""
    seen: dict[str, int] = {}
    repeated: set[str] = set()
    for i in range(len(ref) - _K + 1):
        kmer = ref[i : i + _K]
        if kmer in seen:
            repeated.add(kmer)
        else:
            seen[kmer] = i
    for kmer in repeated:
        del seen[kmer]
    return seen


def _residues(query: str, ref: str, index: dict[str, int], targets: Sequence[int]) -> tuple[str | None, ...]:
    """Residues of one sequence at reference indices ``targets`` (None where absent or unplaceable)."""
    stop = query.find(_STOP)
    if stop >= 0:  # nothing after a stop is protein: keep the stop itself, report nothing after it
        query = query[: stop + 1]
    n = len(query)
    placement = _single_offset(query, ref, index)
    if placement is None:
        placement = _placement(query, ref, index)
    if len(placement) == 1 and (off := placement[0][1]) is not None:  # one offset throughout
        return tuple(query[t - off] if 0 <= t - off < n else None for t in targets)
    out: list[str | None] = []
    for t in targets:
        at: int | None = None
        for start, o in placement:
            if start > t:
                break
            at = o
        j = -1 if at is None else t - at
        out.append(query[j] if 0 <= j < n else None)
    return tuple(out)


def _single_offset(query: str, ref: str, index: dict[str, int]) -> _Placement | None:
    """The usual case, cheaply: every anchor at the offset of the first one (no indel after it).

    Looking up every 6-mer dominates the run time, so only the 6-mers that differ from the reference
    at that offset are looked up: the others equal the reference 6-mer there, so they anchor at this
    offset or not at all. None when the general placement is needed.
    """
    get = index.get
    n = len(query)
    for first in range(n - _K + 1):
        first_r = get(query[first : first + _K])
        if first_r is not None:
            break
    else:
        return None
    off = first_r - first
    if off < 0:  # residues before −24: a leader insertion, for the general placement
        return None
    # One byte per residue, 1 where the query differs from the reference at this offset (or runs past
    # its end), computed on big integers; then 1 at each 6-mer start whose 6-mer holds a difference.
    diff = int.from_bytes(query.encode(), "little") ^ int.from_bytes(ref[off : off + n].encode(), "little")
    diff |= diff >> 4
    diff |= diff >> 2
    diff |= diff >> 1
    diff &= int.from_bytes(b"\x01" * n, "little")
    diff |= diff >> 8 | diff >> 16 | diff >> 24 | diff >> 32 | diff >> 40
    marked = diff.to_bytes(n, "little")[: n - _K + 1]
    for m in _MARKED.finditer(marked, first + 1):
        for s in range(*m.span()):
            r = get(query[s : s + _K])
            if r is not None and r - s != off:  # a 6-mer anchoring elsewhere: an indel
                return None
    return _prefix(query, ref, first_r, off)


def _prefix_is_plain(query: str, ref: str, first: int, off: int) -> bool:
    """True when no indel before the first anchor (query index ``first``) could beat reading it straight."""
    plain = sum(map(eq, query[: first + _K], ref[off : off + first + _K]))
    return first + _K - _INDEL_PENALTY <= plain  # an indel scores at most one identity per residue


def _placement(query: str, ref: str, index: dict[str, int]) -> _Placement:
    """General placement: chain the anchor runs, then put an indel at each change of offset."""
    runs = _anchor_runs(query, index)
    if not runs:
        return _unanchored(query, ref)
    blocks: list[list[int]] = []  # [ref_start, ref_end (exclusive, residues), offset], one per offset
    for qs, rs, _qe, re_, _w in _chain(runs):
        off = rs - qs
        if blocks and blocks[-1][2] == off:
            blocks[-1][1] = re_ + _K
        else:
            blocks.append([rs, re_ + _K, off])
    placement = _prefix(query, ref, blocks[0][0], blocks[0][2])
    for (_, left_end, a), (right_start, _, b) in zip(blocks, blocks[1:]):
        lo = min(left_end, right_start) - _K + 1
        hi = max(left_end, right_start + _K)
        s, _ = _split(query, ref, a, b, lo, hi)
        if b > a:
            placement.append((s, None))
        placement.append((s + max(b - a, 0), b))
    return placement


def _anchor_runs(query: str, index: dict[str, int]) -> list[list[int]]:
    """Runs of consecutive anchors with one offset: ``[q_start, r_start, q_end, r_end, count]`` (6-mer starts)."""
    get = index.get
    runs: list[list[int]] = []
    last: list[int] | None = None
    for i in range(len(query) - _K + 1):
        r = get(query[i : i + _K])
        if r is None:
            continue
        if last is not None and i == last[2] + 1 and r == last[3] + 1:
            last[2], last[3] = i, r
            last[4] += 1
        else:
            last = [i, r, i, r, 1]
            runs.append(last)
    return runs


def _chain(runs: list[list[int]]) -> list[list[int]]:
    """Heaviest colinear chain of runs (both coordinates increasing), each change of offset penalised."""
    best: list[float] = []
    back: list[int] = []
    for j, (qs, rs, _qe, _re, w) in enumerate(runs):
        off = rs - qs
        score, prev = float(w), -1
        for k in range(j):
            kqs, krs, kqe, kre, _ = runs[k]
            if kqe < qs and kre < rs:
                s = best[k] + w - (0 if krs - kqs == off else _CHAIN_PENALTY)
                if s > score:
                    score, prev = s, k
        best.append(score)
        back.append(prev)
    j = max(range(len(runs)), key=best.__getitem__)
    chain = []
    while j >= 0:
        chain.append(runs[j])
        j = back[j]
    return chain[::-1]


def _split(query: str, ref: str, a: int, b: int, lo: int, hi: int) -> tuple[int, int]:
    """Place an indel between offset ``a`` (left) and ``b`` (right) inside reference span [lo, hi).

    Returns ``(s, identities)``: reference residues before ``s`` are read with ``a``; a deletion
    (b > a) removes reference residues [s, s + b − a); residues from there on are read with ``b``.
    ``s`` maximises the identities with the reference, the rightmost on ties.
    """
    n = len(query)
    d = max(b - a, 0)
    left = [0]
    for t in range(lo, hi):
        j = t - a
        left.append(left[-1] + (0 <= j < n and query[j] == ref[t]))
    right = [0]
    for t in range(hi - 1, lo - 1, -1):
        j = t - b
        right.append(right[-1] + (0 <= j < n and query[j] == ref[t]))
    right.reverse()  # right[k] = identities over [lo + k, hi)
    best_s, best = lo, -1
    for s in range(lo, hi - d + 1):
        score = left[s - lo] + right[s + d - lo]
        if score >= best:
            best_s, best = s, score
    return best_s, best


def _prefix(query: str, ref: str, first_start: int, off: int) -> _Placement:
    """Placement of the query residues before its first anchored block (reference index ``first_start``).

    Read at the block's offset unless an indel among them, with the residues before it at another
    offset ``a ≥ 0``, gains more than ``_INDEL_PENALTY`` identities; with ``off < 0`` the plain reading
    would put residues before −24, so a leader insertion is certain.
    """
    first = first_start - off  # query index of the first anchored residue
    if first <= 0 or (off >= 0 and _prefix_is_plain(query, ref, first, off)):
        return [(_FAR, off)]
    hi = first_start + _K
    head = query[: first + _K]  # the residues before the block and its first anchor

    def straight(a: int) -> int:  # identities of ``head`` read entirely at offset a
        return sum(map(eq, head[-a:], ref)) if a < 0 else sum(map(eq, head, ref[a:hi]))

    right = straight(off)
    best: tuple[float, int, int] | None = (float(right), off, off) if off >= 0 else None
    for shift in range(1, _PREFIX_SHIFT + 1):
        for a in (off - shift, off + shift):
            # an indel can gain no more than the identities of its left part read straight
            if a < 0 or (best is not None and straight(a) + right - _INDEL_PENALTY <= best[0]):
                continue
            s, score = _split(query, ref, a, off, min(a, max(off, 0)), hi)
            if best is None or score - _INDEL_PENALTY > best[0]:
                best = (score - _INDEL_PENALTY, a, s)
    assert best is not None  # with off < 0, a = 0 is among the candidates
    _, a, s = best
    if a == off:
        return [(_FAR, off)]
    placement: _Placement = [(_FAR, a)]
    if off > a:
        placement.append((s, None))
    placement.append((s + max(off - a, 0), off))
    return placement


def _unanchored(query: str, ref: str) -> _Placement:
    """Placement of a sequence sharing no 6-mer with the reference (short or aberrant null alleles).

    One starting with Met starts at the initiator (−24), as full-length FASTA records do; otherwise
    the ungapped offset with most identities, if better than any other and matching half the overlap.
    """
    if query.startswith("M"):
        return [(_FAR, 0)]
    scored = sorted(
        ((sum(map(eq, query, ref[off:])), off) for off in range(len(ref))), key=lambda x: -x[0]
    )
    if not scored:
        return []
    same, off = scored[0]
    runner_up = scored[1][0] if len(scored) > 1 else -1
    overlap = min(len(query), len(ref) - off)
    if same > runner_up and 2 * same >= overlap:
        return [(_FAR, off)]
    return []
