"""VNN-LIB 2.0 queries over several networks: one shared input, concatenated outputs.

Every network after the first must take *the same input* as the first, stated either

* by identifying every input element with the first network's element at the same
  position, ``(assert (== X_f[i] X_g[i]))`` for all ``i`` (also inside a top-level
  ``and``, and through other networks: ``X_h == X_g == X_f``), or
* by declaring the first network's input tensor again by name, with the same shape
  (``(declare-input X_f real [5])`` inside ``g``: one shared tensor).

The identified inputs become one: ``X_g[i]`` is read as ``X_f[i]`` everywhere, so bounds on
either bound the shared input.  Outputs are concatenated in declaration order (``Y_f``
first, then ``Y_g``), so output atoms mixing the networks are ordinary rows.

Anything else relating the inputs of two networks (``(<= X_f[0] X_g[0])``,
``(== X_f[0] (+ X_g[0] 0.1))``, ``(== X_f[0] X_g[1])``, an identification inside
``or``, or networks whose inputs are left independent) is refused with an error naming the
construct: verinet composes networks over one input and never guesses another relation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from verinet.spec.vnnlib_errors import VnnlibSemanticError, shown
from verinet.spec.vnnlib_syntax import Locator, Number, SExpr, SList, Symbol

_EQUALITY = ("==", "=")
_RELATIONS = frozenset({"<=", "<", ">=", ">", "==", "=", "!="})
_ONLY = ("only the identification of every input element, (== X_f[i] X_g[i]), or a shared "
         "input tensor of equal shape is supported")


@dataclass(frozen=True)
class TensorDecl:
    """A declared tensor: flat ``offset`` among the inputs (or outputs), ``shape``."""

    name: str
    shape: tuple[int, ...]
    offset: int
    size: int
    tok: int
    shared: bool = False  # an input declared again by name in a later network
    dtype: str = "Real"   # the element type as declared (reported in 2.0 results)


@dataclass
class NetworkInfo:
    """A ``declare-network`` as read so far (mutable while its body is parsed)."""

    name: str
    tok: int
    relation: str = ""
    related: str = ""
    inputs: list[TensorDecl] = field(default_factory=list)
    outputs: list[TensorDecl] = field(default_factory=list)

    @property
    def n_inputs(self) -> int:
        return sum(t.size for t in self.inputs)

    @property
    def n_outputs(self) -> int:
        return sum(t.size for t in self.outputs)


def render(expr: SExpr) -> str:
    """The s-expression as text (for error messages)."""
    if isinstance(expr, Symbol):
        return expr.name
    if isinstance(expr, Number):
        return expr.text
    return "(" + " ".join(render(e) for e in expr.items) + ")"


class Identifier:
    """Finds the input identifications among a multi-network query's asserts, checks
    that they identify every later network's inputs with the first network's, and
    returns the asserts left (see the module doc)."""

    def __init__(self, loc: Locator, networks: list[NetworkInfo],
                 names: dict[str, tuple[str, int]]) -> None:
        self.loc, self.networks, self.names = loc, networks, names
        # flat input index -> (network number, position within that network's inputs)
        self.owner: dict[int, tuple[int, int]] = {}
        for k, net in enumerate(networks):
            pos = 0
            for t in net.inputs:
                if not t.shared:
                    for e in range(t.size):
                        self.owner[t.offset + e] = (k, pos + e)
                pos += t.size
        self.parent = {i: i for i in self.owner}

    def error(self, tok: int, detail: str) -> VnnlibSemanticError:
        return self.loc.semantic_error(tok, detail)

    # ------------------------------------------------------------------ scanning

    def split(self, asserts: list[SList]) -> list[SList]:
        """Record the identifications; return the other asserts (``(assert F)`` each)."""
        kept: list[SList] = []
        for a in asserts:
            if len(a.items) != 2:  # malformed: the normaliser reports it
                kept.append(a)
                continue
            for part in self._take(a.items[1]):
                self._scan(part, inside_or=False)
                kept.append(SList((a.items[0], part), a.tok))
        return kept

    def _take(self, f: SExpr) -> list[SExpr]:
        """The conjuncts of top-level ``f`` that are not identifications."""
        if self._identification(f):
            return []
        if (isinstance(f, SList) and len(f.items) > 1 and isinstance(f.items[0], Symbol)
                and f.items[0].name == "and"):
            return [g for part in f.items[1:] for g in self._take(part)]
        return [f]

    def _identification(self, f: SExpr) -> bool:
        """Whether ``f`` is ``(== A B)`` with A, B input elements of two networks (which
        is then recorded, or refused if it is not element-wise)."""
        if not (isinstance(f, SList) and len(f.items) == 3 and isinstance(f.items[0], Symbol)
                and f.items[0].name in _EQUALITY):
            return False
        a, b = f.items[1], f.items[2]
        ia, ib = self._input(a), self._input(b)
        if ia is None or ib is None:
            return False
        (na, pa), (nb, pb) = self.owner[ia], self.owner[ib]
        if na == nb:
            raise self.error(f.tok, f"unsupported relation {shown(render(f))} between two "
                             f"inputs of network {shown(self.networks[na].name)}; {_ONLY}")
        if pa != pb or self._tensor_pos(na, pa) != self._tensor_pos(nb, pb):
            raise self.error(f.tok, f"unsupported input relation {shown(render(f))}: it "
                             "identifies elements at different positions; " + _ONLY)
        self.parent[self._root(ia)] = self._root(ib)
        return True

    def _scan(self, f: SExpr, inside_or: bool) -> None:
        """Refuse any other atom relating the inputs of two networks."""
        if not (isinstance(f, SList) and f.items and isinstance(f.items[0], Symbol)):
            return
        head = f.items[0].name
        if head in ("and", "or"):
            for part in f.items[1:]:
                self._scan(part, inside_or or head == "or")
            return
        if head not in _RELATIONS:
            return
        nets = {self.owner[i][0] for i in self._inputs(f)}
        if len(nets) < 2:
            return
        where = " inside (or ...)" if inside_or and head in _EQUALITY else ""
        pair = " and ".join(shown(self.networks[k].name) for k in sorted(nets))
        raise self.error(f.tok, f"unsupported relation {shown(render(f))}{where} between "
                         f"the inputs of networks {pair}; {_ONLY}")

    def _input(self, e: SExpr) -> int | None:
        if isinstance(e, Symbol):
            var = self.names.get(e.name)
            if var is not None and var[0] == "X" and var[1] in self.owner:
                return var[1]
        return None

    def _inputs(self, e: SExpr) -> set[int]:
        if isinstance(e, Symbol):
            i = self._input(e)
            return set() if i is None else {i}
        if isinstance(e, SList):
            return set().union(*(self._inputs(x) for x in e.items))
        return set()

    def _tensor_pos(self, k: int, pos: int) -> int:
        """The ordinal of the input tensor holding position ``pos`` of network ``k``."""
        start = 0
        for j, t in enumerate(self.networks[k].inputs):
            if pos < start + t.size:
                return j
            start += t.size
        return -1

    def _root(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    # ------------------------------------------------------------------ result

    def remap(self) -> dict[int, int]:
        """Flat index of every later network's input element -> the first network's
        element it is identified with; raises if some element is not identified."""
        first = self.networks[0]
        shapes = [t.shape for t in first.inputs]
        firsts = {pos: i for i, (k, pos) in self.owner.items() if k == 0}
        mapping: dict[int, int] = {}
        for k, net in enumerate(self.networks[1:], start=1):
            misplaced = any(t.shared and t.name != u.name
                            for t, u in zip(net.inputs, first.inputs, strict=False))
            if [t.shape for t in net.inputs] != shapes or misplaced:
                raise self.error(net.tok, f"network {shown(net.name)} has input shapes "
                                 f"{_shapes(net)}, network {shown(first.name)} {_shapes(first)}: "
                                 "a composed query needs one shared input; " + _ONLY)
            for i, (kk, pos) in self.owner.items():
                if kk != k:
                    continue
                if self._root(i) != self._root(firsts[pos]):
                    raise self.error(net.tok, f"the inputs of network {shown(net.name)} are "
                                     f"not identified with those of {shown(first.name)} "
                                     f"({self._name(i)} has no (== {self._name(firsts[pos])} "
                                     f"{self._name(i)})): independent inputs are not "
                                     "supported; " + _ONLY)
                mapping[i] = firsts[pos]
        return mapping

    def _name(self, flat: int) -> str:
        return next(n for n, v in self.names.items() if v == ("X", flat))


def _shapes(net: NetworkInfo) -> str:
    return "; ".join(f"{t.name} {list(t.shape)}" for t in net.inputs)
