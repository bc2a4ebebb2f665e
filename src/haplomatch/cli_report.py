"""``haplomatch report FAMILY -o report.html``: the donor report as one self-contained HTML file.

A thin click layer over :mod:`haplomatch.report.html` (registered in ``cli.py`` as ``main.add_command``).
"""

from __future__ import annotations

from pathlib import Path

import click

from haplomatch.cli import (  # shared CLI pieces
    FAMILY_RANKING_OPTIONS, REFERENCE_OPTION, _antibodies, _antibodies_by_family, _fail, _load, _nomenclature, _overrides,
)
from haplomatch.errors import HaplomatchError



@click.command("report")
@click.argument("family_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="HTML file to write ('-' for standard output).")
@FAMILY_RANKING_OPTIONS
@REFERENCE_OPTION
def report_cmd(family_file, output, profile, antibodies, patient, rules_file, overrides, mac_table, reference_dir) -> None:
    """Write the donor report of FAMILY_FILE as one HTML file: pedigree with inherited haplotypes,
    segregation table, ranked donors with their facts and sources, warnings first. Printable (A4/Letter).

    \b
    Example:
      haplomatch report examples/neuroblastoma-family.csv \\
          --antibodies examples/neuroblastoma-antibodies.csv -o report.html
    """
    from haplomatch.familyfile import read_family_file
    from haplomatch.report.html import build_report, render_html

    ref = _load(reference_dir)
    nom = _nomenclature(ref, mac_table)
    try:
        families, problems = read_family_file(family_file, nom, patient=patient)
    except HaplomatchError as e:
        _fail(e)
    warnings = [str(p) for p in problems]
    abs_, ab_warnings = _antibodies(antibodies, nom)
    warnings += ab_warnings
    per_patient = _antibodies_by_family(abs_, families, antibodies)
    sets = _overrides(overrides)
    inputs = [str(family_file)] + ([str(antibodies)] if antibodies is not None else [])
    reports = []
    for fam in families:
        mine, notes = per_patient(fam)
        try:
            reports.append(build_report(ref, fam, profile, mine, input_warnings=[*warnings, *notes], rules_path=rules_file,
                                        overrides=sets, inputs=inputs))
        except HaplomatchError as e:
            _fail(e)
    if not reports:
        _fail(HaplomatchError(f"no family in {family_file}"))
    text = render_html(reports)
    if str(output) == "-":
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as e:
        _fail(HaplomatchError(f"cannot write {output}: {e.strerror}"), 1)
    n = sum(len(r.ranking.candidates) for r in reports)
    click.echo(f"wrote {output} ({len(reports)} famil{'y' if len(reports) == 1 else 'ies'}, {n} candidate(s))", err=True)
