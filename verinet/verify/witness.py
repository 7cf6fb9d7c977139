"""Witness replay: the only way a FALSIFIED verdict is ever produced.

A candidate input is (1) moved to the nearest float32 value that lies inside the term's
box *exactly* (the ONNX model runs in float32, so the reported witness is exactly the
input it sees), (2) evaluated on the IR in float64 and (3) on the original ONNX model
(onnxruntime, or onnx's reference evaluator).  It is confirmed only if every row of the
term's unsafe polytope holds on both outputs with tolerance 0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from verinet.ir.graph import Network
from verinet.spec.property import Property, Term
from verinet.types import Counterexample

log = logging.getLogger(__name__)

OnnxEval = Callable[[np.ndarray], np.ndarray]


def closest_scale(network: Network, x0: np.ndarray, x: np.ndarray, label: int,
                  steps: int = 30) -> float:
    """The smallest scale ``s`` in (0, 1] found by bisection at which ``x0 + s (x - x0)``
    is still misclassified (ties count) on the float64 IR (1.0 when none smaller is)."""
    x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
    d = np.asarray(x, dtype=np.float64).reshape(-1) - x0
    lo, hi = 0.0, 1.0
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        y = network.evaluate(x0 + mid * d)
        if np.delete(y, label).max() >= y[label]:
            hi = mid
        else:
            lo = mid
    return hi


def snap_into_box(x: np.ndarray, term: Term) -> np.ndarray:
    """The float32-representable point nearest ``x`` inside the box (as float64)."""
    lo, hi = term.box.lower, term.box.upper
    x32 = np.clip(np.asarray(x, dtype=np.float64).reshape(-1), lo, hi).astype(np.float32)
    x64 = x32.astype(np.float64)
    above = x64 > hi
    below = x64 < lo
    if above.any():
        x32[above] = np.nextafter(x32[above], np.float32(-np.inf))
    if below.any():
        x32[below] = np.nextafter(x32[below], np.float32(np.inf))
    x64 = x32.astype(np.float64)
    # A box thinner than float32 spacing has no float32 point inside; keep exact x then.
    bad = (x64 < lo) | (x64 > hi)
    x64[bad] = np.clip(np.asarray(x, dtype=np.float64).reshape(-1), lo, hi)[bad]
    return x64


@dataclass(frozen=True)
class Replayer:
    """Replays candidates for one property on the IR and on the original ONNX model."""

    network: Network
    prop: Property
    onnx_eval: OnnxEval | None

    def confirm(self, x: np.ndarray, term_index: int | None = None) -> Counterexample | None:
        """A confirmed Counterexample for ``x`` or None.  Tries ``term_index`` first, then
        every term whose box contains the snapped point."""
        order = list(range(len(self.prop.terms)))
        if term_index is not None and 0 <= term_index < len(order):
            order.remove(term_index)
            order.insert(0, term_index)
        for t in order:
            term = self.prop.terms[t]
            xs = snap_into_box(x, term)
            if not term.box.contains(xs):
                continue
            y = self.network.evaluate(xs)
            v_ir = float(term.unsafe.violation(y))
            if v_ir > 0:
                continue
            y_onnx = None
            if self.onnx_eval is not None:
                y_onnx = np.asarray(self.onnx_eval(xs[None, :]), dtype=np.float64).reshape(-1)
                if float(term.unsafe.violation(y_onnx)) > 0:
                    log.info("candidate violates term %d on the IR but not on ONNX", t)
                    continue
            return Counterexample(xs, y, y_onnx, term=t, margin=v_ir, confirmed=True)
        return None

    def confirm_batch(self, xs: np.ndarray, terms: np.ndarray, violation: np.ndarray,
                      limit: int = 8) -> Counterexample | None:
        """Try the ``limit`` most violating candidates of a batch (violation <= 0 first)."""
        order = np.argsort(violation)[:limit]
        for i in order:
            if violation[i] > 0:
                break
            cex = self.confirm(xs[i], int(terms[i]))
            if cex is not None:
                return cex
        return None
