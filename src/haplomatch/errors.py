"""Errors a user can act on: each names what is wrong and, where it can, what would fix it."""

from __future__ import annotations


class HaplomatchError(Exception):
    """Base class: a refusal with a message meant for a person, not a traceback."""


class ReferenceDataError(HaplomatchError):
    """The release folder is missing, incomplete or unreadable."""


class UnknownAlleleError(HaplomatchError):
    """A typing names nothing in the release; carries the nearest valid names."""

    def __init__(self, name: str, suggestions: list[str] | tuple[str, ...] = (), reason: str = "") -> None:
        self.name = name
        self.suggestions = tuple(suggestions)
        self.reason = reason
        msg = f"unknown HLA typing {name!r}"
        if reason:
            msg += f": {reason}"
        if self.suggestions:
            msg += "; did you mean " + ", ".join(self.suggestions) + "?"
        super().__init__(msg)
