"""Benchmark: cold cache build and a warm `haplomatch ligands` call, as a user sees them (wall clock of
the console script, interpreter start included). Targets (issue 2): cold <= 10 s, warm <= 0.5 s.

    python bench/bench_reference.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIGANDS = ["ligands", "C*07:02", "C*16:02", "B*57:01", "B*44:02", "B*46:01", "A*24:02", "B*15", "--format", "json"]


def haplomatch() -> list[str]:
    exe = shutil.which("haplomatch", path=str(Path(sys.executable).parent)) or shutil.which("haplomatch")
    return [exe] if exe else [sys.executable, "-m", "haplomatch.cli"]


def timed(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(haplomatch() + args, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    n = ap.parse_args().runs
    cold, warm = [], []
    for _ in range(n):
        cache = tempfile.mkdtemp(prefix="hm-bench-")
        env = {**os.environ, "HAPLOMATCH_CACHE": cache}
        cold.append(timed(LIGANDS, env))  # first use: derives every fact from the release files
        warm.extend(timed(LIGANDS, env) for _ in range(3))
        shutil.rmtree(cache, ignore_errors=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}")
    print(f"cold (empty cache, build + answer): median {statistics.median(cold):.2f} s  (min {min(cold):.2f}, max {max(cold):.2f}; target <= 10 s)")
    print(f"warm (cache built):                 median {statistics.median(warm):.2f} s  (min {min(warm):.2f}, max {max(warm):.2f}; target <= 0.5 s)")


if __name__ == "__main__":
    main()
