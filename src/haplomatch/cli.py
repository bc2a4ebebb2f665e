"""The ``haplomatch`` command line: a thin click layer over the library.

Exit codes: 0 success; 1 refused (bad reference data, other haplomatch errors); 2 bad input
(unknown typing, usage error).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from haplomatch.errors import HaplomatchError, UnknownAlleleError

REFERENCE_OPTION = click.option(
    "--reference", "reference_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    envvar="HAPLOMATCH_REFERENCE",
    help="Release folder (imgthla/ and ipdkir/ with the upstream layout). Default: the shipped 3.58.0 / 2.13.0.",
)


def _load(reference_dir: Path | None, rebuild: bool = False):
    from haplomatch.reference import load_reference

    try:
        return load_reference(reference_dir, rebuild=rebuild)
    except HaplomatchError as e:
        raise click.ClickException(str(e)) from e


class _LazyGroup(click.Group):
    """Commands kept in their own modules are imported only when used (``--help`` stays instant)."""

    lazy: dict[str, tuple[str, str]] = {
        "match": ("haplomatch.cli_match", "match_cmd"),
        "kir": ("haplomatch.cli_nk", "kir_cmd"),
        "nk": ("haplomatch.cli_nk", "nk_cmd"),
        "simulate": ("haplomatch.cli_simulate", "simulate_grp"),
        "report": ("haplomatch.cli_report", "report_cmd"),
        "screen": ("haplomatch.cli_scale", "screen_cmd"),
        "search": ("haplomatch.cli_scale", "search_cmd"),
        "prepare": ("haplomatch.cli_scale", "prepare_cmd"),
    }

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx, name):
        if name in self.lazy:
            import importlib

            module, attr = self.lazy[name]
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


def _print_version(ctx: click.Context) -> None:
    """``--version``, as click's version option prints it (the version read only when asked)."""
    from haplomatch import __version__

    click.echo(f"haplomatch, version {__version__}")
    ctx.exit()


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, help="Show the version and exit.",
              callback=lambda ctx, _, on: _print_version(ctx) if on else None)
def main() -> None:
    """Choose the best donor for a patient from the family: haplotypes, NK alloreactivity, HLA compatibility."""


@main.command("ligands")
@click.argument("typings", nargs=-1)
@click.option("--file", "typings_file", type=click.File("r"), help="Read typings from a file, one per line ('#' comments).")
@click.option("--locus", help="Locus for bare field strings such as 02:01.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@REFERENCE_OPTION
def ligands_cmd(typings: tuple[str, ...], typings_file, locus: str | None, fmt: str, reference_dir: Path | None) -> None:
    """KIR ligands (C1/C2, Bw4-80I/80T, Bw6, C1 on HLA-B, A3/A11) and HLA-B leader of each TYPING.

    \b
    Example:
      haplomatch ligands 'C*07:02' 'B*57:01' 'B*15' --format json
    """
    from haplomatch.ligands import COLUMNS, ligands
    from haplomatch.textout import table

    items = list(typings)
    if typings_file is not None:
        items += [ln.split("#", 1)[0].strip() for ln in typings_file if ln.split("#", 1)[0].strip()]
    if not items:
        raise click.UsageError("give at least one typing, e.g. haplomatch ligands 'C*07:02'")
    ref = _load(reference_dir)
    try:
        df = ligands(ref, items, locus)
    except UnknownAlleleError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(2)
    rows = df.to_dicts()
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(table(rows, [c for c in COLUMNS if c != "release"]))
    notes = [f"{r['input']}: {r['settle']}" for r in rows if r["settle"]]
    notes += [f"{r['input']}: {r['warning']}" for r in rows if r["warning"]]
    if notes:
        click.echo("\nNotes:\n  " + "\n  ".join(notes))
    click.echo(f"\nReference: {ref.label}. Sources: IPD-KIR ligand calculator (C1/C2, Bw4 77+80 grid); "
               "Foley 2008 (HLA-A Bw4); Moesta 2008 (C1 on HLA-B); Petersdorf 2020 (leader -21).")


@main.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--antibodies", type=click.Path(dir_okay=False, path_type=Path), help="The patient's antibody report.")
@click.option("--mac-table", type=click.Path(dir_okay=False, path_type=Path), help="NMDP MAC table (numer.v3.txt).")
@click.option("--missing-second", type=click.Choice(["homozygous", "untyped", "error"]), default="homozygous",
              show_default=True, help="What a blank or '-' second allele means.")
@click.option("--patient", help="Id of the patient, for pedigree files without a relation column (IHIW-18 PED).")
@click.option("--strict", is_flag=True, help="Exit 1 when there are warnings but no errors.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@REFERENCE_OPTION
def validate_cmd(files, antibodies, mac_table, missing_second, patient, strict, fmt, reference_dir) -> None:
    """Read family FILES (and an antibody report) and list every problem: file, row, column, value, fix.

    Exit code: 0 clean (warnings allowed), 1 warnings only with --strict, 2 errors.
    """
    from haplomatch.familyfile import Settings
    from haplomatch.textout import table
    from haplomatch.validate import exit_code, validate_files

    ref = _load(reference_dir)
    nom = _nomenclature(ref, mac_table)
    problems = validate_files(list(files), nom, antibodies, Settings(missing_second=missing_second), patient=patient)
    rows = [p.to_dict() for p in problems]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        click.echo(table(rows, ["severity", "file", "row", "column", "value", "message", "fix"]))
        n_err = sum(p.severity == "error" for p in problems)
        click.echo(f"\n{n_err} error(s), {len(problems) - n_err} warning(s)")
    else:
        click.echo("no problems found")
    sys.exit(exit_code(problems, strict))


def _nomenclature(ref, mac_table: Path | None):
    """The release's nomenclature, with the user's MAC table when one is given."""
    if mac_table is None:
        return ref.nomenclature
    from haplomatch.mac import read_mac_table

    try:
        return ref.nomenclature.with_mac(read_mac_table(mac_table))
    except HaplomatchError as e:
        _fail(e)


def FAMILY_RANKING_OPTIONS(f):  # noqa: N802 - used as a decorator, like REFERENCE_OPTION
    """The options of the commands that read and rank one family (``rank``, ``report``), in this order."""
    options = [
        click.option("--profile", type=click.Choice(["haplo-hsct", "nk-cell-therapy"]), default="haplo-hsct",
                     show_default=True, help="Treatment profile: haploidentical transplant, or adoptive NK-cell therapy."),
        click.option("--antibodies", type=click.Path(dir_okay=False, path_type=Path),
                     help="The patient's antibody report."),
        click.option("--patient", help="Id of the patient, for pedigree files without a relation column (IHIW-18 PED)."),
        click.option("--rules", "rules_file", type=click.Path(dir_okay=False, path_type=Path),
                     help="Your own rule file."),
        click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE", help="Override a rule-file setting."),
        click.option("--mac-table", type=click.Path(dir_okay=False, path_type=Path),
                     help="NMDP MAC table (numer.v3.txt)."),
    ]
    for option in reversed(options):  # the first listed is shown first
        f = option(f)
    return f

@main.command("rank")
@click.argument("family_file", type=click.Path(dir_okay=False, path_type=Path))
@FAMILY_RANKING_OPTIONS
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "markdown"]), default="table", show_default=True)
@click.option("--explain", is_flag=True, help="Show under each candidate the rules that fired, with their sources.")
@REFERENCE_OPTION
def rank_cmd(family_file, profile, antibodies, patient, rules_file, overrides, mac_table, fmt, explain, reference_dir) -> None:
    """Rank the patient's relatives as donors, with the rules that decided and their sources.

    \b
    Example:
      haplomatch rank examples/neuroblastoma-family.csv --antibodies examples/neuroblastoma-antibodies.csv --explain
    """
    from haplomatch.ranking import rank_family
    from haplomatch.report.text import ranking_csv, ranking_markdown, ranking_table

    ref = _load(reference_dir)
    nom = _nomenclature(ref, mac_table)
    families = _read_families(family_file, nom, patient)
    abs_, ab_warnings = _antibodies(antibodies, nom)
    per_patient = _antibodies_by_family(abs_, families, antibodies)
    sets = _overrides(overrides)
    rankings = []
    for fam in families:
        mine, notes = per_patient(fam)
        try:
            rankings.append(rank_family(ref, fam, profile, mine, rules_file, sets, warnings=ab_warnings + notes))
        except HaplomatchError as e:
            _fail(e)
    if fmt == "json":
        docs = [r.to_dict() for r in rankings]
        click.echo(json.dumps(docs if len(docs) > 1 else docs[0], indent=2, default=str))
    elif fmt == "csv":
        click.echo(ranking_csv(rankings), nl=False)
    elif fmt == "markdown":
        click.echo("\n\n".join(ranking_markdown(r, explain) for r in rankings))
    else:
        click.echo("\n\n".join(ranking_table(r, explain) for r in rankings))


@main.command("haplotypes")
@click.argument("family_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json", "ihiw"]), default="table", show_default=True)
@click.option("--patient", help="Id of the patient, for pedigree files without a relation column (IHIW-18 PED).")
@click.option("--mac-table", type=click.Path(dir_okay=False, path_type=Path), help="NMDP MAC table (numer.v3.txt).")
@REFERENCE_OPTION
def haplotypes_cmd(family_file, fmt, patient, mac_table, reference_dir) -> None:
    """Infer the parental haplotypes (father a/b, mother c/d), who inherited which, and each relative's
    class versus the patient, with recombinants and conflicts."""
    from haplomatch.haplotypes_out import ihiw_rows, persons_json
    from haplomatch.segregation import segregate
    from haplomatch.textout import table

    ref = _load(reference_dir)
    nom = _nomenclature(ref, mac_table)
    families = _read_families(family_file, nom, patient)
    docs, ihiw = [], []
    for fam in families:
        try:
            seg = segregate(fam, nom)
        except HaplomatchError as e:
            _fail(e)
        docs.append(persons_json(fam, seg))
        ihiw += ihiw_rows(fam, seg)
    if fmt == "json":
        click.echo(json.dumps(docs if len(docs) > 1 else docs[0], indent=2))
        return
    if fmt == "ihiw":
        cols = list(ihiw[0]) if ihiw else []
        click.echo("\t".join(cols))
        for r in ihiw:
            click.echo("\t".join(str(r[c]) for c in cols))
        return
    for doc in docs:
        if doc["family_id"]:
            click.echo(f"Family {doc['family_id']}")
        rows = []
        for p in doc["persons"]:
            h = p["haplotypes"]
            rows.append({"id": p["id"] + (" (virtual)" if p["virtual"] else ""), "relation": p["relation"],
                         "haplotypes": " / ".join(x["label"] or "?" for x in h) if h else "-",
                         "class": p["class"], "shared": p["shared_with_patient"],
                         "notes": "; ".join(p["notes"])})
        click.echo(table(rows, ["id", "relation", "haplotypes", "class", "shared", "notes"]))
        click.echo("\nHaplotypes:")
        hap_rows = [{"label": lab, **{loc: "/".join(v) or "-" for loc, v in per.items()}} for lab, per in doc["haplotypes"].items()]
        click.echo(table(hap_rows, ["label"] + doc["loci"]))
        for n in doc["notes"]:
            click.echo(f"Note: {n}")
        click.echo(f"Unique: {'yes' if doc['unique'] else 'no'} ({doc['solutions']} equally good solution(s))")
        if doc["phase_open"]:
            click.echo(f"Phase open at {', '.join(doc['phase_open'])}: the haplotypes list each allele they may carry "
                       "there (typing a parent or more relatives would settle it)")
        for c in doc["conflicts"]:
            click.echo(f"Conflict: {c['message']} (likely: {', '.join(c['causes'])})")
        click.echo("")


def _overrides(items: tuple[str, ...]) -> dict | None:
    """``--set NAME=VALUE`` options as a settings dict (values read as YAML: numbers, booleans, lists)."""
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            _fail(HaplomatchError(f"--set needs NAME=VALUE, not {item!r}"))
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out or None


def _antibodies(path: Path | None, nom) -> tuple[list | None, tuple[str, ...]]:
    """The antibody report (None without one) and its warnings, or exit 2 listing every problem."""
    if path is None:
        return None, ()
    from haplomatch.antibodies import read_antibodies

    try:
        abs_, problems = read_antibodies(path, nom)
    except HaplomatchError as e:
        _fail(e)
    return abs_, tuple(str(p) for p in problems)


def _antibodies_by_family(abs_: list | None, families, path: Path | None):
    """``family -> (its patient's antibodies or None, warnings)`` (:func:`_antibodies_for` of the families'
    patients)."""
    per = _antibodies_for(abs_, [f.patient.id for f in families], path)
    return lambda fam: per[fam.patient.id]


def _antibodies_for(abs_: list | None, patient_ids: list[str], path: Path | None,
                    fix: str | None = None) -> dict[str, tuple[list | None, tuple[str, ...]]]:
    """Each patient's antibodies (None: not checked) and the warnings its ranking shows about them, or exit 2
    when the report cannot be assigned (``antibodies.by_patient``: a report applied to every patient alike
    would rank each one's donors on another's antibodies). A patient the report does not name has them
    unchecked, unless it is the only patient (the report is then its own, even with no antibody)."""
    if abs_ is None:  # (no report: the ranking says so itself)
        return {pid: (None, ()) for pid in patient_ids}
    from haplomatch.antibodies import by_patient
    from haplomatch.ranking import dsa_unchecked_text

    try:
        per = by_patient(abs_, patient_ids, file=str(path), fix=fix)
    except HaplomatchError as e:
        _fail(e)
    out = {}
    for pid in patient_ids:
        if pid in per or len(patient_ids) == 1:
            out[pid] = (per.get(pid, []), ())
        else:
            out[pid] = (None, (dsa_unchecked_text(path, pid),))
    return out


def _fail(e: Exception, code: int = 2):
    from haplomatch.errors import InputError

    if isinstance(e, InputError):
        for p in e.problems:  # "Error: file.csv:3 [age] …", not "Error: error: …"; a warning says it is one
            text = str(p)
            click.echo(f"Error: {text.removeprefix('error: ')}" if p.severity == "error" else text, err=True)
    else:
        click.echo(f"Error: {e}", err=True)
    sys.exit(code)


def _read_families(path: Path, nom, patient: str | None = None):
    """All families of a family file, or exit 2 listing every problem."""
    from haplomatch.familyfile import read_family_file

    try:
        families, problems = read_family_file(path, nom, patient=patient)
    except HaplomatchError as e:
        _fail(e)
    for p in problems:
        click.echo(str(p), err=True)
    return families


@main.group("reference")
def reference_grp() -> None:
    """The IPD-IMGT/HLA and IPD-KIR release and the facts derived from it."""


@reference_grp.command("build")
@REFERENCE_OPTION
def reference_build(reference_dir: Path | None) -> None:
    """Derive the per-allele facts from the release files and (re)write the cache."""
    t0 = time.perf_counter()
    ref = _load(reference_dir, rebuild=True)
    click.echo(f"built {ref.label} in {time.perf_counter() - t0:.1f} s -> {ref.cache_path}")


@reference_grp.command("info")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@REFERENCE_OPTION
def reference_info(fmt: str, reference_dir: Path | None) -> None:
    """Release numbers, counts of alleles per locus, and where the cache is."""
    import polars as pl

    ref = _load(reference_dir)
    counts = dict(ref.alleles.group_by("locus").len().sort("locus").iter_rows())
    info = {
        "imgthla_release": ref.release.imgthla,
        "ipdkir_release": ref.release.ipdkir,
        "release_folder": str(ref.release.root),
        "cache": str(ref.cache_path),
        "hla_alleles": ref.alleles.height,
        "hla_alleles_by_locus": {k: counts[k] for k in ("A", "B", "C", "DRB1", "DQB1", "DPB1") if k in counts},
        "hla_loci": len(counts),
        "kir_alleles": ref.kir_alleles.height,
        "kir_genes": ref.kir_alleles["gene"].n_unique(),
        "deleted_names": ref.deleted.height,
        "class_i_with_ligand": ref.alleles.filter(pl.col("kir_ligand").is_not_null() & (pl.col("kir_ligand") != "none")).height,
        "built": ref.meta.get("built"),
    }
    if fmt == "json":
        click.echo(json.dumps(info, indent=2))
        return
    for k, v in info.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a} {n:,}" for a, n in v.items())
        elif isinstance(v, int):
            v = f"{v:,}"
        click.echo(f"{k.replace('_', ' ')}: {v}")


if __name__ == "__main__":  # pragma: no cover
    main()
