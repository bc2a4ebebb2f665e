"""Donor KIR genotype facts, as polars expressions over a people (or pair) table.

Every fact reads the KIR columns of :mod:`haplomatch.persons` (``{prefix}kir_2DL1`` … nullable booleans:
true present, false absent, null untyped; ``kir_2DS4FL``/``kir_2DS4N``/``kir_2DL5``; ``kir_3DL1_alleles``)
and is three-valued in the Kleene sense: a value when the typed genes decide it whatever the untyped ones are,
null ("unknown") otherwise. An untyped defining gene never becomes "absent".

Facts and their sources (:data:`SOURCES`, RULES.md §3):

- ``kir_genotype`` "A/A" | "B/x" (RULES 3.1): B/x when any of KIR2DL2, KIR2DL5 (A or B), KIR3DS1, KIR2DS1,
  KIR2DS2, KIR2DS3, KIR2DS5 is present; A/A when all are absent. A KIR2DS4 deletion (2DS4N) allele does not
  make a genotype B (RULES 3.2).
- ``kir_cen`` / ``kir_tel`` "A/A" | "A/B" | "B/B" (Cooley 2010 motifs, gene rules of DKMS CTUtools
  ``KIR_haplotype_Cen/Tel``, RULES 3.3-3.4):
  Cen-A/A = 2DL3+ ∧ 2DL2− ∧ 2DS2−; Cen-A/B = 2DL3+ ∧ (2DL2+ ∨ 2DS2+); Cen-B/B = 2DL3− ∧ (2DL2+ ∨ 2DS2+);
  Tel-A/A = 3DL1+ ∧ 2DS4+ ∧ 3DS1− ∧ 2DS1−; Tel-A/B = 3DL1+ ∧ 2DS4+ ∧ (3DS1+ ∨ 2DS1+); Tel-B/B = 3DL1− ∨ 2DS4−.
  Setting ``tel_2ds4``: ``"any"`` (default; gene content, as Cooley's gene-presence typing, so the common A/A
  genotype with only 2DS4N stays Tel-A/A) or ``"full_length"`` (the DKMS export column CTUtools reads, where
  2DS4N is reported apart).
- ``kir_b_content_score`` 0-4 = Cen B motifs (A/A 0, A/B 1, B/B 2) + Tel B motifs; ``kir_b_content_group``
  Best = Cen-B/B; Better = ≥ 2 B motifs and not Cen-B/B; Neutral = 0-1 (Cooley 2010, RULES 3.5-3.6).
- ``kir_activating_count``: activating KIR genes present among 2DS1, 2DS2, 2DS3, 2DS4 (any variant), 2DS5,
  3DS1 (gene content); ``kir_activating_functional_count`` counts KIR2DS4 only when full-length;
  ``kir2ds4``: "full-length" | "2DS4N only" | "absent".
- ``kir3dl1_class`` "H" | "L" | "N" (Boudreau 2017; table ``rules/kir3dl1-boudreau2017.yaml``; RULES
  3.11-3.12): per genotype alternative the strongest allotype by L > H > S > N; S (KIR3DS1) is reported as N;
  KIR3DL1 absent is N. Unlike CTUtools (which answers "unknown" whenever a ``/`` spans classes), an
  ambiguity is resolved when every possibility gives the same genotype class.
- Optional scores: Krieger 2020 (donor KIR × recipient ligands) and Boelen 2018 (a person's own KIR × own
  ligands). They need the ligand columns of :func:`haplomatch.nk.person_ligand_columns`.
"""

from __future__ import annotations

import functools
import itertools
import operator
from typing import Iterable

import polars as pl
import yaml

from haplomatch.rulefiles import rules_path

__all__ = [
    "SOURCES", "ACTIVATING_GENES", "B_GENES", "TEL_2DS4_CHOICES", "kir3dl1_table", "kir3dl1_allele_class",
    "kir3dl1_genotype_class", "genotype_expr", "cen_expr", "tel_expr", "b_content_score_expr",
    "b_content_group_expr", "activating_count_expr", "activating_functional_count_expr", "kir2ds4_expr",
    "kir_genotype_columns", "krieger_columns", "boelen_columns",
]

SOURCES: dict[str, str] = {
    "genotype": "A/A vs B/x by gene content: Allele Frequency Net Database KIR genotype definition; "
                "Cooley S et al. Blood 2009;113:726-32 (RULES 3.1-3.2)",
    "cen_tel": "Cooley S et al. Blood 2010;116:2411-9 (centromeric/telomeric motifs); gene rules as in DKMS "
               "CTUtools KIR_haplotype_Cen/KIR_haplotype_Tel (RULES 3.3-3.4)",
    "b_content": "Cooley S et al. Blood 2010;116:2411-9 (B-content score 0-4; Best = Cen-B/B, Better = >=2 B "
                 "motifs, Neutral = 0-1) (RULES 3.5-3.6)",
    "activating": "activating KIR genes 2DS1, 2DS2, 2DS3, 2DS4, 2DS5, 3DS1 present (gene content)",
    "kir2ds4": "KIR2DS4 full-length vs 22-bp exon-5 deletion (2DS4N), reported apart by DKMS (RULES 3.2)",
    "kir3dl1": "Boudreau JE et al. J Clin Oncol 2017;35:2268-78; allotype table DKMS CTUtools ASSIGN_KIR3DL1 "
               "(rules/kir3dl1-boudreau2017.yaml; RULES 3.11-3.12)",
    "krieger": "Krieger E et al. Biol Blood Marrow Transplant 2020 (epub 2019 Oct 30), PMID 31676338; as "
               "implemented in DKMS CTUtools score_krieger (RULES 3.15)",
    "boelen": "Boelen L et al. Sci Immunol 2018;3:eaao2892 (functional inhibitory KIR score); as implemented "
              "in DKMS CTUtools score_boelen_inhib (RULES 3.16)",
}

#: Genes whose presence makes a genotype B/x (RULES 3.1); KIR2DL5 is read as A, B or the combined column.
B_GENES: tuple[str, ...] = ("2DL2", "2DS1", "2DS2", "2DS3", "2DS5", "3DS1")
ACTIVATING_GENES: tuple[str, ...] = ("2DS1", "2DS2", "2DS3", "2DS4", "2DS5", "3DS1")
TEL_2DS4_CHOICES: tuple[str, ...] = ("any", "full_length")

_MOTIF_B = {"A/A": 0, "A/B": 1, "B/B": 2}


def _k(prefix: str, gene: str, columns: Iterable[str] | None = None) -> pl.Expr:
    """A KIR presence column, or an all-null boolean when the table lacks it."""
    name = f"{prefix}kir_{gene}"
    if columns is not None and name not in columns:
        return pl.lit(None, pl.Boolean)
    return pl.col(name)


def _any(exprs: Iterable[pl.Expr]) -> pl.Expr:
    return functools.reduce(operator.or_, exprs)


def _all(exprs: Iterable[pl.Expr]) -> pl.Expr:
    return functools.reduce(operator.and_, exprs)


# ------------------------------------------------------------------------------------------ gene content


def genotype_expr(prefix: str = "", columns: Iterable[str] | None = None) -> pl.Expr:
    """"B/x" | "A/A" | null (RULES 3.1)."""
    dl5 = _any([_k(prefix, "2DL5", columns), _k(prefix, "2DL5A", columns), _k(prefix, "2DL5B", columns)])
    any_b = _any([_k(prefix, g, columns) for g in B_GENES] + [dl5])
    return pl.when(any_b).then(pl.lit("B/x")).when(~any_b).then(pl.lit("A/A")).otherwise(pl.lit(None, pl.String))


def cen_expr(prefix: str = "", columns: Iterable[str] | None = None) -> pl.Expr:
    """Centromeric motif pair (RULES 3.3). 2DL3, 2DL2 and 2DS2 all absent → null (not classifiable)."""
    dl3, dl2, ds2 = (_k(prefix, g, columns) for g in ("2DL3", "2DL2", "2DS2"))
    b = dl2 | ds2
    return (
        pl.when(dl3 & ~b).then(pl.lit("A/A"))
        .when(dl3 & b).then(pl.lit("A/B"))
        .when(~dl3 & b).then(pl.lit("B/B"))
        .otherwise(pl.lit(None, pl.String))
    )


def _2ds4(prefix: str, variant: str, columns: Iterable[str] | None) -> pl.Expr:
    if variant not in TEL_2DS4_CHOICES:
        raise ValueError(f"tel_2ds4 must be one of {TEL_2DS4_CHOICES}, not {variant!r}")
    if variant == "any":
        return _k(prefix, "2DS4", columns)
    # full-length: the 2DS4FL column; an absent gene makes it absent too
    return pl.when(_k(prefix, "2DS4", columns) == False).then(pl.lit(False)).otherwise(  # noqa: E712
        _k(prefix, "2DS4FL", columns))


def tel_expr(prefix: str = "", tel_2ds4: str = "any", columns: Iterable[str] | None = None) -> pl.Expr:
    """Telomeric motif pair (RULES 3.4); ``tel_2ds4`` = "any" (default) or "full_length"."""
    dl1, s31, s21 = (_k(prefix, g, columns) for g in ("3DL1", "3DS1", "2DS1"))
    s4 = _2ds4(prefix, tel_2ds4, columns)
    return (
        pl.when(~dl1 | ~s4).then(pl.lit("B/B"))
        .when(dl1 & s4 & ~s31 & ~s21).then(pl.lit("A/A"))
        .when(dl1 & s4 & (s31 | s21)).then(pl.lit("A/B"))
        .otherwise(pl.lit(None, pl.String))
    )


def b_content_score_expr(cen: pl.Expr, tel: pl.Expr) -> pl.Expr:
    """Cen + Tel B motifs, 0-4 (RULES 3.5); null when either is unknown."""
    as_n = lambda e: e.replace_strict(_MOTIF_B, default=None, return_dtype=pl.Int8)  # noqa: E731
    return as_n(cen) + as_n(tel)


def b_content_group_expr(cen: pl.Expr, score: pl.Expr) -> pl.Expr:
    """Best (Cen-B/B, whatever Tel) / Better (≥ 2 B motifs) / Neutral (0-1) (RULES 3.6)."""
    return (
        pl.when(cen == "B/B").then(pl.lit("Best"))
        .when(score >= 2).then(pl.lit("Better"))
        .when(score <= 1).then(pl.lit("Neutral"))
        .otherwise(pl.lit(None, pl.String))
    )


def activating_count_expr(prefix: str = "", columns: Iterable[str] | None = None) -> pl.Expr:
    """Number of activating KIR genes present (null when one of them is untyped)."""
    return functools.reduce(operator.add, [_k(prefix, g, columns).cast(pl.Int8) for g in ACTIVATING_GENES])


def activating_functional_count_expr(prefix: str = "", columns: Iterable[str] | None = None) -> pl.Expr:
    """As :func:`activating_count_expr`, but KIR2DS4 counts only when a full-length (membrane) allele is
    present: the 2DS4N deletion variants encode no surface receptor (RULES 3.2)."""
    genes = [_k(prefix, g, columns) for g in ACTIVATING_GENES if g != "2DS4"] + [_2ds4(prefix, "full_length", columns)]
    return functools.reduce(operator.add, [g.cast(pl.Int8) for g in genes])


def kir2ds4_expr(prefix: str = "", columns: Iterable[str] | None = None) -> pl.Expr:
    """"full-length" | "2DS4N only" | "absent" | null."""
    any_, fl, nl = _k(prefix, "2DS4", columns), _k(prefix, "2DS4FL", columns), _k(prefix, "2DS4N", columns)
    return (
        pl.when(any_ == False).then(pl.lit("absent"))  # noqa: E712
        .when(fl).then(pl.lit("full-length"))
        .when((fl == False) & nl).then(pl.lit("2DS4N only"))  # noqa: E712
        .otherwise(pl.lit(None, pl.String))
    )


# ------------------------------------------------------------------------------------ KIR3DL1 classes


@functools.lru_cache(maxsize=4)
def kir3dl1_table(path: str | None = None) -> dict:
    """The Boudreau 2017 table: ``{"classes": {code: class}, "order": [...], "overall": {...}, "source": {...}}``."""
    with open(path or rules_path("kir3dl1-boudreau2017.yaml"), encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    classes: dict[str, str] = {}
    for cls, codes in data["classes"].items():
        for code in codes:
            if code in classes:
                raise ValueError(f"KIR3DL1 table: {code} is listed as {classes[code]} and {cls}")
            classes[str(code)] = cls
    return {"classes": classes, "order": list(data["strength_order"]), "overall": dict(data["overall"]),
            "unclassified": [str(c) for c in data.get("unclassified", [])], "source": data["source"]}


def kir3dl1_allele_class(code: str, gene: str = "KIR3DL1") -> str | None:
    """One allele → "H" | "L" | "N" | "S" | None (unclassified, new, or not in the table).

    Any KIR3DS1 allele is S. ``code`` may be ``001``, ``00101``, ``KIR3DL1*005`` or ``024N``."""
    text = code.strip().upper()
    if "*" in text:
        gene, _, text = text.partition("*")
        gene = gene if gene.startswith("KIR") else "KIR" + gene
    if gene.upper() == "KIR3DS1":
        return "S"
    digits = text[:3]
    if not digits.isdigit():
        return None
    return kir3dl1_table()["classes"].get(digits)


def kir3dl1_genotype_class(alleles: str | None, present: bool | None = None,
                           kir3ds1_alleles: str | None = None) -> str | None:
    """Genotype class "H" | "L" | "N" (S counts as N), or None when it cannot be decided (RULES 3.12).

    ``alleles`` is the DKMS string of KIR3DL1 (``001/095+004``, ``005``, ``NEG``, ``001|001+002``); without
    it, ``present`` False gives "N" (KIR3DL1 absent) and anything else None. KIR3DS1 copies are S, which can
    never be the strongest allotype of a genotype with a KIR3DL1 copy and is reported as N otherwise, so they
    never change the class; the argument is accepted for completeness."""
    tab = kir3dl1_table()
    order: list[str] = tab["order"]
    rank = {c: i for i, c in enumerate(order)}
    if not alleles:
        return "N" if present is False else None
    possible: set[str] = set()
    for alt in alleles.split("|"):
        alt = alt.strip()
        if alt.upper() in ("", "NEG"):
            possible.add(tab["overall"]["N"])
            continue
        if alt.upper() == "POS":
            return None
        copies: list[set[str]] = []
        for copy in alt.split("+"):
            if copy.strip().upper() == "NEG":
                continue
            opts: set[str] = set()
            for code in copy.split("/"):
                cls = kir3dl1_allele_class(code)
                opts |= {cls} if cls else set(order)     # unknown allele: could be any class
            copies.append(opts)
        if not copies:
            possible.add(tab["overall"]["N"])
        for combo in (itertools.product(*copies) if copies else ()):
            strongest = min(combo, key=rank.__getitem__)
            possible.add(tab["overall"][strongest])
        if len(possible) > 1:
            return None
    return possible.pop() if len(possible) == 1 else None


def _kir3dl1_class_column(df: pl.DataFrame, prefix: str) -> pl.Series:
    """``{prefix}kir3dl1_class`` for every row, computed once per distinct (presence, alleles)."""
    pres, alle = f"{prefix}kir_3DL1", f"{prefix}kir_3DL1_alleles"
    cols = [pl.col(pres) if pres in df.columns else pl.lit(None, pl.Boolean).alias(pres),
            pl.col(alle) if alle in df.columns else pl.lit(None, pl.String).alias(alle)]
    keys = df.select(cols)
    distinct = keys.unique()
    distinct = distinct.with_columns(pl.Series(
        "__cls", [kir3dl1_genotype_class(a, p) for p, a in distinct.iter_rows()], dtype=pl.String))
    out = keys.join(distinct, on=[pres, alle], how="left", nulls_equal=True, maintain_order="left")
    return out["__cls"].alias(f"{prefix}kir3dl1_class")


# ---------------------------------------------------------------------------------------- all together


def kir_genotype_columns(df: pl.DataFrame, prefix: str = "", *, tel_2ds4: str = "any") -> pl.DataFrame:
    """``df`` with ``{prefix}kir_genotype``, ``kir_cen``, ``kir_tel``, ``kir_b_content_score``,
    ``kir_b_content_group``, ``kir_activating_count``, ``kir_activating_functional_count``, ``kir2ds4`` and
    ``kir3dl1_class`` added."""
    cols = df.columns
    p = prefix
    out = df.with_columns(
        genotype_expr(p, cols).alias(f"{p}kir_genotype"),
        cen_expr(p, cols).alias(f"{p}kir_cen"),
        tel_expr(p, tel_2ds4, cols).alias(f"{p}kir_tel"),
        activating_count_expr(p, cols).alias(f"{p}kir_activating_count"),
        activating_functional_count_expr(p, cols).alias(f"{p}kir_activating_functional_count"),
        kir2ds4_expr(p, cols).alias(f"{p}kir2ds4"),
        _kir3dl1_class_column(df, p),
    )
    score = b_content_score_expr(pl.col(f"{p}kir_cen"), pl.col(f"{p}kir_tel"))
    out = out.with_columns(score.alias(f"{p}kir_b_content_score"))
    return out.with_columns(
        b_content_group_expr(pl.col(f"{p}kir_cen"), pl.col(f"{p}kir_b_content_score")).alias(f"{p}kir_b_content_group"))


# ------------------------------------------------------------------------------------------ scores


def _ind(cond: pl.Expr, weight: float = 1.0) -> pl.Expr:
    """weight when true, 0 when false, null when unknown (Kleene)."""
    return pl.when(cond).then(pl.lit(weight)).when(~cond).then(pl.lit(0.0)).otherwise(pl.lit(None, pl.Float64))


def krieger_columns(pairs: pl.DataFrame, donor: str = "donor_", patient: str = "patient_") -> pl.DataFrame:
    """Krieger 2020 scores of donor KIR against recipient ligands (RULES 3.15), as CTUtools computes them:
    ``krieger_ikir`` (KIR with its ligand), ``krieger_mkir`` (KIR, ligand missing), ``krieger_akir``
    (activating KIR with ligand), ``krieger_kirl`` = −ikir + mkir + akir, ``krieger_imkir`` = ikir + mkir,
    ``krieger_wkir`` = 0.80·ikir + 0.14·akir + 0.99·mkir.

    Ligands as in CTUtools: C1/C2 from HLA-C, Bw4 from HLA-B only, A3/A11 and A11 from HLA-A; KIR2DS4 is the
    full-length receptor (CTUtools default ``count_2DS4N_as_2DS4 = FALSE``). Differences: a gene that is absent
    scores 0 even when the ligand is unknown (CTUtools gives NA), and KIR2DS5 is read from its own column
    (CTUtools checks the 2DS4 column for missing values there)."""
    cols = pairs.columns
    k = lambda g: _k(donor, g, cols)  # noqa: E731
    lig = lambda name: pl.col(f"{patient}{name}")  # noqa: E731
    ds4 = _2ds4(donor, "full_length", cols)
    inhib = [(k("2DL1"), lig("has_C2")), (k("2DL2"), lig("has_C1")), (k("2DL3"), lig("has_C1")),
             (k("3DL1"), lig("has_Bw4_B")), (k("3DL2"), lig("has_A3_A11"))]
    activ = [(k("2DS1"), lig("has_C2")), (k("2DS2"), lig("has_A11")), (ds4, lig("has_A11")),
             (k("2DS5"), lig("has_C2"))]
    ikir = functools.reduce(operator.add, [_ind(g & l_) for g, l_ in inhib])
    mkir = functools.reduce(operator.add, [_ind(g & ~l_) for g, l_ in inhib])
    akir = functools.reduce(operator.add, [_ind(g & l_) for g, l_ in activ])
    out = pairs.with_columns(ikir.alias("krieger_ikir"), mkir.alias("krieger_mkir"), akir.alias("krieger_akir"))
    i, m, a = pl.col("krieger_ikir"), pl.col("krieger_mkir"), pl.col("krieger_akir")
    return out.with_columns(
        (-i + m + a).alias("krieger_kirl"),
        (i + m).alias("krieger_imkir"),
        (0.80 * i + 0.14 * a + 0.99 * m).round(4).alias("krieger_wkir"),
    )


def boelen_columns(df: pl.DataFrame, prefix: str = "", *, include_3dl1: bool = False) -> pl.DataFrame:
    """``{prefix}boelen_score``: a person's functional inhibitory KIR score against their own ligands
    (Boelen 2018, RULES 3.16): 2DL1 with C2 = 1; 2DL2 with C1 or C1 on HLA-B (B*46:01, B*73:01) = 1, with C2
    only = 0.5; 2DL3 with C1 or C1 on HLA-B = 0.75; with ``include_3dl1`` 3DL1 with Bw4 (HLA-B) = 1."""
    cols = df.columns
    k = lambda g: _k(prefix, g, cols)  # noqa: E731
    has = lambda name: pl.col(f"{prefix}{name}")  # noqa: E731
    c1x = has("has_C1") | has("has_C1_on_B")
    dl2 = k("2DL2")
    f2dl2 = (
        pl.when(dl2 == False).then(pl.lit(0.0))  # noqa: E712
        .when(dl2 & c1x).then(pl.lit(1.0))
        .when(dl2 & ~c1x & has("has_C2")).then(pl.lit(0.5))
        .when(dl2 & ~c1x & ~has("has_C2")).then(pl.lit(0.0))
        .otherwise(pl.lit(None, pl.Float64))
    )
    terms = [_ind(k("2DL1") & has("has_C2")), f2dl2, _ind(k("2DL3") & c1x, 0.75)]
    if include_3dl1:
        terms.append(_ind(k("3DL1") & has("has_Bw4_B")))
    return df.with_columns(functools.reduce(operator.add, terms).alias(f"{prefix}boelen_score"))
