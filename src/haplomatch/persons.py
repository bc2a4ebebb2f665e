"""People as rows of a polars table, and (patient, candidate) pairs as rows: the input of every pair fact.

One column per HLA slot (``A_1``, ``A_2``, … holding a typing name or an allele list ``A*01:01/A*01:02``;
null = untyped), one nullable boolean per KIR gene (``kir_2DL1`` … true present, false absent, null untyped),
and the donor attributes. A genotype list (GL ``|``) is flattened to the union of its alternatives per slot:
the possible values widen, so every downstream fact stays an over-approximation, never a guess.
The same table shape serves one family on the command line and a million registry rows.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

import polars as pl

from haplomatch.family import HLA_LOCI, Person
from haplomatch.hlatyping import LocusTyping
from haplomatch.kir import GENES, KirGenotype

HLA_COLUMNS: tuple[str, ...] = tuple(f"{locus}_{i}" for locus in HLA_LOCI for i in (1, 2))
KIR_GENE_COLUMNS: tuple[str, ...] = tuple(f"kir_{g.removeprefix('KIR')}" for g in GENES)
KIR_EXTRA_COLUMNS: tuple[str, ...] = ("kir_2DS4FL", "kir_2DS4N", "kir_2DL5", "kir_3DL1_alleles", "kir_3DS1_alleles")
ATTRIBUTES: dict[str, pl.DataType] = {
    "id": pl.String, "relation": pl.String, "family_id": pl.String, "sex": pl.String, "age": pl.Float64,
    "weight_kg": pl.Float64, "abo": pl.String, "rh": pl.String, "cmv": pl.Boolean, "fcgr3a": pl.String,
    "available": pl.Boolean, "parity": pl.Int64,
}


def schema() -> dict[str, pl.DataType]:
    """The column types of a people table."""
    out: dict[str, pl.DataType] = dict(ATTRIBUTES)
    out |= {c: pl.String for c in HLA_COLUMNS}
    out |= {c: pl.Boolean for c in KIR_GENE_COLUMNS}
    out |= {"kir_2DS4FL": pl.Boolean, "kir_2DS4N": pl.Boolean, "kir_2DL5": pl.Boolean,
            "kir_3DL1_alleles": pl.String, "kir_3DS1_alleles": pl.String}
    return out


@lru_cache(maxsize=1 << 16)
def slot_strings(t: LocusTyping | None) -> tuple[str | None, str | None]:
    """The two slots of a locus typing as strings ('/'-joined possibilities), None when open.
    (Remembered: typings are immutable, and a batch repeats them.)"""
    if t is None:
        return None, None
    out = []
    for i in (0, 1):
        names: dict[str, None] = {}
        for g in t.genotypes:
            for n in g[i]:
                names.setdefault(n, None)
        if any(not g[i] for g in t.genotypes):
            out.append(None)  # open in some alternative: anything is possible
        else:
            out.append("/".join(names) or None)
    return out[0], out[1]


def kir_allele_string(kir: KirGenotype | None, gene: str) -> str | None:
    """A gene's allele typing in DKMS form (``001/002+003|004+005``), or None when only presence was typed."""
    if kir is None:
        return None
    call = kir[gene]
    if not call.alleles:
        return None
    return "|".join("+".join("/".join(copy) for copy in alt) or "NEG" for alt in call.alleles)


def person_record(p: Person) -> dict:
    """One person as a flat dict matching :func:`schema`."""
    rec: dict = {k: getattr(p, k) for k in ATTRIBUTES}
    for locus in HLA_LOCI:
        rec[f"{locus}_1"], rec[f"{locus}_2"] = slot_strings(p.hla.get(locus))
    rec.update(_kir_record(p.kir))
    return rec


_KIR_SEEN: dict[int, tuple[KirGenotype, dict]] = {}


def _kir_record(kir: KirGenotype | None) -> dict:
    """The KIR columns of one genotype, remembered by identity: a batch reader gives equal typings one shared
    object, and hashing a genotype (17 gene calls) costs more than this lookup."""
    hit = _KIR_SEEN.get(id(kir))
    if hit is not None and hit[0] is kir:
        return hit[1]
    rec = _kir_columns(kir)
    if len(_KIR_SEEN) > 65_536:
        _KIR_SEEN.clear()
    _KIR_SEEN[id(kir)] = (kir, rec)  # the genotype is kept, so its id is not reused while remembered
    return rec


def _kir_columns(kir: KirGenotype | None) -> dict:
    rec: dict = {}
    for g, col in zip(GENES, KIR_GENE_COLUMNS):
        rec[col] = kir.present(g) if kir is not None else None
    rec["kir_2DS4FL"] = kir.kir2ds4_full_length if kir else None
    rec["kir_2DS4N"] = kir.kir2ds4_null if kir else None
    rec["kir_2DL5"] = kir.kir2dl5_any if kir else None
    rec["kir_3DL1_alleles"] = kir_allele_string(kir, "KIR3DL1")
    rec["kir_3DS1_alleles"] = kir_allele_string(kir, "KIR3DS1")
    return rec


def people_frame(people: Iterable[Person]) -> pl.DataFrame:
    """A table of people, one row each, columns as :func:`schema` (built column by column: a batch has
    hundreds of thousands of people)."""
    people = list(people)
    data: dict[str, list] = {c: [getattr(p, c) for p in people] for c in ATTRIBUTES}
    hlas = [p.hla for p in people]
    slots: dict[str, tuple[list, list] | None] = {}
    for locus in HLA_LOCI:
        typings = [h.get(locus) for h in hlas]
        slots[locus] = _slot_columns(typings) if any(typings) else None
    return people_table(data, slots, [p.kir for p in people])


def people_table(data: dict[str, list], slots: dict[str, tuple | None],
                 kirs: list[KirGenotype | None]) -> pl.DataFrame:
    """:func:`people_frame` from columns already at hand (a reader has them while it reads): ``data`` the
    :data:`ATTRIBUTES` by name, ``slots`` each locus's two slot-string columns (lists or Series; None or
    absent: untyped), and each person's KIR genotype."""
    n = len(kirs)
    cols = schema()
    data = dict(data)
    for locus in HLA_LOCI:
        pair = slots.get(locus)
        data[f"{locus}_1"], data[f"{locus}_2"] = pair if pair is not None else ([None] * n, [None] * n)
    # KIR: the distinct genotypes (a batch shares few) as a small table, gathered per person
    kir_cols = (*KIR_GENE_COLUMNS, *KIR_EXTRA_COLUMNS)
    index: dict[int, int] = {}  # record (by identity) -> its place
    by_kir: dict[int, int] = {}  # genotype (by identity: ``kirs`` keeps them) -> its record's place
    records: list[dict] = []
    rows = []
    for kir in kirs:
        i = by_kir.get(id(kir))
        if i is None:
            rec = _kir_record(kir)
            i = index.get(id(rec))
            if i is None:
                i = index[id(rec)] = len(records)
                records.append(rec)
            by_kir[id(kir)] = i
        rows.append(i)
    if not n:
        return pl.DataFrame([pl.Series(c, [], dtype=t) for c, t in cols.items()])
    kir = pl.DataFrame({c: [r[c] for r in records] for c in kir_cols}, schema={c: cols[c] for c in kir_cols},
                       strict=False).gather(pl.Series(rows, dtype=pl.UInt32))
    return pl.DataFrame([_column(c, data[c], t) if c in data else kir[c] for c, t in cols.items()])


def _column(name: str, values, dtype: pl.DataType) -> pl.Series:
    if isinstance(values, pl.Series):
        return values.alias(name).cast(dtype)
    return pl.Series(name, values, dtype=dtype, strict=False)


def _slot_columns(typings: list[LocusTyping | None]) -> tuple[list, list]:
    """:func:`slot_strings` of each typing, as two columns; the commonest typing (one genotype of two single
    names) is read directly (a batch has hundreds of thousands)."""
    first: list[str | None] = []
    second: list[str | None] = []
    for t in typings:
        if t is None:
            a = b = None
        else:
            g = t.genotypes
            if len(g) == 1 and len(g[0][0]) == 1 and len(g[0][1]) == 1:
                a, b = g[0][0][0], g[0][1][0]
            else:
                a, b = slot_strings(t)
        first.append(a)
        second.append(b)
    return first, second


def pair_frame(patients: pl.DataFrame, donors: pl.DataFrame, on: str | None = None) -> pl.DataFrame:
    """(patient, donor) pairs: every column prefixed ``patient_`` / ``donor_``. With ``on`` (e.g.
    ``family_id``) pairs are formed within equal values; otherwise every patient with every donor."""
    p = patients.rename({c: f"patient_{c}" for c in patients.columns})
    d = donors.rename({c: f"donor_{c}" for c in donors.columns})
    if on is None:
        return p.join(d, how="cross")
    return p.join(d, left_on=f"patient_{on}", right_on=f"donor_{on}", how="inner", coalesce=False)


def person_from_gl(pid: str, hla_gl: str, *, kir: KirGenotype | None = None, nomenclature=None,
                   relation: str = "unrelated", **attributes) -> Person:
    """A person from a GL string typing (command-line use). Raises InputError listing every problem;
    with ``nomenclature`` the names are also checked against the release."""
    from haplomatch.errors import InputError
    from haplomatch.hlatyping import check_names, from_gl_text

    hla, problems = from_gl_text(hla_gl, source={"column": pid})
    if nomenclature is not None:
        for t in hla.values():
            problems += check_names(t, nomenclature, {"column": pid})
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise InputError(errors)
    return Person(id=pid, relation=relation, hla=hla, kir=kir, **attributes)
