"""VNN-LIB stages 1 and 2: tokenizer and s-expression parser.

Tokens are parentheses, numbers (``3``, ``-3.2E+02``, ``.5``, ``5.``, ``1e-5``), SMT-LIB
simple symbols and keywords (``:status``); ``;`` starts a comment that runs to the end of
the line.  ``\\n``, ``\\r\\n`` and ``\\r`` all end a line, and a leading UTF-8 byte-order
mark is ignored.  Both stages raise :class:`VnnlibSyntaxError` with the position of the
offending token.

For speed, nodes remember the *index* of their token, not its line and column; a
:class:`Locator` turns an index into a position when an error is reported.
"""

from __future__ import annotations

import bisect
import math
import re
from typing import NamedTuple, Union

from verinet.spec.vnnlib_errors import Pos, VnnlibSemanticError, VnnlibSyntaxError, shown

MAX_DEPTH = 200
"""Deepest parenthesis nesting accepted (keeps every later stage safely recursive)."""

# a quoted string (VNN-LIB 2.0's ONNX node names) is one token; the rest is white space
_TOKEN = re.compile(r'[()]|;[^\r\n]*|"[^"\r\n]*"|"|[^ \t\f\v\r\n();"]+')
_NEWLINE = re.compile(r"\r\n|\r|\n")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NUMBER_LIKE = re.compile(r"[+-]?\.?\d")
_SYMBOL = re.compile(  # simple symbols, keywords such as :status, and VNN-LIB 2.0's
    # indexed names X[0,3] and shapes [1,784] / []
    r"[A-Za-z~!@$%^&*_\-+=<>.?/][A-Za-z0-9~!@$%^&*_\-+=<>.?/]*|:[A-Za-z0-9~!@$%^&*_\-+=<>.?/]+"
    r"|[A-Za-z][A-Za-z0-9_]*\[\d+(?:,\d+)*\]|\[(?:\d+(?:,\d+)*)?\]"
)


class Symbol(NamedTuple):
    name: str
    tok: int


class Number(NamedTuple):
    value: float
    text: str
    tok: int


class SList(NamedTuple):
    """A parenthesised list; ``tok`` is the index of its ``(``."""

    items: tuple[SExpr, ...]
    tok: int


SExpr = Union[Symbol, Number, SList]


class Locator:
    """Maps token indices of one text to ``line:column`` and builds positioned errors."""

    def __init__(self, text: str, source: str, n_tokens: int) -> None:
        self.text, self.source, self.eof = text, source, n_tokens
        self._offsets: list[int] | None = None
        self._line_starts: list[int] | None = None

    def pos(self, tok: int) -> Pos:
        """Position of token ``tok``; ``tok == eof`` is the end of the text."""
        if self._offsets is None or self._line_starts is None:
            self._offsets = [m.start() for m in _TOKEN.finditer(self.text)]
            self._line_starts = [0] + [m.end() for m in _NEWLINE.finditer(self.text)]
        off = self._offsets[tok] if tok < len(self._offsets) else len(self.text)
        line = bisect.bisect_right(self._line_starts, off)
        return Pos(line, off - self._line_starts[line - 1] + 1)

    def syntax_error(self, tok: int, detail: str) -> VnnlibSyntaxError:
        return VnnlibSyntaxError(self.source, self.pos(tok), detail)

    def semantic_error(self, tok: int, detail: str) -> VnnlibSemanticError:
        return VnnlibSemanticError(self.source, self.pos(tok), detail)


def tokenize(text: str, source: str = "<string>") -> tuple[list[str], Locator]:
    """Split ``text`` into token strings (comments included); white space is dropped."""
    if text.startswith("\ufeff"):
        text = text[1:]
    tokens = _TOKEN.findall(text)
    return tokens, Locator(text, source, len(tokens))


def parse(text: str, source: str = "<string>") -> tuple[list[SExpr], Locator]:
    """Parse ``text`` into its top-level s-expressions."""
    tokens, loc = tokenize(text, source)
    atoms: dict[str, float | None] = {}  # word -> its number value, or None for a symbol
    top: list[SExpr] = []
    stack: list[tuple[int, list[SExpr]]] = []
    items = top
    for i, word in enumerate(tokens):
        if word == "(":
            if len(stack) >= MAX_DEPTH:
                raise loc.syntax_error(i, f"expressions nested deeper than {MAX_DEPTH} levels")
            stack.append((i, items))
            items = []
        elif word == ")":
            if not stack:
                raise loc.syntax_error(i, "unbalanced parentheses: unexpected ')'")
            start, outer = stack.pop()
            outer.append(SList(tuple(items), start))
            items = outer
        elif word[0] != ";":
            if word not in atoms:
                atoms[word] = _classify(word, i, loc)
            value = atoms[word]
            items.append(Symbol(word, i) if value is None else Number(value, word, i))
    if stack:
        raise loc.syntax_error(
            stack[-1][0],
            f"unbalanced parentheses: '(' is never closed "
            f"(unexpected end of file at {loc.pos(loc.eof)})",
        )
    return top, loc


def _classify(word: str, tok: int, loc: Locator) -> float | None:
    """The value of a number token, ``None`` for a symbol; raises for anything else."""
    if _NUMBER.fullmatch(word):
        value = float(word)
        if not math.isfinite(value):
            raise loc.syntax_error(tok, f"number {shown(word)} is out of range")
        return value
    if _NUMBER_LIKE.match(word):
        raise loc.syntax_error(tok, f"bad number {shown(word)}")
    if _SYMBOL.fullmatch(word) or (len(word) >= 2 and word[0] == word[-1] == '"'):
        return None
    raise loc.syntax_error(tok, f"unknown token {shown(word)}")
