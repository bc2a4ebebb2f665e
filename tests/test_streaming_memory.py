"""A registry larger than the memory a search may use streams: the search completes, and its peak resident
memory grows by less than a set budget that is smaller than the registry file (and far smaller than the
registry held in memory). Issue 8 asks for this; it is measured, not assumed, in a process of its own.

It found that the rejected rows (and the best donors) kept from a batch kept that batch's whole column of donor
ids alive (polars text gathered from a column shares its buffer): with a rejected row in every batch, every
batch stayed in memory, and a registry larger than memory would not have streamed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from haplomatch.simulate import AllelePool, simulate_registry

BUDGET_MB = 150  # what the search may add to its process's peak resident memory
CHILD = Path(__file__).with_name("memory_search_child.py")


def _bulky_registry(pool, n: int, path: Path) -> int:
    """A simulated registry whose donor ids are ~2,000 characters of hash digits (read by the search, hard
    to compress), with a row that does not read every 997 rows: its size in memory is what polars estimates;
    the file is written to ``path``."""
    reg = simulate_registry(n, 3, pool=pool)
    ids = pl.concat_str([pl.int_range(pl.len()).hash(seed).cast(pl.String) for seed in range(100)])
    # and a row that does not read (sex X) every 997 rows: rejected rows are kept, with their ids, to the end
    sex = pl.when(pl.int_range(pl.len()) % 997 == 5).then(pl.lit("X")).otherwise(pl.col("sex"))
    reg = reg.with_columns(ids.alias("donor_id"), sex.alias("sex"))
    reg.write_parquet(path, row_group_size=10_000)
    return reg.estimated_size()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["file", "prepared"])
def test_search_streams_a_registry_larger_than_its_memory_budget(ref, tmp_path, kind):
    pool = AllelePool.from_reference(ref)
    path = tmp_path / "bulky.parquet"
    in_memory = _bulky_registry(pool, 200_000, path)
    small = tmp_path / "small.parquet"
    simulate_registry(200, 4, pool=pool).write_parquet(small)
    target = path
    if kind == "prepared":
        from haplomatch.prepared import prepare_registry

        target = prepare_registry(path, tmp_path / "bulky.prepared", batch_size=10_000).path
    file_mb = sum(f.stat().st_size for f in ([target] if target.is_file() else target.iterdir())) / 2**20
    assert file_mb > BUDGET_MB and in_memory / 2**20 > 2.5 * BUDGET_MB  # the premise
    # batches of 2,000 rows (~4 MB of donor ids each): the search holds a few batches at a time, whatever the size
    # of the registry
    out = subprocess.run([sys.executable, str(CHILD), str(target), "2000", kind, str(small)],
                         capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["rows"] == 200_000 and got["rejected"] == 201 and len(got["best"]) == 5
    assert got["after"] - got["before"] < BUDGET_MB, got
