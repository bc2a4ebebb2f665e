"""Errors a user can act on: each names what is wrong and, where it can, what would fix it."""

from __future__ import annotations


class HaplomatchError(Exception):
    """Base class: a refusal with a message meant for a person, not a traceback."""

    def __reduce__(self):
        """Pickled as it is (its fields, not its constructor's arguments): a refusal raised in another process
        (``screen``'s workers, an ``OpenRegistry``'s shares) reaches the caller whole."""
        return _rebuilt, (type(self), self.args, self.__dict__)


def _rebuilt(cls: type, args: tuple, state: dict) -> HaplomatchError:
    e = cls.__new__(cls)
    Exception.__init__(e, *args)
    e.__dict__.update(state)
    return e


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


from dataclasses import dataclass  # noqa: E402
from typing import Literal  # noqa: E402

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located precisely enough for a person to fix it.

    ``row`` is the 1-based data row (the header not counted); ``file``, ``row`` and ``column`` are None
    when the input did not come from a file (a GL string on the command line, say).
    """

    message: str
    severity: Severity = "error"
    file: str | None = None
    row: int | None = None
    column: str | None = None
    value: str | None = None
    fix: str | None = None

    def to_dict(self) -> dict:
        return {
            "file": self.file, "row": self.row, "column": self.column, "value": self.value,
            "message": self.message, "severity": self.severity, "fix": self.fix,
        }

    def __str__(self) -> str:
        where = ":".join(str(x) for x in (self.file, self.row) if x is not None)
        where += f" [{self.column}]" if self.column else ""
        val = f" {self.value!r}:" if self.value is not None else ""
        fix = f" ({self.fix})" if self.fix else ""
        return f"{self.severity}: {where + ': ' if where else ''}{val} {self.message}{fix}".replace("  ", " ")


class InputError(HaplomatchError):
    """Input that cannot be read as it is. Carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        head = "; ".join(str(p) for p in self.problems[:3])
        more = f" (and {len(self.problems) - 3} more)" if len(self.problems) > 3 else ""
        super().__init__(head + more)

    @classmethod
    def one(cls, message: str, **where) -> "InputError":
        return cls([Problem(message, **where)])
