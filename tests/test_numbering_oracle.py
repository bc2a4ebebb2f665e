"""IMGT numbering of FASTA sequences (``reference/numbering.py``) checked against independent sources.

* Oracle: the official IMGT text protein alignments of older releases (A 3.55.0, B 3.45.0, C 3.49.0) in
  ``../shared/reference-data/imgthla-oracle``. Every allele whose sequence is unchanged in the shipped
  3.58.0 FASTA must get, from ``residues_at``, the residue IMGT aligned at −21 and 76–83.
* Facts from the literature, not from this code.
* A few synthetic sequences for the edge cases (partial, stop, indel, no anchor).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from haplomatch.reference.files import read_fasta
from haplomatch.reference.numbering import POSITIONS, column_name, residues_at

FASTA = Path(__file__).resolve().parents[1] / "reference" / "imgthla" / "fasta"
SHARED = Path(__file__).resolve().parents[2] / "shared"
ORACLE = SHARED / "reference-data" / "imgthla-oracle"
LOCI = ("A", "B", "C")
LEADER = 24  # class I leader length; checked against the oracle's own labels below

#: Compared alleles observed per locus: A 8,023, B 7,933, C 7,375. Floors sit a little below.
MIN_COMPARED = {"A": 7_500, "B": 7_500, "C": 7_000}

needs_oracle = pytest.mark.skipif(
    not (SHARED / "reference-data").is_dir(),
    reason=f"oracle alignments not found: {SHARED / 'reference-data'} (shared data beside the project)",
)


# ---------------------------------------------------------------------------------------------------
# Test-only parser of the IMGT text alignment (layout: reference-data/LAYOUT.md)


def parse_alignment(path: Path) -> tuple[list[str], dict[str, str], int]:
    """Allele names in order, each allele's row concatenated over all blocks, and the leader length.

    Per block, rows are sliced from the column of the first ``|`` of the marker line (the name width
    differs between files) and spaces dropped. The leader length is read from the first block: the
    number of reference residues before the column marked under label ``1``.
    """
    order: list[str] = []
    rows: dict[str, list[str]] = {}
    start: int | None = None
    marks: list[int] = []
    labels: list[str] = []
    leader: int | None = None
    previous = ""
    for line in path.read_text(encoding="ascii").splitlines():
        if start is None:
            if "|" in line and set(line) <= {" ", "|"}:  # the marker line opens a block
                marks = [i for i, c in enumerate(line) if c == "|"]
                labels = previous.split()[1:]  # the numbering line above it: ' Prot  -30  ...  1'
                start = marks[0]
            previous = line
            continue
        if not line.strip():  # a blank line closes the block
            start = None
            continue
        name = line[:start].strip()
        assert name and " " not in name, f"{path.name}: unexpected row {line[:40]!r}"
        if name not in rows:
            order.append(name)
            rows[name] = []
        if leader is None and len(order) == 1 and labels[-1:] == ["1"] and len(marks) == len(labels):
            leader = sum(c not in " ." for c in line[start : marks[-1]])
        rows[name].append(line[start:].replace(" ", ""))
    assert leader is not None, f"{path.name}: no label 1 in the first block"
    return order, {name: "".join(parts) for name, parts in rows.items()}, leader


def reference_columns(ref_row: str, leader: int) -> dict[int, int]:
    """IMGT position → alignment column, counting only the reference's residues (``.`` columns are
    insertions, with no number); the first residue is −``leader`` and there is no position 0."""
    columns: dict[int, int] = {}
    pos = -leader
    for j, c in enumerate(ref_row):
        if c != ".":
            columns[pos] = j
            pos = pos + 2 if pos == -1 else pos + 1
    return columns


_SYMBOLS = set("ACDEFGHIKLMNPQRSTVWXY*.")


def oracle_allele(ref_row: str, row: str, columns: dict[int, int]) -> tuple[str, dict[int, str | None]]:
    """An allele's ungapped sequence, and its residue at each of ``POSITIONS`` that IMGT covers.

    ``-`` is the reference residue, ``*`` not sequenced (not covered), ``.`` a gap: a deletion where
    the reference has a residue (covered, no residue: None). Columns past the row's end are not covered.
    """
    padded = ref_row + "." * max(len(row) - len(ref_row), 0)  # past the reference: '-' would be a gap
    full = "".join(r if c == "-" else c for c, r in zip(row, padded))
    assert set(full) <= _SYMBOLS, f"unexpected symbols {set(full) - _SYMBOLS}"
    residues: dict[int, str | None] = {}
    for pos in POSITIONS:
        j = columns[pos]
        c = full[j] if j < len(full) else "*"
        if c != "*":
            residues[pos] = None if c == "." else c
    return full.replace("*", "").replace(".", ""), residues


@pytest.fixture(scope="module")
def placed() -> dict[str, tuple[pl.DataFrame, dict[str, dict[int, str | None]]]]:
    """Per locus: the 3.58.0 FASTA table and, per allele, ``residues_at`` of it by position."""
    out = {}
    for locus in LOCI:
        fasta = read_fasta(FASTA / f"{locus}_prot.fasta")
        got = residues_at(fasta).select("allele", *map(column_name, POSITIONS))
        out[locus] = (fasta, {row[0]: dict(zip(POSITIONS, row[1:])) for row in got.iter_rows()})
    return out


@pytest.fixture(scope="module")
def oracle() -> dict[str, tuple[str, dict[str, tuple[str, dict[int, str | None]]]]]:
    """Per locus: the reference's ungapped sequence and, per allele in alignment order, ``oracle_allele``."""
    out = {}
    for locus in LOCI:
        order, rows, leader = parse_alignment(ORACLE / f"{locus}_prot.txt")
        assert leader == LEADER
        ref_row = rows[order[0]]
        columns = reference_columns(ref_row, leader)
        alleles = {name: oracle_allele(ref_row, rows[name], columns) for name in order}
        out[locus] = (order[0], alleles)
    return out


@needs_oracle
@pytest.mark.parametrize("locus", LOCI)
def test_residues_agree_with_official_alignment(locus: str, placed, oracle) -> None:
    fasta, ours = placed[locus]
    reference, alleles = oracle[locus]
    assert reference == fasta["allele"][0], "the oracle and the FASTA must share the locus reference"
    assert alleles[reference][0] == fasta["sequence"][0]
    sequence = dict(zip(fasta["allele"].to_list(), fasta["sequence"].to_list()))
    compared = 0
    disagreements = []
    for allele, (seq, residues) in alleles.items():
        if sequence.get(allele) != seq:  # absent from 3.58.0, or its sequence changed since
            continue
        compared += 1
        for pos, expected in residues.items():
            if ours[allele][pos] != expected:
                disagreements.append((allele, pos, expected, ours[allele][pos]))
    print(f"{locus}: {compared} alleles compared at {len(POSITIONS)} positions, {len(disagreements)} disagreements")
    assert compared >= MIN_COMPARED[locus]
    assert disagreements == [], f"{len(disagreements)} disagreements (allele, pos, oracle, ours): {disagreements[:20]}"


@needs_oracle
@pytest.mark.parametrize("locus", LOCI)
def test_nothing_reported_where_oracle_has_no_sequence(locus: str, placed, oracle) -> None:
    """Where IMGT shows a position unsequenced (``*`` or past the row's end), we report no residue."""
    fasta, ours = placed[locus]
    sequence = dict(zip(fasta["allele"].to_list(), fasta["sequence"].to_list()))
    extra = [
        (allele, pos, ours[allele][pos])
        for allele, (seq, residues) in oracle[locus][1].items()
        if sequence.get(allele) == seq
        for pos in POSITIONS
        if pos not in residues and ours[allele][pos] is not None
    ]
    assert extra == [], f"{len(extra)} residues where IMGT has none (allele, pos, ours): {extra[:20]}"


# ---------------------------------------------------------------------------------------------------
# Facts from the literature (3.58.0 FASTA)


def _residue(placed, allele: str, pos: int) -> str | None:
    _, ours = placed[allele[0]]
    assert allele in ours, f"{allele} not in the FASTA"
    return ours[allele][pos]


@pytest.mark.parametrize(
    ("allele", "pos", "residue"),
    [
        ("B*07:02:01:01", -21, "M"),  # leader −21M (Horowitz et al., Sci Immunol 2016; Petersdorf et al., Lancet Haematol 2020)
        ("B*57:01:01:01", 80, "I"),  # Bw4-80I, a strong KIR3DL1 ligand (Cella et al., J Exp Med 1994)
        ("B*44:02:01:01", 80, "T"),  # Bw4-80T (Gumperz et al., J Exp Med 1995)
        ("C*07:02:01:01", 80, "N"),  # C1: Asn80 (Colonna et al., Science 1993; Mandelboim et al., J Exp Med 1996)
        ("C*16:02:01:01", 80, "K"),  # C2 (Lys80): the exception in the otherwise C1 C*16 lineage
        ("B*46:01:01:01", 76, "V"),  # B*46:01 carries the HLA-C C1 epitope, Val76 + Asn80 (Barber et al., J Exp Med 1996)
        ("B*46:01:01:01", 80, "N"),
    ],
)
def test_literature_facts(placed, allele: str, pos: int, residue: str) -> None:
    assert _residue(placed, allele, pos) == residue


def test_bw4_motif_of_b5701(placed) -> None:
    """Bw4 epitope on residues 77–83 (Wan et al., J Immunol 1986), with Ile80: NLRIALR for B*57:01."""
    assert "".join(_residue(placed, "B*57:01:01:01", p) or "?" for p in range(77, 84)) == "NLRIALR"


# ---------------------------------------------------------------------------------------------------
# Edge cases on synthetic sequences built from the B reference


@pytest.fixture(scope="module")
def b_ref() -> str:
    return read_fasta(FASTA / "B_prot.fasta")["sequence"][0]


def _place(ref: str, *queries: str) -> list[tuple]:
    """``residues_at`` of each query, with ``ref`` as the locus reference."""
    table = pl.DataFrame({"allele": [f"s{i}" for i in range(len(queries) + 1)], "sequence": [ref, *queries]})
    return [row[1:] for row in residues_at(table).iter_rows()][1:]


def _at(ref: str, pos: int) -> str:
    return ref[pos + LEADER if pos < 0 else pos + LEADER - 1]


def test_column_names_and_position_zero() -> None:
    assert column_name(-21) == "r_m21" and column_name(80) == "r80"
    table = pl.DataFrame({"allele": ["x"], "sequence": ["M" * 100]})
    with pytest.raises(ValueError):
        residues_at(table, [0])
    assert residues_at(table.head(0)).columns == ["allele", *map(column_name, POSITIONS)]


def test_synthetic_edge_cases(b_ref: str) -> None:
    expected = tuple(_at(b_ref, p) for p in POSITIONS)
    mature2 = b_ref[LEADER + 1 :]  # a partial starting at mature residue 2, as most exon-2+3 ones do
    del_after = b_ref[:150] + b_ref[153:]  # a 3-residue deletion after the positions read
    del_before = b_ref[:60] + b_ref[63:]  # ... and one between −21 and 76
    ins_before = b_ref[:60] + "GGGG" + b_ref[60:]  # an insertion there
    leader_ins = b_ref[:10] + "PAPRTV" + b_ref[10:]  # a leader insertion (as in B*51:329Q)
    stop = b_ref[: LEADER + 79] + "X"  # stop codon at residue 80
    cut = _place(b_ref, b_ref, mature2, del_after, del_before, ins_before, leader_ins, stop, "W" * 30)
    assert cut[:6] == [expected, (None, *expected[1:]), expected, expected, expected, expected]
    assert cut[6] == (*expected[:5], "X", None, None, None)  # the stop itself, nothing after it
    assert cut[7] == (None,) * len(POSITIONS)  # nothing shared with the reference: not placed


def test_deleted_residue_is_null(b_ref: str) -> None:
    expected = [_at(b_ref, p) for p in POSITIONS]
    expected[POSITIONS.index(80)] = None
    assert _place(b_ref, b_ref[: LEADER + 79] + b_ref[LEADER + 80 :]) == [tuple(expected)]
