"""haplomatch: choose the best donor for a patient from the family, with cited rules.

The public surface is small on purpose: load a :class:`Reference` (the IPD-IMGT/HLA and IPD-KIR
release and the facts derived from it), resolve typings, ask for ligands. Everything else is
reached through these.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("haplomatch")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

from haplomatch.errors import HaplomatchError, UnknownAlleleError, ReferenceDataError
from haplomatch.reference import Reference, load_reference

__all__ = [
    "__version__",
    "HaplomatchError",
    "UnknownAlleleError",
    "ReferenceDataError",
    "Reference",
    "load_reference",
]
