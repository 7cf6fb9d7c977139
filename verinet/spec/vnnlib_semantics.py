"""VNN-LIB stage 3: commands and formulas to disjunctive normal form.

Supported commands: ``(declare-const X_i Real)``, ``(declare-const Y_j Real)`` and
``(assert F)``; the SMT-LIB commands in :data:`IGNORED_COMMANDS` have no effect on a
property and are skipped.  Formulas ``F`` are built from

* ``(and F ...)``, ``(or F ...)``, nested arbitrarily;
* comparisons ``(<= t t ...)``, ``(>= ...)``, ``(= ...)`` (also ``==``, VNN-LIB 2.0's
  spelling), ``(< ...)``, ``(> ...)``
  (a chain of more than two terms is the conjunction of neighbouring pairs);
* terms: ``X_i``, ``Y_j``, numbers, and on outputs linear expressions
  ``(+ t ...)``, ``(- t)``, ``(- t t ...)``, ``(* c ... t)`` (at most one non-constant factor).

Strict comparisons ``<``, ``>`` are read as non-strict ``<=``, ``>=``: the unsafe set is
replaced by its closure.  For verification purposes the two are identical: the sets are
compared as closed sets (sound bounds, LP/MILP relaxations and floating-point replay cannot
tell ``<`` from ``<=``), an ``unsat`` proof for the closure also proves the strict property,
and a ``sat`` witness can differ only by lying exactly on the boundary (a tie, which
VNN-COMP itself counts as a violation).  Every VNN-COMP tool reads them this way.

An atom on inputs must bound one input variable by a constant (``(<= X_0 0.5)``,
``(>= 0.5 X_0)``, ``(= X_2 0)``); an atom may not mix inputs and outputs.  Output atoms
become rows ``a . y <= b``: ``(<= Y_0 Y_1)`` is ``y0 - y1 <= 0`` and ``(>= Y_0 3.99)`` is
``-y0 <= -3.99``.  Numbers are read with Python's ``float`` (correctly rounded).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field

from verinet.spec import vnnlib_dnf as dnf
from verinet.spec.vnnlib_dnf import Conj, Row
from verinet.spec.vnnlib_errors import VnnlibSemanticError, shown
from verinet.spec.vnnlib_syntax import Locator, Number, SExpr, SList, Symbol

logger = logging.getLogger(__name__)

IGNORED_COMMANDS = frozenset(
    {"set-logic", "set-info", "set-option", "check-sat", "get-model", "exit"}
)
_COMPARISONS = {"<=": "<=", "<": "<=", ">=": ">=", ">": ">=", "=": "=", "==": "="}
_FLIPPED = {"<=": ">=", ">=": "<=", "=": "="}
_VAR_NAME = re.compile(r"([XY])_(0|[1-9][0-9]*)")
_BOUNDS_ONLY = "input constraints must be bounds of one variable by a constant"

Var = tuple[str, int]  # ("X", i) or ("Y", j)
Lin = tuple[dict[Var, float], float]  # sum of coeff * var, plus a constant


@dataclass
class Declarations:
    """The declared variables and the token index of each declaration's name."""

    names: dict[str, Var] = field(default_factory=dict)
    inputs: dict[int, int] = field(default_factory=dict)
    outputs: dict[int, int] = field(default_factory=dict)


class Normaliser:
    """Consumes top-level commands in order; ``asserts`` holds each assertion's DNF."""

    def __init__(self, loc: Locator) -> None:
        self.loc = loc
        self.decls = Declarations()
        self.asserts: list[tuple[list[Conj], int]] = []

    def error(self, tok: int, detail: str) -> VnnlibSemanticError:
        return self.loc.semantic_error(tok, detail)

    # ------------------------------------------------------------------ commands

    def command(self, expr: SExpr) -> None:
        if not isinstance(expr, SList):
            raise self.error(
                expr.tok, f"expected a command such as (assert ...), got {_text(expr)}"
            )
        if not expr.items or not isinstance(expr.items[0], Symbol):
            raise self.error(expr.tok, "expected a command such as (assert ...)")
        name, args = expr.items[0].name, expr.items[1:]
        if name == "declare-const":
            self._declare(expr, args)
        elif name == "assert":
            if len(args) != 1:
                raise self.error(expr.tok, f"assert takes one formula, got {len(args)}")
            self.asserts.append((self.formula(args[0]), expr.tok))
        elif name in IGNORED_COMMANDS:
            logger.debug("%s: ignoring (%s ...)", self.loc.source, name)
        else:
            raise self.error(expr.items[0].tok, f"unknown command {shown(name)}")

    def _declare(self, expr: SList, args: tuple[SExpr, ...]) -> None:
        if len(args) != 2 or not all(isinstance(a, Symbol) for a in args):
            raise self.error(expr.tok, "expected (declare-const <name> Real)")
        name, sort = args
        assert isinstance(name, Symbol) and isinstance(sort, Symbol)
        if sort.name != "Real":
            raise self.error(sort.tok, f"unsupported sort {shown(sort.name)}; expected Real")
        m = _VAR_NAME.fullmatch(name.name)
        if m is None:
            raise self.error(
                name.tok,
                f"unsupported variable name {shown(name.name)}: VNN-LIB variables are "
                "X_<i> (inputs) and Y_<j> (outputs)",
            )
        var: Var = (m.group(1), int(m.group(2)))
        table = self.decls.inputs if var[0] == "X" else self.decls.outputs
        if var[1] in table:
            first = self.loc.pos(table[var[1]])
            raise self.error(
                name.tok, f"duplicate declaration of {name.name} (first declared at {first})"
            )
        table[var[1]] = name.tok
        self.decls.names[name.name] = var

    # ------------------------------------------------------------------ formulas

    def formula(self, expr: SExpr) -> list[Conj]:
        if not isinstance(expr, SList) or not expr.items or not isinstance(expr.items[0], Symbol):
            raise self.error(
                expr.tok, f"expected a formula such as (<= Y_0 Y_1), got {_text(expr)}"
            )
        head, args = expr.items[0], expr.items[1:]
        if head.name in ("and", "or"):
            if not args:
                raise self.error(expr.tok, f"{head.name} needs at least one argument")
            parts = [self.formula(a) for a in args]
            if head.name == "or":
                return dnf.disjoin(parts, self.loc, expr.tok)
            return dnf.conjoin([(p, a.tok) for p, a in zip(parts, args, strict=True)], self.loc)
        op = _COMPARISONS.get(head.name)
        if op is None:
            raise self.error(head.tok, f"unsupported operator {shown(head.name)} in a formula")
        if len(args) < 2:
            raise self.error(expr.tok, f"{head.name} needs at least two arguments")
        if len(args) == 2:
            return self._atom(op, args[0], args[1], expr.tok)
        pairs = zip(args, args[1:], strict=False)  # a chain: neighbours compared
        return dnf.conjoin([(self._atom(op, a, b, expr.tok), a.tok) for a, b in pairs], self.loc)

    def _atom(self, op: str, left: SExpr, right: SExpr, tok: int) -> list[Conj]:
        (lc, lk), (rc, rk) = self.term(left), self.term(right)
        kinds = {v[0] for v in lc} | {v[0] for v in rc}
        if kinds == {"X", "Y"}:
            raise self.error(tok, "atoms mixing inputs and outputs are not supported")
        if "X" in kinds:
            if lc and rc:
                raise self.error(tok, _BOUNDS_ONLY)
            if rc:  # constant on the left: flip so the variable is on the left
                left, right, lc, lk, rc, rk, op = right, left, rc, rk, lc, lk, _FLIPPED[op]
            if not isinstance(left, Symbol):
                raise self.error(tok, _BOUNDS_ONLY)
            index = self.decls.names[left.name][1]
            self._finite(tok, rk)
            value = rk + 0.0  # no negative zero in boxes
            return dnf.bound(index, value if op != "<=" else None, value if op != ">=" else None)
        coeffs = dict(lc)
        for v, c in rc.items():
            coeffs[v] = coeffs.get(v, 0.0) - c
        const = lk - rk  # the atom reads: coeffs . y + const (op) 0
        terms = tuple(sorted((v[1], c) for v, c in coeffs.items() if c != 0.0))
        self._finite(tok, const, *(c for _, c in terms))
        if not terms:
            holds = {"<=": const <= 0, ">=": const >= 0, "=": const == 0}[op]
            return dnf.TRUE if holds else dnf.FALSE
        le: Row = (terms, -const + 0.0)
        ge: Row = (tuple((j, -c) for j, c in terms), const + 0.0)
        if op == "<=":
            return dnf.row(le)
        if op == ">=":
            return dnf.row(ge)
        return dnf.conjoin([(dnf.row(le), tok), (dnf.row(ge), tok)], self.loc)

    def _finite(self, tok: int, *values: float) -> None:
        if not all(math.isfinite(v) for v in values):
            raise self.error(
                tok, "constraint has a coefficient or constant that overflows a double"
            )

    # ------------------------------------------------------------------ terms

    def term(self, expr: SExpr) -> Lin:
        if isinstance(expr, Number):
            return {}, expr.value
        if isinstance(expr, Symbol):
            var = self.decls.names.get(expr.name)
            if var is None:
                raise self.error(expr.tok, f"undeclared variable {expr.name}")
            return {var: 1.0}, 0.0
        if not expr.items or not isinstance(expr.items[0], Symbol):
            raise self.error(expr.tok, f"expected a term, got {_text(expr)}")
        head, args = expr.items[0].name, expr.items[1:]
        if head not in ("+", "-", "*") or not args:
            raise self.error(expr.tok, f"unsupported term {_text(expr)}; expected +, - or *")
        parts = [self.term(a) for a in args]
        if head == "+":
            return _add(parts, [1.0] * len(parts))
        if head == "-":
            signs = [-1.0] if len(parts) == 1 else [1.0] + [-1.0] * (len(parts) - 1)
            return _add(parts, signs)
        return self._product(parts, expr.tok)

    def _product(self, parts: list[Lin], tok: int) -> Lin:
        scale, linear = 1.0, None
        for coeffs, const in parts:
            if not coeffs:
                scale *= const
            elif linear is None:
                linear = (coeffs, const)
            else:
                raise self.error(tok, "nonlinear term: a product of two variables")
        if linear is None:
            return {}, scale
        coeffs, const = linear
        return {v: c * scale for v, c in coeffs.items()}, const * scale


def _add(parts: list[Lin], signs: list[float]) -> Lin:
    coeffs: dict[Var, float] = {}
    const = 0.0
    for (cs, k), s in zip(parts, signs, strict=True):
        for v, c in cs.items():
            coeffs[v] = coeffs.get(v, 0.0) + s * c
        const += s * k
    return coeffs, const


def _text(expr: SExpr) -> str:
    """A short rendering of ``expr`` for error messages."""
    if isinstance(expr, Symbol):
        return shown(expr.name)
    if isinstance(expr, Number):
        return shown(expr.text)
    if not expr.items:
        return "'()'"
    head = expr.items[0]
    return f"'({head.name} ...)'" if isinstance(head, Symbol) else "'((...) ...)'"
