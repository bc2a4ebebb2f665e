"""Benchmark of issue 8: registry search, batch screening, and the per-pair loop they replace.

Generates its data (the project's simulator) and reports, in one run:

(a) registry search: one patient against N donors (default 10^6): donors per second and peak memory
    (``resource.getrusage(...).ru_maxrss`` of the process that searched), from the registry file, from the
    registry prepared once (``haplomatch prepare``), and kept open (``search.OpenRegistry``) for six patients
    one after another. Target ≥ 2×10^6 donors/s, < 2 GB.
(b) batch screening of F families (default 10^5): families per second. Target: 10^5 families in < 60 s.
(c) the same pair facts computed one pair at a time by a plain per-pair loop (``pairfacts.pair_facts`` on a
    one-row pair table, the single-pair path of ``haplomatch match``/``rank``), on a sample, against the
    vectorised pass; and for the registry, the same loop against the fast search path. Target ≥ 100×.

Each measured step runs in its own Python process (so its peak memory is its own); times exclude the
interpreter start and imports but include loading the reference from its cache. Numbers are what this run
measured on this machine: nothing is extrapolated unless a line says so.

    python bench/bench_scale.py                 # full: 10^6 donors, 10^5 families (the screen takes long)
    python bench/bench_scale.py --quick         # smoke test: 10^4 donors, 10^3 families
    python bench/bench_scale.py --donors 1000000 --families 10000 --data-dir /tmp/hm-bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PATIENT = ("A*02:01+A*24:02^C*07:02+C*03:04^B*07:02+B*44:02^DRB1*15:01+DRB1*04:01^DQB1*06:02+DQB1*03:02"
           "^DPB1*04:01+DPB1*02:01")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


# -------------------------------------------------------------------------------------------- child steps

def _patient(ref, registry: str, row: int):
    """The benchmark's patient: donor ``row``'s typing with one allele changed per locus (grades vary)."""
    import polars as pl

    from haplomatch.persons import person_from_gl

    d = pl.scan_parquet(registry).slice(row, 1).collect().row(0, named=True)
    loci = ("A", "C", "B", "DRB1", "DQB1", "DPB1")
    p_loci = PATIENT.split("^")
    gl = "^".join(f"{d[f'{loc}_1']}+{p_loci[i].split('+')[1]}" for i, loc in enumerate(loci))
    return person_from_gl(f"PT{row}", gl, nomenclature=ref.nomenclature, relation="patient", sex="F", cmv=False,
                          abo="A", rh="+")


def child_search(registry: str, top: int, batch: int, patient_from: str = "") -> dict:
    from haplomatch.reference import load_reference
    from haplomatch.search import search_registry
    # the modules the search imports on first use (imports are not timed, as the docstring says)
    import haplomatch.familyfile, haplomatch.kirscores, haplomatch.pairfacts, haplomatch.ranking  # noqa: E401, F401

    t0 = time.perf_counter()
    ref = load_reference()
    patient = _patient(ref, patient_from or registry, 0)
    t_setup = time.perf_counter() - t0
    from haplomatch.slotcache import table_path
    cached = table_path(ref, "two_field", "wmda").is_file()  # the default comparison settings
    res = search_registry(ref, patient, registry, top=top, batch_size=batch)
    return {"rows": res.rows_in, "seconds": res.seconds, "setup_seconds": t_setup, "timings": res.timings,
            "slot_keys_cached": cached,
            "batches": res.batches, "batch_seconds": list(res.batch_seconds),
            "best": [c.summary for c in res.candidates[:3]], "ids": [c.id for c in res.candidates],
            "path": res.path, "peak_mb": _peak_mb()}


def child_search_opened(registry: str, top: int, patients_from: str, n_patients: int, workers: int = 1) -> dict:
    """A registry opened once (``search.OpenRegistry``, in ``workers`` processes), then one search per patient,
    each timed."""
    from haplomatch.reference import load_reference
    from haplomatch.search import OpenRegistry, search_registry
    import haplomatch.familyfile, haplomatch.kirscores, haplomatch.pairfacts, haplomatch.ranking  # noqa: E401, F401

    ref = load_reference()
    patients = [_patient(ref, patients_from, row) for row in range(n_patients)]
    t0 = time.perf_counter()
    opened = OpenRegistry(ref, registry, workers=workers)
    t_open = time.perf_counter() - t0
    runs = []
    for p in patients:
        res = search_registry(ref, p, opened, top=top)
        runs.append({"seconds": res.seconds, "timings": res.timings, "ids": [c.id for c in res.candidates],
                     "worker_peak_mb": res.worker_peak_mb or 0.0})
    opened.close()
    return {"rows": opened.rows, "open_seconds": t_open, "runs": runs, "peak_mb": _peak_mb(),
            "worker_peak_mb": max(r["worker_peak_mb"] for r in runs)}


def child_prepare(registry: str, out: str, batch: int) -> dict:
    import shutil

    from haplomatch.prepared import prepare_registry

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    p = prepare_registry(registry, out, batch_size=batch)
    secs = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in Path(out).iterdir())
    return {"seconds": secs, "rows": p.rows, "mb": size / 2**20, "peak_mb": _peak_mb()}


def child_screen(families: str, workers: int) -> dict:
    from haplomatch.reference import load_reference
    from haplomatch.screen import screen_files

    t0 = time.perf_counter()
    ref = load_reference()
    _ = ref.nomenclature
    t_setup = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = screen_files(ref, [families], workers=workers)
    secs = time.perf_counter() - t1
    return {"seconds": secs, "setup_seconds": t_setup, "timings": res.timings, "families": res.families,
            "rows_in": res.rows_in, "candidates": res.candidates_out, "rejected": res.rejected,
            "line": res.summary_line(), "peak_mb": _peak_mb(), "peak_worker_mb": res.worker_peak_mb}


def child_baseline_pairs(families: str, n_families: int, sample: int) -> dict:
    """Per-pair loop vs one vectorised pass over the same pairs (segregation done beforehand, not timed)."""
    import polars as pl

    from haplomatch.familyfile import read_family_file
    from haplomatch.pairfacts import family_pairs, pair_facts, segregation_frame
    from haplomatch.reference import load_reference
    from haplomatch.segregation import segregate

    ref = load_reference()
    table = pl.read_csv(families, infer_schema=False)
    keep = table["family_id"].unique(maintain_order=True).head(n_families).to_list()
    sub = Path(families).with_name("baseline_families.csv")
    table.filter(pl.col("family_id").is_in(keep)).write_csv(sub)
    fams, _ = read_family_file(sub, ref.nomenclature, strict=False)
    pairs, segs = [], []
    for f in fams:
        try:
            seg = segregate(f, ref.nomenclature)
        except Exception:  # noqa: BLE001 - a family the simulator made unusable is left out of both sides
            continue
        fk = f"{f.id}"
        pairs.append(family_pairs(f).with_columns(pl.lit(fk).alias("patient_family_id"),
                                                  pl.lit(fk).alias("donor_family_id")))
        segs.append(segregation_frame(f, seg).with_columns(pl.lit(fk).alias("family_id")))
    all_pairs = pl.concat(pairs, how="vertical_relaxed")
    seg = pl.concat(segs, how="vertical_relaxed")
    pair_facts(ref, all_pairs.head(2), seg)  # warm the caches for both sides
    t = time.perf_counter()
    vec = pair_facts(ref, all_pairs, seg)
    t_vec = time.perf_counter() - t
    n = min(sample, all_pairs.height)
    t = time.perf_counter()
    rows = [pair_facts(ref, all_pairs.slice(i, 1), seg) for i in range(n)]
    t_loop = time.perf_counter() - t
    # the loop computes the same facts
    same = all(r.select(c).equals(vec.slice(i, 1).select(c)) for i, r in enumerate(rows[:20])
               for c in ("grade8_bi", "hla_class", "rl_count", "dpb1_tce", "abo_relation"))
    return {"pairs": all_pairs.height, "vector_seconds": t_vec, "sample": n, "loop_seconds": t_loop, "same": same}


def child_baseline_registry(registry: str, sample: int, batch: int) -> dict:
    """Per-donor loop (one-row pair table through pair_facts) vs the search fast path, per donor."""
    import polars as pl

    from haplomatch.pairfacts import pair_facts
    from haplomatch.persons import pair_frame, people_frame, person_from_gl
    from haplomatch.reference import load_reference
    from haplomatch.search import RegistryReader, registry_layout

    ref = load_reference()
    patient = person_from_gl("PT", PATIENT, nomenclature=ref.nomenclature, relation="patient")
    reg = pl.scan_parquet(registry).head(sample).collect()
    layout, _ = registry_layout(reg.columns)
    batch_ = RegistryReader(ref, layout).read(reg)
    donors = batch_.people()
    pdf = people_frame([patient])
    pair_facts(ref, pair_frame(pdf, donors.head(2)), None)
    t = time.perf_counter()
    for i in range(donors.height):
        pair_facts(ref, pair_frame(pdf, donors.slice(i, 1)), None)
    t_loop = time.perf_counter() - t
    return {"sample": donors.height, "loop_seconds": t_loop}


CHILDREN = {"search": child_search, "search_opened": child_search_opened, "prepare": child_prepare,
            "screen": child_screen, "baseline_pairs": child_baseline_pairs,
            "baseline_registry": child_baseline_registry}


def run_child(step: str, *args) -> dict:
    cmd = [sys.executable, __file__, "--child", step, *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if p.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# -------------------------------------------------------------------------------------------- main

def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import polars as pl

    return (f"{platform.machine()}, {os.cpu_count()} CPUs ({model or 'unknown model'}), Python "
            f"{platform.python_version()}, polars {pl.__version__}, load average {os.getloadavg()[0]:.2f} at start")


def pace() -> str:
    """Milliseconds for a fixed pure-Python workload of the screen's kind (strings, tuples, dicts), median of
    three: a VM's speed can drift by a fifth within minutes, and runs are only comparable at equal pace."""
    def work() -> int:
        seen: dict[tuple[str, int], int] = {}
        for i in range(200_000):
            key = (f"A*{i % 997:02d}:{i % 89:02d}", i % 7)
            seen[key] = seen.get(key, 0) + len(key[0])
        return sum(seen.values())

    times = []
    for _ in range(3):
        t = time.perf_counter()
        work()
        times.append(time.perf_counter() - t)
    return f"pace {sorted(times)[1] * 1e3:.0f} ms (a fixed Python workload; lower is faster)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke test: 10^4 donors, 10^3 families")
    ap.add_argument("--donors", type=int, help="registry size (default 10^6; --quick 10^4)")
    ap.add_argument("--families", type=int, help="families to screen (default 10^5; --quick 10^3)")
    ap.add_argument("--batch", type=int, default=200_000, help="registry batch size")
    ap.add_argument("--sample", type=int, help="pairs in the per-pair baseline (default 200; --quick 30)")
    ap.add_argument("--data-dir", type=Path, help="keep the generated data here (reused when present)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="processes for the screen, and for the registry kept open in shares (default: the CPUs)")
    ap.add_argument("--only", choices=("search", "screen"), help="run one part only: (a) search, or (b)+(c) screen")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        step, *args = a.child
        fn = CHILDREN[step]
        conv = [int(x) if x.isdigit() else x for x in args]
        print(json.dumps(fn(*conv), default=str))
        return
    n_donors = a.donors or (10_000 if a.quick else 1_000_000)
    n_fam = a.families or (1_000 if a.quick else 100_000)
    sample = a.sample or (30 if a.quick else 200)
    data = a.data_dir or Path(tempfile.mkdtemp(prefix="hm-bench-"))
    data.mkdir(parents=True, exist_ok=True)
    registry, families = data / f"registry_{n_donors}.parquet", data / f"families_{n_fam}.csv"

    print(f"# haplomatch scale benchmark\n\nmachine: {machine()}")
    print(f"command: python bench/bench_scale.py {' '.join(sys.argv[1:])}".rstrip())
    t = time.perf_counter()
    if not registry.exists():
        subprocess.run([sys.executable, "-m", "haplomatch.cli_simulate", "registry", "--n", str(n_donors),
                        "--seed", "1", "--out", str(registry)], check=True, capture_output=True)
    if not families.exists() and a.only != "search":
        subprocess.run([sys.executable, "-m", "haplomatch.cli_simulate", "families", "--n", str(n_fam), "--seed", "1",
                        "--out", str(families), "--recombination-rate", "0.02", "--homozygous-rate", "0.05",
                        "--missing-parents", "one", "--missing-rate", "0.2"], check=True, capture_output=True)
    print(f"data: {data} (generated or reused in {time.perf_counter() - t:.1f} s)\n")

    if a.only == "screen":
        return main_screen(a, families, registry, sample, None)
    print(f"before (a): {pace()}")
    s = run_child("search", registry, 10, a.batch)
    tm = s["timings"]
    steady = s["rows"] / max(tm.get("read", 0) + tm.get("cells", 0) + tm.get("facts", 0) + tm.get("select", 0), 1e-9)
    print(f"(a) registry search, 1 patient x {s['rows']:,} donors ({s['batches']} batches of {a.batch:,}; "
          f"{s['path']} facts)")
    print(f"    search: {s['seconds']:.2f} s = {s['rows'] / s['seconds']:,.0f} donors/s "
          f"(target >= 2,000,000/s); peak memory {s['peak_mb']:,.0f} MB (target < 2,048 MB)")
    print("    where the time goes: " + ", ".join(f"{k} {v:.2f} s" for k, v in tm.items())
          + f"; reference load and patient {s['setup_seconds']:.2f} s (not counted)")
    print(f"    all phases but 'final' (the full facts and explanations of the best 10): {steady:,.0f} donors/s")
    bs = s.get("batch_seconds") or []
    if len(bs) > 1:  # the first batch reads every new cell value; the later ones mostly look values up
        later = sum(bs[1:])
        print(f"    per batch: first {bs[0]:.2f} s (its distinct cell values read once), the {len(bs) - 1} later "
              f"{later:.2f} s = {(s['rows'] - a.batch) / max(later, 1e-9):,.0f} donors/s")
    print("    plain allele names' comparison keys: " + (
        "read from the release's cached table" if s.get("slot_keys_cached") else
        "derived during this run and cached (first search after a release or code change; later runs read it)"))
    print(f"    best: {s['best'][0]}")
    prepared = data / f"registry_{n_donors}.prepared"
    pr = run_child("prepare", registry, prepared, a.batch)
    ps = run_child("search", prepared, 10, a.batch, registry)
    ptm = ps["timings"]
    print(f"(a) the same registry prepared (haplomatch prepare, once per registry update: {pr['seconds']:.2f} s, "
          f"{pr['mb']:.0f} MB on disk, peak {pr['peak_mb']:,.0f} MB)")
    print(f"    search: {ps['seconds']:.2f} s = {ps['rows'] / ps['seconds']:,.0f} donors/s "
          f"(target >= 2,000,000/s); peak memory {ps['peak_mb']:,.0f} MB (target < 2,048 MB)")
    print("    where the time goes: " + ", ".join(f"{k} {v:.2f} s" for k, v in ptm.items()))
    print(f"    the same best {len(s['ids'])} as the file, in the same order: "
          f"{'yes' if ps['ids'] == s['ids'] else 'NO (a bug)'}")
    for workers in sorted({1, a.workers}):
        o = run_child("search_opened", prepared, 10, registry, 6, workers)
        secs = [r["seconds"] for r in o["runs"]]
        how = ("" if workers == 1 else f" in {workers} shares, one per process (OpenRegistry(workers={workers}): "
               f"the searches run on {workers} CPUs)")
        print(f"(a) the prepared registry opened once{how} (search.OpenRegistry, for registry software that imports "
              f"haplomatch: {o['open_seconds']:.2f} s), then one search per patient, {len(secs)} patients")
        med = sorted(secs)[len(secs) // 2]
        memory = f"peak memory {o['peak_mb']:,.0f} MB"
        if workers > 1:
            memory += (f" + at most {o['worker_peak_mb']:,.0f} MB in each of the {workers - 1} other processes = "
                       f"{o['peak_mb'] + (workers - 1) * o['worker_peak_mb']:,.0f} MB in all (target < 2,048 MB)")
        print("    searches: " + ", ".join(f"{x:.2f} s" for x in secs) + f" = {o['rows'] / max(secs):,.0f}-"
              f"{o['rows'] / min(secs):,.0f} donors/s, median {o['rows'] / med:,.0f} (target >= 2,000,000/s); "
              + memory)
        print("    where the time goes (median search): " + ", ".join(
            f"{k} {v:.2f} s" for k, v in sorted(o["runs"], key=lambda r: r["seconds"])[len(secs) // 2]["timings"].items()))
        print(f"    the first patient's best {len(s['ids'])} are the file's: "
              f"{'yes' if o['runs'][0]['ids'] == s['ids'] else 'NO (a bug)'}")
    print()
    if a.only == "search":
        return
    main_screen(a, families, registry, sample, s)


def main_screen(a, families: Path, registry: Path, sample: int, s: dict | None) -> None:
    print(f"before (b): {pace()}")
    sc = run_child("screen", families, a.workers)
    after = pace()
    fps = sc["families"] / sc["seconds"]
    print(f"(b) screening {sc['families']:,} families (in {a.workers} process(es)) ({sc['rows_in']:,} rows -> {sc['candidates']:,} candidates, "
          f"{sc['rejected']:,} rows rejected)")
    worker = f", {sc['peak_worker_mb']:,.0f} MB (largest worker)" if sc["peak_worker_mb"] else ""
    print(f"    screen: {sc['seconds']:.1f} s = {fps:,.0f} families/s (target: 100,000 families in < 60 s, i.e. "
          f">= 1,667 families/s); peak memory {sc['peak_mb']:,.0f} MB (main process){worker}")
    tm = sc["timings"]
    print("    where the time goes (seconds per phase, summed over the worker processes): "
          + ", ".join(f"{k} {v:.2f} s" for k, v in tm.items() if k != "wall" and not k.startswith("main_")))
    if "main_split" in tm:
        print(f"    main process: reading and cutting the files {tm['main_split']:.2f} s, joining the parts "
              f"{tm['main_merge']:.2f} s")
    print(f"    {sc['line']}")
    print(f"after (b): {after}\n")

    bp = run_child("baseline_pairs", families, max(10, sample // 4), sample)
    per_loop = bp["loop_seconds"] / bp["sample"]
    per_vec = sc["timings"]["pair_facts"] / max(sc["candidates"], 1)
    print(f"(c) per-pair loop vs the vectorised pass (the loop's facts equal the pass's: {'yes' if bp['same'] else 'NO'})")
    print(f"    family pairs: the screen's one pair_facts pass over {sc['candidates']:,} pairs took "
          f"{sc['timings']['pair_facts']:.2f} s ({per_vec * 1e3:.3f} ms/pair); the loop, one pair_facts call per pair "
          f"over {bp['sample']} pairs, {bp['loop_seconds']:.1f} s ({per_loop * 1e3:.1f} ms/pair): "
          f"{per_loop / per_vec:,.0f}x (target >= 100x)")
    print(f"    (same pass on the loop's own {bp['pairs']} pairs only: {bp['vector_seconds'] / bp['pairs'] * 1e3:.2f} "
          f"ms/pair, {per_loop / (bp['vector_seconds'] / bp['pairs']):,.0f}x: fixed costs weigh on small batches)")
    per_pair_screen = sc["seconds"] / max(sc["candidates"], 1)
    print(f"    whole screen (reading, segregation, facts, ranking) per pair: {per_pair_screen * 1e3:.2f} ms = "
          f"{per_loop / per_pair_screen:,.0f}x the facts-only loop")
    if s is None:
        return
    br = run_child("baseline_registry", registry, sample, a.batch)
    per_donor_loop = br["loop_seconds"] / br["sample"]
    per_donor_fast = s["seconds"] / s["rows"]
    print(f"    registry donors: loop {per_donor_loop * 1e3:.1f} ms/donor ({br['sample']} donors) vs search "
          f"{per_donor_fast * 1e6:.2f} us/donor: {per_donor_loop / per_donor_fast:,.0f}x")


if __name__ == "__main__":
    main()
