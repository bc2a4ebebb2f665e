"""Run by tests/test_streaming_memory.py in its own process: search a registry and report this process's peak
resident memory (VmHWM) before and after the search, in MiB, as one JSON line."""

from __future__ import annotations

import json
import sys


def _hwm() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmHWM in /proc/self/status")


def main() -> None:
    registry, batch, prepared = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "prepared"
    from haplomatch.persons import person_from_gl
    from haplomatch.reference import load_reference
    from haplomatch.search import search_registry

    ref = load_reference()
    patient = person_from_gl("PT", "A*02:01+A*24:02^B*07:02+B*44:02^DRB1*15:01+DRB1*04:01",
                             nomenclature=ref.nomenclature, relation="patient")
    # warm: the first search's one-off allocations (rules, slot keys) are not the registry's
    search_registry(ref, patient, sys.argv[4], top=5)
    before = _hwm()
    res = search_registry(ref, patient, registry, top=5, batch_size=batch)
    print(json.dumps({"before": before, "after": _hwm(), "rows": res.rows_in, "rejected": res.rejected,
                      "best": [c.id[:12] for c in res.candidates], "prepared": prepared}))


if __name__ == "__main__":
    main()
