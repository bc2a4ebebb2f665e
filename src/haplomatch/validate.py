"""Check input files in one pass and list every problem (the engine of ``haplomatch validate``)."""

from __future__ import annotations

from pathlib import Path

from haplomatch.errors import InputError, Problem
from haplomatch.nomenclature import Nomenclature


def validate_files(
    family_files: list[str | Path], nomenclature: Nomenclature, antibodies: str | Path | None = None, settings=None,
    patient: str | None = None,
) -> list[Problem]:
    """All problems of all files (errors and warnings), in file and row order; never raises on bad input."""
    from haplomatch.antibodies import read_antibodies
    from haplomatch.familyfile import Settings, read_family_file

    problems: list[Problem] = []
    for f in family_files:
        try:
            _, p = read_family_file(f, nomenclature, settings or Settings(), strict=False, patient=patient)
        except InputError as e:
            p = list(e.problems)
        problems += p
    if antibodies is not None:
        try:
            _, p = read_antibodies(antibodies, nomenclature, strict=False)
        except InputError as e:
            p = list(e.problems)
        problems += p
    return problems


def exit_code(problems: list[Problem], strict: bool = False) -> int:
    """2 with any error; 1 with warnings only under ``--strict``; else 0."""
    if any(p.severity == "error" for p in problems):
        return 2
    if strict and problems:
        return 1
    return 0
