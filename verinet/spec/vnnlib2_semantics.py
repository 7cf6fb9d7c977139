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

Several networks (``(equal-to f)`` / ``(isomorphic-to f)`` or unrelated) are read over
one shared input with their outputs concatenated in declaration order, when every later
network's inputs are identified with the first's (:mod:`verinet.spec.vnnlib2_networks`;
any other relation between their inputs is refused, naming it).  :attr:`Normaliser2.query`
then describes the networks.

Not supported yet, each refused with an error naming it: ``declare-hidden``, ``!=``,
products of two variables (as in 1.0), and integer element types.
"""

from __future__ import annotations

import itertools
import logging
import math
import re

from verinet.spec.property import Property
from verinet.spec.query import DeclaredNetwork, Query, QueryVariable
from verinet.spec.vnnlib2_networks import Identifier, NetworkInfo, TensorDecl
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
        self.infos: list[NetworkInfo] = []
        self._sizes = {"X": 0, "Y": 0}  # flat elements declared so far
        self._seen_assert = False
        self._pending: list[SList] = []  # a multi-network query's asserts, read at finish()

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
            if name == "assert":
                self._seen_assert = True
                if len(self.networks) > 1:  # identifications first: see finish()
                    self._pending.append(expr)
                    return None
        return super().command(expr)

    def finish(self) -> None:
        """Read a multi-network query's asserts over the shared input (module doc)."""
        if len(self.infos) < 2:
            return
        ident = Identifier(self.loc, self.infos, self.decls.names)
        rest = ident.split(self._pending)
        for flat, target in ident.remap().items():
            for name, var in self.decls.names.items():
                if var == ("X", flat):
                    self.decls.names[name] = ("X", target)
            del self.decls.inputs[flat]
        for expr in rest:
            super().command(expr)
        self._pending = []

    def query(self, prop: Property) -> Query:
        """``prop`` (built from this normaliser) with the declared networks."""
        nets, variables = [], []
        first = self.infos[0].inputs
        for info in self.infos:
            offset = info.outputs[0].offset if info.outputs else 0
            nets.append(DeclaredNetwork(info.name, prop.n_inputs, info.n_outputs, offset,
                                        info.relation, info.related))
            # a later network's j-th input tensor is identified with the first's j-th
            for j, t in enumerate(info.inputs):
                variables.append(QueryVariable(t.name, t.dtype, t.shape, "X",
                                               first[j].offset))
            variables += [QueryVariable(t.name, t.dtype, t.shape, "Y", t.offset)
                          for t in info.outputs]
        return Query(prop, tuple(nets), tuple(variables))

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
        if self._seen_assert:
            raise self.error(expr.tok, "every (declare-network ...) must come before the "
                             "first assert")
        if not args or not isinstance(args[0], Symbol) or not _NAME.fullmatch(args[0].name):
            raise self.error(expr.tok, "expected (declare-network NAME (declare-input ...) "
                             "(declare-output ...))")
        name = args[0].name
        if name in self.networks:
            raise self.error(args[0].tok, f"network {shown(name)} declared twice")
        self.networks.append(name)
        info = NetworkInfo(name, args[0].tok)
        self.infos.append(info)
        for part in args[1:]:
            if not (isinstance(part, SList) and part.items
                    and isinstance(part.items[0], Symbol)):
                raise self.error(part.tok, "expected (declare-input ...) or (declare-output ...)")
            head = part.items[0].name
            if head in ("equal-to", "isomorphic-to"):
                self._relation(info, part, head)
                continue
            if head == "declare-hidden":
                raise self.error(part.tok, "declare-hidden (constraints on hidden tensors) is "
                                 "not supported")
            if head not in ("declare-input", "declare-output"):
                raise self.error(part.items[0].tok, f"unknown network item {shown(head)}")
            kind = "X" if head == "declare-input" else "Y"
            if kind == "X" and info.outputs:
                raise self.error(part.tok, "inputs are declared before outputs")
            (info.inputs if kind == "X" else info.outputs).append(self._tensor(part, kind))
        for tensors, what in ((info.inputs, "declare-input"), (info.outputs, "declare-output")):
            if not tensors:
                raise self.error(expr.tok, f"network {shown(name)} has no ({what} ...)")
        if info.related:
            self._check_related(info, expr.tok)

    def _relation(self, info: NetworkInfo, part: SList, head: str) -> None:
        if len(self.infos) == 1:
            raise self.error(part.tok, f"({head} ...) relates two networks; the first "
                             "network has nothing to relate to")
        if info.relation or info.inputs or info.outputs:
            raise self.error(part.tok, f"({head} ...) must come first in the network, "
                             "at most once")
        if len(part.items) != 2 or not isinstance(part.items[1], Symbol):
            raise self.error(part.tok, f"expected ({head} NETWORK)")
        other = part.items[1].name
        target = next((n for n in self.infos[:-1] if n.name == other), None)
        if target is None:
            raise self.error(part.items[1].tok, f"({head} ...) names undeclared network "
                             f"{shown(other)}")
        if target.relation:
            raise self.error(part.items[1].tok, f"network {shown(other)} carries a relation "
                             f"itself ({target.relation} {target.related}); it cannot be "
                             "referred to")
        info.relation, info.related = head, other

    def _check_related(self, info: NetworkInfo, tok: int) -> None:
        """A related network has the input and output shapes of the one it names."""
        other = next(n for n in self.infos if n.name == info.related)
        for what, a, b in (("input", info.inputs, other.inputs),
                           ("output", info.outputs, other.outputs)):
            if [t.shape for t in a] != [t.shape for t in b]:
                raise self.error(tok, f"network {shown(info.name)} is {info.relation} "
                                 f"{shown(other.name)} but its {what} shapes "
                                 f"{[list(t.shape) for t in a]} differ from "
                                 f"{[list(t.shape) for t in b]}")

    def _tensor(self, part: SList, kind: str) -> TensorDecl:
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
        if dtype.name.lower() != "real" and dtype.name not in FLOAT_TYPES:
            raise self.error(dtype.tok, f"unsupported element type {shown(dtype.name)}; "
                             "expected real or float16/float32/float64")
        m = _SHAPE.fullmatch(shape_tok.name)
        if m is None:
            raise self.error(shape_tok.tok, f"bad shape {shown(shape_tok.name)}; expected "
                             "[d1,...,dk] of non-negative integers")
        shape = tuple(int(d) for d in m.group(1).split(",")) if m.group(1) else ()
        if var.name in self.decls.names or any(
                k.startswith(var.name + "[") for k in self.decls.names):
            return self._shared(var, kind, shape, dtype.name)
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
        return TensorDecl(var.name, shape, offset, size, var.tok, dtype=dtype.name)

    def _shared(self, var: Symbol, kind: str, shape: tuple[int, ...],
                dtype: str) -> TensorDecl:
        """A later network's input named like an input of the first network: one tensor
        shared by both (equal shapes required); any other repeated name is an error."""
        first = self.infos[0]
        same = next((t for t in first.inputs if t.name == var.name), None)
        if kind != "X" or len(self.infos) == 1 or same is None:
            raise self.error(var.tok, f"tensor {shown(var.name)} declared twice")
        if same.shape != shape:
            raise self.error(var.tok, f"input {shown(var.name)} is shared with network "
                             f"{shown(first.name)} but has shape {list(shape)} here and "
                             f"{list(same.shape)} there")
        logger.debug("%s: input %s shared with network %s", self.loc.source, var.name,
                     first.name)
        return TensorDecl(var.name, shape, same.offset, same.size, var.tok, shared=True,
                          dtype=dtype)
