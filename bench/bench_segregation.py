"""Benchmark: segregation of a 12-person family typed at 6 loci (issue 4 target: under 50 ms).

Families: (1) both parents + 10 children; (2) 4 grandparents, both parents, 6 children (the grandparents
compared by state). Haplotypes are common ones; one child carries a DQB1-DPB1 recombinant.

    python bench/bench_segregation.py [--runs 20]
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
    runs = ap.parse_args().runs
    from haplomatch.familyfile import read_family_file
    from haplomatch.reference import load_reference
    from haplomatch.segregation import segregate

    ref = load_reference()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in families(Path(tmp)).items():
            (fam,), _ = read_family_file(path, ref.nomenclature)
            segregate(fam, ref.nomenclature)  # warm the allele caches
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                segregate(fam, ref.nomenclature)
                times.append(time.perf_counter() - t0)
            print(f"{name} ({len(fam.people)} people, 6 loci): median {1000 * statistics.median(times):.1f} ms, "
                  f"min {1000 * min(times):.1f} ms (target < 50 ms)")


if __name__ == "__main__":
    main()
