"""Shared fixtures: one reference release loaded per test session, in a private cache folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Never touch the user's cache: every session builds its own (which also tests the cold build)."""
    if "HAPLOMATCH_CACHE" not in os.environ:
        os.environ["HAPLOMATCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def ref():
    from haplomatch.reference import load_reference

    return load_reference()


@pytest.fixture(scope="session")
def alleles(ref):
    return ref.alleles


def fact(alleles, name: str, column: str):
    """One fact of one allele, by full name."""
    import polars as pl

    rows = alleles.filter(pl.col("allele") == name)
    assert rows.height == 1, f"{name} not in the release"
    return rows[column][0]
