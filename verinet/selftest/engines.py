"""The engines the self-test runs, each alone, behind one small interface.

* **bound methods** (``interval``, ``crown``, ``crown-f32``, ``alpha-crown`` and
  ``lipschitz`` (mean-value bounds from the Jacobian bounds) on the graph engine;
  ``chain-interval``, ``chain-crown``, ``chain-alpha-crown`` on the dense chain of
  fully connected models): ``unsat`` when every term has a row whose sound lower bound is
  positive, else ``unknown``.  They also return their lower bounds, which the runner checks
  against the network's value at the witness and at sampled points;
* **complete methods**: the portfolio with the attack off and one ``--complete``
  strategy (``milp``, ``milp-pulp``, ``relu-bab``, ``chain-bab``, ``input-bab``,
  ``star``, ``auto``), so the complete search must find a planted counterexample itself;
* ``pgd``: the portfolio's property PGD alone (with replay), a measure of how well the
  counterexamples are hidden;
* ``portfolio``: ``verinet verify`` as shipped.

An engine that does not apply to a model (a chain engine on a convolutional network, an
exact MILP on a Sigmoid network) says so and is scored ``n/a``, not ``unknown``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from verinet.spec.matrices import stacked_terms
from verinet.spec.property import Property
from verinet.types import Box, Status
from verinet.verify.deadline import Deadline
from verinet.verify.views import ModelViews

#: A term counts as proven when a row's lower bound exceeds this (the portfolio's rule).
PROOF_TOL = 0.0


@dataclass(frozen=True)
class Subject:
    """What an engine runs on: the imported model and its property."""

    views: ModelViews
    prop: Property
    onnx_eval: Callable[[np.ndarray], np.ndarray] | None


@dataclass(frozen=True)
class Answer:
    """``verdict``: "sat", "unsat", "unknown" or "n/a" (with ``note`` saying why).
    ``lower``: a bound engine's lower bounds (T, k) of ``A_t y - b_t`` per term and row."""

    verdict: str
    seconds: float
    witness: np.ndarray | None = None
    lower: np.ndarray | None = None
    note: str = ""


Engine = Callable[[Subject, float], Answer]


# ----------------------------------------------------------------------------- bounds


def _bound_answer(lower: np.ndarray, t0: float) -> Answer:
    proven = (lower > PROOF_TOL).any(axis=1).all()
    return Answer("unsat" if proven else "unknown", time.perf_counter() - t0, lower=lower)


def _graph_bound(kind: str) -> Engine:
    def run(s: Subject, timeout: float) -> Answer:
        from verinet.bounds.graph import GraphOptions, build_state, graph_alpha_crown, graph_crown
        from verinet.bounds.graph.propagate import spec_interval

        t0 = time.perf_counter()
        gm = s.views.graph
        if gm.unsupported:
            return Answer("n/a", 0.0, note="graph engine: unsupported nodes")
        lo, hi, A, b = stacked_terms(s.prop)
        if kind == "interval":
            opts = GraphOptions(intermediate="interval")
            st = build_state(gm, torch.as_tensor(lo), torch.as_tensor(hi), opts)
            low = spec_interval(st, torch.as_tensor(A))[0].numpy()
        elif kind == "crown":
            low = graph_crown(gm, lo, hi, A).lower
        elif kind == "crown-f32":
            low = graph_crown(gm, lo, hi, A, options=GraphOptions(dtype=torch.float32)).lower
        else:
            deadline = Deadline(timeout)
            low = graph_alpha_crown(gm, lo, hi, A, stop=deadline.expired).lower
        return _bound_answer(np.asarray(low, dtype=np.float64) - b, t0)

    return run


def _lipschitz(s: Subject, timeout: float) -> Answer:
    """Mean value bounds: each row's CROWN lower bound at the box's centre minus its
    largest change over the box (:meth:`verinet.lipschitz.JacobianBounds.variation`)."""
    from verinet.bounds.graph import graph_crown
    from verinet.lipschitz import jacobian_bounds

    t0 = time.perf_counter()
    gm = s.views.graph
    if gm.unsupported:
        return Answer("n/a", 0.0, note="graph engine: unsupported nodes")
    lo, hi, A, b = stacked_terms(s.prop)
    c = (lo + hi) / 2.0
    at_c = graph_crown(gm, c, c, A).lower
    change = jacobian_bounds(gm, lo, hi, A).variation(np.maximum(hi - c, c - lo))
    return _bound_answer(np.asarray(at_c - change, dtype=np.float64) - b, t0)


def _chain_bound(kind: str) -> Engine:
    def run(s: Subject, timeout: float) -> Answer:
        from verinet.bounds.alpha import alpha_crown_bounds
        from verinet.bounds.crown import crown_bounds
        from verinet.bounds.interval import affine_interval, interval_bounds
        from verinet.ir.chain import Affine

        t0 = time.perf_counter()
        chain = s.views.chain
        if chain is None:
            return Answer("n/a", 0.0, note=s.views.chain_reason)
        lo, hi, A, b = stacked_terms(s.prop)
        if kind == "interval":
            rows = []
            for t in range(len(lo)):
                lb = interval_bounds(chain, Box(lo[t], hi[t]))
                spec = Affine(A[t], np.zeros(len(A[t])))
                rows.append(affine_interval(spec, lb.lower[-1], lb.upper[-1])[0])
            low = np.stack(rows)
        elif kind == "crown":
            low = crown_bounds(chain, lo, hi, A).lower
        else:
            if not chain.is_relu:
                return Answer("n/a", 0.0, note="chain alpha-CROWN optimises ReLU chains")
            low = alpha_crown_bounds(chain, lo, hi, A).lower
        return _bound_answer(np.asarray(low, dtype=np.float64) - b, t0)

    return run


# ----------------------------------------------------------------------------- searches


def _portfolio(complete: str, *, attack: bool, backend: str = "highs") -> Engine:
    def run(s: Subject, timeout: float) -> Answer:
        from verinet.verify.portfolio import VerifyOptions, verify

        opts = VerifyOptions(attack=attack, complete=complete, milp_backend=backend)
        t0 = time.perf_counter()
        res = verify(s.views.network, s.prop, s.onnx_eval, timeout, opts, views=s.views)
        seconds = time.perf_counter() - t0
        if res.status is Status.FALSIFIED:
            assert res.counterexample is not None
            return Answer("sat", seconds, witness=np.asarray(res.counterexample.x))
        if res.status is Status.VERIFIED:
            return Answer("unsat", seconds)
        if _not_applicable(res.message):
            return Answer("n/a", seconds, note=res.message)
        return Answer("unknown", seconds, note=f"{res.reason.value}: {res.message}".strip(": "))

    return run


def _not_applicable(message: str) -> bool:
    """The portfolio's messages for a strategy that does not apply to the model."""
    return any(s in message for s in ("needs a fully connected", "no exact MILP encoding",
                                      "cannot cut", "graph bound engine"))


def _pgd(s: Subject, timeout: float) -> Answer:
    from verinet.attacks.property_pgd import property_pgd
    from verinet.verify.witness import Replayer

    t0 = time.perf_counter()
    cands = property_pgd(s.views.network, s.prop, np.random.default_rng(0),
                         deadline=Deadline(timeout))
    cex = Replayer(s.views.network, s.prop, s.onnx_eval).confirm_batch(
        cands.x, cands.term, cands.violation)
    seconds = time.perf_counter() - t0
    if cex is not None:
        return Answer("sat", seconds, witness=np.asarray(cex.x))
    return Answer("unknown", seconds, note="no witness found")


#: Every engine by name, in the order of the report: bound methods, complete methods,
#: the attack, the shipped portfolio.
ENGINES: dict[str, Engine] = {
    "interval": _graph_bound("interval"),
    "crown": _graph_bound("crown"),
    "crown-f32": _graph_bound("crown-f32"),
    "alpha-crown": _graph_bound("alpha-crown"),
    "lipschitz": _lipschitz,
    "chain-interval": _chain_bound("interval"),
    "chain-crown": _chain_bound("crown"),
    "chain-alpha-crown": _chain_bound("alpha-crown"),
    "milp": _portfolio("milp", attack=False),
    "milp-pulp": _portfolio("milp", attack=False, backend="pulp"),
    "relu-bab": _portfolio("relu-bab", attack=False),
    "chain-bab": _portfolio("chain-bab", attack=False),
    "input-bab": _portfolio("input-bab", attack=False),
    "star": _portfolio("star", attack=False),
    "auto": _portfolio("auto", attack=False),
    "pgd": _pgd,
    "portfolio": _portfolio("auto", attack=True),
}

BOUND_ENGINES = ("interval", "crown", "crown-f32", "alpha-crown", "lipschitz", "chain-interval",
                 "chain-crown", "chain-alpha-crown")
