"""Command-line commands ``haplomatch kir`` and ``haplomatch nk`` (registered on the main group in ``cli.py``).

Thin: they read the input, build one-row people / pair tables and call the same functions the batch uses
(:mod:`haplomatch.kirscores`, :mod:`haplomatch.nk`). Every output names each model and its source.
Exit codes as ``cli.py``: 0 success; 1 refused (reference data); 2 bad input (unknown names, usage).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from haplomatch.errors import HaplomatchError, InputError

__all__ = ["kir_cmd", "nk_cmd", "kir_typing_from_tokens", "kir_typing_from_text"]

_REFERENCE_OPTION = click.option(
    "--reference", "reference_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    envvar="HAPLOMATCH_REFERENCE",
    help="Release folder (imgthla/ and ipdkir/ with the upstream layout). Default: the shipped release.",
)
_FORMAT_OPTION = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
                              show_default=True)
_TEL_OPTION = click.option(
    "--tel-2ds4", type=click.Choice(["any", "full-length"]), default="any", show_default=True,
    help="Which KIR2DS4 defines the telomeric A motif: any variant (gene content, Cooley) or only full-length "
         "(the DKMS 2DS4 column, as CTUtools reads it).")


def _load(reference_dir: Path | None):
    from haplomatch.reference import load_reference

    try:
        return load_reference(reference_dir)
    except HaplomatchError as e:
        raise click.ClickException(str(e)) from e


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def _problems(e: InputError) -> str:
    return "; ".join(f"{p.value + ': ' if p.value else ''}{p.message}" for p in e.problems)


# ------------------------------------------------------------------------------------------ KIR input


def kir_typing_from_tokens(tokens: list[str], *, partial: bool = False, release=None):
    """``KIR2DL1``/``2DL1`` (present) and ``GENE=VALUE`` tokens (``KIR3DL1=001+005``, ``KIR2DS1=NEG``,
    ``KIR2DL2=POS``) → KirGenotype. Genes not named are absent, or untyped with ``partial``. Raises
    InputError naming every unknown gene or bad value."""
    from haplomatch.errors import Problem
    from haplomatch.kir import GENES, KIR2DL5_EITHER, KIR2DS4_FULL, KIR2DS4_NULL, canonical_gene, from_columns

    cols: dict[str, str] = {}
    problems: list[Problem] = []
    for raw in tokens:
        parts = [raw] if "=" in raw else [t for t in re.split(r"[,;\s]+", raw) if t]
        for tok in parts:
            name, eq, value = tok.partition("=")
            key = canonical_gene(name)
            if key is None:
                problems.append(Problem("not a KIR gene name", value=name.strip(),
                                        fix="name genes like KIR2DL1, 2DS4N, 2DL5 or KIR3DL1=001+005"))
                continue
            if eq and not value.strip():
                problems.append(Problem(f"no value after {name.strip()}=", value=tok))
                continue
            if key in cols:
                problems.append(Problem(f"{key} is given twice", value=tok))
                continue
            cols[key] = value.strip() if eq else "POS"
    if problems:
        raise InputError(problems)
    if not partial:
        ds4 = {"KIR2DS4", KIR2DS4_NULL, KIR2DS4_FULL}
        dl5 = {KIR2DL5_EITHER, "KIR2DL5A", "KIR2DL5B"}
        for gene in GENES:
            if gene not in ds4 | dl5 and gene not in cols:
                cols[gene] = "NEG"
        named_ds4 = ds4 & set(cols)
        if not named_ds4:
            cols["KIR2DS4"] = "NEG"
        elif "KIR2DS4" not in named_ds4:      # only variants named: the other variant is absent
            for v in (KIR2DS4_NULL, KIR2DS4_FULL):
                cols.setdefault(v, "NEG")
        named_dl5 = dl5 & set(cols)
        if not named_dl5:
            cols["KIR2DL5A"] = cols["KIR2DL5B"] = "NEG"
        elif KIR2DL5_EITHER not in named_dl5:
            for g in ("KIR2DL5A", "KIR2DL5B"):
                cols.setdefault(g, "NEG")
    return from_columns(cols, release=release)


def kir_typing_from_text(text: str, *, release=None):
    """A KIR typing as a GL string (``KIR2DL1*001+KIR2DL1*002^KIR3DL1*005``; genes not in it are untyped) or
    a list of present genes separated by ``+``, ``,`` or spaces (``KIR2DL1+KIR2DL3+KIR3DL1``; every other
    gene absent)."""
    from haplomatch.kir import parse_gene_list, parse_gl

    if "*" in text or "^" in text or "#" in text:
        return parse_gl(text, release=release)
    return parse_gene_list(" ".join(t for t in re.split(r"[+,;\s]+", text) if t))


# ------------------------------------------------------------------------------------------------ kir


@click.command("kir")
@click.argument("tokens", nargs=-1, required=True)
@click.option("--partial", is_flag=True, help="Genes not named are untyped (unknown) instead of absent.")
@_TEL_OPTION
@_FORMAT_OPTION
@_REFERENCE_OPTION
def kir_cmd(tokens: tuple[str, ...], partial: bool, tel_2ds4: str, fmt: str, reference_dir: Path | None) -> None:
    """Donor KIR genotype from TOKENS: A/A vs B/x, Cen/Tel motifs, B-content score and group, activating KIR,
    KIR3DL1 class.

    TOKENS are present genes (KIR2DL1 or 2DL1) or GENE=VALUE (KIR3DL1=001+005, KIR2DS1=NEG, KIR2DL2=POS).
    Genes not named are absent, unless --partial makes them untyped.

    \b
    Example:
      haplomatch kir 2DL1 2DL3 2DL4 2DP1 2DS4N 3DL2 3DL3 3DP1 KIR3DL1=001+005 --format json
    """
    from haplomatch.family import Person
    from haplomatch.kir import GENES, KirAlleleList
    from haplomatch.kirscores import SOURCES, kir_genotype_columns
    from haplomatch.persons import people_frame

    ref = _load(reference_dir)
    try:
        genotype = kir_typing_from_tokens(list(tokens), partial=partial, release=KirAlleleList.from_reference(ref))
    except InputError as e:
        _fail(_problems(e))
    variant = tel_2ds4.replace("-", "_")
    row = kir_genotype_columns(people_frame([Person(id="kir", relation="unrelated", kir=genotype)]),
                               tel_2ds4=variant).row(0, named=True)
    out: dict = {
        "genotype": row["kir_genotype"], "cen": row["kir_cen"], "tel": row["kir_tel"],
        "b_content_score": row["kir_b_content_score"], "b_content_group": row["kir_b_content_group"],
        "activating_count": row["kir_activating_count"],
        "activating_functional_count": row["kir_activating_functional_count"], "kir2ds4": row["kir2ds4"],
    }
    if genotype["KIR3DL1"].alleles or genotype["KIR3DS1"].alleles:
        out["kir3dl1_class"] = row["kir3dl1_class"]
    out["genes"] = {s: [g for g in GENES if genotype.status(g) == s] for s in ("present", "absent", "unknown")}
    out["models"] = {
        "genotype": {"model": "A/A vs B/x", "source": SOURCES["genotype"]},
        "cen_tel": {"model": "centromeric and telomeric motifs", "source": SOURCES["cen_tel"]},
        "b_content": {"model": "B-content score and group", "source": SOURCES["b_content"]},
        "activating_count": {"model": "activating KIR genes", "source": SOURCES["activating"]},
        "kir2ds4": {"model": "KIR2DS4 variant", "source": SOURCES["kir2ds4"]},
    }
    if "kir3dl1_class" in out:
        out["models"]["kir3dl1_class"] = {"model": "KIR3DL1 allotype class", "source": SOURCES["kir3dl1"]}
    out["settings"] = {"partial": partial, "tel_2ds4": variant}
    out["release"] = ref.label
    if fmt == "json":
        click.echo(json.dumps(out, indent=2))
        return
    from haplomatch.textout import table

    rows = [
        {"fact": "genotype", "value": out["genotype"], "model": "A/A vs B/x", "source": "RULES 3.1"},
        {"fact": "cen", "value": out["cen"], "model": "centromeric motifs", "source": "Cooley 2010"},
        {"fact": "tel", "value": out["tel"], "model": f"telomeric motifs (2DS4: {variant})", "source": "Cooley 2010"},
        {"fact": "b_content_score", "value": out["b_content_score"], "model": "B content", "source": "Cooley 2010"},
        {"fact": "b_content_group", "value": out["b_content_group"], "model": "B content", "source": "Cooley 2010"},
        {"fact": "activating_count", "value": out["activating_count"], "model": "activating KIR genes",
         "source": "gene content"},
        {"fact": "activating_functional_count", "value": out["activating_functional_count"],
         "model": "activating KIR, 2DS4 full-length only", "source": "RULES 3.2"},
        {"fact": "kir2ds4", "value": out["kir2ds4"], "model": "KIR2DS4 variant", "source": "RULES 3.2"},
    ]
    if "kir3dl1_class" in out:
        rows.append({"fact": "kir3dl1_class", "value": out["kir3dl1_class"], "model": "KIR3DL1 allotype class",
                     "source": "Boudreau 2017"})
    click.echo(table(rows, ["fact", "value", "model", "source"]))
    present, untyped = ", ".join(out["genes"]["present"]) or "-", ", ".join(out["genes"]["unknown"]) or "-"
    click.echo(f"\nPresent: {present}; untyped: {untyped}")
    click.echo("\nSources:\n  " + "\n  ".join(m["source"] for m in out["models"].values()))
    click.echo(f"Reference: {ref.label}")


# ------------------------------------------------------------------------------------------------- nk


@click.command("nk")
@click.option("--patient", "patient_gl", required=True, help="Patient HLA as a GL string (A, B and C at least).")
@click.option("--donor", "donor_gl", required=True, help="Donor HLA as a GL string.")
@click.option("--donor-kir", required=True,
              help="Donor KIR: a GL string (KIR2DL1*001+KIR2DL1*002^KIR3DL1*005) or present genes separated by "
                   "+ or , (KIR2DL1+KIR2DL3+KIR3DL1; every other gene absent).")
@click.option("--patient-kir", default=None, help="Patient KIR, same forms (for HvG alloreactivity).")
@click.option("--ipd-calculator", is_flag=True,
              help="Ligands from HLA-B and HLA-C only, as the IPD-KIR ligand calculator (no HLA-A Bw4).")
@click.option("--a3-a11", is_flag=True, help="Include A3/A11 (KIR3DL2) as a ligand group (Ruggeri 2002 Table 1).")
@click.option("--c1-on-hla-b", is_flag=True, help="Count the C1 epitope of HLA-B (B*46:01, B*73:01) as C1.")
@click.option("--kir3dl1-hla-a", is_flag=True, help="KIR3DL1 x HLA-B: also read the patient's HLA-A Bw4.")
@_TEL_OPTION
@_FORMAT_OPTION
@_REFERENCE_OPTION
def nk_cmd(patient_gl: str, donor_gl: str, donor_kir: str, patient_kir: str | None, ipd_calculator: bool,
           a3_a11: bool, c1_on_hla_b: bool, kir3dl1_hla_a: bool, tel_2ds4: str, fmt: str,
           reference_dir: Path | None) -> None:
    """NK alloreactivity of a donor for a patient: ligands of both, every model by direction, B content,
    KIR3DL1 x HLA-B and KIR2DS1, each with its source.

    \b
    Example:
      haplomatch nk --patient 'HLA-A*01:01+HLA-A*02:01^HLA-B*08:01+HLA-B*07:02^HLA-C*07:01+HLA-C*07:02' \\
                    --donor 'HLA-A*01:01+HLA-A*24:02^HLA-B*08:01+HLA-B*57:01^HLA-C*07:01+HLA-C*06:02' \\
                    --donor-kir 'KIR2DL1+KIR2DL3+KIR3DL1+KIR2DS4' --format json
    """
    from haplomatch.kir import KirAlleleList
    from haplomatch.nk import NkSettings, nk_pair, pair_report
    from haplomatch.persons import person_from_gl

    ref = _load(reference_dir)
    release = KirAlleleList.from_reference(ref)
    kirs = {}
    for label, text in (("--donor-kir", donor_kir), ("--patient-kir", patient_kir)):
        if text is None:
            continue
        try:
            kirs[label] = kir_typing_from_text(text, release=release)
        except InputError as e:
            _fail(f"{label}: {_problems(e)}")
    people = {}
    for label, pid, gl, kir in (("--patient", "patient", patient_gl, kirs.get("--patient-kir")),
                                ("--donor", "donor", donor_gl, kirs.get("--donor-kir"))):
        try:
            people[pid] = person_from_gl(pid, gl, kir=kir, nomenclature=ref.nomenclature,
                                         relation="patient" if pid == "patient" else "unrelated")
        except InputError as e:
            _fail(f"{label}: {_problems(e)}")
    settings = NkSettings(include_hla_a_bw4=not ipd_calculator, include_a3_a11=a3_a11, c1_on_hla_b=c1_on_hla_b,
                          kir3dl1_include_hla_a=kir3dl1_hla_a, tel_2ds4=tel_2ds4.replace("-", "_"))
    row = nk_pair(ref, people["patient"], people["donor"], settings)
    report = pair_report(row, settings, release=ref.label)
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(_nk_text(report))


def _l(v) -> str:
    if v is None:
        return "unknown"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v) or "none"
    return str(v)


def _nk_text(r: dict) -> str:
    from haplomatch.nk import MODELS
    from haplomatch.textout import table

    lines = []
    for who in ("patient", "donor"):
        p = r[who]
        unk = f" (possibly {_l(p['ligands_unknown'])})" if p["ligands_unknown"] else ""
        weak = "; only weak Bw4 (B*13/A*23/A*25)" if p["has_Bw4_weak_only"] else ""
        lines.append(f"{who.capitalize()} ligands: {_l(p['ligands'])}{unk}; HLA-C {_l(p['c_group'])}; "
                     f"HLA-B {_l(p['b_group'])}{weak}")
    k = r["kir_genotype"]
    lines.append(f"Donor KIR: {_l(k['genotype'])}; Cen {_l(k['cen'])}, Tel {_l(k['tel'])}; B content "
                 f"{_l(k['b_content_score'])} ({_l(k['b_content_group'])}); activating {_l(k['activating_count'])} "
                 f"(functional {_l(k['activating_functional_count'])}); KIR2DS4 {_l(k['kir2ds4'])}; "
                 f"KIR3DL1 class {_l(k['kir3dl1_class'])}")
    ll, rl, ml, ed = r["ligand_ligand"], r["receptor_ligand"], r["missing_ligand"], r["education"]
    k3, d1, kr, bo = r["kir3dl1_hla_b"], r["kir2ds1"], r["scores"]["krieger"], r["scores"]["boelen"]

    def unk(v):
        return f" (unknown: {_l(v)})" if v else ""

    rows = [
        {"model": "ligand-ligand", "direction": "GvH",
         "result": f"mismatched: {_l(ll['gvh'])}{unk(ll['gvh_unknown'])}; alloreactive: {_l(ll['gvh_alloreactive'])}",
         "kir": _l(ll["gvh_kir"]), "source": MODELS["ligand_ligand"]["cite"]},
        {"model": "ligand-ligand", "direction": "HvG",
         "result": f"mismatched: {_l(ll['hvg'])}{unk(ll['hvg_unknown'])}; alloreactive: {_l(ll['hvg_alloreactive'])}",
         "kir": _l(ll["hvg_kir"]), "source": MODELS["ligand_ligand"]["cite"]},
        {"model": "receptor-ligand", "direction": "GvH",
         "result": f"count {_l(rl['count'])} (range {rl['count_min']}-{rl['count_max']})",
         "kir": _l(rl["kir"]) + unk(rl["kir_unknown"]), "source": MODELS["receptor_ligand"]["cite"]},
        {"model": "missing ligand", "direction": "GvH",
         "result": (f"count {_l(ml['count'])}" if ml["applicable"] else
                    "not applicable (not HLA-identical)" if ml["applicable"] is False else
                    "applicability unknown (HLA identity undecided at " + ",".join(ml["identity_loci"]) + ")"),
         "kir": _l(ml["kir"]) if ml["applicable"] else "-", "source": MODELS["missing_ligand"]["cite"]},
        {"model": "education", "direction": "donor",
         "result": f"licensed: {_l(ed['licensed'])}; unlicensed: {_l(ed['unlicensed'])}{unk(ed['unknown'])}",
         "kir": "-", "source": MODELS["education"]["cite"]},
        {"model": "B content", "direction": "donor",
         "result": f"{_l(k['b_content_group'])} (score {_l(k['b_content_score'])})", "kir": "-",
         "source": MODELS["kir_genotype"]["cite"]},
        {"model": "KIR3DL1 x HLA-B", "direction": "GvH",
         "result": f"{_l(k3['result'])} ({_l(k3['detail'])}); donor {_l(k3['donor_class'])}, patient "
                   f"{_l(k3['patient_group'])}", "kir": "KIR3DL1", "source": MODELS["kir3dl1_hla_b"]["cite"]},
        {"model": "KIR2DS1", "direction": "donor",
         "result": f"favourable: {_l(d1['favourable'])} ({_l(d1['group'])})", "kir": "KIR2DS1",
         "source": MODELS["kir2ds1"]["cite"]},
        {"model": "Krieger scores", "direction": "GvH",
         "result": f"KIRL {_l(kr['kirl'])}, IMKIR {_l(kr['imkir'])}, WKIR {_l(kr['wkir'])}", "kir": "-",
         "source": MODELS["krieger"]["cite"]},
        {"model": "Boelen score", "direction": "donor", "result": _l(bo["score"]), "kir": "-",
         "source": MODELS["boelen"]["cite"]},
    ]
    lines += ["", table(rows, ["model", "direction", "result", "kir", "source"]), "", "Sources:"]
    for key in ("ligands", "ligand_ligand", "receptor_ligand", "missing_ligand", "education", "kir_genotype",
                "kir3dl1_hla_b", "kir2ds1", "krieger", "boelen"):
        lines.append(f"  {MODELS[key]['cite']}: {MODELS[key]['source']}")
    s = r["settings"]
    lines.append(f"Settings: HLA-A Bw4 {'counted' if s['include_hla_a_bw4'] else 'ignored (IPD-KIR calculator)'}; "
                 f"A3/A11 {'on' if s['include_a3_a11'] else 'off'}; "
                 f"C1 on HLA-B {'counted' if s['c1_on_hla_b'] else 'reported only'}; "
                 f"KIR3DL1 x HLA-A {'on' if s['kir3dl1_include_hla_a'] else 'off'}; Tel 2DS4 {s['tel_2ds4']}")
    lines.append(f"Reference: {r['release']}")
    return "\n".join(lines)
