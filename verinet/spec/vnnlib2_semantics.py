"""VNN-LIB 2.0 stage 3: the 2.0 commands on top of the 1.0 normaliser.

A 2.0 query starts with ``(vnnlib-version <2.N>)`` (that is how :func:`is_vnnlib2` tells
the versions apart), declares its tensors inside ``(declare-network NAME
(declare-input V TYPE [d1,...]) ... (declare-output V TYPE [d1,...]) ...)`` before any
assert, and refers to elements as ``V[i1,...,ik]`` (a scalar ``[]`` tensor by its bare
name).  Elements are flattened in row-major order, and input tensors follow one another
in declaration order (likewise outputs), so each element becomes the 1.0 variable
``X_flat`` / ``Y_flat`` and the rest of the reader (formulas, DNF, boxes) is the 1.0
reader's.  ``==`` is equality (``=`` is accepted too, as the standard's prose writes it).

Element types: ``real`` (any case) and the ONNX floating types ``float16``, ``float32``,
``float64``; verinet reasons over the reals either way, as every VNN-COMP tool does.

Not supported yet, each refused with an error naming it: a second network (``equal-to`` /
``isomorphic-to`` queries over two networks), ``declare-hidden``, ``!=``, products of two
variables (as in 1.0), and integer element types.
"""

from __future__ import annotations

import itertools
import logging
import math
import re

from verinet.spec.vnnlib_errors import shown
from verinet.spec.vnnlib_semantics import Normaliser
from verinet.spec.vnnlib_syntax import Locator, SExpr, SList, Symbol

logger = logging.getLogger(__name__)

_VERSION = re.compile(r"<(\d+)\.(\d+)>")
_SHAPE = re.compile(r"\[((?:\d+(?:,\d+)*)?)\]")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
FLOAT_TYPES = frozenset({"float16", "float32", "float64", "double", "float"})
MAX_ELEMENTS = 50_000_000


def is_vnnlib2(exprs: list[SExpr]) -> bool:
    """Whether the first command is ``(vnnlib-version ...)`` (a VNN-LIB 2.x query)."""
    if not exprs or not isinstance(exprs[0], SList) or not exprs[0].items:
        return False
    head = exprs[0].items[0]
    return isinstance(head, Symbol) and head.name == "vnnlib-version"


class Normaliser2(Normaliser):
    """Consumes the commands of a 2.0 query (see the module doc)."""

    def __init__(self, loc: Locator) -> None:
        super().__init__(loc)
        self.version: tuple[int, int] | None = None
        self.networks: list[str] = []
        self._sizes = {"X": 0, "Y": 0}  # flat elements declared so far

    def command(self, expr: SExpr) -> None:
        if isinstance(expr, SList) and expr.items and isinstance(expr.items[0], Symbol):
            name, args = expr.items[0].name, expr.items[1:]
            if name == "vnnlib-version":
                return self._version(expr, args)
            if self.version is None:
                raise self.error(expr.tok, "a VNN-LIB 2 query starts with (vnnlib-version <2.0>)")
            if name == "declare-network":
                return self._network(expr, args)
            if name == "declare-const":
                raise self.error(expr.tok, "declare-const is VNN-LIB 1.0: a 2.0 query declares "
                                 "its tensors in (declare-network ...)")
            if name == "assert" and not self.networks:
                raise self.error(expr.tok, "assert before any (declare-network ...)")
        return super().command(expr)

    def _version(self, expr: SList, args: tuple[SExpr, ...]) -> None:
        if self.version is not None:
            raise self.error(expr.tok, "vnnlib-version given twice")
        m = _VERSION.fullmatch(args[0].name) if (
            len(args) == 1 and isinstance(args[0], Symbol)) else None
        if m is None:
            raise self.error(expr.tok, "expected (vnnlib-version <M.N>), angle brackets included")
        self.version = (int(m.group(1)), int(m.group(2)))
        if self.version[0] != 2:
            raise self.error(args[0].tok, f"unsupported VNN-LIB version {args[0].name}; this "
                             "reader takes 2.x (and 1.0 files, which have no version line)")

    # ------------------------------------------------------------------ networks

    def _network(self, expr: SList, args: tuple[SExpr, ...]) -> None:
        if self.asserts:
            raise self.error(expr.tok, "every (declare-network ...) must come before the "
                             "first assert")
        if not args or not isinstance(args[0], Symbol) or not _NAME.fullmatch(args[0].name):
            raise self.error(expr.tok, "expected (declare-network NAME (declare-input ...) "
                             "(declare-output ...))")
        name = args[0].name
        if name in self.networks:
            raise self.error(args[0].tok, f"network {shown(name)} declared twice")
        if self.networks:
            relation = next((f"{a.items[0].name} {a.items[1].name}" for a in args[1:]
                             if isinstance(a, SList) and len(a.items) == 2
                             and isinstance(a.items[0], Symbol)
                             and isinstance(a.items[1], Symbol)), "")
            what = f" ({relation})" if relation else ""
            raise self.error(args[0].tok, f"queries over several networks are not supported "
                             f"yet: network {shown(name)}{what} after "
                             f"{shown(self.networks[0])}")
        self.networks.append(name)
        counts = {"X": 0, "Y": 0}
        for part in args[1:]:
            if not (isinstance(part, SList) and part.items
                    and isinstance(part.items[0], Symbol)):
                raise self.error(part.tok, "expected (declare-input ...) or (declare-output ...)")
            head = part.items[0].name
            if head in ("equal-to", "isomorphic-to"):
                raise self.error(part.tok, f"({head} ...) relates two networks; a single "
                                 "network has nothing to relate to")
            if head == "declare-hidden":
                raise self.error(part.tok, "declare-hidden (constraints on hidden tensors) is "
                                 "not supported")
            if head not in ("declare-input", "declare-output"):
                raise self.error(part.items[0].tok, f"unknown network item {shown(head)}")
            kind = "X" if head == "declare-input" else "Y"
            if kind == "X" and counts["Y"]:
                raise self.error(part.tok, "inputs are declared before outputs")
            self._tensor(part, kind)
            counts[kind] += 1
        for kind, what in (("X", "declare-input"), ("Y", "declare-output")):
            if not counts[kind]:
                raise self.error(expr.tok, f"network {shown(name)} has no ({what} ...)")

    def _tensor(self, part: SList, kind: str) -> None:
        items = part.items[1:]
        if len(items) == 4 and isinstance(items[3], Symbol) and items[3].name == "initialized":
            raise self.error(items[3].tok, "the 'initialized' input option is not supported")
        if len(items) != 3 or not all(isinstance(i, Symbol) for i in items):
            raise self.error(part.tok, f"expected ({part.items[0].name} NAME TYPE [d1,...])")
        var, dtype, shape_tok = items
        assert isinstance(var, Symbol) and isinstance(dtype, Symbol)
        assert isinstance(shape_tok, Symbol)
        if not _NAME.fullmatch(var.name):
            raise self.error(var.tok, f"bad tensor name {shown(var.name)}")
        if var.name in self.decls.names or any(
                k.startswith(var.name + "[") for k in self.decls.names):
            raise self.error(var.tok, f"tensor {shown(var.name)} declared twice")
        if dtype.name.lower() != "real" and dtype.name not in FLOAT_TYPES:
            raise self.error(dtype.tok, f"unsupported element type {shown(dtype.name)}; "
                             "expected real or float16/float32/float64")
        m = _SHAPE.fullmatch(shape_tok.name)
        if m is None:
            raise self.error(shape_tok.tok, f"bad shape {shown(shape_tok.name)}; expected "
                             "[d1,...,dk] of non-negative integers")
        shape = tuple(int(d) for d in m.group(1).split(",")) if m.group(1) else ()
        size = math.prod(shape)
        if size == 0 or size > MAX_ELEMENTS:
            raise self.error(shape_tok.tok, f"tensor {shown(var.name)} has {size} elements")
        offset = self._sizes[kind]
        table = self.decls.inputs if kind == "X" else self.decls.outputs
        if not shape:
            self.decls.names[var.name] = (kind, offset)
            table[offset] = var.tok
        else:
            for k, index in enumerate(itertools.product(*(range(d) for d in shape))):
                self.decls.names[f"{var.name}[{','.join(map(str, index))}]"] = (kind, offset + k)
                table[offset + k] = var.tok
        self._sizes[kind] = offset + size
        logger.debug("%s: %s %s %s %s -> flat %s_%d..%d", self.loc.source, kind, var.name,
                     dtype.name, list(shape), kind, offset, offset + size - 1)
