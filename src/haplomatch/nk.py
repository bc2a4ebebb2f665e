"""KIR ligands of a person and the NK alloreactivity models, computed for every (patient, donor) pair at once.

Two layers, both polars over whole tables (one family on the command line or a million registry donors):

1. :func:`person_ligand_columns` — per person, three-valued ligand flags from the HLA-A, -B, -C slot columns
   (``A_1`` … ``C_2`` of :mod:`haplomatch.persons`). Each distinct slot string is resolved once
   (:func:`haplomatch.slotfacts.slot_candidates`) and every candidate allele contributes a bit mask of the
   ligand groups it carries (facts of :mod:`haplomatch.reference.facts`; an allele without a surface
   protein — null, secreted — carries none, RULES 1.8/1.16). A slot *certainly* carries a group when every
   candidate does, *possibly* when one does; a person has it (true) when some slot certainly carries it,
   lacks it (false) when no slot possibly does, else null — an ambiguous or untyped slot never becomes a
   guessed ligand. With independent slots this is exact.
2. :func:`nk_pair_facts` — the models, for every row of a pair table (``patient_`` / ``donor_`` columns of
   :func:`haplomatch.persons.pair_frame`), with Kleene logic so unknown inputs give unknown results:

   - ligand–ligand, KIR-ligand incompatibility (Ruggeri 2002; RULES 2.4): GvH = groups the donor has and the
     patient lacks, alloreactive only where the donor carries the matching inhibitory KIR; HvG the reverse
     (alloreactive where the patient's KIR, if typed, recognises it);
   - receptor–ligand (Leung 2004; RULES 2.5): donor inhibitory KIR whose ligand the patient lacks; count, list;
   - missing ligand (Hsu 2005; RULES 2.6): the same test, applicable to HLA-identical pairs;
   - donor education (RULES 2.2): donor inhibitory KIR whose ligand the donor carries (licensed);
   - donor KIR genotype, B content, KIR3DL1 class (:mod:`haplomatch.kirscores`);
   - KIR3DL1 × HLA-B subtypes (Boudreau 2017; RULES 3.12-3.13), against the patient's strongest HLA-B group;
   - KIR2DS1 with donor C1 (Venstrom 2012; RULES 3.10);
   - optional Krieger 2020 and Boelen 2018 scores (RULES 3.15-3.16).

Settings (:class:`NkSettings`) name every choice where sources disagree. Sources: :data:`SOURCES`,
:data:`MODELS`. One pair (the command line) is a one-row table through the same functions (:func:`nk_pair`).
"""

from __future__ import annotations

import functools
import operator
from dataclasses import asdict, dataclass
from typing import Iterable

import polars as pl

from haplomatch import kirscores
from haplomatch.persons import pair_frame, people_frame
from haplomatch.reference import Reference
from haplomatch.reference.facts import SOURCES as FACT_SOURCES
from haplomatch.slotfacts import slot_candidates
from haplomatch.listexpr import label_list as _label_list
from haplomatch.slotmemo import looked_up, per_slot

__all__ = [
    "SOURCES", "MODELS", "GROUPS", "RECEPTOR", "NkSettings", "slot_ligand_table", "person_ligand_columns",
    "nk_pair_facts", "nk_pair", "person_ligands", "pair_report",
]

# ------------------------------------------------------------------------------------------------ sources

SOURCES: dict[str, str] = {
    "ligands": "HLA-C C1/C2: " + FACT_SOURCES["c1c2"] + ". HLA-B Bw4 80I/80T: " + FACT_SOURCES["bw4"]
               + ". HLA-A Bw4: " + FACT_SOURCES["bw4_a"] + ". C1 on HLA-B: " + FACT_SOURCES["c1_on_b"]
               + ". A3/A11: " + FACT_SOURCES["kir3dl2"] + ". Weak: " + FACT_SOURCES["weak_kir3dl1"],
    "ipd_calculator": "IPD-KIR KIR Ligand Calculator (HLA-B and HLA-C only; null alleles carry no ligand) "
                      "(RULES 1.6, 1.16)",
    "summary": "Genotype summaries C1/C1 | C1/C2 | C2/C2 and strongest HLA-B group Bw4-80I > Bw4-80T > Bw6: "
               "DKMS CTUtools HLA_C_classification / HLA_B_classification (RULES 1.15)",
    "ligand_ligand": "Ruggeri L et al. Science 2002;295:2097-100 (KIR-ligand incompatibility, Table 1: C1, C2, "
                     "Bw4, A3/A11); Ruggeri L et al. Blood 2007;110:433-40 (RULES 2.4)",
    "receptor_ligand": "Leung W et al. J Immunol 2004;172:644-50 (receptor-ligand model; donor inhibitory KIR "
                       "whose ligand the recipient lacks) (RULES 2.5)",
    "missing_ligand": "Hsu KC et al. Blood 2005;105:4878-84 (missing KIR ligand in HLA-identical sibling HCT) "
                      "(RULES 2.6)",
    "education": "Anfossi N et al. Immunity 2006;25:331 (NK education by inhibitory receptors for self HLA); "
                 "Murphy WJ, Parham P, Miller JS. Biol Blood Marrow Transplant 2012;18:S2-7 (RULES 2.2)",
    "kir3dl1_hlab": "Boudreau JE et al. J Clin Oncol 2017;35:2268-78; classification as DKMS CTUtools "
                    "KIR3DL1_HLA_B_inhibiting (RULES 3.12-3.13)",
    "kir2ds1": "Venstrom JM et al. N Engl J Med 2012;367:805-16 (donor KIR2DS1 with HLA-C1 lowers AML relapse; "
               "C2/C2 donors not protected) (RULES 3.10)",
    **{f"kir_{k}": v for k, v in kirscores.SOURCES.items()},
}

#: Each model (JSON key) → its name, short citation and full source, for outputs and explanations.
MODELS: dict[str, dict[str, str]] = {
    "ligands": {"model": "KIR ligands of HLA class I", "cite": "IPD-KIR ligand calculator; Foley 2008",
                "source": SOURCES["ligands"]},
    "ligand_ligand": {"model": "ligand-ligand (KIR-ligand incompatibility)", "cite": "Ruggeri 2002",
                      "source": SOURCES["ligand_ligand"]},
    "receptor_ligand": {"model": "receptor-ligand", "cite": "Leung 2004", "source": SOURCES["receptor_ligand"]},
    "missing_ligand": {"model": "missing ligand (HLA-identical pairs)", "cite": "Hsu 2005",
                       "source": SOURCES["missing_ligand"]},
    "education": {"model": "donor NK education (licensing)", "cite": "Anfossi 2006", "source": SOURCES["education"]},
    "kir_genotype": {"model": "donor KIR genotype, Cen/Tel motifs and B content", "cite": "Cooley 2009/2010",
                     "source": "; ".join(kirscores.SOURCES[k] for k in ("genotype", "cen_tel", "b_content"))},
    "kir3dl1_hla_b": {"model": "KIR3DL1 x HLA-B subtypes", "cite": "Boudreau 2017", "source": SOURCES["kir3dl1_hlab"]},
    "kir2ds1": {"model": "KIR2DS1 with donor HLA-C1", "cite": "Venstrom 2012", "source": SOURCES["kir2ds1"]},
    "krieger": {"model": "Krieger KIR-ligand scores (optional)", "cite": "Krieger 2020",
                "source": kirscores.SOURCES["krieger"]},
    "boelen": {"model": "Boelen functional inhibitory KIR score of the donor (optional)", "cite": "Boelen 2018",
               "source": kirscores.SOURCES["boelen"]},
}


def _model(key: str) -> dict[str, str]:
    """The ``model`` and ``source`` keys every output object carries."""
    return {"model": MODELS[key]["model"], "source": MODELS[key]["source"]}


# ------------------------------------------------------------------------------------------- group bits

_BITS = (
    "C1", "C2", "C_UNCL",
    "B_BW4", "B_80I", "B_80T", "B_BW4_STRONG", "B_BW4_WEAK", "B_BW6", "B_UNCL", "C1_ON_B",
    "A_BW4", "A_80I", "A_80T", "A_BW4_STRONG", "A_BW4_WEAK", "A_UNCL", "A3_A11", "A11",
)
BIT: dict[str, int] = {name: 1 << i for i, name in enumerate(_BITS)}
_ALL = (1 << len(_BITS)) - 1
#: The bits a slot of each locus can carry: an untyped slot makes only its own locus's groups possible.
_LOCUS_BITS: dict[str, int] = {
    locus: sum(BIT[n] for n in _BITS if n.startswith(f"{locus}_") or (locus == "C" and n in ("C1", "C2"))
               or (locus == "B" and n == "C1_ON_B") or (locus == "A" and n in ("A3_A11", "A11")))
    for locus in ("A", "B", "C")
}
_MASK = pl.UInt32

#: Ligand groups of the pair models (sorted labels) and the inhibitory KIR (unit) that recognises each.
GROUPS: tuple[str, ...] = ("A3/A11", "Bw4", "C1", "C2")
RECEPTOR: dict[str, str] = {"C2": "KIR2DL1", "C1": "KIR2DL2/3", "Bw4": "KIR3DL1", "A3/A11": "KIR3DL2"}
_RECEPTOR_ORDER: tuple[str, ...] = ("C2", "C1", "Bw4", "A3/A11")   # KIR2DL1, KIR2DL2/3, KIR3DL1, KIR3DL2
_KEY = {"A3/A11": "A3_A11", "Bw4": "Bw4", "C1": "C1", "C2": "C2"}
_UNIT_KEY = {"KIR2DL1": "2DL1", "KIR2DL2/3": "2DL2_3", "KIR3DL1": "3DL1", "KIR3DL2": "3DL2"}

_SLOTS: tuple[str, ...] = ("A_1", "A_2", "B_1", "B_2", "C_1", "C_2")
_TMP = "__nk_"


@dataclass(frozen=True)
class NkSettings:
    """Choices where sources differ (each is reported with the result).

    - ``include_hla_a_bw4`` (default True): HLA-A Bw4 (A*23, A*24, A*25, A*32; RULES 1.11) counts as Bw4.
      False reproduces the IPD-KIR KIR Ligand Calculator, which reads HLA-B and HLA-C only.
    - ``include_a3_a11`` (default False): A3/A11 as a ligand group (Ruggeri 2002 Table 1) and KIR3DL2 as a
      receptor (Leung, "optionally 3DL2"); RULES 2.4-2.5.
    - ``c1_on_hla_b`` (default False): C1 epitope on HLA-B (B*46:01, B*73:01) counts as C1 in the models
      (RULES 1.14; Boelen/Rafei scores count it; the classic models read HLA-C only). Always reported.
    - ``kir3dl1_include_hla_a`` (default False): the patient's Bw4 group for KIR3DL1 × HLA-B also reads HLA-A
      (CTUtools reads HLA-B only; RULES 3.13).
    - ``tel_2ds4`` ("any" default | "full_length"): which KIR2DS4 defines Tel-A (RULES 3.4, open issue).
    - ``identity_loci``: loci compared (at P group / 2-field protein level) to decide HLA-identity for the
      missing-ligand model.
    - ``boelen_include_3dl1`` (default False, as CTUtools): KIR3DL1 with Bw4 in the Boelen score.
    """

    include_hla_a_bw4: bool = True
    include_a3_a11: bool = False
    c1_on_hla_b: bool = False
    kir3dl1_include_hla_a: bool = False
    tel_2ds4: str = "any"
    identity_loci: tuple[str, ...] = ("A", "B", "C", "DRB1")
    boelen_include_3dl1: bool = False

    def __post_init__(self) -> None:
        if self.tel_2ds4 not in kirscores.TEL_2DS4_CHOICES:
            raise ValueError(f"tel_2ds4 must be one of {kirscores.TEL_2DS4_CHOICES}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["identity_loci"] = list(self.identity_loci)
        return d

    @property
    def active_groups(self) -> tuple[str, ...]:
        return tuple(g for g in GROUPS if g != "A3/A11" or self.include_a3_a11)


# ------------------------------------------------------------------------------------------ slot table


_MASK_CACHE: dict[int, tuple[object, pl.DataFrame]] = {}


def _allele_masks(ref: Reference) -> pl.DataFrame:
    """allele → ``mask`` (ligand-group bits), ``ard`` (P group or 2-field name, as ``slotfacts``),
    ``unknown`` (surface class I allele without a ligand call)."""
    hit = _MASK_CACHE.get(id(ref))
    if hit is not None and hit[0] is ref:
        return hit[1]
    lig, loc, surf = pl.col("kir_ligand"), pl.col("locus"), pl.col("surface").fill_null(False)
    weak = pl.col("weak_kir3dl1_ligand").fill_null(False)
    bw4 = lig.is_in(["Bw4-80I", "Bw4-80T"])
    a11 = pl.when(pl.col("antigen").is_not_null()).then(pl.col("antigen") == "A11").otherwise(pl.col("name1") == "A*11")
    conds = {
        "C1": (loc == "C") & (lig == "C1"),
        "C2": (loc == "C") & (lig == "C2"),
        "C_UNCL": (loc == "C") & (lig == "unclassified"),
        "B_BW4": (loc == "B") & bw4,
        "B_80I": (loc == "B") & (lig == "Bw4-80I"),
        "B_80T": (loc == "B") & (lig == "Bw4-80T"),
        "B_BW4_STRONG": (loc == "B") & bw4 & ~weak,
        "B_BW4_WEAK": (loc == "B") & bw4 & weak,
        "B_BW6": (loc == "B") & (lig == "Bw6"),
        "B_UNCL": (loc == "B") & (lig == "unclassified"),
        "C1_ON_B": (loc == "B") & pl.col("c1_epitope").fill_null(False),
        "A_BW4": (loc == "A") & bw4,
        "A_80I": (loc == "A") & (lig == "Bw4-80I"),
        "A_80T": (loc == "A") & (lig == "Bw4-80T"),
        "A_BW4_STRONG": (loc == "A") & bw4 & ~weak,
        "A_BW4_WEAK": (loc == "A") & bw4 & weak,
        "A_UNCL": (loc == "A") & (lig == "unclassified"),
        "A3_A11": (loc == "A") & pl.col("kir3dl2_ligand").fill_null(False),
        "A11": (loc == "A") & a11.fill_null(False),
    }
    mask = pl.sum_horizontal(
        [pl.when(c.fill_null(False) & surf).then(pl.lit(BIT[k], _MASK)).otherwise(pl.lit(0, _MASK))
         for k, c in conds.items()]
    ).cast(_MASK)
    out = ref.alleles.select(
        "allele",
        mask.alias("mask"),
        pl.coalesce(pl.col("p_group"), pl.col("name2") + pl.col("suffix")).alias("ard"),
        (surf & loc.is_in(["A", "B", "C"]) & lig.is_null()).alias("unknown"),
    )
    _MASK_CACHE[id(ref)] = (ref, out)
    return out


def slot_ligand_table(ref: Reference, slots: Iterable[str | None] | pl.Series) -> pl.DataFrame:
    """One row per distinct slot string: ``cert`` (groups every candidate carries), ``poss`` (groups some
    candidate carries), ``options`` (distinct candidate masks; null when a candidate's ligand is unknown) and
    ``ard`` (the P group, or 2-field name for alleles in none, when all candidates agree — the ``ard`` fact of
    ``slotfacts.summarise``). Slots that do not resolve are left out (they stay unknown). (Each slot is
    computed once per process: ``slotmemo``.)"""
    return per_slot("slot_ligand_table", ref, slots, lambda new: _slot_ligand_table(ref, new))


def remember_slots(ref: Reference, slots: pl.Series) -> None:
    """Compute now, for this process, the ligand table of ``slots`` that :func:`nk_pair_facts` reads (a registry
    kept open computes it for all its slots once, not for each search's best donors)."""
    slot_ligand_table(ref, slots)


def _slot_ligand_table(ref: Reference, slots: list[str]) -> pl.DataFrame:
    cands, _errors = slot_candidates(ref.nomenclature, slots)
    m = cands.join(_allele_masks(ref), on="allele", how="left").with_columns(
        pl.col("unknown").fill_null(True), pl.col("mask").fill_null(0).cast(_MASK))
    ard = pl.col("ard")
    table = m.group_by("slot").agg(
        pl.when(pl.col("unknown")).then(pl.lit(0, _MASK)).otherwise(pl.col("mask")).bitwise_and().alias("cert"),
        pl.when(pl.col("unknown")).then(pl.lit(_ALL, _MASK)).otherwise(pl.col("mask")).bitwise_or().alias("poss"),
        pl.when(pl.col("unknown").any()).then(None).otherwise(pl.col("mask").unique().sort()).alias("options"),
        pl.when((ard.n_unique() == 1) & (ard.null_count() == 0)).then(ard.first()).alias("ard"),
    )
    return table.with_columns(pl.col("cert").cast(_MASK), pl.col("poss").cast(_MASK))


# ------------------------------------------------------------------------------------- person columns


def _slot_values(df: pl.DataFrame, columns: Iterable[str]) -> pl.Series:
    """The slot strings of ``columns`` (those ``df`` has), as one Series (``per_slot`` keeps each once)."""
    present = [df[c].cast(pl.String) for c in columns if c in df.columns]
    return pl.concat(present) if present else pl.Series("slot", [], dtype=pl.String)


def _has(cert: pl.Expr, poss: pl.Expr, bits: int) -> pl.Expr:
    return (
        pl.when((cert & bits) != 0).then(pl.lit(True))
        .when((poss & bits) == 0).then(pl.lit(False))
        .otherwise(pl.lit(None, pl.Boolean))
    )


def _unknown_list(pairs: Iterable[tuple[pl.Expr, str]]) -> pl.Expr:
    return _label_list([(c.is_null(), lbl) for c, lbl in pairs])


def _set_labels(include_hla_a_bw4: bool) -> list[tuple[str, int]]:
    a = include_hla_a_bw4
    return [
        ("C1", BIT["C1"]), ("C2", BIT["C2"]),
        ("Bw4-80I", BIT["B_80I"] | (BIT["A_80I"] if a else 0)),
        ("Bw4-80T", BIT["B_80T"] | (BIT["A_80T"] if a else 0)),
        ("A3/A11", BIT["A3_A11"]), ("C1-on-B", BIT["C1_ON_B"]),
    ]


@functools.lru_cache(maxsize=4)
def _ligand_set_exprs(include_hla_a_bw4: bool) -> tuple[pl.Expr, pl.Expr]:
    """For :func:`_ligand_sets`, built once: a candidate mask (``pl.element()``) as the bit code of its set
    labels, and that code (column ``code``) as the list of labels (column ``set``)."""
    labels = _set_labels(include_hla_a_bw4)
    e = pl.element()
    code = pl.sum_horizontal([pl.when((e & bits) != 0).then(pl.lit(1 << j, _MASK)).otherwise(pl.lit(0, _MASK))
                              for j, (_, bits) in enumerate(labels)]).cast(_MASK)
    set_list = _label_list([((pl.col("code") & (1 << j)) != 0, lbl) for j, (lbl, _) in enumerate(labels)])
    return code, set_list.alias("set")


def _ligand_sets(keys: pl.DataFrame, opt_cols: list[str], include_hla_a_bw4: bool) -> pl.Series:
    """Per row, the possible ligand sets (list of label lists); null when a slot is untyped or unknown."""
    code, set_list = _ligand_set_exprs(include_hla_a_bw4)
    row = f"{_TMP}row"
    base = keys.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias(row), *opt_cols)
    complete = base.filter(pl.all_horizontal([pl.col(c).is_not_null() for c in opt_cols]))
    e = complete.with_columns(pl.col(c).list.eval(code).list.unique() for c in opt_cols)
    for c in opt_cols:
        e = e.explode(c)
    combos = (
        e.select(row, functools.reduce(operator.or_, [pl.col(c) for c in opt_cols]).alias("code"))
        .unique().sort(row, "code")
        .with_columns(set_list)
        .group_by(row, maintain_order=True).agg(pl.col("set"))
    )
    return base.select(row).join(combos, on=row, how="left", maintain_order="left")["set"]


def person_ligand_columns(ref: Reference, people: pl.DataFrame, prefix: str = "",
                          include_hla_a_bw4: bool = True, *, table: pl.DataFrame | None = None) -> pl.DataFrame:
    """``people`` with three-valued ligand columns added (names prefixed with ``prefix``):

    ``has_C1``, ``has_C2`` (HLA-C); ``has_Bw4``, ``has_Bw4_80I``, ``has_Bw4_80T`` (HLA-B, plus HLA-A unless
    ``include_hla_a_bw4`` is False = IPD-KIR calculator); per locus ``has_Bw4_B``, ``has_Bw4_80I_B``,
    ``has_Bw4_80T_B``, ``has_Bw4_A``, ``has_Bw4_80I_A``, ``has_Bw4_80T_A``; ``has_Bw6`` (HLA-B);
    ``has_weak_Bw4`` (some Bw4 is a weak KIR3DL1 ligand: B*13, A*23, A*25), ``has_Bw4_weak_only``;
    ``has_C1_on_B``; ``has_A3_A11``; ``has_A11``; ``has_unclassified_C`` / ``_B`` / ``_A``;
    ``c_group`` ("C1/C1" | "C1/C2" | "C2/C2" | null; a null allele carries no ligand, so C1 + null allele is
    C1/C1; a possibly unclassified HLA-C makes it null, as CTUtools); ``b_group`` (strongest HLA-B group
    Bw4-80I > Bw4-80T > Bw6, null if unknown; RULES 1.15); ``ligands`` (labels certainly present: C1, C2,
    Bw4-80I, Bw4-80T, A3/A11, C1-on-B), ``ligands_unknown`` (possibly present) and ``ligand_sets`` (every
    possible set of those labels; null when an HLA-A/B/C slot is untyped).

    Rows are deduplicated on the six slot columns, so a repeated typing (one patient in a million pairs) is
    computed once. ``table`` (from :func:`slot_ligand_table`) may be passed when already built."""
    p = prefix
    slot_cols = [f"{p}{s}" for s in _SLOTS]
    present = [c for c in slot_cols if c in people.columns]
    keys = people.select([pl.col(c) if c in present else pl.lit(None, pl.String).alias(c) for c in slot_cols]).unique()
    if table is None:
        table = slot_ligand_table(ref, _slot_values(keys, slot_cols))

    found = looked_up([keys[c] for c in slot_cols], table, ("cert", "poss", "options"))
    k = keys.with_columns(f[col].alias(f"{_TMP}{short}{i}") for i, f in enumerate(found)
                          for col, short in (("cert", "c"), ("poss", "p"), ("options", "o")))
    cert = functools.reduce(operator.or_, [pl.col(f"{_TMP}c{i}").fill_null(0) for i in range(6)])
    poss = functools.reduce(operator.or_, [pl.col(f"{_TMP}p{i}").fill_null(_ALL) & _LOCUS_BITS[_SLOTS[i][0]]
                                           for i in range(6)])
    k = k.with_columns(cert.cast(_MASK).alias(f"{_TMP}cert"), poss.cast(_MASK).alias(f"{_TMP}poss"))
    C, P = pl.col(f"{_TMP}cert"), pl.col(f"{_TMP}poss")
    a = include_hla_a_bw4
    h = lambda *names: _has(C, P, functools.reduce(operator.or_, [BIT[n] for n in names]))  # noqa: E731
    bw4 = ("B_BW4", "A_BW4") if a else ("B_BW4",)
    strong = ("B_BW4_STRONG", "A_BW4_STRONG") if a else ("B_BW4_STRONG",)
    weak = ("B_BW4_WEAK", "A_BW4_WEAK") if a else ("B_BW4_WEAK",)
    k = k.with_columns(
        h("C1").alias(f"{p}has_C1"), h("C2").alias(f"{p}has_C2"),
        h(*bw4).alias(f"{p}has_Bw4"),
        h("B_80I", *(("A_80I",) if a else ())).alias(f"{p}has_Bw4_80I"),
        h("B_80T", *(("A_80T",) if a else ())).alias(f"{p}has_Bw4_80T"),
        h("B_BW4").alias(f"{p}has_Bw4_B"), h("B_80I").alias(f"{p}has_Bw4_80I_B"), h("B_80T").alias(f"{p}has_Bw4_80T_B"),
        h("A_BW4").alias(f"{p}has_Bw4_A"), h("A_80I").alias(f"{p}has_Bw4_80I_A"), h("A_80T").alias(f"{p}has_Bw4_80T_A"),
        h(*weak).alias(f"{p}has_weak_Bw4"), h(*strong).alias(f"{_TMP}strong"),
        h("B_BW6").alias(f"{p}has_Bw6"), h("C1_ON_B").alias(f"{p}has_C1_on_B"),
        h("A3_A11").alias(f"{p}has_A3_A11"), h("A11").alias(f"{p}has_A11"),
        h("C_UNCL").alias(f"{p}has_unclassified_C"), h("B_UNCL").alias(f"{p}has_unclassified_B"),
        h("A_UNCL").alias(f"{p}has_unclassified_A"),
    )
    col = lambda n: pl.col(f"{p}{n}")  # noqa: E731
    c1, c2, uc = col("has_C1"), col("has_C2"), col("has_unclassified_C")
    i80, t80, bw6, ub = col("has_Bw4_80I_B"), col("has_Bw4_80T_B"), col("has_Bw6"), col("has_unclassified_B")
    label_flags = [(c1, "C1"), (c2, "C2"), (col("has_Bw4_80I"), "Bw4-80I"), (col("has_Bw4_80T"), "Bw4-80T"),
                   (col("has_A3_A11"), "A3/A11"), (col("has_C1_on_B"), "C1-on-B")]
    k = k.with_columns(
        (col("has_Bw4") & ~pl.col(f"{_TMP}strong")).alias(f"{p}has_Bw4_weak_only"),
        pl.when(uc != False).then(pl.lit(None, pl.String))  # noqa: E712
        .when(c1 & c2).then(pl.lit("C1/C2"))
        .when(c1 & ~c2).then(pl.lit("C1/C1"))
        .when(~c1 & c2).then(pl.lit("C2/C2"))
        .otherwise(pl.lit(None, pl.String)).alias(f"{p}c_group"),
        pl.when(i80).then(pl.lit("Bw4-80I"))
        .when(~i80 & t80).then(pl.lit("Bw4-80T"))
        .when(~i80 & ~t80 & bw6 & ~ub).then(pl.lit("Bw6"))
        .otherwise(pl.lit(None, pl.String)).alias(f"{p}b_group"),
        _label_list(label_flags).alias(f"{p}ligands"),
        _unknown_list(label_flags).alias(f"{p}ligands_unknown"),
    )
    k = k.with_columns(_ligand_sets(k, [f"{_TMP}o{i}" for i in range(6)], a).alias(f"{p}ligand_sets"))
    added = [c for c in k.columns if c.startswith(p) and c not in slot_cols and not c.startswith(_TMP)]
    k = k.select(*slot_cols, *added)
    base = people.drop([c for c in added if c in people.columns])
    if len(present) < len(slot_cols):   # join on the columns the table has
        k = k.drop([c for c in slot_cols if c not in present]).unique(subset=present, keep="first")
    if not present:
        return base.join(k, how="cross")
    return base.join(k, on=present, how="left", nulls_equal=True, maintain_order="left")


# ------------------------------------------------------------------------------------------ pair models


def _kir(df_cols: list[str], side: str, gene: str) -> pl.Expr:
    name = f"{side}kir_{gene}"
    return pl.col(name) if name in df_cols else pl.lit(None, pl.Boolean)


def _receptor(cols: list[str], side: str, group: str) -> pl.Expr:
    """The inhibitory KIR recognising ``group`` present on ``side`` (KIR2DL2/3 = either gene)."""
    if group == "C1":
        return _kir(cols, side, "2DL2") | _kir(cols, side, "2DL3")
    return _kir(cols, side, {"C2": "2DL1", "Bw4": "3DL1", "A3/A11": "3DL2"}[group])


def _ligand(side: str, group: str, s: NkSettings) -> pl.Expr:
    h = lambda n: pl.col(f"{side}{n}")  # noqa: E731
    if group == "C1":
        return h("has_C1") | h("has_C1_on_B") if s.c1_on_hla_b else h("has_C1")
    if group == "C2":
        return h("has_C2")
    if group == "Bw4":
        return h("has_Bw4_B") | h("has_Bw4_A") if s.include_hla_a_bw4 else h("has_Bw4_B")
    return h("has_A3_A11")


def _count(exprs: list[pl.Expr]) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(count or null when any is unknown, minimum, maximum)."""
    n = functools.reduce(operator.add, [e.cast(pl.Int8) for e in exprs])
    lo = functools.reduce(operator.add, [e.fill_null(False).cast(pl.Int8) for e in exprs])
    hi = functools.reduce(operator.add, [e.fill_null(True).cast(pl.Int8) for e in exprs])
    return n, lo, hi


def _identity(pairs: pl.DataFrame, loci: Iterable[str], table: pl.DataFrame) -> pl.Series | pl.Expr:
    """Patient and donor carry the same two proteins (P group / 2-field) at every locus: three-valued.
    (Each slot's protein is looked up once, then compared: a batch has 16 slot columns.)"""
    loci = list(loci)
    if not loci:
        return pl.lit(None, pl.Boolean)
    cols = set(pairs.columns)
    names = [f"{side}{locus}_{i}" for side in ("patient_", "donor_") for locus in loci for i in (1, 2)]
    have = [c for c in names if c in cols]
    found = dict(zip(have, looked_up([pairs[c] for c in have], table, ("ard",))))
    n = pairs.height
    ard = pl.DataFrame([found[c]["ard"].alias(c) if c in found else pl.Series(c, [None] * n, pl.String)
                        for c in names])

    def pair_key(side: str, locus: str) -> pl.Expr:
        x, y = pl.col(f"{side}{locus}_1"), pl.col(f"{side}{locus}_2")
        return pl.when(x <= y).then(x + "+" + y).otherwise(y + "+" + x)

    same = [pair_key("patient_", locus) == pair_key("donor_", locus) for locus in loci]
    return ard.select(functools.reduce(operator.and_, same)).to_series()


def nk_pair_facts(ref: Reference, pairs: pl.DataFrame, settings: NkSettings | None = None) -> pl.DataFrame:
    """``pairs`` (``patient_``/``donor_`` columns) with every model's columns added; see the module docstring.

    Ligand–ligand (groups C1, C2, Bw4, and A3/A11 when ``include_a3_a11``): ``ll_gvh_<g>`` / ``ll_hvg_<g>``
    (three-valued per group, ``<g>`` in C1, C2, Bw4, A3_A11), ``ll_gvh`` / ``ll_hvg`` (sorted lists of
    certainly mismatched groups), ``ll_gvh_unknown`` / ``ll_hvg_unknown``, ``ll_gvh_alloreactive`` (a GvH
    mismatch whose inhibitory KIR the donor carries), ``ll_gvh_kir`` (those KIR), ``ll_hvg_alloreactive``
    (with the patient's KIR; null when untyped), ``ll_hvg_kir``.
    Receptor–ligand: ``rl_<unit>`` (unit 2DL1, 2DL2_3, 3DL1, 3DL2), ``rl_kir``, ``rl_kir_unknown``,
    ``rl_count`` (null when any is unknown), ``rl_count_min``, ``rl_count_max``.
    Missing ligand: ``ml_applicable`` (HLA-identical at ``identity_loci``), ``ml_kir``, ``ml_count``.
    Education: ``donor_licensed_<unit>``, ``donor_licensed_kir``, ``donor_unlicensed_kir``,
    ``donor_licensing_unknown``.
    Donor KIR genotype: ``donor_kir_genotype``, ``donor_kir_cen``, ``donor_kir_tel``,
    ``donor_kir_b_content_score``, ``donor_kir_b_content_group``, ``donor_kir_activating_count``,
    ``donor_kir_activating_functional_count``, ``donor_kir2ds4``, ``donor_kir3dl1_class``.
    KIR3DL1 × HLA-B: ``kir3dl1_patient_group`` (Bw4-80I | Bw4-80T | Bw6), ``kir3dl1_hlab`` ("strong
    inhibiting" | "weak inhibiting" | "non-inhibiting"), ``kir3dl1_hlab_detail`` (… "missing ligand" |
    "educated, uninhibited").
    KIR2DS1: ``kir2ds1_favourable``, ``kir2ds1_group``. Scores: ``krieger_*``, ``donor_boelen_score``.
    """
    s = settings or NkSettings()
    wanted = [f"{side}{locus}_{i}" for side in ("patient_", "donor_")
              for locus in ("A", "B", "C", *s.identity_loci) for i in (1, 2)]
    table = slot_ligand_table(ref, _slot_values(pairs, wanted))
    for side in ("patient_", "donor_"):
        if f"{side}has_C1" not in pairs.columns:
            pairs = person_ligand_columns(ref, pairs, side, s.include_hla_a_bw4, table=table)
    if "donor_kir_genotype" not in pairs.columns:
        pairs = kirscores.kir_genotype_columns(pairs, "donor_", tel_2ds4=s.tel_2ds4)
    cols = pairs.columns
    active = s.active_groups
    P = {g: _ligand("patient_", g, s) for g in GROUPS}
    D = {g: _ligand("donor_", g, s) for g in GROUPS}
    DK = {g: _receptor(cols, "donor_", g) for g in GROUPS}
    PK = {g: _receptor(cols, "patient_", g) for g in GROUPS}

    # ligand-ligand (Ruggeri 2002)
    out = pairs.with_columns(
        *[(D[g] & ~P[g]).alias(f"ll_gvh_{_KEY[g]}") for g in GROUPS],
        *[(P[g] & ~D[g]).alias(f"ll_hvg_{_KEY[g]}") for g in GROUPS],
        *[(DK[g] & ~P[g]).alias(f"rl_{_UNIT_KEY[RECEPTOR[g]]}") for g in GROUPS],
        *[(DK[g] & D[g]).alias(f"donor_licensed_{_UNIT_KEY[RECEPTOR[g]]}") for g in GROUPS],
        *[(DK[g] & ~D[g]).alias(f"{_TMP}unlic_{_KEY[g]}") for g in GROUPS],
        _identity(pairs, s.identity_loci, table).alias("ml_applicable"),
    )
    gvh = {g: pl.col(f"ll_gvh_{_KEY[g]}") for g in GROUPS}
    hvg = {g: pl.col(f"ll_hvg_{_KEY[g]}") for g in GROUPS}
    rl = {g: pl.col(f"rl_{_UNIT_KEY[RECEPTOR[g]]}") for g in GROUPS}
    lic = {g: pl.col(f"donor_licensed_{_UNIT_KEY[RECEPTOR[g]]}") for g in GROUPS}
    unlic = {g: pl.col(f"{_TMP}unlic_{_KEY[g]}") for g in GROUPS}
    rorder = [g for g in _RECEPTOR_ORDER if g in active]
    n, lo, hi = _count([rl[g] for g in rorder])
    out = out.with_columns(
        _label_list([(gvh[g], g) for g in active]).alias("ll_gvh"),
        _unknown_list([(gvh[g], g) for g in active]).alias("ll_gvh_unknown"),
        _label_list([(hvg[g], g) for g in active]).alias("ll_hvg"),
        _unknown_list([(hvg[g], g) for g in active]).alias("ll_hvg_unknown"),
        functools.reduce(operator.or_, [gvh[g] & DK[g] for g in active]).alias("ll_gvh_alloreactive"),
        _label_list([(gvh[g] & DK[g], RECEPTOR[g]) for g in rorder]).alias("ll_gvh_kir"),
        functools.reduce(operator.or_, [hvg[g] & PK[g] for g in active]).alias("ll_hvg_alloreactive"),
        _label_list([(hvg[g] & PK[g], RECEPTOR[g]) for g in rorder]).alias("ll_hvg_kir"),
        # receptor-ligand (Leung 2004)
        _label_list([(rl[g], RECEPTOR[g]) for g in rorder]).alias("rl_kir"),
        _unknown_list([(rl[g], RECEPTOR[g]) for g in rorder]).alias("rl_kir_unknown"),
        n.alias("rl_count"), lo.alias("rl_count_min"), hi.alias("rl_count_max"),
        # education
        _label_list([(lic[g], RECEPTOR[g]) for g in rorder]).alias("donor_licensed_kir"),
        _label_list([(unlic[g], RECEPTOR[g]) for g in rorder]).alias("donor_unlicensed_kir"),
        _unknown_list([(lic[g], RECEPTOR[g]) for g in rorder]).alias("donor_licensing_unknown"),
    )
    # missing ligand (Hsu 2005): the receptor-ligand test where the pair is HLA-identical
    app = pl.col("ml_applicable")
    out = out.with_columns(
        pl.when(app).then(pl.col("rl_kir")).alias("ml_kir"),
        pl.when(app).then(pl.col("rl_count")).alias("ml_count"),
    )

    # KIR3DL1 x HLA-B (Boudreau 2017): patient's strongest group; donor class
    pc = lambda n: pl.col(f"patient_{n}")  # noqa: E731
    if s.kir3dl1_include_hla_a:
        i80 = pc("has_Bw4_80I_B") | pc("has_Bw4_80I_A")
        t80 = pc("has_Bw4_80T_B") | pc("has_Bw4_80T_A")
        uncl = pc("has_unclassified_B") | pc("has_unclassified_A")
    else:
        i80, t80, uncl = pc("has_Bw4_80I_B"), pc("has_Bw4_80T_B"), pc("has_unclassified_B")
    grp = (
        pl.when(i80).then(pl.lit("Bw4-80I"))
        .when(~i80 & t80).then(pl.lit("Bw4-80T"))
        .when(~i80 & ~t80 & ~uncl).then(pl.lit("Bw6"))
        .otherwise(pl.lit(None, pl.String))
    )
    out = out.with_columns(grp.alias("kir3dl1_patient_group"))
    g, cls = pl.col("kir3dl1_patient_group"), pl.col("donor_kir3dl1_class")
    strong = ((cls == "H") & (g == "Bw4-80I")) | ((cls == "L") & (g == "Bw4-80T"))
    weak = ((cls == "H") & (g == "Bw4-80T")) | ((cls == "L") & (g == "Bw4-80I"))
    out = out.with_columns(
        pl.when(g == "Bw6").then(pl.lit("non-inhibiting"))
        .when(cls == "N").then(pl.lit("non-inhibiting"))
        .when(strong).then(pl.lit("strong inhibiting"))
        .when(weak).then(pl.lit("weak inhibiting"))
        .otherwise(pl.lit(None, pl.String)).alias("kir3dl1_hlab"),
        pl.when(g == "Bw6").then(pl.lit("missing ligand"))
        .when((cls == "N") & g.is_in(["Bw4-80I", "Bw4-80T"])).then(pl.lit("educated, uninhibited"))
        .when(strong).then(pl.lit("strong inhibiting"))
        .when(weak).then(pl.lit("weak inhibiting"))
        .otherwise(pl.lit(None, pl.String)).alias("kir3dl1_hlab_detail"),
    )

    # KIR2DS1 (Venstrom 2012): donor 2DS1 with at least one C1 in the donor
    ds1 = _kir(cols, "donor_", "2DS1")
    dc1, dc2 = pl.col("donor_has_C1"), pl.col("donor_has_C2")
    out = out.with_columns(
        (ds1 & dc1).alias("kir2ds1_favourable"),
        pl.when(ds1 == False).then(pl.lit("2DS1-"))  # noqa: E712
        .when(ds1 & dc1).then(pl.lit("2DS1+ C1/x"))
        .when(ds1 & ~dc1 & dc2).then(pl.lit("2DS1+ C2/C2"))
        .when(ds1 & ~dc1 & ~dc2).then(pl.lit("2DS1+ no C1"))
        .otherwise(pl.lit(None, pl.String)).alias("kir2ds1_group"),
    )
    out = kirscores.krieger_columns(out)
    out = kirscores.boelen_columns(out, "donor_", include_3dl1=s.boelen_include_3dl1)
    return out.drop([c for c in out.columns if c.startswith(_TMP)])


# --------------------------------------------------------------------------------------- one pair / report


def nk_pair(ref: Reference, patient, donor, settings: NkSettings | None = None) -> dict:
    """The pair facts of one (patient, donor) — two :class:`haplomatch.family.Person` — as a flat dict
    (one row through :func:`nk_pair_facts`, the same code path as the batch)."""
    pairs = pair_frame(people_frame([patient]), people_frame([donor]))
    return nk_pair_facts(ref, pairs, settings).row(0, named=True)


def person_ligands(ref: Reference, person, include_hla_a_bw4: bool = True) -> dict:
    """One person's ligand columns (:func:`person_ligand_columns` on a one-row table), unprefixed."""
    return person_ligand_columns(ref, people_frame([person]), "", include_hla_a_bw4).row(0, named=True)


_PERSON_KEYS = ("ligands", "ligands_unknown", "ligand_sets", "c_group", "b_group", "has_C1", "has_C2", "has_Bw4",
                "has_Bw4_80I", "has_Bw4_80T", "has_Bw4_A", "has_weak_Bw4", "has_Bw4_weak_only", "has_C1_on_B",
                "has_A3_A11")


def pair_report(row: dict, settings: NkSettings | None = None, release: str | None = None) -> dict:
    """A pair row as the nested, self-describing object of ``haplomatch nk --format json``: every model
    with its name (``model``) and source (``source``)."""
    s = settings or NkSettings()

    def person(side: str) -> dict:
        return {k: row.get(f"{side}{k}") for k in _PERSON_KEYS}

    donor = person("donor_")
    donor["kir"] = {
        "genotype": row["donor_kir_genotype"], "cen": row["donor_kir_cen"], "tel": row["donor_kir_tel"],
        "b_content_score": row["donor_kir_b_content_score"], "b_content_group": row["donor_kir_b_content_group"],
        "activating_count": row["donor_kir_activating_count"],
        "activating_functional_count": row["donor_kir_activating_functional_count"], "kir2ds4": row["donor_kir2ds4"],
        "kir3dl1_class": row["donor_kir3dl1_class"],
    }
    return {
        "patient": {**person("patient_"), **_model("ligands")},
        "donor": {**donor, **_model("ligands")},
        "ligand_ligand": {
            **_model("ligand_ligand"), "groups": list(s.active_groups),
            "gvh": row["ll_gvh"], "hvg": row["ll_hvg"], "gvh_unknown": row["ll_gvh_unknown"],
            "hvg_unknown": row["ll_hvg_unknown"], "gvh_alloreactive": row["ll_gvh_alloreactive"],
            "gvh_kir": row["ll_gvh_kir"], "hvg_alloreactive": row["ll_hvg_alloreactive"], "hvg_kir": row["ll_hvg_kir"],
        },
        "receptor_ligand": {
            **_model("receptor_ligand"), "count": row["rl_count"], "kir": row["rl_kir"],
            "kir_unknown": row["rl_kir_unknown"], "count_min": row["rl_count_min"], "count_max": row["rl_count_max"],
        },
        "missing_ligand": {
            **_model("missing_ligand"), "applicable": row["ml_applicable"], "identity_loci": list(s.identity_loci),
            "count": row["ml_count"], "kir": row["ml_kir"],
        },
        "education": {
            **_model("education"), "licensed": row["donor_licensed_kir"], "unlicensed": row["donor_unlicensed_kir"],
            "unknown": row["donor_licensing_unknown"],
        },
        "kir_genotype": {**_model("kir_genotype"), **donor["kir"]},
        "kir3dl1_hla_b": {
            **_model("kir3dl1_hla_b"), "donor_class": row["donor_kir3dl1_class"],
            "patient_group": row["kir3dl1_patient_group"], "result": row["kir3dl1_hlab"],
            "detail": row["kir3dl1_hlab_detail"],
        },
        "kir2ds1": {**_model("kir2ds1"), "favourable": row["kir2ds1_favourable"], "group": row["kir2ds1_group"]},
        "scores": {
            "krieger": {**_model("krieger"),
                        **{k: row[f"krieger_{k}"] for k in ("ikir", "mkir", "akir", "kirl", "imkir", "wkir")}},
            "boelen": {**_model("boelen"), "score": row["donor_boelen_score"]},
        },
        "settings": s.to_dict(),
        "release": release,
    }
