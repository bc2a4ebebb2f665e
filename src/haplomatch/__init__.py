"""haplomatch: choose the best donor for a patient from the family, with cited rules.

The public surface is small on purpose: load a :class:`Reference` (the IPD-IMGT/HLA and IPD-KIR
release and the facts derived from it), resolve typings, ask for ligands. Heavy modules (polars) are
imported on first use, so ``haplomatch --help`` stays instant.
"""

from haplomatch.errors import HaplomatchError, ReferenceDataError, UnknownAlleleError

__all__ = [
    "__version__",
    "HaplomatchError",
    "UnknownAlleleError",
    "ReferenceDataError",
    "Reference",
    "load_reference",
    "ligands",
    "rank",
]


def _version() -> str:
    """The installed distribution's version (read on first use: importlib.metadata costs ~50 ms at start)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("haplomatch")
    except PackageNotFoundError:  # running from a source tree without installation
        return "0.0.0+local"


def __getattr__(name: str):
    if name == "__version__":
        globals()["__version__"] = v = _version()
        return v
    if name in ("Reference", "load_reference"):
        from haplomatch import reference

        return getattr(reference, name)
    if name == "ligands":
        from haplomatch.ligands import ligands

        return ligands
    raise AttributeError(f"module 'haplomatch' has no attribute {name!r}")


def rank(family, profile: str = "haplo-hsct", antibodies=None, rules=None, overrides=None, reference=None):
    """Rank a family's relatives as donors (see ``haplomatch.ranking.rank_family``); returns a ``Ranking``
    whose ``to_dict()`` is the JSON of ``haplomatch rank --format json``."""
    from haplomatch.ranking import rank_family
    from haplomatch.reference import load_reference

    return rank_family(reference or load_reference(), family, profile, antibodies, rules, overrides)
