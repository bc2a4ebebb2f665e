"""``haplomatch match``: HLA compatibility (and donor-specific antibodies) of one patient and one donor.

A thin click layer: the pair is a one-row pair table through the same code as a registry batch
(``compat.compat_pair_facts``, ``dsa.dsa_pair_facts``). The lead registers :data:`match_cmd` in ``cli.py``.
Exit codes: 0 success; 1 refused (bad reference data); 2 bad input (unknown typing, unreadable report).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from haplomatch.compat import CORE_LOCI, LEVELS, LOCI, CompatSettings

_GRADES = (8, 10, 12)
_DIRS = (("gvh", "gvh"), ("hvg", "hvg"), ("bi", "bidirectional"))


def _load(reference_dir: Path | None):
    from haplomatch.errors import HaplomatchError
    from haplomatch.reference import load_reference

    try:
        return load_reference(reference_dir)
    except HaplomatchError as e:
        raise click.ClickException(str(e)) from e


def _person(pid: str, gl: str, ref, who: str):
    """A person from a GL string; unknown names exit 2, naming them and the nearest valid names."""
    from haplomatch.errors import InputError
    from haplomatch.persons import person_from_gl

    try:
        return person_from_gl(pid, gl, nomenclature=ref.nomenclature, relation="patient" if who == "patient" else "unrelated")
    except InputError as e:
        for p in e.problems:
            if p.value and p.value.strip() != gl.strip():
                msg = f"unknown HLA typing {p.value!r} in the {who} typing: {p.message}"
            else:
                msg = f"{who} typing is not a valid GL string: {p.message}"
            if p.fix:
                msg += f"; {p.fix}"
            click.echo(f"Error: {msg}", err=True)
        sys.exit(2)


def match_report(row: dict, settings: CompatSettings, release: str, dsa_row: dict | None = None,
                 dsa_sources: dict | None = None, thresholds=None, notes: dict[str, str] | None = None) -> dict:
    """The JSON object of one pair from its rows of ``compat_pair_facts`` (and ``dsa_pair_facts``); ``notes``
    (``compat.range_notes``) says, per locus counted as a range, why and what typing would settle it."""
    from haplomatch.compat import sources

    loci: dict = {}
    for loc in LOCI:
        if loc not in CORE_LOCI and not row.get(f"typed_{loc}"):
            continue
        d = {
            "gvh": row[f"gvh_{loc}"], "hvg": row[f"hvg_{loc}"], "level": settings.level,
            "typed": row[f"typed_{loc}"],
            "gvh_kind": row[f"gvh_{loc}_kind"], "hvg_kind": row[f"hvg_{loc}_kind"],
            "gvh_antigen": row[f"gvh_{loc}_antigen"], "hvg_antigen": row[f"hvg_{loc}_antigen"],
        }
        if row[f"gvh_{loc}"] is None or row[f"hvg_{loc}"] is None:
            d |= {k: row[f"{k.split('_')[0]}_{loc}_{k.split('_')[1]}"] for k in ("gvh_min", "gvh_max", "hvg_min", "hvg_max")}
        if notes and loc in notes:
            d["settle"] = notes[loc]
        if row.get(f"error_{loc}"):
            d["error"] = row[f"error_{loc}"]
        loci[loc] = d
    grades = {
        label: {
            f"X/{n}": {
                "text": row[f"grade{n}_{d}_text"], "matches": row[f"grade{n}_{d}"],
                "min": row[f"grade{n}_{d}_min"], "max": row[f"grade{n}_{d}_max"],
            }
            for n in _GRADES
        }
        for d, label in _DIRS
    }
    out = {
        "loci": loci,
        "grades": grades,
        "b_leader": {
            "patient": row["patient_b_leader"], "donor": row["donor_b_leader"],
            "genotype_match": row["b_leader_genotype_match"],
            "mismatched_alleles_same_leader": row["b_leader_mismatched_alleles_same_leader"],
            "code": row["b_leader_code"], "reason": row["b_leader_reason"],
        },
        "dpb1_tce": {
            "category": row["dpb1_tce"], "possible": row["dpb1_tce_possible"], "version": settings.tce_version,
            "patient_groups": row["patient_dpb1_tce_groups"], "donor_groups": row["donor_dpb1_tce_groups"],
            "reason": row["dpb1_tce_reason"],
        },
        "settings": {
            "level": settings.level, "homozygous_count": settings.homozygous_count,
            "null_alleles": settings.null_alleles, "tce_version": settings.tce_version,
        },
    }
    srcs = sources()
    if dsa_row is not None:
        out["dsa"] = {
            "antibodies": dsa_row["dsa"], "max_mfi": dsa_row["dsa_max_mfi"], "c1q": dsa_row["dsa_c1q"],
            "category": dsa_row["dsa_category"], "possible_max_mfi": dsa_row["dsa_possible_max_mfi"],
            "category_if_possible": dsa_row["dsa_category_if_possible"],
            "desensitisable": dsa_row["dsa_desensitisable"],
            "poor_graft_function_risk": dsa_row["dsa_poor_graft_function_risk"],
            "unmapped": dsa_row["dsa_unmapped"],
        }
        if thresholds is not None:
            out["dsa"]["thresholds"] = {
                k: getattr(thresholds, k) for k in ("positive_mfi", "high_risk_mfi", "high_risk_c1q",
                                                     "graft_rejection_mfi", "poor_graft_function_mfi",
                                                     "desensitisation_limit_mfi")
            }
        srcs |= dsa_sources or {}
    out["release"] = release
    out["sources"] = srcs
    return out


def _text(report: dict) -> str:
    from haplomatch.textout import table

    lines = []
    rows = []
    for loc, d in report["loci"].items():
        def cnt(k: str) -> str:
            if d[k] is not None:
                return str(d[k])
            if d.get(f"{k}_min") is None:
                return "-"
            return f"{d[f'{k}_min']}-{d[f'{k}_max']}"
        rows.append({"locus": loc, "level": d["level"], "gvh": cnt("gvh"), "hvg": cnt("hvg"),
                     "gvh_kind": d["gvh_kind"], "hvg_kind": d["hvg_kind"], "typed": d["typed"]})
    lines.append(table(rows, ["locus", "level", "gvh", "hvg", "gvh_kind", "hvg_kind", "typed"]))
    lines += [f"  note: {loc}: {d['settle']}" for loc, d in report["loci"].items() if d.get("settle")]
    g = report["grades"]
    lines.append("\nMatch grades   GvH      HvG      bidirectional")
    for n in _GRADES:
        k = f"X/{n}"
        lines.append(f"  {k:<12} {g['gvh'][k]['text']:<8} {g['hvg'][k]['text']:<8} {g['bidirectional'][k]['text']}")
    b = report["b_leader"]

    def yn(v) -> str:
        return "-" if v is None else ("yes" if v else "no")

    lines.append(
        f"\nHLA-B leader -21: patient {b['patient'] or '-'}, donor {b['donor'] or '-'}; genotypes match: "
        f"{yn(b['genotype_match'])}; mismatched HLA-B alleles share the leader: "
        f"{yn(b['mismatched_alleles_same_leader'])}" + (f" (code {b['code']})" if b["code"] else "")
    )
    if b["reason"]:
        lines.append(f"  note: {b['reason']}")
    t = report["dpb1_tce"]
    lines.append(
        f"DPB1 TCE ({t['version'].upper()}): {t['category']} (patient groups {t['patient_groups'] or '-'}, "
        f"donor groups {t['donor_groups'] or '-'})"
    )
    if t["reason"]:
        lines.append(f"  note: {t['reason']}; possible: {', '.join(t['possible'])}")
    if "dsa" in report:
        d = report["dsa"]
        lines.append(
            f"\nDonor-specific antibodies: {d['category']}"
            + (f" (strongest definite DSA {d['max_mfi']:,.0f} MFI" + (", C1q+" if d["c1q"] else "") + ")"
               if d["max_mfi"] is not None else "")
            + (f"; counting possible DSA: {d['category_if_possible']}" if d["category_if_possible"] != d["category"] else "")
        )
        if d["antibodies"]:
            lines.append(table(d["antibodies"], ["specificity", "kind", "mfi", "c1q", "status", "positive", "note"]))
        if d["unmapped"]:
            lines.append("Not mapped to the release (reported, not checked): " + ", ".join(d["unmapped"]))
    lines.append(f"\nReference: {report['release']}. Settings: level {report['settings']['level']}, homozygous "
                 f"mismatch counted {'once' if report['settings']['homozygous_count'] == 1 else 'twice'}, null "
                 f"alleles {report['settings']['null_alleles']}.")
    lines.append("Sources:")
    lines += [f"  {k}: {v}" for k, v in report["sources"].items()]
    return "\n".join(lines)


@click.command("match")
@click.option("--patient", "patient_gl", required=True, help="The patient's HLA typing as a GL string.")
@click.option("--donor", "donor_gl", required=True, help="The donor's HLA typing as a GL string.")
@click.option("--antibodies", type=click.Path(dir_okay=False, path_type=Path),
              help="The patient's antibody report (single-antigen beads): donor-specific antibodies.")
@click.option("--homozygous-count", type=click.Choice(["1", "2"]), default="1", show_default=True,
              help="Count a homozygous mismatch once or twice.")
@click.option("--level", type=click.Choice(list(LEVELS)), default="two_field", show_default=True,
              help="Comparison level: 2-field protein, P group, serological antigen (split) or broad antigen.")
@click.option("--null-alleles", type=click.Choice(["wmda", "allele"]), default="wmda", show_default=True,
              help="wmda: a null allele is absent (the locus counts as homozygous); allele: compared by name.")
@click.option("--tce-version", type=click.Choice(["v2", "v1"]), default="v2", show_default=True,
              help="DPB1 T-cell-epitope group assignment.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--reference", "reference_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="HAPLOMATCH_REFERENCE",
              help="Release folder (imgthla/ and ipdkir/ with the upstream layout). Default: the shipped release.")
def match_cmd(patient_gl, donor_gl, antibodies, homozygous_count, level, null_alleles, tce_version, fmt,
              reference_dir) -> None:
    """HLA compatibility of a patient and a donor: GvH/HvG mismatches per locus, match grades, HLA-B leader,
    DPB1 TCE, and donor-specific antibodies.

    \b
    Example:
      haplomatch match --patient 'A*01:01+A*02:01^B*08:01+B*07:02' \\
                       --donor 'A*01:01+A*03:01^B*08:01+B*44:02' --format json
    """
    from haplomatch.compat import compat_pair_facts, one_pair_frame, range_notes

    ref = _load(reference_dir)
    settings = CompatSettings(level=level, homozygous_count=int(homozygous_count), null_alleles=null_alleles,
                              tce_version=tce_version)
    patient = _person("patient", patient_gl, ref, "patient")
    donor = _person("donor", donor_gl, ref, "donor")
    pairs = one_pair_frame(patient, donor)
    row = compat_pair_facts(ref, pairs, settings).to_dicts()[0]
    dsa_row = dsa_src = thresholds = None
    if antibodies is not None:
        from haplomatch.cli import _antibodies
        from haplomatch.dsa import dsa_pair_facts, load_thresholds
        from haplomatch.dsa import sources as dsa_sources

        abs_, ab_warnings = _antibodies(antibodies, ref.nomenclature)
        for w in ab_warnings:  # e.g. an unmappable specificity: said, not dropped
            click.echo(w, err=True)
        named = list(dict.fromkeys(a.patient_id for a in abs_ if a.patient_id))
        if len(named) > 1:  # one patient here: a report of several would give them all to this one
            from haplomatch.cli import _fail
            from haplomatch.errors import InputError

            _fail(InputError.one(f"the antibody report names {len(named)} patients ({', '.join(named[:5])}): match "
                                 "compares one patient with one donor", file=str(antibodies), column="patient_id",
                                 fix="give the patient's rows only"))
        thresholds = load_thresholds()
        dsa_row = dsa_pair_facts(ref, pairs, abs_, thresholds).to_dicts()[0]
        dsa_src = dsa_sources(thresholds)
    report = match_report(row, settings, ref.label, dsa_row, dsa_src, thresholds,
                          range_notes(ref, patient, donor, row, settings))
    if fmt == "json":
        click.echo(json.dumps(report, indent=2, default=str))
        return
    click.echo(_text(report))
