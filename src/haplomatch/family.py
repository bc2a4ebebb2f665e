"""People and families as values: what the family file says about each person, already checked.

The pedigree graph and haplotype inference build on these (``segregation.py``); reading files is in
``familyfile.py``. Values are frozen: a Family is never modified after it is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Literal

from haplomatch.errors import Problem
from haplomatch.hlatyping import LocusTyping

if TYPE_CHECKING:
    from haplomatch.kir import KirGenotype

#: Relations to the patient that the family file accepts (issue 3), and their accepted spellings.
RELATIONS: tuple[str, ...] = (
    "patient", "father", "mother", "brother", "sister", "sibling", "half-sibling", "son", "daughter", "child",
    "maternal grandmother", "maternal grandfather", "paternal grandmother", "paternal grandfather",
    "maternal aunt", "maternal uncle", "paternal aunt", "paternal uncle", "cousin", "unrelated",
)
RELATION_ALIASES: dict[str, str] = {
    "proband": "patient", "recipient": "patient", "index": "patient", "self": "patient",
    "dad": "father", "mom": "mother", "mum": "mother", "sib": "sibling", "halfsibling": "half-sibling",
    "half sibling": "half-sibling", "half-brother": "half-sibling", "half-sister": "half-sibling",
    "half brother": "half-sibling", "half sister": "half-sibling", "offspring": "child",
    "maternal grandma": "maternal grandmother", "paternal grandma": "paternal grandmother",
    "maternal grandpa": "maternal grandfather", "paternal grandpa": "paternal grandfather",
    "other": "unrelated", "unrelated donor": "unrelated",
}
#: The sex a relation implies, to check against the ``sex`` column.
RELATION_SEX: dict[str, str] = {
    "father": "M", "mother": "F", "brother": "M", "sister": "F", "son": "M", "daughter": "F",
    "maternal grandmother": "F", "paternal grandmother": "F", "maternal grandfather": "M",
    "paternal grandfather": "M", "maternal aunt": "F", "paternal aunt": "F", "maternal uncle": "M",
    "paternal uncle": "M",
}

Sex = Literal["M", "F"]
HLA_LOCI: tuple[str, ...] = ("A", "C", "B", "DRB1", "DQB1", "DPB1", "DRB3", "DRB4", "DRB5", "DQA1", "DPA1")


@dataclass(frozen=True)
class Person:
    """One row of a family file, read and checked. None means "not given"."""

    id: str
    relation: str
    family_id: str | None = None
    father_id: str | None = None
    mother_id: str | None = None
    sex: Sex | None = None
    age: float | None = None
    birth_date: date | None = None
    weight_kg: float | None = None
    abo: str | None = None  # A, B, AB, O
    rh: str | None = None  # '+' or '-'
    cmv: bool | None = None  # seropositive
    fcgr3a: str | None = None  # VV, VF, FF (FCGR3A-158)
    available: bool | None = None
    parity: int | None = None
    hla: dict[str, LocusTyping] = field(default_factory=dict, hash=False, compare=True)
    kir: "KirGenotype | None" = None
    source_file: str | None = None
    source_row: int | None = None


_PERSON_FIELDS = frozenset(Person.__dataclass_fields__)


def person_of(values: dict) -> Person:
    """``Person(**values)`` for a dict of *every* field, without the generated ``__init__`` (a frozen
    dataclass sets each field through ``object.__setattr__``: ~9x slower; a batch reads 10^5–10^6 rows).
    The result is equal to, hashes and prints as the constructed one (tested)."""
    if values.keys() != _PERSON_FIELDS:
        raise TypeError(f"person_of needs every Person field; got {sorted(values)}")
    p = object.__new__(Person)
    object.__setattr__(p, "__dict__", values)
    return p


@dataclass(frozen=True)
class Family:
    """The people of one family, the patient among them, and the warnings met while reading."""

    id: str | None
    people: tuple[Person, ...]
    warnings: tuple[Problem, ...] = ()

    @property
    def patient(self) -> Person:
        return next(p for p in self.people if p.relation == "patient")

    def person(self, pid: str) -> Person:
        return next(p for p in self.people if p.id == pid)

    @property
    def loci(self) -> tuple[str, ...]:
        """HLA loci typed in anyone, in chromosomal order (A, C, B, DRB1, DQB1, DPB1, then others)."""
        typed = {loc for p in self.people for loc, t in p.hla.items() if t.typed}
        return tuple(loc for loc in HLA_LOCI if loc in typed)


def derive_relations(people: list[Person], patient_id: str) -> tuple[list[Person], list[Problem]]:
    """Relations to the patient from father/mother links (for pedigree files without a relation column,
    such as IHIW-18 PED). Persons not linked to the patient by these rules are 'unrelated', with a warning."""
    from dataclasses import replace

    by_id = {p.id: p for p in people}
    problems: list[Problem] = []
    if patient_id not in by_id:
        return people, [Problem(f"patient {patient_id!r} is not an id in the file", column="id", value=patient_id,
                                fix="give --patient the id of the patient's row")]
    pt = by_id[patient_id]

    def parents(p: Person | None) -> tuple[str | None, str | None]:
        return (p.father_id, p.mother_id) if p else (None, None)

    fa, mo = parents(pt)
    side = {fa: "paternal", mo: "maternal"}
    grand = {}
    for parent_id, s in ((fa, "paternal"), (mo, "maternal")):
        gf, gm = parents(by_id.get(parent_id)) if parent_id else (None, None)
        if gf:
            grand[gf] = f"{s} grandfather"
        if gm:
            grand[gm] = f"{s} grandmother"
    out = []
    for p in people:
        pf, pm = p.father_id, p.mother_id
        rel: str | None = None
        if p.id == patient_id:
            rel = "patient"
        elif p.id == fa:
            rel = "father"
        elif p.id == mo:
            rel = "mother"
        elif p.id in grand:
            rel = grand[p.id]
        elif patient_id in (pf, pm):
            rel = {"M": "son", "F": "daughter"}.get(p.sex or "", "child")
        elif fa and mo and pf == fa and pm == mo:
            rel = {"M": "brother", "F": "sister"}.get(p.sex or "", "sibling")
        elif (fa and pf == fa) or (mo and pm == mo):
            rel = "half-sibling"
        else:
            for parent_id in (fa, mo):
                par = by_id.get(parent_id) if parent_id else None
                if par and par.father_id and (pf, pm) == (par.father_id, par.mother_id):
                    kind = {"M": "uncle", "F": "aunt"}.get(p.sex or "")
                    rel = f"{side[parent_id]} {kind}" if kind else None
            if rel is None:
                aunts = {q.id for q in people if q.id not in (fa, mo) and (q.father_id, q.mother_id) in
                         {parents(by_id.get(x)) for x in (fa, mo) if x} - {(None, None)}}
                if pf in aunts or pm in aunts:
                    rel = "cousin"
        if rel is None:
            rel = "unrelated"
            problems.append(Problem(f"{p.id} is not linked to the patient by parent links: read as unrelated",
                                    severity="warning", file=p.source_file, row=p.source_row, column="id", value=p.id))
        out.append(replace(p, relation=rel, sex=p.sex or RELATION_SEX.get(rel)))
    return out, problems
