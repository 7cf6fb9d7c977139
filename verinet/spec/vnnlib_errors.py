"""Errors and source positions of the VNN-LIB reader.

Every error names the source, line and column it refers to, on one line:
``prop.vnnlib:12:5: undeclared variable X_9``.
"""

from __future__ import annotations

from dataclasses import dataclass

from verinet.types import PropertyError

_MAX_SHOWN = 40


@dataclass(frozen=True, slots=True)
class Pos:
    """A 1-based ``line:column`` position in the source text."""

    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.line}:{self.col}"


class VnnlibError(PropertyError):
    """Base of the VNN-LIB reader's errors; ``source``, ``pos`` and ``detail`` are kept."""

    def __init__(self, source: str, pos: Pos, detail: str) -> None:
        self.source = source
        self.pos = pos
        self.detail = " ".join(detail.split())  # errors are always one line
        super().__init__(f"{source}:{pos.line}:{pos.col}: {self.detail}")


class VnnlibSyntaxError(VnnlibError):
    """The text is not a well-formed sequence of s-expressions (tokenizer and parser)."""


class VnnlibSemanticError(VnnlibError):
    """Well-formed s-expressions that do not describe a supported property (normaliser)."""


def shown(text: str) -> str:
    """``text`` quoted and shortened for an error message."""
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return repr(text)
