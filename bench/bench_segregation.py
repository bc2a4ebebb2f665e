"""Benchmark: segregation of a 12-person family typed at 6 loci (issue 4 target: under 50 ms), and the
per-family cost over simulated families (issue 8: 10^5 families screened in under 60 s on 2 cores).

Families: (1) both parents + 10 children; (2) 4 grandparents, both parents, 6 children (the grandparents
compared by state). Haplotypes are common ones; one child carries a DQB1-DPB1 recombinant. Simulated:
``--families N`` families as bench_scale.py makes them (3 siblings, recombination 0.02, homozygous 0.05, one
parent missing in 20%), timed as a loop over ``segregate`` (CPU time, so other load on the machine counts
less), split by kind of family.

``--file PATH`` times the families of a family file instead (e.g. the screen's benchmark mix).

    python bench/bench_segregation.py [--runs 20] [--families 2000] [--file families.csv]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

H = {
    "a": ["A*01:01", "C*07:01", "B*08:01", "DRB1*03:01", "DQB1*02:01", "DPB1*04:01"],
    "b": ["A*03:01", "C*07:02", "B*07:02", "DRB1*15:01", "DQB1*06:02", "DPB1*02:01"],
    "c": ["A*02:01", "C*05:01", "B*44:02", "DRB1*04:01", "DQB1*03:02", "DPB1*03:01"],
    "d": ["A*24:02", "C*15:02", "B*51:01", "DRB1*11:01", "DQB1*03:01", "DPB1*04:02"],
    "e": ["A*11:01", "C*04:01", "B*35:01", "DRB1*01:01", "DQB1*05:01", "DPB1*05:01"],
    "f": ["A*26:01", "C*12:03", "B*38:01", "DRB1*13:01", "DQB1*06:03", "DPB1*06:01"],
}
LOCI = ["A", "C", "B", "DRB1", "DQB1", "DPB1"]


def row(pid, rel, h1, h2):
    return ",".join([pid, rel] + [f"{x}+{y}" for x, y in zip(h1, h2)])


def families(tmp: Path) -> dict[str, Path]:
    rec = H["a"][:5] + H["b"][5:]
    kids = [("a", "c"), ("a", "d"), ("b", "c"), ("b", "d")]
    big = [row("F", "father", H["a"], H["b"]), row("M", "mother", H["c"], H["d"]), row("P", "patient", H["a"], H["c"])]
    big += [row(f"S{i}", "sibling", H[kids[i % 4][0]], H[kids[i % 4][1]]) for i in range(8)]
    big.append(row("R", "sibling", rec, H["c"]))
    three = [row("PGF", "paternal grandfather", H["a"], H["e"]), row("PGM", "paternal grandmother", H["b"], H["f"]),
             row("MGF", "maternal grandfather", H["c"], H["e"]), row("MGM", "maternal grandmother", H["d"], H["f"])]
    three += big[:3] + big[3:8] + [big[-1]]
    out = {}
    for name, rows in (("parents+10 children", big), ("3 generations", three)):
        p = tmp / f"{name.replace(' ', '_').replace('+', '_')}.csv"
        p.write_text("id,relation," + ",".join(LOCI) + "\n" + "\n".join(rows) + "\n")
        out[name] = p
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--families", type=int, default=2000, help="simulated families (0: skip)")
    ap.add_argument("--file", type=Path, help="time the families of this family file instead of simulated ones")
    a = ap.parse_args()
    runs = a.runs
    from haplomatch.familyfile import read_family_file
    from haplomatch.reference import load_reference
    from haplomatch.segregation import _clear_kept, segregate

    ref = load_reference()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in families(Path(tmp)).items():
            (fam,), _ = read_family_file(path, ref.nomenclature)
            segregate(fam, ref.nomenclature)  # warm the allele caches
            times = []
            for _ in range(runs):
                _clear_kept()  # each run computes the family anew (not from the answers kept from the last)
                t0 = time.perf_counter()
                segregate(fam, ref.nomenclature)
                times.append(time.perf_counter() - t0)
            print(f"{name} ({len(fam.people)} people, 6 loci): median {1000 * statistics.median(times):.1f} ms, "
                  f"min {1000 * min(times):.1f} ms (target < 50 ms)")
        if a.file:
            timed(a.file, ref, "file")
        elif a.families:
            simulated(Path(tmp), a.families, ref)


def simulated(tmp: Path, n: int, ref) -> None:
    from haplomatch.simulate import SimOptions, simulate_families, write_families

    opts = SimOptions(recombination_rate=0.02, homozygous_rate=0.05, missing_parents="one", missing_rate=0.2, kir=False)
    path = tmp / "simulated.csv"
    write_families(simulate_families(n, seed=1, options=opts, ref=ref), path)
    timed(path, ref, "simulated")


def timed(path: Path, ref, label: str) -> None:
    """CPU time of segregate per family, by kind of family (both parents in the file, or not)."""
    from haplomatch.familyfile import read_family_file
    from haplomatch.segregation import segregate

    fams, _ = read_family_file(path, ref.nomenclature, strict=False)
    n = len(fams)
    for f in fams[:50]:
        segregate(f, ref.nomenclature)  # warm the allele caches
    kinds: dict[str, list] = {}
    for f in fams:
        roles = {p.relation for p in f.people}
        kinds.setdefault("both parents" if {"father", "mother"} <= roles else "one parent missing", []).append(f)
    total = 0.0
    for kind, group in sorted(kinds.items()):
        t0 = time.process_time()
        for f in group:
            segregate(f, ref.nomenclature)
        dt = time.process_time() - t0
        total += dt
        print(f"{label}, {kind}: {len(group)} families, {1000 * dt / len(group):.2f} ms/family (CPU)")
    print(f"{label}, all: {n} families, {1000 * total / n:.2f} ms/family (CPU); 10^5 families: {total / n * 1e5:.0f} s "
          "of one core")


if __name__ == "__main__":
    main()
