"""Where the shipped rule and settings files (``rules/``) are: inside the installed package, or the source tree."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def rules_dir() -> Path:
    packaged = Path(str(files("haplomatch"))) / "_rules"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "rules"


def rules_path(name: str) -> Path:
    """A shipped rules file by name, e.g. ``rules_path('haplo-hsct.yaml')``."""
    return rules_dir() / name
