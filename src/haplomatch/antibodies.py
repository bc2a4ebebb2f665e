"""Reading the patient's anti-HLA antibody report (single-antigen beads): one row per specificity.

Columns: ``specificity`` (allele ``A*02:01``, antigen ``A2``/``B44``/``Cw7``/``DQ7``, or an alpha/beta pair
``DQA1*05:01/DQB1*02:01``), ``mfi``, optional ``c1q`` (pos/neg), ``date``, ``patient_id``. A specificity that
cannot be mapped to the release is kept and reported as unmapped (a warning), never dropped: the DSA check
must show it to the physician (RULES 7.5: bead reports mix allele and antigen level).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
import datetime as _dt
from pathlib import Path

from haplomatch.errors import InputError, Problem, UnknownAlleleError
from haplomatch.familyfile import ROW, _cmv, _date, _key, _number, read_table
from haplomatch.nomenclature import Nomenclature

ALIASES = {
    "specificity": ("specificity", "antigen", "allele", "bead", "beadspecificity", "spec", "hla"),
    "mfi": ("mfi", "mfivalue", "normalizedmfi", "normalisedmfi", "bcm", "nmfi"),
    "c1q": ("c1q", "c1qbinding", "c1qresult"),
    "date": ("date", "sampledate", "testdate", "collectiondate"),
    "patient_id": ("patientid", "patient", "recipientid", "id"),
}
_PAIR = re.compile(r"^(?:HLA-)?(D[QP]A1\*[0-9:]+)\s*[/,+~]\s*(?:HLA-)?(D[QP]B1\*[0-9:]+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Antibody:
    """One bead result. ``targets`` are the typing names it maps to (one, or an alpha/beta pair)."""

    specificity: str
    mfi: float
    kind: str  # allele | antigen | pair | unmapped
    targets: tuple[str, ...]
    c1q: bool | None = None
    date: _dt.date | None = None  # (the module is imported under another name: this field is "date")
    patient_id: str | None = None
    source_row: int | None = None


def read_antibodies(path: str | Path, nomenclature: Nomenclature, *, strict: bool = True) -> tuple[list[Antibody], list[Problem]]:
    """Every specificity of the report, and every problem; errors raise one InputError when ``strict``."""
    fname = str(path)
    table, problems = read_table(path)
    cols: dict[str, str] = {}
    for c in table.columns:
        if c == ROW:
            continue
        for f, al in ALIASES.items():
            if _key(c) in al and f not in cols:
                cols[f] = c
                break
        else:
            problems.append(Problem("column not recognised: its values are not used", severity="warning",
                                    file=fname, column=c))
    for need in ("specificity", "mfi"):
        if need not in cols:
            problems.append(Problem(f"no {need} column", file=fname, fix=f"add a column '{need}'"))
    if any(p.severity == "error" for p in problems):
        raise InputError(problems)
    out: list[Antibody] = []
    for row in table.iter_rows(named=True):
        i = row[ROW]

        def cell(f: str) -> str:
            v = row.get(cols[f]) if f in cols else None
            return "" if v is None else str(v).strip()

        def bad(f: str, msg: str, fix: str | None = None, severity: str = "error") -> None:
            problems.append(Problem(msg, severity=severity, file=fname, row=i, column=cols.get(f), value=cell(f), fix=fix))

        spec = cell("specificity")
        n_before = len([p for p in problems if p.severity == "error"])
        mfi = _number(cell("mfi")) if cell("mfi") else None
        if mfi is None or mfi < 0:
            bad("mfi", "MFI is not a non-negative number", "write the bead MFI, e.g. 5400")
        c1q = None
        if cell("c1q"):
            c1q = _cmv(cell("c1q"))
            if c1q is None:
                bad("c1q", "C1q result not understood", "write pos or neg")
        when = None
        if cell("date"):
            when = _date(cell("date"))
            if when is None:
                bad("date", "date not in YYYY-MM-DD form")
        if not spec:
            bad("specificity", "empty specificity")
        kind, targets = "unmapped", ()
        if spec:
            kind, targets, msg = map_specificity(spec, nomenclature)
            if kind == "unmapped":
                bad("specificity", f"specificity cannot be mapped to IPD-IMGT/HLA ({msg}); it is kept and reported",
                    severity="warning")
        if len([p for p in problems if p.severity == "error"]) == n_before and mfi is not None:
            out.append(Antibody(spec, mfi, kind, targets, c1q, when, cell("patient_id") or None, i))
    if strict and any(p.severity == "error" for p in problems):
        raise InputError(problems)
    return out, problems


def map_specificity(spec: str, nom: Nomenclature) -> tuple[str, tuple[str, ...], str]:
    """(kind, targets, reason): an allele or antigen that resolves, or an alpha/beta pair of two alleles."""
    m = _PAIR.match(spec.strip())
    if m:
        try:
            for part in (m[1], m[2]):
                nom.resolve_one(part)
        except UnknownAlleleError as e:
            return "unmapped", (), str(e)
        return "pair", (m[1].upper(), m[2].upper()), ""
    try:
        r = nom.resolve_one(spec)
    except UnknownAlleleError as e:
        return "unmapped", (), str(e)
    kind = "antigen" if r.typing.kind == "serology" else "allele"
    return kind, (r.typing.key,), ""


def by_patient(antibodies, patient_ids, *, file: str | None = None,
               fix: str | None = None) -> dict[str, list[Antibody]]:
    """Each patient's antibodies (patients the report does not name are left out): an antibody's
    ``patient_id`` names its patient; one without it belongs to the only patient.

    Refused, with the report's rows (applied to the wrong patient, a report would exclude or rank donors on
    someone else's antibodies, or clear donors of antibodies the patient has): an antibody without
    ``patient_id`` when there are several patients; one naming nobody among ``patient_ids``; one naming an
    id that more than one patient has. ``fix`` replaces the suggestion for the second."""
    out, problems = assigned(antibodies, patient_ids, file=file, fix=fix)
    if problems:
        raise InputError(problems)
    return out


def assigned(antibodies, patient_ids, *, file: str | None = None, fix: str | None = None,
             unknown: str = "error") -> tuple[dict[str, list[Antibody]], list[Problem]]:
    """:func:`by_patient`'s answer and its problems, not raised; ``unknown="warning"`` makes an antibody naming
    nobody among ``patient_ids`` a warning (a batch's report may cover patients not screened)."""
    from collections import Counter

    ids = list(patient_ids)
    count = Counter(ids)
    out: dict[str, list[Antibody]] = {}
    bad: dict[tuple[str, str | None], list[Antibody]] = {}
    for a in antibodies:
        pid = a.patient_id
        if pid is None:
            if len(count) == 1:
                out.setdefault(ids[0], []).append(a)
                continue
            bad.setdefault(("unnamed", None), []).append(a)
        elif count.get(pid, 0) == 1:
            out.setdefault(pid, []).append(a)
        else:
            bad.setdefault(("unknown" if pid not in count else "twice", pid), []).append(a)
    if not bad:
        return out, []
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5:,} more" if len(ids) > 5 else "")
    problems = []
    for (why, pid), found in bad.items():
        rows = [a.source_row for a in found if a.source_row is not None]
        where = (f" (report row{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows[:5]))}"
                 f"{f' and {len(rows) - 5:,} more' if len(rows) > 5 else ''})") if rows else ""
        if why == "unnamed":
            problems.append(Problem(
                f"{len(found):,} antibod{'y has' if len(found) == 1 else 'ies have'} no patient_id{where}, and "
                f"there are {len(count):,} patients ({shown}): whose antibodies they are cannot be told",
                file=file, row=rows[0] if rows else None, column="patient_id",
                fix="add a patient_id column naming each antibody's patient"))
        elif why == "unknown":
            problems.append(Problem(
                f"{len(found):,} antibod{'y names' if len(found) == 1 else 'ies name'} patient {pid}{where}, "
                f"who is not {'the patient' if len(count) == 1 else 'a patient'} here ({shown})",
                severity="warning" if unknown == "warning" else "error",
                file=file, row=rows[0] if rows else None, column="patient_id", value=pid,
                fix=fix or "check that the report is this patient's, or correct its patient_id"))
        else:
            problems.append(Problem(
                f"patient id {pid} names {count[pid]} patients: whose antibodies the report's{where} are cannot "
                "be told", file=file, row=rows[0] if rows else None, column="patient_id", value=pid,
                fix="make patient ids unique"))
    return out, problems
