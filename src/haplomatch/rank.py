"""Ranking candidates by a rule set: exclusions, tiers, criteria in the profile's order, deterministic ties.

Everything is polars over the pair-facts table, so one family and a million registry rows are ranked by the
same compiled rules. A condition that cannot be evaluated (a null fact) never excludes silently: it is
reported in the explanation as "could not be evaluated", and criteria sort unknown values last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import polars as pl

from haplomatch.rules import Rule, RuleSet

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
NO_TIER = 99


def _col(rule: Rule) -> str:
    return f"__rule_{rule.id}"


def evaluate(facts: pl.DataFrame, rules: RuleSet) -> pl.DataFrame:
    """Add one boolean column per rule (``__rule_<id>``), one key per criterion, ``eligible``, ``tier``,
    ``rank`` (1 = best; excluded candidates after the eligible ones) — sorted by rank."""
    df = facts.with_columns(r.condition().alias(_col(r)) for r in rules.rules)
    excl = [pl.col(_col(r)).fill_null(False) for r in rules.rules if r.effect == "exclude"]
    eligible = ~pl.any_horizontal(excl) if excl else pl.lit(True)
    tiers = [pl.when(pl.col(_col(r)).fill_null(False)).then(pl.lit(r.tier)) for r in rules.rules if r.effect == "tier"]
    tier = pl.min_horizontal(tiers).fill_null(NO_TIER) if tiers else pl.lit(NO_TIER)
    df = df.with_columns(eligible.alias("eligible"), tier.cast(pl.Int64).alias("tier"))
    sort_cols, desc = ["eligible", "tier"], [True, False]
    for name in rules.criteria_order:
        for r in (r for r in rules.rules if r.criterion == name):
            key = f"__key_{r.id}"
            if r.key:
                df = df.with_columns(r.key_expr().cast(pl.Float64).alias(key))
                # a criterion applies only where its condition holds; elsewhere the key is neutral (null)
                df = df.with_columns(pl.when(pl.col(_col(r))).then(pl.col(key)).alias(key))
                sort_cols.append(key)
                desc.append(r.order == "desc")
            else:
                # prefer: condition true first, then unknown, then false
                df = df.with_columns(
                    pl.when(pl.col(_col(r)) == r.prefer).then(0).when(pl.col(_col(r)).is_null()).then(1).otherwise(2)
                    .alias(key))
                sort_cols.append(key)
                desc.append(False)
    tie = [c for c in ("donor_age", "id") if c in df.columns]
    df = df.sort(sort_cols + tie, descending=desc + [False] * len(tie), nulls_last=True, maintain_order=True)
    return df.with_row_index("rank", offset=1).with_columns(pl.col("rank").cast(pl.Int64))


def _fill(template: str, row: dict[str, Any], rules: RuleSet) -> str:
    def rep(m: re.Match) -> str:
        k = m[1]
        v = row.get(k, rules.setting(k))
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, (list, tuple)):
            v = ", ".join(str(x) for x in v) or "none"
        return "unknown" if v is None else str(v)

    return _PLACEHOLDER.sub(rep, template)


@dataclass(frozen=True)
class Reason:
    rule: str
    effect: str
    text: str
    source: str
    evidence: str

    def to_dict(self) -> dict:
        return {"rule": self.rule, "effect": self.effect, "text": self.text, "source": self.source,
                "evidence": self.evidence}


def explain(row: dict[str, Any], rules: RuleSet) -> list[Reason]:
    """The rules that fired for one candidate, in the order they act: exclusions, tier, criteria (in the
    profile's order), flags; and the rules whose facts were unknown."""
    out: list[Reason] = []
    order = {"exclude": 0, "tier": 1, "criterion": 2, "flag": 3}
    crit_pos = {c: i for i, c in enumerate(rules.criteria_order)}
    fired = sorted(
        (r for r in rules.rules if row.get(_col(r)) is not None),
        key=lambda r: (order[r.effect], crit_pos.get(r.criterion or "", 0)),
    )
    for r in fired:
        val = row.get(_col(r))
        if r.effect == "criterion":
            if not val:
                continue
            effect = f"criterion {r.criterion}"
        elif not val:
            continue
        else:
            effect = r.effect if r.effect != "tier" else f"tier {r.tier}"
        out.append(Reason(r.id, effect, _fill(r.explain, row, rules), r.source, r.evidence))
    for r in rules.rules:
        if row.get(_col(r)) is None and r.effect in ("exclude", "tier"):
            out.append(Reason(r.id, "not evaluated",
                              f"could not be evaluated (a fact it needs is unknown): {r.text_when}", r.source, r.evidence))
    return out
