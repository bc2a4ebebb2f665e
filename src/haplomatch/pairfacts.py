"""The pair-facts table: one row per (patient, candidate), one column per fact (glossary in README).

It joins what the other modules compute, all vectorised over the pair table: the segregation result (sharing
and class, per family), NK models (``nk``), HLA compatibility and DSA (``compat``, ``dsa``) and donor factors
(``donorfactors``). Facts that cannot be told are null, with a ``*_reason`` column saying why; rules must
treat them explicitly. The same function serves one family and a batch of families.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from haplomatch.compat import CompatSettings, compat_pair_facts
from haplomatch.donorfactors import donor_factor_columns
from haplomatch.dsa import DsaThresholds, dsa_pair_facts
from haplomatch.family import Family
from haplomatch.nk import NkSettings, nk_pair_facts
from haplomatch.persons import pair_frame, people_frame
from haplomatch.reference import Reference
from haplomatch.segregation import Segregation, SegregationSettings, segregate

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
    rows = [{
        "family_id": family.id, "id": r.id, "shared_haplotypes": r.shared, "hla_class": r.klass,
        "class_all_loci": r.all_loci, "class_by_descent": r.by_descent, "class_partial": r.partial,
        "shared_labels": ",".join(r.shared_haplotypes) or None, "class_evidence": r.evidence,
        "class_loci_typed": ",".join(r.loci_typed) or None,
    } for r in seg.relationships]
    return pl.DataFrame(rows, schema=SEGREGATION_SCHEMA)


def family_pairs(family: Family) -> pl.DataFrame:
    """The patient against every other member of the family (people-table columns, prefixed)."""
    people = people_frame(family.people).with_columns(pl.lit(family.id, pl.String).alias("family_id"))
    patient = people.filter(pl.col("relation") == "patient")
    donors = people.filter(pl.col("relation") != "patient")
    return pair_frame(patient, donors)


def pair_facts(ref: Reference, pairs: pl.DataFrame, segregation: pl.DataFrame | None, antibodies=None,
               settings: FactSettings = FactSettings(), *, by_patient_id: bool = False) -> pl.DataFrame:
    """All pair facts for a pair table (vectorised). ``segregation`` rows (``family_id``, ``id``) are joined
    on the donor; without them the class columns are null with a reason (unrelated donors)."""
    out = nk_pair_facts(ref, pairs, settings.nk)
    out = compat_pair_facts(ref, out, settings.compat)
    if antibodies is not None:
        out = dsa_pair_facts(ref, out, antibodies, settings.dsa, by_patient_id=by_patient_id)
        out = out.with_columns(pl.lit(None, pl.String).alias("dsa_reason"))
    else:
        out = out.with_columns(
            pl.lit(None, pl.Float64).alias("dsa_max_mfi"), pl.lit(None, pl.Boolean).alias("dsa_c1q"),
            pl.lit(None, pl.String).alias("dsa_category"), pl.lit(None, pl.Float64).alias("dsa_possible_max_mfi"),
            pl.lit(None, pl.String).alias("dsa_category_if_possible"),
            pl.lit("no antibody report given (--antibodies)").alias("dsa_reason"),
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
    """Segregate one family and compute the pair facts of the patient against every relative."""
    seg = segregate(family, nomenclature or ref.nomenclature, settings.segregation)
    pairs = family_pairs(family)
    return pair_facts(ref, pairs, segregation_frame(family, seg), antibodies, settings), seg
