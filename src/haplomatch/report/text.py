"""The ranking as a terminal table (within 100 columns), CSV and Markdown."""

from __future__ import annotations

import csv
import io
import textwrap

from haplomatch.ranking import Ranking

WIDTH = 100


def _header(r: Ranking) -> list[str]:
    lines = [f"Patient {r.patient}" + (f" (family {r.family_id})" if r.family_id else "")
             + f" | profile {r.profile} | {r.release}"]
    for w in r.warnings:
        lines += textwrap.wrap(f"! {w}", WIDTH, subsequent_indent="  ")
    return lines


def ranking_table(r: Ranking, explain: bool = False) -> str:
    """Rank, id, relation and eligibility, then the one-line summary wrapped under it."""
    lines = _header(r) + [""]
    lines.append(f"{'rank':<5}{'id':<10}{'relation':<22}{'eligible':<9}summary")
    lines.append("-" * WIDTH)
    for c in r.candidates:
        head = f"{c.rank:<5}{c.id[:9]:<10}{c.relation[:21]:<22}{('yes' if c.eligible else 'NO'):<9}"
        body = textwrap.wrap(c.summary, WIDTH - len(head)) or [""]
        lines.append(head + body[0])
        lines += [" " * len(head) + b for b in body[1:]]
        if explain:
            for e in c.explanation:
                lines += textwrap.wrap(f"[{e.effect}] {e.text}", WIDTH, initial_indent="     - ", subsequent_indent="       ")
                lines += textwrap.wrap(f"source: {e.source} ({e.evidence})" if e.evidence else f"source: {e.source}",
                                       WIDTH, initial_indent="       ", subsequent_indent="         ")
    if not explain:
        lines += ["", "Add --explain for the rules behind each rank and their sources."]
    return "\n".join(lines)


def ranking_markdown(r: Ranking, explain: bool = False) -> str:
    out = [f"## Patient {r.patient} — {r.profile}", "", f"*{r.release}*", ""]
    out += [f"> ⚠ {w}" for w in r.warnings]
    out += ["", "| rank | id | relation | eligible | summary |", "|---|---|---|---|---|"]
    for c in r.candidates:
        out.append(f"| {c.rank} | {c.id} | {c.relation} | {'yes' if c.eligible else 'no'} | {c.summary} |")
    if explain:
        for c in r.candidates:
            out += ["", f"### {c.rank}. {c.id} ({c.relation})", ""]
            out += [f"- **{e.effect}** — {e.text} *({e.source})*" for e in c.explanation]
    return "\n".join(out)


def ranking_csv(rankings: list[Ranking]) -> str:
    """One row per candidate: identity, rank, eligibility, exclusions, summary and the documented facts."""
    buf = io.StringIO()
    fact_keys: list[str] = []
    for r in rankings:
        for c in r.candidates:
            for k in c.facts:
                if k not in fact_keys and k not in ("id", "relation"):
                    fact_keys.append(k)
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["family_id", "patient", "profile", "id", "relation", "rank", "eligible", "excluded_by", "summary"] + fact_keys)
    for r in rankings:
        for c in r.candidates:
            vals = []
            for k in fact_keys:
                v = c.facts.get(k)
                vals.append("" if v is None else ("|".join(map(str, v)) if isinstance(v, list) else v))
            w.writerow([r.family_id or "", r.patient, r.profile, c.id, c.relation, c.rank, c.eligible,
                        "|".join(c.excluded_by), c.summary] + vals)
    return buf.getvalue()
