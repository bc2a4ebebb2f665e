"""The pair-facts table: one row per (patient, candidate), one column per fact (glossary in README).

It joins what the other modules compute, all vectorised over the pair table: the segregation result (sharing
and class, per family), NK models (``nk``), HLA compatibility and DSA (``compat``, ``dsa``) and donor factors
(``donorfactors``). Facts that cannot be told are null, with a ``*_reason`` column saying why; rules must
treat them explicitly. The same function serves one family and a batch of families.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from haplomatch.compat import CompatSettings, compat_pair_facts
from haplomatch.donorfactors import donor_factor_columns
from haplomatch.dsa import DsaThresholds, dsa_pair_facts
from haplomatch.family import Family
from haplomatch.nk import NkSettings, nk_pair_facts
from haplomatch.persons import pair_frame, people_frame
from haplomatch.reference import Reference
from haplomatch.segregation import Relationships, Segregation, SegregationSettings, segregate

SEGREGATION_SCHEMA = {
    "family_id": pl.String, "id": pl.String, "shared_haplotypes": pl.Int64, "hla_class": pl.String,
    "class_all_loci": pl.Boolean, "class_by_descent": pl.Boolean, "class_partial": pl.Boolean,
    "shared_labels": pl.String, "class_evidence": pl.String, "class_loci_typed": pl.String,
}


@dataclass(frozen=True)
class FactSettings:
    nk: NkSettings = field(default_factory=NkSettings)
    compat: CompatSettings = field(default_factory=CompatSettings)
    segregation: SegregationSettings = field(default_factory=SegregationSettings)
    dsa: DsaThresholds | None = None


def segregation_frame(family: Family, seg: Segregation) -> pl.DataFrame:
    """Each relative's sharing with the patient, as rows keyed by ``id``."""
    return pl.DataFrame(segregation_rows(family.id, seg), schema=SEGREGATION_SCHEMA)


def segregation_rows(family_id: str | None, seg: "Segregation | Relationships") -> list[dict]:
    """The rows of :func:`segregation_frame` (a batch makes one frame of many families' rows)."""
    return [{
        "family_id": family_id, "id": r.id, "shared_haplotypes": r.shared, "hla_class": r.klass,
        "class_all_loci": r.all_loci, "class_by_descent": r.by_descent, "class_partial": r.partial,
        "shared_labels": ",".join(r.shared_haplotypes) or None, "class_evidence": r.evidence,
        "class_loci_typed": ",".join(r.loci_typed) or None,
    } for r in seg.relationships]


def family_pairs(family: Family) -> pl.DataFrame:
    """The patient against every other member of the family (people-table columns, prefixed)."""
    people = people_frame(family.people).with_columns(pl.lit(family.id, pl.String).alias("family_id"))
    patient = people.filter(pl.col("relation") == "patient")
    donors = people.filter(pl.col("relation") != "patient")
    return pair_frame(patient, donors)


def pair_facts(ref: Reference, pairs: pl.DataFrame, segregation: pl.DataFrame | None, antibodies=None,
               settings: FactSettings = FactSettings(), *, by_patient_id: bool = False,
               nk_elsewhere: Callable[[], pl.DataFrame] | None = None) -> pl.DataFrame:
    """All pair facts for a pair table (vectorised). ``segregation`` rows (``family_id``, ``id``) are joined
    on the donor; without them the class columns are null with a reason (unrelated donors).

    ``nk_elsewhere`` gives ``nk.nk_pair_facts(ref, pairs, settings.nk)`` computed meanwhile in another process
    (a registry's share process, :mod:`haplomatch.search`): called once the HLA columns are computed here. The
    NK and HLA columns read only the pair table, so the result is the same, column for column."""
    if pairs.height == 0:  # polars cannot broadcast list literals onto no rows: the columns of one blank pair
        return pair_facts(ref, pairs.clear(1), segregation, antibodies, settings, by_patient_id=by_patient_id).clear()
    if nk_elsewhere is None:
        out = compat_pair_facts(ref, nk_pair_facts(ref, pairs, settings.nk), settings.compat)
    else:
        hla = compat_pair_facts(ref, pairs, settings.compat)
        out = nk_elsewhere()
        out = out.hstack(hla.select(hla.columns[pairs.width:]))
    if antibodies is not None:
        out = dsa_pair_facts(ref, out, antibodies, settings.dsa, by_patient_id=by_patient_id)
        # a report was given: no definite DSA means 0 MFI and no C1q, not "unknown"
        out = out.with_columns(
            pl.when(pl.col("dsa_category").is_not_null()).then(pl.col("dsa_max_mfi").fill_null(0.0)).alias("dsa_max_mfi"),
            pl.when(pl.col("dsa_category").is_not_null()).then(pl.col("dsa_c1q").fill_null(False)).alias("dsa_c1q"),
            pl.lit(None, pl.String).alias("dsa_reason"),
            # the definite DSA in words: "B27 (6500 MFI, C1q+)"
            pl.col("dsa").list.eval(
                pl.when(pl.element().struct.field("status") == "yes").then(
                    pl.element().struct.field("specificity") + pl.lit(" (")
                    + pl.element().struct.field("mfi").cast(pl.Int64).cast(pl.String) + pl.lit(" MFI")
                    + pl.when(pl.element().struct.field("c1q")).then(pl.lit(", C1q+")).otherwise(pl.lit("")) + pl.lit(")")
                )
            ).list.drop_nulls().alias("dsa_specificities"),
        )
    else:
        out = out.with_columns(
            pl.lit(None, pl.Float64).alias("dsa_max_mfi"), pl.lit(None, pl.Boolean).alias("dsa_c1q"),
            pl.lit(None, pl.String).alias("dsa_category"), pl.lit(None, pl.Float64).alias("dsa_possible_max_mfi"),
            pl.lit(None, pl.String).alias("dsa_category_if_possible"),
            pl.lit("no antibody report given (--antibodies)").alias("dsa_reason"),
            pl.lit(None, pl.List(pl.String)).alias("dsa_specificities"),
        )
    out = out.with_columns(donor_factor_columns())
    if segregation is not None:
        seg = segregation.rename({"family_id": "_seg_family", "id": "_seg_id"})
        out = out.join(seg, left_on=["donor_family_id", "donor_id"], right_on=["_seg_family", "_seg_id"],
                       how="left", nulls_equal=True)
    else:
        out = out.with_columns(pl.lit(None, dt).alias(c) for c, dt in SEGREGATION_SCHEMA.items()
                               if c not in ("family_id", "id"))
    return out.with_columns(
        pl.when(pl.col("hla_class").is_null()).then(pl.lit("no family segregation (unrelated or not typed)"))
        .when(pl.col("hla_class") == "undetermined").then(pl.col("class_evidence"))
        .alias("hla_class_reason"),
        pl.col("donor_family_id").alias("family_id"),
    )


def family_facts(ref: Reference, family: Family, antibodies=None, settings: FactSettings = FactSettings(),
                 nomenclature=None) -> tuple[pl.DataFrame, Segregation]:
    """Segregate one family and compute the pair facts of the patient against every relative. An antibody
    report naming another patient (``patient_id``) is refused (``antibodies.by_patient``)."""
    if antibodies is not None:
        from haplomatch.antibodies import by_patient

        pid = family.patient.id
        antibodies = by_patient(antibodies, [pid]).get(pid, [])
    seg = segregate(family, nomenclature or ref.nomenclature, settings.segregation)
    pairs = family_pairs(family)
    return pair_facts(ref, pairs, segregation_frame(family, seg), antibodies, settings), seg


#: The documented pair facts (README glossary); JSON output carries these. Other columns exist (per-locus
#: ranges, kinds, scores) and can be used in rules too.
GLOSSARY: dict[str, str] = {
    "id": "candidate id", "relation": "relation to the patient", "available": "donor available (yes/no)",
    "shared_haplotypes": "HLA haplotypes shared with the patient (0, 1, 2) on the class loci A, C, B, DRB1, DQB1",
    "hla_class": "HLA-identical, haploidentical, mismatched or undetermined",
    "class_all_loci": ("the class holds at every locus typed in both (false: a recombination, or a parent with the "
                       "same allele on both haplotypes at some loci; the evidence says which)"),
    "class_by_descent": "established by family segregation (false: by allele state only)",
    "class_partial": "candidate typed at fewer loci than the patient: class on the loci typed",
    "shared_labels": "which parental haplotypes are shared (a/b father, c/d mother)",
    "class_evidence": "the evidence for the class, in words", "hla_class_reason": "why the class is unknown",
    "gvh_A": ("GvH mismatches at HLA-A (patient alleles absent in the donor); also gvh_B, gvh_C, gvh_DRB1, gvh_DQB1, "
              "gvh_DPB1; null when ambiguous, the range in gvh_A_min/gvh_A_max (each locus)"),
    "hvg_A": "HvG mismatches at HLA-A (donor alleles absent in the patient); also the other loci, and _min/_max",
    "grade8_bi": ("match grade X/8 (A, B, C, DRB1), bidirectional; also grade10_* (+DQB1), grade12_* (+DPB1), "
                  "_gvh/_hvg, and _text (a range when ambiguous, e.g. 6-7/8)"),
    "b_leader_genotype_match": "HLA-B leader -21 genotypes (MM/MT/TT) equal",
    "b_leader_mismatched_alleles_same_leader": "the mismatched HLA-B alleles share the -21 residue (single B mismatch only)",
    "dpb1_tce": "DPB1 TCE: Match, Permissive, NonPermissiveGvH, NonPermissiveHvG, Unknown",
    "ll_gvh": "ligand-ligand model: ligand groups the donor has and the patient lacks (C1, C2, Bw4)",
    "ll_gvh_alloreactive": "a GvH ligand mismatch whose inhibitory KIR the donor carries (Ruggeri 2002)",
    "ll_hvg": "ligand groups the patient has and the donor lacks",
    "rl_count": "receptor-ligand model: donor inhibitory KIR whose ligand the patient lacks (count; Leung 2004)",
    "rl_kir": "those KIR", "ml_applicable": "missing-ligand model applies (HLA-identical pair; Hsu 2005)",
    "donor_kir_genotype": "donor KIR A/A or B/x", "donor_kir_cen": "centromeric motif A/A, A/B, B/B",
    "donor_kir_tel": "telomeric motif", "donor_kir_b_content_score": "KIR B-content score 0-4 (Cooley 2010)",
    "donor_kir_b_content_group": "Neutral, Better, Best", "donor_kir_activating_count": "activating KIR genes",
    "kir3dl1_hlab": "KIR3DL1 x HLA-B: strong / weak / non-inhibiting (Boudreau 2017)",
    "kir2ds1_favourable": "donor KIR2DS1 with C1 in the donor (Venstrom 2012)",
    "dsa_max_mfi": "strongest definite donor-specific antibody (MFI; 0 = none; null = no antibody report)",
    "dsa_c1q": "a DSA binds C1q", "dsa_category": "negative, positive, high_risk, graft_rejection_risk, above_desensitisation_limit",
    "dsa": "the DSA list (specificity, kind, MFI, C1q, status)",
    "dsa_specificities": "the definite DSA in words, e.g. 'B27 (6500 MFI, C1q+)'", "dsa_reason": "why DSA were not evaluated",
    "donor_age": "years", "donor_sex": "M/F", "donor_male": "male donor", "female_to_male": "female donor, male patient",
    "donor_parity": "pregnancies", "abo_relation": "match, minor, major, bidirectional",
    "cmv_pairing": "donor/recipient CMV serostatus, e.g. D-/R+", "weight_ratio": "donor/patient weight",
    "donor_fcgr3a": "donor FCGR3A-158 genotype VV/VF/FF", "donor_fcgr3a_158v": "donor carries FCGR3A-158V",
}


def _members(key: str) -> tuple[str, ...]:
    """The columns a glossary entry stands for: ``gvh_A`` and ``hvg_A`` every core locus with its range,
    ``grade8_bi`` every grade in each direction with its text; any other entry itself."""
    from haplomatch.compat import CORE_LOCI

    if key in ("gvh_A", "hvg_A"):
        d = key[:3]
        return tuple(f"{d}_{loc}{s}" for loc in CORE_LOCI for s in ("", "_min", "_max"))
    if key == "grade8_bi":
        return tuple(f"grade{n}_{d}{s}" for n in (8, 10, 12) for d in ("bi", "gvh", "hvg") for s in ("", "_text"))
    return (key,)


def documented_columns(columns) -> list[str]:
    """The documented facts (:data:`GLOSSARY`) among ``columns``, in glossary order, an entry that stands for
    a family of columns ("also B, C, …") giving every member: what ``rank``'s candidates and ``screen``'s
    rows carry (per-locus counts and their ranges included, so an ambiguous count is never only a null)."""
    have = set(columns)
    return [c for key in GLOSSARY for c in _members(key) if c in have]
