"""VNN-LIB reader: text -> tokens -> s-expressions -> DNF -> :class:`Property`.

Stages (each in its own module):

1. ``vnnlib_syntax``: tokenizer and s-expression parser (:class:`VnnlibSyntaxError`);
2. ``vnnlib_semantics``: declarations, asserts and formulas to disjunctive normal form
   (``vnnlib_dnf``) (:class:`VnnlibSemanticError`); a file whose first command is
   ``(vnnlib-version <2.N>)`` is VNN-LIB 2.0, read by ``vnnlib2_semantics`` (its network
   and tensor declarations, indexed names), with the same formulas and DNF;
3. ``vnnlib_build``: declaration checks, one :class:`Term` per DNF disjunct
   (:class:`VnnlibSemanticError`).

Both error classes derive from :class:`verinet.types.PropertyError`; every message starts
with ``source:line:column:``.  See ``vnnlib_semantics`` for the accepted language (strict
comparisons are read as non-strict, which is harmless for verification of closed sets).
"""

from __future__ import annotations

import gzip
import logging
import os
import time

from verinet.spec.property import Property
from verinet.spec.query import DeclaredNetwork, Query
from verinet.spec.vnnlib2_semantics import Normaliser2, is_vnnlib2
from verinet.spec.vnnlib_build import build_property
from verinet.spec.vnnlib_errors import Pos, VnnlibError, VnnlibSemanticError, VnnlibSyntaxError
from verinet.spec.vnnlib_semantics import Normaliser
from verinet.spec.vnnlib_syntax import parse
from verinet.types import InputError

__all__ = [
    "VnnlibError",
    "VnnlibSemanticError",
    "VnnlibSyntaxError",
    "parse_query",
    "parse_vnnlib",
    "read_query",
    "read_vnnlib",
]

logger = logging.getLogger(__name__)


def parse_vnnlib(
    text: str,
    n_inputs: int | None = None,
    n_outputs: int | None = None,
    source: str = "<string>",
) -> Property:
    """Parse VNN-LIB ``text`` into a :class:`Property` (a disjunction of box x polytope terms).

    ``n_inputs`` / ``n_outputs``, when given, must equal the number of declared ``X_i`` /
    ``Y_j``.  ``source`` names the text in error messages.  Terms sharing input bounds
    share one ``Box`` object; identical terms appear once; a term without output atoms has
    a ``(0, n_outputs)`` halfspace matrix (outputs unconstrained).  A 2.0 query over
    several networks gives the property of their composition (see :func:`parse_query`).
    """
    return parse_query(text, n_inputs, n_outputs, source).property


def parse_query(
    text: str,
    n_inputs: int | None = None,
    n_outputs: int | None = None,
    source: str = "<string>",
) -> Query:
    """As :func:`parse_vnnlib`, with the networks the property is over: for a 2.0 query
    over several networks the property's inputs are the shared input and its outputs the
    networks' outputs concatenated in declaration order (:mod:`verinet.spec.query`)."""
    start = time.perf_counter()
    exprs, loc = parse(text, source)
    norm = Normaliser2(loc) if is_vnnlib2(exprs) else Normaliser(loc)
    for expr in exprs:
        norm.command(expr)
    if isinstance(norm, Normaliser2):
        norm.finish()
    prop = build_property(norm, n_inputs, n_outputs)
    query = norm.query(prop) if isinstance(norm, Normaliser2) else Query(
        prop, (DeclaredNetwork("", prop.n_inputs, prop.n_outputs),))
    logger.debug(
        "%s: %d inputs, %d outputs, %d terms, %d distinct boxes, %d network(s) (%.1f ms)",
        source, prop.n_inputs, prop.n_outputs, len(prop.terms),
        len({id(t.box) for t in prop.terms}), len(query.networks),
        1e3 * (time.perf_counter() - start),
    )
    return query


def read_vnnlib(
    path: str | os.PathLike[str], n_inputs: int | None = None, n_outputs: int | None = None
) -> Property:
    """Read a VNN-LIB file (UTF-8, optionally with BOM; gzip-compressed if it ends in ``.gz``).

    Raises :class:`InputError` if the file cannot be read, else as :func:`parse_vnnlib`.
    """
    return read_query(path, n_inputs, n_outputs).property


def read_query(
    path: str | os.PathLike[str], n_inputs: int | None = None, n_outputs: int | None = None
) -> Query:
    """As :func:`read_vnnlib`, with the networks (see :func:`parse_query`)."""
    source = os.fspath(path)
    try:
        opener = gzip.open if source.endswith(".gz") else open
        with opener(source, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise InputError(f"cannot read VNN-LIB file {source}: {e}") from e
    return parse_query(_decode(data, source), n_inputs, n_outputs, source)


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise VnnlibSyntaxError(source, Pos(line, col), "file is not valid UTF-8") from e
