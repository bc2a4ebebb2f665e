"""``haplomatch screen`` (many families at once), ``haplomatch search`` (one patient against a registry) and
``haplomatch prepare`` (a registry stored for repeated searches).

Thin click layers over :mod:`haplomatch.screen`, :mod:`haplomatch.search` and :mod:`haplomatch.prepared`;
``cli.py`` registers :data:`screen_cmd`, :data:`search_cmd` and :data:`prepare_cmd`. Exit codes: 0 success
(rejected rows are reported, not fatal); 1 refused (reference data); 2 bad input (unreadable file, unknown
typing, bad option).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from haplomatch.cli import REFERENCE_OPTION, _antibodies, _fail, _load, _overrides  # shared CLI pieces
from haplomatch.errors import HaplomatchError

_TABLE_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv", ".tab")


def _cpus() -> int:
    import os

    return max(1, min(8, os.cpu_count() or 1))



def _nomenclature(ref, mac_table: Path | None):
    if mac_table is None:
        return ref.nomenclature
    from haplomatch.cli import _nomenclature as with_mac

    return with_mac(ref, mac_table)


def _check_suffix(path: Path | None, option: str, allowed=_TABLE_SUFFIXES) -> None:
    if path is not None and path.suffix.lower() not in allowed:
        raise click.BadParameter(f"{path.name!r}: use a file name ending in {', '.join(allowed)}", param_hint=option)


class _Progress:
    """A one-line progress bar on a terminal (stderr); nothing in pipes or CI logs."""

    def __init__(self, label: str, enabled: bool | None = None) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last = -1

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if total:
            pct = int(100 * done / total)
            if pct == self._last and done != total:
                return
            self._last = pct
            bar = "#" * (pct // 4)
            sys.stderr.write(f"\r{self.label} [{bar:<25}] {done:,}/{total:,}")
        else:
            sys.stderr.write(f"\r{self.label} {done:,}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


# ------------------------------------------------------------------------------------------------ screen

@click.command("screen")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output: one row per candidate (.parquet, .csv or .tsv).")
@click.option("--rejects", "rejects_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the rejected rows with their reasons (file, row, family_id, column, value, message).")
@click.option("--profile", type=click.Choice(["haplo-hsct", "nk-cell-therapy", "unrelated"]), default="haplo-hsct",
              show_default=True, help="Treatment profile (rule file) used to rank the candidates of each family.")
@click.option("--antibodies", type=click.Path(dir_okay=False, path_type=Path),
              help="Antibody report with a patient_id column naming each antibody's patient.")
@click.option("--rules", "rules_file", type=click.Path(dir_okay=False, path_type=Path), help="Your own rule file.")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE", help="Override a rule-file setting.")
@click.option("--keep-conflicts", is_flag=True,
              help="Rank families with a Mendelian conflict (with a warning, as 'rank' does) instead of rejecting them.")
@click.option("--mac-table", type=click.Path(dir_okay=False, path_type=Path), help="NMDP MAC table (numer.v3.txt).")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Processes to screen parts of whole families in (0: one per CPU, at most 8). The output does not "
                   "depend on it.")
@REFERENCE_OPTION
def screen_cmd(files, out, rejects_file, profile, antibodies, rules_file, overrides, keep_conflicts, mac_table,
               workers, reference_dir) -> None:
    """Screen many families at once: one output row per candidate donor, ranked within its family.

    FILES are family files (a family_id column, or one file per family). Every input row ends up in the
    output (a candidate), as the patient of its family, or in the rejects with its reason; the last line
    counts them (rows in = candidates out + patients + rejected).

    \b
    Example:
      haplomatch screen families.csv --out ranked.parquet --rejects rejects.csv --profile haplo-hsct
    """
    from haplomatch.screen import screen_files, write_table

    _check_suffix(out, "--out")
    _check_suffix(rejects_file, "--rejects")
    ref = _load(reference_dir)
    nom = _nomenclature(ref, mac_table)
    abs_, ab_warnings = _antibodies(antibodies, nom)
    for w in ab_warnings:
        click.echo(w, err=True)
    bar = _Progress("segregation")
    try:
        result = screen_files(ref, list(files), profile=profile, rules_path=rules_file,
                              overrides=_overrides(overrides), antibodies=abs_, nomenclature=nom,
                              reject_conflicts=not keep_conflicts, progress=bar, workers=workers or _cpus())
    except HaplomatchError as e:
        bar.close()
        _fail(e)
    bar.close()
    # what concerns the whole screen in full; the input's own warnings (also in each family's family_warnings
    # column) up to ten
    read = [w for w in result.warnings if w.startswith("warning: ")]
    for w in [w for w in result.warnings if not w.startswith("warning: ")] + read[:10]:
        click.echo(w if w.startswith("warning: ") else f"! {w}", err=True)
    if len(read) > 10:
        click.echo(f"… {len(read) - 10:,} more input warning(s), each in its family's family_warnings column", err=True)
    write_table(result.candidates, out)
    if rejects_file is not None:
        write_table(result.rejects, rejects_file)
    elif result.rejects.height:
        shown = result.rejects.head(10).to_dicts()
        for r in shown:
            at = r["file"] if r["row"] is None else f"{r['file']}:{r['row']}"
            click.echo(f"rejected: {at} [{r['column'] or '-'}] {r['message']}", err=True)
        more = result.rejects.height - len(shown)
        click.echo(f"… {more} more reject line(s): write them all with --rejects FILE" if more > 0 else
                   "(write the rejects to a file with --rejects FILE)", err=True)
    click.echo(f"wrote {result.candidates_out:,} candidate rows to {out} [{result.release}; profile {result.profile}]")
    click.echo(result.summary_line())


# ------------------------------------------------------------------------------------------------ search

@click.command("search")
@click.option("--patient", "patient_gl", help="The patient's HLA typing as a GL string (or --patients FILE).")
@click.option("--patients", "patients_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Many patients, one per row, in the family-file columns (id, HLA, KIR, sex, age, abo, cmv): "
                   "the registry is read once and kept in memory for all of them.")
@click.option("--patient-kir", help="The patient's KIR: a GL string, or the present genes ('2DL1,2DL3,3DL1,…').")
@click.option("--patient-id", help="Name of the patient in the output.  [default: patient]")
@click.option("--patient-sex", type=click.Choice(["M", "F"]), help="Patient sex (female-donor-to-male facts).")
@click.option("--patient-abo", help="Patient blood group, e.g. 'A+' or 'O neg' (ABO facts).")
@click.option("--patient-cmv", type=click.Choice(["pos", "neg"]), help="Patient CMV serostatus.")
@click.option("--donors", "registry", required=True, type=click.Path(path_type=Path),
              help="Registry of unrelated donors (.parquet, .csv or .tsv): donor_id, A_1, A_2, … (or a GL column "
                   "'hla'), KIR gene columns, age, sex, abo, cmv; or a registry prepared by 'haplomatch prepare'.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="How many donors to return.")
@click.option("--antibodies", type=click.Path(dir_okay=False, path_type=Path),
              help="The patient's antibody report (with --patients: a patient_id column naming each antibody's "
                   "patient).")
@click.option("--profile", type=click.Choice(["unrelated", "haplo-hsct", "nk-cell-therapy"]), default="unrelated",
              show_default=True, help="Rule file used to rank the donors.")
@click.option("--rules", "rules_file", type=click.Path(dir_okay=False, path_type=Path), help="Your own rule file.")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE", help="Override a rule-file setting.")
@click.option("--batch-size", type=click.IntRange(min=1), default=200_000, show_default=True,
              help="Registry rows read at a time (memory is about the batch, not the registry).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --patients: processes the registry is kept in, in equal shares (each search then uses "
                   "that many CPUs).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the best donors' facts (.parquet, .csv or .tsv; with --patients, every patient's).")
@click.option("--rejects", "rejects_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the registry rows that could not be read (row, donor_id, reason).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "markdown"]), default="table",
              show_default=True)
@click.option("--explain", is_flag=True, help="Show under each donor the rules that fired, with their sources.")
@REFERENCE_OPTION
def search_cmd(patient_gl, patients_file, patient_kir, patient_id, patient_sex, patient_abo, patient_cmv, registry,
               top, antibodies, profile, rules_file, overrides, batch_size, workers, out, rejects_file, fmt, explain,
               reference_dir) -> None:
    """Search a registry of unrelated donors for a patient (or a file of patients): the best TOP donors, ranked
    and explained.

    One patient's search reads the registry in batches (a lazy scan): it never has to fit in memory. With
    --patients the registry is read once into memory (about 300 bytes per donor), then searched per patient.

    \b
    Example:
      haplomatch search --patient 'A*02:01+A*24:02^C*07:02+C*03:04^B*07:02+B*44:02^DRB1*15:01+DRB1*04:01' \\
          --patient-sex F --patient-cmv neg --donors donors.parquet --top 10 --explain
      haplomatch search --patients waiting.csv --donors donors.prepared --workers 2 --out best.csv
    """
    import polars as pl

    from haplomatch import familyfile as ff
    from haplomatch.errors import InputError
    from haplomatch.persons import person_from_gl
    from haplomatch.screen import write_table
    from haplomatch.search import NoDonorReadError, OpenRegistry, search_registry

    if registry.is_file():  # a directory is a prepared registry; a missing path is named by the search
        _check_suffix(registry, "--donors")
    _check_suffix(out, "--out")
    _check_suffix(rejects_file, "--rejects")
    if (patient_gl is None) == (patients_file is None):
        _fail(HaplomatchError("give one patient (--patient GL) or a file of patients (--patients FILE)"))
    if patients_file is not None:
        given = [name for name, v in (("--patient-kir", patient_kir), ("--patient-id", patient_id),
                                      ("--patient-sex", patient_sex), ("--patient-abo", patient_abo),
                                      ("--patient-cmv", patient_cmv)) if v is not None]
        if given:
            _fail(HaplomatchError(f"{', '.join(given)}: with --patients, each patient's row says this (its columns)"))
        _check_suffix(patients_file, "--patients")
    elif workers != 1:
        _fail(HaplomatchError("--workers is for --patients: one patient's search streams the registry in this "
                              "process"))
    ref = _load(reference_dir)
    if patients_file is not None:
        try:
            patients, notes = ff.read_patients(patients_file, ref.nomenclature)
        except InputError as e:
            _fail(e)
        for w in notes:
            click.echo(str(w), err=True)
    else:
        kir = None
        if patient_kir:
            from haplomatch.cli_nk import kir_typing_from_text
            from haplomatch.kir import KirAlleleList

            try:
                kir = kir_typing_from_text(patient_kir, release=KirAlleleList.from_reference(ref))
            except InputError as e:
                _fail(e)
        abo = rh = None
        if patient_abo:
            parsed = ff._abo(patient_abo)
            if parsed is None:
                _fail(HaplomatchError(f"--patient-abo {patient_abo!r} not understood: write e.g. 'A+' or 'O neg'"))
            abo, rh = parsed
        try:
            patients = [person_from_gl(patient_id or "patient", patient_gl, kir=kir, nomenclature=ref.nomenclature,
                                       relation="patient", sex=patient_sex, abo=abo, rh=rh,
                                       cmv=None if patient_cmv is None else patient_cmv == "pos")]
        except InputError as e:
            _fail(e)
    mine, dsa_notes = _patients_antibodies(antibodies, patients, ref.nomenclature,
                                           one=patients_file is None and patient_id is None)
    options = dict(profile=profile, top=top, rules_path=rules_file, overrides=_overrides(overrides))
    results = []
    try:
        if patients_file is None:
            bar = _Progress("donors read")
            try:
                results.append(search_registry(ref, patients[0], registry, batch_size=batch_size,
                                               progress=lambda rows, batches: bar(rows, None),
                                               antibodies=mine[0], **options))
            finally:
                bar.close()
        else:
            with OpenRegistry(ref, registry, batch_size=batch_size, workers=workers) as opened:
                bar = _Progress("patients searched")
                try:
                    for i, p in enumerate(patients):
                        results.append(search_registry(ref, p, opened, antibodies=mine[i], **options))
                        bar(i + 1, len(patients))
                finally:
                    bar.close()
    except HaplomatchError as e:
        if rejects_file is not None and isinstance(e, NoDonorReadError):
            write_table(e.rejects, rejects_file)  # every row rejected: the file says why, row by row
        _fail(e)
    for w in results[0].warnings:  # the registry's (each search's own are shown with its ranking)
        if w not in results[0].search_warnings:
            click.echo(w, err=True)
    if out is not None:
        write_table(pl.concat([r.facts for r in results], how="diagonal_relaxed"), out)
    if rejects_file is not None:
        write_table(results[0].rejects, rejects_file)  # the registry's rows: the same for every patient
    _print_searches(results, fmt, explain, rejects_file, dsa_notes)


def _patients_antibodies(path: Path | None, patients: list, nom, one: bool) -> tuple[list, list[str | None]]:
    """Each patient's antibodies (None: not checked) and the note its ranking shows about them (None: none),
    as ``rank`` gives them to the patients of a file (``cli._antibodies_for``)."""
    from haplomatch.cli import _antibodies_for

    if path is None:
        return [None] * len(patients), ["no antibody report: donor-specific antibodies were not checked"] * len(patients)
    abs_, ab_warnings = _antibodies(path, nom)
    for w in ab_warnings:
        click.echo(w, err=True)
    fix = "give --patient-id with the report's patient_id if the report is this patient's" if one else None
    per = _antibodies_for(abs_, [p.id for p in patients], path, fix)
    return [per[p.id][0] for p in patients], [(per[p.id][1] or (None,))[0] for p in patients]


def _print_searches(results: list, fmt: str, explain: bool, rejects_file, dsa_notes: list[str | None]) -> None:
    """Each patient's best donors (one ranking per patient, in the order of the patients)."""
    from haplomatch.ranking import Ranking
    from haplomatch.report.text import ranking_csv, ranking_markdown, ranking_table

    rankings, docs = [], []
    for res, dsa_note in zip(results, dsa_notes):
        warnings = list(res.notes)
        if res.rejected:
            first = res.rejects.head(3)["reason"].to_list()
            warnings.append(f"{res.rejected:,} registry row(s) could not be read and were not ranked"
                            + (f" (e.g. {'; '.join(first)})" if first else "")
                            + ("" if rejects_file else "; list them with --rejects FILE"))
        if dsa_note is not None:
            warnings.append(dsa_note)
        warnings += res.search_warnings
        ranking = Ranking(res.patient, res.profile, res.release, tuple(warnings), res.candidates, res.rules_file,
                          {}, None)
        rankings.append(ranking)
        docs.append(ranking.to_dict() | {"registry": res.registry, "rows_in": res.rows_in,
                                         "donors_ranked": res.ranked, "rejected": res.rejected,
                                         "seconds": round(res.seconds, 3)})
    if fmt == "json":
        click.echo(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2, default=str))
    elif fmt == "csv":
        click.echo(ranking_csv(rankings), nl=False)
    for i, (ranking, res) in enumerate(zip(rankings, results)):
        if fmt == "markdown":
            click.echo(ranking_markdown(ranking, explain))
        elif fmt == "table":
            click.echo(("\n" if i else "") + ranking_table(ranking, explain))
        click.echo(res.summary_line(), err=fmt in ("json", "csv"))


# ------------------------------------------------------------------------------------------------ prepare

@click.command("prepare")
@click.argument("registry", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write (a new one, or a registry prepared before: it is replaced).")
@click.option("--batch-size", type=click.IntRange(min=1), default=200_000, show_default=True,
              help="Registry rows read at a time (memory is about the batch, not the registry).")
def prepare_cmd(registry, out, batch_size) -> None:
    """Store a registry for repeated searches: each column's distinct cells numbered once, the rows as numbers.

    A search of the prepared registry (--donors DIR) gives the same answer as a search of the file, without
    hashing every cell again. Nothing is interpreted (no reference data is read): rows that do not read are
    kept, and rejected by the search with their reason as for the file. A search refuses a prepared registry
    whose registry file changed since.

    \b
    Example:
      haplomatch prepare donors.parquet --out donors.prepared
      haplomatch search --patient 'A*02:01+A*24:02^B*07:02+B*44:02' --donors donors.prepared
    """
    import time

    from haplomatch.prepared import prepare_registry

    _check_suffix(registry, "REGISTRY")
    t0 = time.perf_counter()
    bar = _Progress("rows prepared")
    try:
        p = prepare_registry(registry, out, batch_size=batch_size, progress=lambda rows: bar(rows, None))
    except HaplomatchError as e:
        bar.close()
        _fail(e)
    bar.close()
    d = p.dictionaries()
    sizes = {p.dicts[item]: len(v) for item, v in d.items()}  # a locus's two columns share one dictionary
    values, files = sum(sizes.values()), len(sizes)
    click.echo(f"prepared {p.rows:,} rows of {registry} into {out}: {len(p.items)} columns read as {files} "
               f"dictionaries ({values:,} distinct values in all) in {time.perf_counter() - t0:.1f} s")
