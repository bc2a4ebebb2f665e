"""``haplomatch simulate families|registry``: seeded test data in the family-file and registry formats.

A thin click layer over :mod:`haplomatch.simulate` (every assumption is documented there). The same seed and
options give byte-identical files, whatever the number of worker processes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from haplomatch.errors import HaplomatchError

_LOCI = ("A", "C", "B", "DRB1", "DQB1", "DPB1")
_INTERVALS = tuple(f"{a}-{b}" for a, b in zip(_LOCI, _LOCI[1:]))
_FORMATS = (".csv", ".tsv", ".tab", ".parquet", ".pq")

_reference_option = click.option(
    "--reference", "reference_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    envvar="HAPLOMATCH_REFERENCE",
    help="Release folder (imgthla/ and ipdkir/ with the upstream layout). Default: the shipped 3.58.0 / 2.13.0.",
)


_RATE = click.FloatRange(0.0, 1.0)


def _check_out(path: Path | None, option: str) -> None:
    if path is not None and path.suffix.lower() not in _FORMATS:
        raise click.BadParameter(f"{path.name!r}: use a .csv, .tsv or .parquet file name", param_hint=option)


def _load(reference_dir: Path | None):
    from haplomatch.reference import load_reference

    try:
        return load_reference(reference_dir)
    except HaplomatchError as e:
        raise click.ClickException(str(e)) from e


@click.group("simulate", context_settings={"help_option_names": ["-h", "--help"]})
def simulate_grp() -> None:
    """Seeded simulated families and registries from the release alleles (for tests and benchmarks)."""


@simulate_grp.command("families")
@click.option("--n", "n", type=click.IntRange(min=0), required=True, help="Number of families.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: same seed, same file.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Family file to write (.csv, .tsv or .parquet).")
@click.option("--siblings", type=click.IntRange(min=0), default=3, show_default=True,
              help="Full siblings of the patient.")
@click.option("--half-siblings", type=click.IntRange(min=0), default=0, show_default=True,
              help="Half-siblings (each through the father or the mother).")
@click.option("--children", "patient_children", type=click.IntRange(min=0), default=0, show_default=True,
              help="Children of the patient.")
@click.option("--grandparents", is_flag=True, help="Add the four grandparents, typed.")
@click.option("--missing-parents", type=click.Choice(["none", "father", "mother", "one", "both"]), default="none",
              show_default=True, help="Parents not typed ('one': father or mother at random; 'both': siblings only).")
@click.option("--missing-mode", type=click.Choice(["drop", "untyped"]), default="drop", show_default=True,
              help="Drop a missing parent's row, or keep it with blank HLA and KIR.")
@click.option("--missing-rate", type=_RATE, default=1.0, show_default=True,
              help="Share of families whose parents are missing.")
@click.option("--recombination-rate", type=_RATE, default=0.0, show_default=True,
              help="Probability per meiosis of a crossover in the recombination interval.")
@click.option("--recombination-interval", type=click.Choice(list(_INTERVALS) + ["any"]), default="DQB1-DPB1",
              show_default=True, help="Where crossovers happen ('any': evenly over all intervals).")
@click.option("--error-rate", type=_RATE, default=0.0, show_default=True,
              help="Probability that a written allele is replaced by another release allele.")
@click.option("--low-resolution-rate", type=_RATE, default=0.0, show_default=True,
              help="Probability that a typing is written at 1 field.")
@click.option("--homozygous-rate", type=_RATE, default=0.0, show_default=True,
              help="Probability that a founder is homozygous at a locus.")
@click.option("--shared-rate", type=_RATE, default=0.0, show_default=True,
              help="Probability that a founder haplotype repeats an allele of another founder at a locus.")
@click.option("--no-kir", is_flag=True, help="Do not simulate or write KIR genes.")
@click.option("--truth", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the truth: parental haplotypes per person and locus, crossovers, typing errors.")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Processes (0: one per CPU, at most 8). The output does not depend on it.")
@_reference_option
def families_cmd(n, seed, out, siblings, half_siblings, patient_children, grandparents, missing_parents,
                 missing_mode, missing_rate, recombination_rate, recombination_interval, error_rate,
                 low_resolution_rate, homozygous_rate, shared_rate, no_kir, truth, workers, reference_dir) -> None:
    """Simulate N families (patient, parents, siblings…) in the family-file format, with a family_id column.

    \b
    Example:
      haplomatch simulate families --n 1000 --seed 7 --out fam.csv \\
          --recombination-rate 0.05 --error-rate 0.01 --truth truth.parquet
    """
    from haplomatch.simulate import AllelePool, SimOptions, default_workers, write_simulated_families

    _check_out(out, "--out")
    _check_out(truth, "--truth")
    try:
        options = SimOptions(
            siblings=siblings, half_siblings=half_siblings, patient_children=patient_children,
            grandparents=grandparents, missing_parents=missing_parents, missing_mode=missing_mode,
            missing_rate=missing_rate, recombination_rate=recombination_rate,
            recombination_interval=None if recombination_interval == "any" else recombination_interval,
            error_rate=error_rate, low_resolution_rate=low_resolution_rate, homozygous_rate=homozygous_rate,
            shared_rate=shared_rate, kir=not no_kir,
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    ref = _load(reference_dir)
    t0 = time.perf_counter()
    rows = write_simulated_families(n, seed, out, options, truth=truth, pool=AllelePool.from_reference(ref),
                                    workers=workers or default_workers())
    extra = f"; truth to {truth}" if truth else ""
    click.echo(f"wrote {n:,} families ({rows:,} rows) to {out}{extra} in {time.perf_counter() - t0:.1f} s "
               f"[{ref.label}, seed {seed}]", err=True)


@simulate_grp.command("registry")
@click.option("--n", "n", type=click.IntRange(min=0), required=True, help="Number of donors.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: same seed, same file.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Registry file to write (.csv, .tsv or .parquet).")
@click.option("--no-kir", is_flag=True, help="Do not write KIR gene columns.")
@_reference_option
def registry_cmd(n, seed, out, no_kir, reference_dir) -> None:
    """Simulate N unrelated donors: donor_id, HLA slots (A_1, A_2, …), KIR genes 1/0, age, sex, ABO, CMV.

    \b
    Example:
      haplomatch simulate registry --n 1000000 --seed 1 --out donors.parquet
    """
    from haplomatch.simulate import AllelePool, write_registry

    _check_out(out, "--out")
    ref = _load(reference_dir)
    t0 = time.perf_counter()
    rows = write_registry(n, seed, out, pool=AllelePool.from_reference(ref), kir=not no_kir)
    click.echo(f"wrote {rows:,} donors to {out} in {time.perf_counter() - t0:.1f} s [{ref.label}, seed {seed}]",
               err=True)


if __name__ == "__main__":  # pragma: no cover
    simulate_grp(sys.argv[1:])
