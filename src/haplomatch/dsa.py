"""Donor-specific anti-HLA antibodies (DSA): the patient's antibody report against each donor's typing.

Computed on a pair table (``persons.pair_frame``) with polars joins, never a Python loop over pairs: each
antibody specificity is resolved once to the release alleles it recognises, each distinct donor slot once
to its expressed candidate alleles, and a join of the two finds the hits.

Rules (sources in :data:`SOURCES`; thresholds in ``rules/dsa-thresholds.yaml``, each with its source):

- an **allele** specificity (``A*02:01``) recognises the release alleles of that name;
- an **antigen** specificity (``A2``, ``B5``, ``Cw7``, ``DQ7``, ``DR51``) recognises every allele whose
  serological equivalent (WMDA ``rel_dna_ser.txt``) is that antigen, or one of its splits and associated
  antigens when it is a broad antigen (``rel_ser_ser.txt``): a ``B5`` antibody recognises B51 and B52;
- an **alpha/beta pair** (``DQA1*05:01/DQB1*02:01``) needs both chains in the donor;
- a donor slot whose candidates are all recognised is a DSA target (status ``yes``); one whose candidates
  are only partly recognised, or a locus the donor is not typed at, is ``possible``; null alleles carry no
  antigen and are never a target;
- a specificity that cannot be mapped to the release is kept and reported (``dsa_unmapped``), never dropped.

The category is that of the strongest definite DSA: ``negative`` (none above the positive cut-off, no C1q),
``positive``, ``high_risk`` (MFI or C1q), ``graft_rejection_risk``, ``above_desensitisation_limit``;
``dsa_category_if_possible`` counts the possible DSAs as real (the worst case).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import polars as pl

from haplomatch.reference import Reference
from haplomatch.slotfacts import slot_candidates

CATEGORIES: tuple[str, ...] = ("negative", "positive", "high_risk", "graft_rejection_risk", "above_desensitisation_limit")

SOURCES: dict[str, str] = {
    "dsa": (
        "DSA testing against every typed donor locus; consensus guidelines: Ciurea SO et al. The European Society "
        "for Blood and Marrow Transplantation (EBMT) consensus guidelines for the detection and treatment of "
        "donor-specific anti-HLA antibodies (DSA) in haploidentical hematopoietic cell transplantation. Bone "
        "Marrow Transplant 2018;53(5):521-34"
    ),
    "serology": "allele -> antigen: WMDA rel_dna_ser.txt; broad -> splits: WMDA rel_ser_ser.txt (IPD-IMGT/HLA)",
    "pairs": "DQ and DP antibodies recognise an alpha/beta heterodimer: both chains must be present in the donor",
}

_ORDER = {"no": 0, "possible": 1, "yes": 2}


@dataclass(frozen=True)
class DsaThresholds:
    """MFI cut-offs (single-antigen beads) as named settings; ``sources``/``evidence`` per setting."""

    positive_mfi: float = 1000.0
    high_risk_mfi: float = 5000.0
    high_risk_c1q: bool = True
    graft_rejection_mfi: float = 10000.0
    poor_graft_function_mfi: float = 2000.0
    desensitisation_limit_mfi: float = 20000.0
    sources: dict = field(default_factory=dict, compare=False)
    evidence: dict = field(default_factory=dict, compare=False)

    def with_(self, **changes) -> "DsaThresholds":
        return replace(self, **changes)


def _setting_names() -> list[str]:
    return [f.name for f in fields(DsaThresholds) if f.name not in ("sources", "evidence")]


def load_thresholds(path: str | Path | None = None, **overrides) -> DsaThresholds:
    """The thresholds of ``rules/dsa-thresholds.yaml`` (or ``path``), with ``overrides`` applied."""
    import yaml

    from haplomatch.rulefiles import rules_path

    p = Path(path) if path is not None else rules_path("dsa-thresholds.yaml")
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    items = data.get("thresholds", {})
    names = _setting_names()
    values: dict = {}
    srcs: dict = {}
    evid: dict = {}
    for name, spec in items.items():
        if name not in names:
            raise ValueError(f"{p}: unknown threshold {name!r}; known: {', '.join(names)}")
        value = spec["value"] if isinstance(spec, dict) else spec
        values[name] = value if isinstance(value, bool) else float(value)
        if isinstance(spec, dict):
            srcs[name] = " ".join(str(spec.get("source", "")).split())
            evid[name] = spec.get("evidence")
    for name in overrides:
        if name not in names:
            raise ValueError(f"unknown threshold {name!r}; known: {', '.join(names)}")
        srcs[name] = "set by the caller"
        evid[name] = "caller"
    values |= overrides
    return DsaThresholds(**values, sources=srcs, evidence=evid)


def sources(thresholds: DsaThresholds | None = None) -> dict[str, str]:
    """The sources of the DSA rules and of each threshold."""
    t = thresholds or load_thresholds()
    out = dict(SOURCES)
    out |= {f"threshold {k}": v for k, v in t.sources.items()}
    return out


# --------------------------------------------------------------------------------------------------
# Antibodies
# --------------------------------------------------------------------------------------------------

ANTIBODY_SCHEMA = {
    "ab": pl.Int64, "specificity": pl.String, "kind": pl.String, "targets": pl.List(pl.String),
    "mfi": pl.Float64, "c1q": pl.Boolean, "patient_id": pl.String,
}


def antibody_frame(antibodies, nomenclature=None) -> pl.DataFrame:
    """Antibodies (``Antibody`` values from ``antibodies.read_antibodies``, or a table with ``specificity``,
    ``mfi`` and optionally ``c1q``, ``kind``, ``targets``) as one table, one row each, numbered ``ab``."""
    if isinstance(antibodies, pl.DataFrame):
        df = antibodies
        if "kind" not in df.columns or "targets" not in df.columns:
            if nomenclature is None:
                raise ValueError("a table of specificities needs the nomenclature to map them")
            from haplomatch.antibodies import map_specificity

            mapped = [map_specificity(s, nomenclature) for s in df["specificity"].to_list()]
            df = df.with_columns(
                pl.Series("kind", [m[0] for m in mapped], pl.String),
                pl.Series("targets", [list(m[1]) for m in mapped], pl.List(pl.String)),
            )
        rows = df.to_dicts()
    else:
        rows = [
            {"specificity": a.specificity, "kind": a.kind, "targets": list(a.targets), "mfi": a.mfi,
             "c1q": a.c1q, "patient_id": a.patient_id}
            for a in antibodies
        ]
    recs = [
        {"ab": i, "specificity": r["specificity"], "kind": r.get("kind"), "targets": list(r.get("targets") or []),
         "mfi": float(r["mfi"]), "c1q": r.get("c1q"), "patient_id": r.get("patient_id")}
        for i, r in enumerate(rows)
    ]
    return pl.DataFrame(recs, schema=ANTIBODY_SCHEMA)


def _targets(ref: Reference, ab: pl.DataFrame) -> pl.DataFrame:
    """(ab, part, locus, allele): the release alleles each mapped specificity recognises. One look-up per
    antibody (a report has tens of rows), none per pair."""
    nom = ref.nomenclature
    rows: dict[str, list] = {"ab": [], "part": [], "locus": [], "allele": []}
    for i, kind, targets in ab.select("ab", "kind", "targets").iter_rows():
        if kind == "unmapped" or not targets:
            continue
        for j, t in enumerate(targets):
            part = "single" if len(targets) == 1 else ("alpha", "beta")[min(j, 1)]
            r = nom.resolve_one(t)
            rows["ab"] += [i] * len(r.alleles)
            rows["part"] += [part] * len(r.alleles)
            rows["locus"] += [r.typing.locus] * len(r.alleles)
            rows["allele"] += list(r.alleles)
    return pl.DataFrame(rows, schema={"ab": pl.Int64, "part": pl.String, "locus": pl.String, "allele": pl.String})


# --------------------------------------------------------------------------------------------------
# Pairs
# --------------------------------------------------------------------------------------------------

def category_expr(max_mfi: pl.Expr, c1q: pl.Expr, t: DsaThresholds) -> pl.Expr:
    """The DSA category from the strongest DSA's MFI and whether a DSA binds C1q (see :data:`CATEGORIES`)."""
    c1q_risk = c1q.fill_null(False) & pl.lit(bool(t.high_risk_c1q))
    return (
        pl.when(max_mfi.is_null() | ((max_mfi <= t.positive_mfi) & ~c1q_risk)).then(pl.lit("negative"))
        .when(max_mfi > t.desensitisation_limit_mfi).then(pl.lit("above_desensitisation_limit"))
        .when(max_mfi >= t.graft_rejection_mfi).then(pl.lit("graft_rejection_risk"))
        .when((max_mfi > t.high_risk_mfi) | c1q_risk).then(pl.lit("high_risk"))
        .otherwise(pl.lit("positive"))
    )


_DSA_STRUCT = pl.Struct({
    "specificity": pl.String, "kind": pl.String, "mfi": pl.Float64, "c1q": pl.Boolean, "status": pl.String,
    "positive": pl.Boolean, "note": pl.String,
})


def dsa_pair_facts(ref: Reference, pairs: pl.DataFrame, antibodies, thresholds: DsaThresholds | None = None,
                   *, by_patient_id: bool = False) -> pl.DataFrame:
    """``pairs`` with the DSA columns added: ``dsa`` (list of {specificity, kind, mfi, c1q, status
    yes/possible, positive, note}, strongest first), ``dsa_max_mfi`` and ``dsa_c1q`` (definite DSA),
    ``dsa_category``, ``dsa_possible_max_mfi``, ``dsa_category_if_possible``, ``dsa_desensitisable``,
    ``dsa_poor_graft_function_risk``, ``dsa_unmapped`` (specificities that could not be mapped).

    With ``by_patient_id`` an antibody with a ``patient_id`` applies only to pairs whose ``patient_id``
    equals it; otherwise every antibody applies to every pair (one patient)."""
    t = thresholds or load_thresholds()
    ab = antibody_frame(antibodies, ref.nomenclature)
    targets = _targets(ref, ab)
    loci = targets.get_column("locus").unique().to_list()
    pairs = pairs.with_row_index("_pair")

    donor_cols = [c for c in pairs.columns if c.startswith("donor_") and c.rsplit("_", 1)[-1] in ("1", "2")
                  and c[len("donor_"):].rsplit("_", 1)[0] in loci]
    long = (
        pairs.select("_pair", *[pl.col(c).cast(pl.String) for c in donor_cols])
        .unpivot(index="_pair", variable_name="col", value_name="slot")
        .with_columns(pl.col("col").str.strip_prefix("donor_").str.replace(r"_[12]$", "").alias("locus"))
        .drop("col")
    ) if donor_cols else pl.DataFrame(schema={"_pair": pl.UInt32, "slot": pl.String, "locus": pl.String})
    # every (pair, locus) an antibody targets, with how many donor slots are typed there (0 if no column)
    pl_loci = pl.DataFrame({"locus": loci}, schema={"locus": pl.String})
    typed = (
        pairs.select("_pair").join(pl_loci, how="cross")
        .join(long.group_by("_pair", "locus").agg(pl.col("slot").is_not_null().sum().alias("n_typed")),
              on=["_pair", "locus"], how="left")
        .with_columns(pl.col("n_typed").fill_null(0))
    )

    slots = long.get_column("slot").drop_nulls().unique().to_list()
    cands, errors = slot_candidates(ref.nomenclature, slots)
    expressed = ref.alleles.select("allele", "expressed")
    cands = cands.join(expressed, on="allele", how="left").filter(pl.col("expressed"))
    n_cand = cands.group_by("slot").agg(pl.len().alias("n_cand"))
    hits = (
        cands.join(targets, on="allele", how="inner")
        .group_by("slot", "ab", "part").agg(pl.col("allele").n_unique().alias("n_hit"))
        .join(n_cand, on="slot", how="left")
        .with_columns(pl.when(pl.col("n_hit") == pl.col("n_cand")).then(pl.lit(2)).otherwise(pl.lit(1)).alias("code"))
    )
    pair_hits = (
        long.filter(pl.col("slot").is_not_null()).join(hits, on="slot", how="inner")
        .group_by("_pair", "ab", "part").agg(pl.col("code").max())
        .with_columns(pl.lit(None, pl.String).alias("why"))
    )
    untyped = (
        typed.filter(pl.col("n_typed") < 2)
        .join(targets.select("ab", "part", "locus").unique(), on="locus", how="inner")
        .select("_pair", "ab", "part", pl.lit(1).alias("code"),
                (pl.lit("donor not typed at ") + pl.col("locus")).alias("why"))
    )
    unresolved = (
        long.join(errors, on="slot", how="inner")
        .join(targets.select("ab", "part", "locus").unique(), on="locus", how="inner")
        .select("_pair", "ab", "part", pl.lit(1).alias("code"),
                (pl.lit("donor typing does not resolve: ") + pl.col("slot")).alias("why"))
    )
    parts = (
        pl.concat([pair_hits.with_columns(pl.col("code").cast(pl.Int32)),
                   untyped.with_columns(pl.col("code").cast(pl.Int32)),
                   unresolved.with_columns(pl.col("code").cast(pl.Int32))], how="vertical_relaxed")
        .group_by("_pair", "ab", "part")
        .agg(pl.col("code").max(), pl.col("why").filter(pl.col("code") == 1).drop_nulls().first())
    )
    needed = targets.group_by("ab").agg(pl.col("part").n_unique().alias("needed"))
    per_ab = (
        parts.group_by("_pair", "ab").agg(
            (pl.col("code") == 2).sum().alias("n_yes"), pl.len().alias("n_any"), pl.col("why").drop_nulls().first()
        )
        .join(needed, on="ab", how="left")
        .with_columns(
            pl.when(pl.col("n_yes") == pl.col("needed")).then(pl.lit("yes"))
            .when(pl.col("n_any") == pl.col("needed")).then(pl.lit("possible"))
            .alias("status")
        )
        .filter(pl.col("status").is_not_null())
        .join(ab, on="ab", how="left")
    )
    if by_patient_id and "patient_id" in pairs.columns:
        per_ab = per_ab.join(pairs.select("_pair", pl.col("patient_id").alias("_pid")), on="_pair", how="left").filter(
            pl.col("patient_id").is_null() | (pl.col("patient_id") == pl.col("_pid"))
        )
    per_ab = per_ab.with_columns(
        (pl.col("mfi") > t.positive_mfi).alias("positive"),
        pl.when(pl.col("status") == "possible").then(
            pl.coalesce(pl.col("why"), pl.lit("donor typing ambiguous: only some of its alleles carry this specificity")))
        .when(pl.col("kind") == "pair").then(pl.lit("both chains present in the donor"))
        .alias("note"),
    )
    yes = pl.col("status") == "yes"
    agg = (
        per_ab.sort("_pair", "mfi", descending=[False, True])
        .group_by("_pair", maintain_order=True)
        .agg(
            pl.struct("specificity", "kind", "mfi", "c1q", "status", "positive", "note").alias("dsa"),
            pl.col("mfi").filter(yes).max().alias("dsa_max_mfi"),
            pl.when(yes.any()).then(
                pl.when((pl.col("c1q") == True).filter(yes).any()).then(pl.lit(True))  # noqa: E712
                .when(pl.col("c1q").filter(yes).is_null().any()).then(pl.lit(None, pl.Boolean))
                .otherwise(pl.lit(False))
            ).alias("dsa_c1q"),
            pl.col("mfi").max().alias("dsa_possible_max_mfi"),
            (pl.col("c1q") == True).any().alias("_c1q_any"),  # noqa: E712
        )
    )
    unmapped = ab.filter(pl.col("kind") == "unmapped").get_column("specificity").to_list()
    out = pairs.join(agg, on="_pair", how="left").with_columns(
        pl.col("dsa").fill_null(pl.lit([], pl.List(_DSA_STRUCT))),
    ).with_columns(
        category_expr(pl.col("dsa_max_mfi"), pl.col("dsa_c1q"), t).alias("dsa_category"),
        category_expr(pl.col("dsa_possible_max_mfi"), pl.col("_c1q_any"), t).alias("dsa_category_if_possible"),
        pl.when(pl.col("dsa_max_mfi") > t.positive_mfi).then(pl.col("dsa_max_mfi") <= t.desensitisation_limit_mfi)
        .alias("dsa_desensitisable"),
        (pl.col("dsa_max_mfi").fill_null(0) >= t.poor_graft_function_mfi).alias("dsa_poor_graft_function_risk"),
        pl.lit(unmapped, pl.List(pl.String)).alias("dsa_unmapped"),
    )
    return out.drop("_pair", "_c1q_any")


def dsa_one(ref: Reference, patient, donor, antibodies, thresholds: DsaThresholds | None = None) -> dict:
    """The DSA facts of one pair (a one-row pair table through :func:`dsa_pair_facts`)."""
    from haplomatch.compat import one_pair_frame

    return dsa_pair_facts(ref, one_pair_frame(patient, donor), antibodies, thresholds).to_dicts()[0]
