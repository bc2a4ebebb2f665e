"""Non-HLA donor factors of a (patient, donor) pair, as polars expressions over a pair table.

ABO relation (donor → recipient; Canaani J et al., EBMT ALWP 2017): *match*; *minor* (donor plasma carries
antibodies against the recipient's red cells: O → A/B/AB, A or B → AB); *major* (the recipient's antibodies
against donor red cells: A/B/AB → O, AB → A or B); *bidirectional* (A ↔ B). CMV pairing written ``D+/R−``.
Female donor to male recipient (Wang Y et al. Blood 2014). Weight ratio donor/recipient (marrow harvest volume).
A fact that cannot be told is null, with the reason in ``<fact>_reason``.
"""

from __future__ import annotations

import polars as pl

SOURCES = {
    "abo": "Canaani J et al. ABO incompatibility in haploidentical transplantation, EBMT ALWP 2017 (PMC5451338)",
    "sex": "Wang Y et al. Blood 2014;124:843-50",
    "age": "Wang Y et al. Blood 2014;124:843-50; McCurdy SR et al. Blood Adv 2018;2:299",
    "cmv": "EBMT IDWP/ALWP, Bone Marrow Transplant 2018 (doi 10.1038/s41409-017-0016-1); Goldsmith SR et al. Blood 2021;137:3291",
}


def abo_relation(donor: str = "donor_abo", recipient: str = "patient_abo") -> pl.Expr:
    d, r = pl.col(donor), pl.col(recipient)
    return (
        pl.when(d.is_null() | r.is_null()).then(None)
        .when(d == r).then(pl.lit("match"))
        .when(((d == "A") & (r == "B")) | ((d == "B") & (r == "A"))).then(pl.lit("bidirectional"))
        .when(((d == "O") & r.is_in(["A", "B", "AB"])) | (d.is_in(["A", "B"]) & (r == "AB"))).then(pl.lit("minor"))
        .when((d.is_in(["A", "B", "AB"]) & (r == "O")) | ((d == "AB") & r.is_in(["A", "B"]))).then(pl.lit("major"))
        .alias("abo_relation")
    )


def _sign(c: str) -> pl.Expr:
    return pl.when(pl.col(c)).then(pl.lit("+")).when(~pl.col(c)).then(pl.lit("-"))


def donor_factor_columns() -> list[pl.Expr]:
    """Expressions adding the donor-factor pair facts (see the module docstring)."""
    return [
        pl.col("donor_id").alias("id"),
        pl.col("donor_relation").alias("relation"),
        pl.col("donor_available").alias("available"),
        pl.col("donor_age").alias("donor_age"),
        pl.col("donor_sex").alias("donor_sex"),
        (pl.col("donor_sex") == "M").alias("donor_male"),
        ((pl.col("donor_sex") == "F") & (pl.col("patient_sex") == "M")).alias("female_to_male"),
        pl.col("donor_parity").alias("donor_parity"),
        abo_relation(),
        pl.when(pl.col("donor_abo").is_null()).then(pl.lit("donor ABO not given"))
        .when(pl.col("patient_abo").is_null()).then(pl.lit("patient ABO not given")).alias("abo_relation_reason"),
        (pl.lit("D") + _sign("donor_cmv") + pl.lit("/R") + _sign("patient_cmv")).alias("cmv_pairing"),
        pl.col("donor_cmv").alias("donor_cmv_positive"),
        pl.col("patient_cmv").alias("patient_cmv_positive"),
        pl.when(pl.col("donor_cmv").is_null() | pl.col("patient_cmv").is_null())
        .then(pl.lit("CMV serostatus not given")).alias("cmv_pairing_reason"),
        (pl.col("donor_weight_kg") / pl.col("patient_weight_kg")).round(2).alias("weight_ratio"),
        pl.col("donor_fcgr3a").alias("donor_fcgr3a"),
        pl.col("donor_fcgr3a").str.contains("V").alias("donor_fcgr3a_158v"),
    ]
