"""Where the release files are, which release they are, and a checksum that keys the cache.

The shipped files live inside the installed package (``haplomatch/_reference``, put there by the wheel
build from the repository's ``reference/``); a user may point at a newer release folder with the same
layout via ``--reference DIR`` or ``HAPLOMATCH_REFERENCE``. Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from haplomatch.errors import ReferenceDataError

#: Files (relative to the release folder) the engine reads. All must be present.
REQUIRED_FILES: tuple[str, ...] = (
    "imgthla/release_version.txt",
    "imgthla/Allelelist.txt",
    "imgthla/Deleted_alleles.txt",
    "imgthla/wmda/rel_dna_ser.txt",
    "imgthla/wmda/rel_ser_ser.txt",
    "imgthla/wmda/hla_nom_g.txt",
    "imgthla/wmda/hla_nom_p.txt",
    "imgthla/fasta/A_prot.fasta",
    "imgthla/fasta/B_prot.fasta",
    "imgthla/fasta/C_prot.fasta",
    "imgthla/tce/dpb_tce.csv",
    "ipdkir/release_version.txt",
    "ipdkir/Allelelist.txt",
)

_VERSION_RE = re.compile(r"^#\s*version:\s*(?:IPD-IMGT/HLA|IPD-KIR)\s+(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class Release:
    """One release folder: its path, the two release numbers and a content checksum."""

    root: Path
    imgthla: str
    ipdkir: str
    checksum: str

    def path(self, rel: str) -> Path:
        return self.root / rel

    @property
    def key(self) -> str:
        """Cache key: both releases plus a short checksum of the files read."""
        return f"imgthla-{self.imgthla}_ipdkir-{self.ipdkir}_{self.checksum[:12]}"


def shipped_root() -> Path:
    """The release folder that comes with haplomatch (installed wheel, or the source tree)."""
    packaged = Path(str(files("haplomatch"))) / "_reference"
    if packaged.is_dir():
        return packaged
    source_tree = Path(__file__).resolve().parents[3] / "reference"
    if source_tree.is_dir():
        return source_tree
    raise ReferenceDataError(
        "the shipped reference files are missing from this installation; reinstall haplomatch "
        "or point at a release folder with --reference DIR"
    )


def _read_version(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace")[:2000]
    m = _VERSION_RE.search(text)
    if not m:
        raise ReferenceDataError(f"{path}: no '# version:' line naming the release")
    return m.group(1)


def open_release(root: str | os.PathLike[str] | None = None) -> Release:
    """Check a release folder and read its versions; default: $HAPLOMATCH_REFERENCE, else the shipped one."""
    if root is None:
        root = os.environ.get("HAPLOMATCH_REFERENCE") or shipped_root()
    root = Path(root).expanduser().resolve()
    missing = [rel for rel in REQUIRED_FILES if not (root / rel).is_file()]
    if missing:
        raise ReferenceDataError(
            f"release folder {root} lacks {', '.join(missing)}; it must have the layout of the "
            "IPD-IMGT/HLA and IPD-KIR repositories under imgthla/ and ipdkir/"
        )
    stats = tuple((rel, (root / rel).stat()) for rel in REQUIRED_FILES)
    # Callers open the release once per lookup (load_reference); reading the files again is only needed
    # when one of them changed, which size and modification time tell.
    signature = (root, tuple((rel, st.st_size, st.st_mtime_ns, st.st_ino) for rel, st in stats))
    hit = _OPENED.get(root)
    if hit is not None and hit[0] == signature:
        return hit[1]
    digest = hashlib.sha256()
    for rel, st in stats:
        p = root / rel
        # size + first and last 64 KiB: cheap, and changes whenever a release changes a file.
        digest.update(rel.encode())
        digest.update(str(st.st_size).encode())
        with p.open("rb") as fh:
            digest.update(fh.read(65536))
            if st.st_size > 65536:
                fh.seek(max(st.st_size - 65536, 65536))
                digest.update(fh.read())
    release = Release(
        root=root,
        imgthla=_read_version(root / "imgthla/release_version.txt"),
        ipdkir=_read_version(root / "ipdkir/release_version.txt"),
        checksum=digest.hexdigest(),
    )
    _OPENED[root] = (signature, release)
    return release


#: root → (stat signature of the required files, the Release read from them)
_OPENED: dict[Path, tuple[tuple, Release]] = {}
