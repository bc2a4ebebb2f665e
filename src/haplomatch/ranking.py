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
    for name in rules.criteria_order:
        for r in (r for r in rules.rules if r.criterion == name):
            key = f"__key_{r.id}"
            if r.key:
                df = df.with_columns(r.key_expr().cast(pl.Float64).alias(key))
                # a criterion applies only where its condition holds; elsewhere the key is neutral (null)
                df = df.with_columns(pl.when(pl.col(_col(r))).then(pl.col(key)).alias(key))
            else:
                # prefer: condition true first, then unknown, then false
                df = df.with_columns(
                    pl.when(pl.col(_col(r)) == r.prefer).then(0).when(pl.col(_col(r)).is_null()).then(1).otherwise(2)
                    .alias(key))
    cols, desc = _order(rules, df.columns)
    df = df.sort(cols, descending=desc, nulls_last=True, maintain_order=True)
    return df.with_row_index("rank", offset=1).with_columns(pl.col("rank").cast(pl.Int64))


def _order(rules: RuleSet, columns) -> tuple[list[str], list[bool]]:
    """The sort of :func:`evaluate`: eligible first, then tier, each criterion's key in the rule file's order
    (a keyed criterion in its direction; a preference: true, unknown, false), then donor age and id."""
    cols, desc = ["eligible", "tier"], [True, False]
    for name in rules.criteria_order:
        for r in (r for r in rules.rules if r.criterion == name):
            cols.append(f"__key_{r.id}")
            desc.append(r.order == "desc" if r.key else False)
    tie = [c for c in ("donor_age", "id") if c in columns]
    return cols + tie, desc + [False] * len(tie)


def _fill(template: str, row: dict[str, Any], rules: RuleSet) -> str:
    def rep(m: re.Match) -> str:
        k = m[1]
        v = row.get(k, rules.setting(k))
        if isinstance(v, bool):
            v = "yes" if v else "no"
        elif isinstance(v, float) and v.is_integer():
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


# -- the main job: rank one family ---------------------------------------------------------------------------
PROFILES = {"haplo-hsct": "haplo-hsct.yaml", "nk-cell-therapy": "nk-cell-therapy.yaml"}


@dataclass(frozen=True)
class Candidate:
    id: str
    relation: str
    rank: int
    eligible: bool
    excluded_by: tuple[str, ...]
    summary: str
    explanation: tuple[Reason, ...]
    facts: dict[str, Any]

    def to_dict(self) -> dict:
        return {"id": self.id, "relation": self.relation, "rank": self.rank, "eligible": self.eligible,
                "excluded_by": list(self.excluded_by), "summary": self.summary,
                "explanation": [r.to_dict() for r in self.explanation], "facts": self.facts}


@dataclass(frozen=True)
class Ranking:
    patient: str
    profile: str
    release: str
    warnings: tuple[str, ...]
    candidates: tuple[Candidate, ...]
    rules_file: str
    settings: dict[str, Any]
    family_id: str | None = None

    def to_dict(self) -> dict:
        return {"patient": self.patient, "family_id": self.family_id, "profile": self.profile,
                "release": self.release, "rules_file": self.rules_file, "settings": self.settings,
                "warnings": list(self.warnings), "candidates": [c.to_dict() for c in self.candidates]}


def rules_for(profile: str | None, rules_path=None, columns: dict | None = None, overrides=None) -> RuleSet:
    """The rule set of a shipped profile, or the user's own file."""
    from haplomatch.errors import InputError
    from haplomatch.rulefiles import rules_path as shipped

    if rules_path is None:
        if profile not in PROFILES:
            raise InputError.one(f"unknown profile {profile!r}: one of {', '.join(PROFILES)}", column="profile")
        rules_path = shipped(PROFILES[profile])
    from haplomatch.rules import load_rules

    return load_rules(rules_path, columns or {}, overrides)


def _plain(v: Any) -> Any:
    if isinstance(v, float) and v != v:  # NaN
        return None
    return v


def summary(row: dict[str, Any]) -> str:
    # an unrelated donor has no family class: say so, rather than "unknown"
    parts = [row.get("hla_class") or ("unrelated" if row.get("relation") == "unrelated" else "class unknown")]
    if row.get("grade8_bi_text"):
        parts.append(f"HLA {row['grade8_bi_text']} bidirectional")
    if row.get("dsa_category"):
        parts.append(f"DSA {row['dsa_category']}" + (f" {int(row['dsa_max_mfi'])} MFI" if row.get("dsa_max_mfi") else ""))
    rl = row.get("rl_count")
    parts.append(f"KIR-HLA mismatch {rl if rl is not None else '?'}")
    if row.get("donor_kir_b_content_group"):
        parts.append(f"KIR B {row['donor_kir_b_content_group']}")
    if row.get("donor_age") is not None:
        parts.append(f"{int(row['donor_age'])} y {row.get('donor_sex') or ''}".strip())
    if row.get("abo_relation"):
        parts.append(f"ABO {row['abo_relation']}")
    if row.get("cmv_pairing"):
        parts.append(f"CMV {row['cmv_pairing']}")
    return "; ".join(parts)


def rank_facts(facts: pl.DataFrame, rules: RuleSet) -> list[Candidate]:
    """Candidates of one patient, ranked and explained."""
    return explained(evaluate(facts, rules), rules)


def explained(ranked: pl.DataFrame, rules: RuleSet) -> list[Candidate]:
    """The candidates of an :func:`evaluate` table, in its order, each with its explanation."""
    from haplomatch.pairfacts import documented_columns

    out: list[Candidate] = []
    documented = documented_columns(ranked.columns)
    for row in ranked.to_dicts():
        reasons = explain(row, rules)
        excluded = tuple(r.rule for r in reasons if r.effect == "exclude")
        kept = {k: _plain(row.get(k)) for k in documented}
        out.append(Candidate(row["id"], row["relation"], row["rank"], bool(row["eligible"]), excluded,
                             summary(row) + (f"; EXCLUDED ({', '.join(excluded)})" if excluded else ""),
                             tuple(reasons), kept))
    return out


def _range_warnings(ref, family, facts, compat) -> list[str]:
    """Why a mismatch count is a range, and what typing would settle it: once per locus for the patient's
    typing (every donor's count there depends on it), then per donor for its own; a locus merely not typed
    is left to the grade's range (the input shows it)."""
    from haplomatch.compat import ambiguous_slots, range_notes, settle_unit

    out: list[str] = []
    patient = family.patient
    rows = facts.to_dicts() if facts.height else []
    for loc in compat.loci:
        why = ambiguous_slots(ref, patient, loc, compat)
        if why and any(r.get(f"gvh_{loc}") is None or r.get(f"hvg_{loc}") is None for r in rows):
            out.append(f"the patient's {'; '.join(why)}: every donor's mismatches at {loc} depend on it; typing the "
                       f"patient at {loc} to one {settle_unit(compat.level)} per slot would settle them")
    for r in rows:
        pid = r["donor_id"]
        for loc, note in range_notes(ref, patient, family.person(pid), r, compat, names=("the patient", pid),
                                     untyped=False, ask=(False, True)).items():
            out.append(f"{pid}'s mismatches at {loc} are a range: {note}")
    return out


def dsa_unchecked_text(path, patient_id: str) -> str:
    """The warning for a patient whom a given antibody report does not name (its DSA are unchecked; the
    ranking then says no more of the report)."""
    return f"the antibody report {path} has no antibodies for patient {patient_id}: {DSA_UNCHECKED}"


DSA_UNCHECKED = "donor-specific antibodies were not checked"


def phase_open_text(loci) -> str:
    """The warning for loci where the phase is open (``Segregation.phase_open``), as rank and screen word it."""
    return (f"phase open at {', '.join(loci)}: which of a parent's alleles each parental haplotype carries there is "
            "not determined (typing a parent or more relatives would settle it)")


def rank_family(ref, family, profile: str = "haplo-hsct", antibodies=None, rules_path=None, overrides=None,
                settings=None, warnings: tuple[str, ...] = ()) -> Ranking:
    """Rank the patient's relatives for a treatment profile (the library form of ``haplomatch rank``)."""
    from haplomatch.pairfacts import FactSettings, family_facts

    facts, seg = family_facts(ref, family, antibodies, settings or FactSettings())
    return ranking_of(ref, family, facts, seg, profile, antibodies, rules_path, overrides, settings, warnings)


def ranking_of(ref, family, facts, seg, profile: str = "haplo-hsct", antibodies=None, rules_path=None,
               overrides=None, settings=None, warnings: tuple[str, ...] = ()) -> Ranking:
    """:func:`rank_family` of pair facts and a segregation already computed (``pairfacts.family_facts``'s, with
    the same antibodies and settings): the HTML report ranks what it shows without computing it twice."""
    from haplomatch.pairfacts import FactSettings

    rules = rules_for(profile, rules_path, dict(facts.schema), overrides)
    warnings = list(warnings) + [f"{c.message} (likely: {', '.join(c.causes)})" for c in seg.conflicts]
    if facts.height == 0:
        warnings.append(f"no relative of patient {family.patient.id} in the family: there is no donor to rank")
    warnings += [r.text for r in seg.recombinants] + list(seg.notes)
    if seg.phase_open:  # as `haplotypes` and the HTML report say it
        warnings.append(phase_open_text(seg.phase_open))
    warnings += _range_warnings(ref, family, facts, (settings or FactSettings()).compat)
    if antibodies is None and not any(w.endswith(DSA_UNCHECKED) for w in warnings):
        warnings.append(f"no antibody report given: {DSA_UNCHECKED}")
    return Ranking(
        family.patient.id, rules.profile, ref.label, tuple(warnings), tuple(rank_facts(facts, rules)), rules.path,
        {k: s.value for k, s in rules.settings.items()}, family.id,
    )
