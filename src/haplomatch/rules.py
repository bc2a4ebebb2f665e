"""Rule files: clinical rules as data (YAML), validated on load and compiled to polars expressions.

A rule file has named ``settings`` (thresholds and orders that sources disagree on, each with its source)
and ``rules``. A rule has an ``id``, a ``when`` condition (a boolean SQL expression over pair-fact columns,
compiled by ``polars.sql_expr``; ``{setting}`` placeholders are replaced by the setting's value), an
``effect``, an ``explain`` template (``{column}`` placeholders are filled from the candidate's facts), a
``source`` (authors, journal, year) and an ``evidence`` level. Effects:

- ``exclude``: the candidate is not eligible;
- ``flag``: a note in the explanation, no effect on order;
- ``tier: N``: the candidate is placed in tier N (lower first) — e.g. an HLA-identical sibling above every
  haploidentical donor;
- ``criterion: NAME`` with ``prefer`` (``true`` sorts candidates for whom the condition holds first) or with
  ``key`` (a numeric SQL expression) and ``order`` (``asc``/``desc``): a ranking criterion. Criteria apply in
  the order given by the setting ``criteria_order``.

Errors name the file, the rule and the problem: an unknown column, an expression polars cannot compile, a
missing source, an unknown effect or setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from haplomatch.errors import InputError, Problem

EFFECTS = ("exclude", "flag", "tier", "criterion")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Setting:
    name: str
    value: Any
    source: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Rule:
    id: str
    when: str  # with settings substituted
    effect: str
    explain: str
    source: str
    evidence: str
    tier: int | None = None
    criterion: str | None = None
    prefer: bool = True
    key: str | None = None
    order: str = "asc"
    text_when: str = ""  # as written in the file

    def condition(self) -> pl.Expr:
        return pl.sql_expr(self.when)

    def key_expr(self) -> pl.Expr | None:
        return pl.sql_expr(self.key) if self.key else None


@dataclass(frozen=True)
class RuleSet:
    """A validated rule file."""

    path: str
    profile: str
    title: str
    settings: dict[str, Setting]
    rules: tuple[Rule, ...]
    criteria_order: tuple[str, ...]
    description: str = ""
    sources: tuple[str, ...] = field(default=())

    def setting(self, name: str, default: Any = None) -> Any:
        s = self.settings.get(name)
        return s.value if s is not None else default


def _sub(text: str, settings: dict[str, Setting], problems: list[Problem], where: dict) -> str:
    def rep(m: re.Match) -> str:
        name = m[1]
        if name not in settings:
            problems.append(Problem(f"unknown setting {{{name}}}", **where))
            return "NULL"
        v = settings[name].value
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return "'" + v.replace("'", "''") + "'"
        return str(v)

    return _PLACEHOLDER.sub(rep, text)


# libyaml's parser when PyYAML has it (the same safe constructors; a rule file is read by every batch process)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_rules(path: str | Path, columns: dict[str, pl.DataType], overrides: dict[str, Any] | None = None) -> RuleSet:
    """Read and validate a rule file against the pair-fact columns (name → dtype). Raises InputError with
    every problem found. ``overrides`` replace setting values (a user's command-line choice)."""
    path = Path(path)
    fname = str(path)
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except OSError as e:
        raise InputError.one(f"cannot read the rule file: {e.strerror}", file=fname) from None
    except yaml.YAMLError as e:
        raise InputError.one(f"not valid YAML: {str(e).splitlines()[0]}", file=fname) from None
    problems: list[Problem] = []
    if not isinstance(doc, dict) or "rules" not in doc:
        raise InputError.one("a rule file is a mapping with 'profile', 'settings' and 'rules'", file=fname)
    settings: dict[str, Setting] = {}
    for name, spec in (doc.get("settings") or {}).items():
        if isinstance(spec, dict) and "value" in spec:
            settings[name] = Setting(name, spec["value"], spec.get("source"), spec.get("note"))
        else:
            settings[name] = Setting(name, spec)
    for name, value in (overrides or {}).items():
        if name not in settings:
            problems.append(Problem(f"no setting {name!r} to override", file=fname, column=name))
        else:
            settings[name] = Setting(name, value, settings[name].source, "overridden by the user")
    empty = pl.DataFrame(schema=columns)
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, spec in enumerate(doc.get("rules") or [], 1):
        rid = str(spec.get("id") or f"#{i}") if isinstance(spec, dict) else f"#{i}"
        where = {"file": fname, "row": i, "column": rid}
        if not isinstance(spec, dict):
            problems.append(Problem("a rule is a mapping (id, when, effect, explain, source, evidence)", **where))
            continue
        if rid in seen:
            problems.append(Problem(f"rule id {rid!r} is used twice", **where))
        seen.add(rid)
        for need in ("id", "when", "effect", "source", "explain"):
            if not spec.get(need):
                problems.append(Problem(f"rule {rid}: missing {need!r}", **where))
        effect = spec.get("effect")
        tier = criterion = key = None
        prefer, order = True, "asc"
        if isinstance(effect, dict):
            if "tier" in effect:
                tier, effect_name = int(effect["tier"]), "tier"
            elif "criterion" in effect:
                criterion, effect_name = str(effect["criterion"]), "criterion"
                prefer = bool(effect.get("prefer", True))
                key = effect.get("key")
                order = str(effect.get("order", "asc"))
                if order not in ("asc", "desc"):
                    problems.append(Problem(f"rule {rid}: order must be asc or desc", **where))
            else:
                effect_name = "?"
        else:
            effect_name = str(effect)
        if effect_name not in EFFECTS:
            problems.append(Problem(f"rule {rid}: unknown effect {effect!r} (one of: exclude, flag, "
                                    "{tier: N}, {criterion: NAME, prefer|key, order})", **where))
            continue
        when = _sub(str(spec.get("when") or "true"), settings, problems, where)
        key_sql = _sub(str(key), settings, problems, where) if key else None
        for label, sql in (("when", when), ("key", key_sql)):
            if sql is None:
                continue
            try:
                empty.select(pl.sql_expr(sql).alias("x"))
            except Exception as e:  # polars raises several types; each is reported with the rule
                msg = str(e).splitlines()[0]
                hint = ""
                m = re.search(r'unable to find column "([^"]+)"|column "?([A-Za-z_0-9]+)"? not found', str(e))
                if m:
                    hint = f" (unknown column {m[1] or m[2]!r}; see the glossary of pair facts in README)"
                problems.append(Problem(f"rule {rid}: the {label} expression does not compile: {msg}{hint}",
                                        value=sql, **where))
        for col in _PLACEHOLDER.findall(str(spec.get("explain") or "")):
            if col not in columns and col not in settings and col not in ("id", "relation"):
                problems.append(Problem(f"rule {rid}: the explanation names {{{col}}}, which is not a pair fact", **where))
        rules.append(Rule(
            rid, when, effect_name, str(spec.get("explain") or ""), str(spec.get("source") or ""),
            str(spec.get("evidence") or ""), tier, criterion, prefer, key_sql, order, str(spec.get("when") or ""),
        ))
    order_setting = settings.get("criteria_order")
    criteria = tuple(order_setting.value) if order_setting else tuple(dict.fromkeys(r.criterion for r in rules if r.criterion))
    defined = {r.criterion for r in rules if r.criterion}
    for c in criteria:
        if c not in defined:
            problems.append(Problem(f"criteria_order names {c!r}, which no rule defines", file=fname, column="criteria_order"))
    for c in sorted(defined - set(criteria)):
        problems.append(Problem(f"criterion {c!r} is not in criteria_order: it would never apply", severity="warning",
                                file=fname, column="criteria_order"))
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise InputError(problems)
    return RuleSet(fname, str(doc.get("profile") or path.stem), str(doc.get("title") or ""), settings,
                   tuple(rules), criteria, str(doc.get("description") or ""),
                   tuple(dict.fromkeys(r.source for r in rules)))
