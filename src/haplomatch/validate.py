"""Check input files in one pass and list every problem (the engine of ``haplomatch validate``)."""

from __future__ import annotations

from pathlib import Path

from haplomatch.errors import InputError, Problem
from haplomatch.nomenclature import Nomenclature


def validate_files(
    family_files: list[str | Path], nomenclature: Nomenclature, antibodies: str | Path | None = None, settings=None,
    patient: str | None = None,
) -> list[Problem]:
    """All problems of all files (errors and warnings), in file and row order; never raises on bad input.

    With an antibody report, also whether each antibody can be given to its patient as ``rank`` (one family)
    and ``screen`` give them (``antibodies.assigned``): an antibody naming no patient of the files is an error
    for one file, as ``rank`` refuses it, and a warning for several, as ``screen`` says it."""
    from haplomatch.antibodies import assigned, read_antibodies
    from haplomatch.familyfile import Settings, read_family_file

    problems: list[Problem] = []
    patients: list[str] = []
    for f in family_files:
        try:
            families, p = read_family_file(f, nomenclature, settings or Settings(), strict=False, patient=patient)
        except InputError as e:
            families, p = [], list(e.problems)
        problems += p
        patients += [q.id for fam in families for q in fam.people if q.relation == "patient"]
    if antibodies is not None:
        try:
            abs_, p = read_antibodies(antibodies, nomenclature, strict=False)
        except InputError as e:
            abs_, p = [], list(e.problems)
        problems += p
        if abs_ and patients:
            problems += assigned(abs_, patients, file=str(antibodies),
                                 unknown="warning" if len(family_files) > 1 else "error")[1]
    return problems


def exit_code(problems: list[Problem], strict: bool = False) -> int:
    """2 with any error; 1 with warnings only under ``--strict``; else 0."""
    if any(p.severity == "error" for p in problems):
        return 2
    if strict and problems:
        return 1
    return 0
