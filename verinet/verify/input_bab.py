"""Branch and bound by input splitting, for low-dimensional inputs (ACAS Xu style).

A domain is (sub-box, term).  Each round bounds a batch of domains with batched CROWN:
a domain is proven safe when some row of its term's unsafe polytope has a sound lower
bound ``A_i f(x) - b_i > 0`` on the sub-box.  The centres of the surviving domains are
evaluated as counterexample candidates (replayed by the caller's ``Replayer``); the
survivors are split in two along the input dimension with the largest
``|Lambda_i| * width_i`` of their most promising row (a smear-style heuristic read from
the CROWN coefficients).  Children cover their parent exactly, so an empty queue means
every term is unreachable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from verinet.attacks.property_pgd import stacked_terms
from verinet.ir.chain import Chain
from verinet.spec.property import Property
from verinet.types import Counterexample
from verinet.verify.deadline import Deadline
from verinet.verify.witness import Replayer

log = logging.getLogger(__name__)

#: bound(lower (B,n), upper (B,n), C (B,k,m)) -> (lb (B,k) of C f(x), Lambda (B,k,n))
Bounder = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

PROOF_TOL = 1e-9  # a row counts as proven only when its sound lower bound exceeds this


@dataclass(frozen=True)
class InputBabOptions:
    batch: int = 2048
    max_domains: int = 2_000_000


@dataclass(frozen=True)
class InputBabOutcome:
    """``proven`` is True iff every term was shown unreachable."""

    proven: bool
    counterexample: Counterexample | None
    domains_bounded: int
    rounds: int
    max_queue: int


def input_bab(
    chain: Chain,
    prop: Property,
    bounder: Bounder,
    replayer: Replayer,
    deadline: Deadline,
    terms: list[int] | None = None,
    options: InputBabOptions = InputBabOptions(),
) -> InputBabOutcome:
    """Prove the listed terms unreachable or find a confirmed counterexample."""
    lo_t, hi_t, A, b = stacked_terms(prop)
    terms = list(range(len(prop.terms))) if terms is None else terms
    q_lo = [lo_t[terms]]
    q_hi = [hi_t[terms]]
    q_term = [np.asarray(terms, dtype=np.int64)]
    bounded = rounds = max_queue = 0
    while q_term:
        lo, hi, tm = _pop(q_lo, q_hi, q_term, options.batch)
        if deadline.expired():
            return InputBabOutcome(False, None, bounded, rounds, max_queue)
        rounds += 1
        bounded += len(tm)
        lb, lam = bounder(lo, hi, A[tm])
        lb = lb - b[tm]
        best_row = np.argmax(lb, axis=1)
        alive = lb[np.arange(len(tm)), best_row] <= PROOF_TOL
        if not alive.any():
            continue
        lo, hi, tm, best_row, lam = lo[alive], hi[alive], tm[alive], best_row[alive], lam[alive]
        cex = _check_centres(chain, lo, hi, tm, A, b, replayer)
        if cex is not None:
            return InputBabOutcome(False, cex, bounded, rounds, max_queue)
        width = hi - lo
        score = np.abs(lam[np.arange(len(tm)), best_row]) * width
        score[width <= 0] = -1.0
        dim = np.argmax(score, axis=1)
        rows = np.arange(len(tm))
        mid = (lo[rows, dim] + hi[rows, dim]) / 2.0
        left_hi = hi.copy()
        left_hi[rows, dim] = mid
        right_lo = lo.copy()
        right_lo[rows, dim] = mid
        q_lo.append(np.concatenate([lo, right_lo]))
        q_hi.append(np.concatenate([left_hi, hi]))
        q_term.append(np.concatenate([tm, tm]))
        size = sum(len(t) for t in q_term)
        max_queue = max(max_queue, size)
        if size > options.max_domains:
            log.warning("input BaB: queue exceeded %d domains", options.max_domains)
            return InputBabOutcome(False, None, bounded, rounds, max_queue)
    return InputBabOutcome(True, None, bounded, rounds, max_queue)


def _pop(
    q_lo: list[np.ndarray], q_hi: list[np.ndarray], q_term: list[np.ndarray], n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Take up to ``n`` domains from the end of the queue (depth first keeps it small)."""
    lo, hi, tm = q_lo.pop(), q_hi.pop(), q_term.pop()
    while len(tm) < n and q_term:
        lo = np.concatenate([q_lo.pop(), lo])
        hi = np.concatenate([q_hi.pop(), hi])
        tm = np.concatenate([q_term.pop(), tm])
    if len(tm) > n:
        q_lo.append(lo[:-n])
        q_hi.append(hi[:-n])
        q_term.append(tm[:-n])
        lo, hi, tm = lo[-n:], hi[-n:], tm[-n:]
    return lo, hi, tm


def _check_centres(
    chain: Chain,
    lo: np.ndarray,
    hi: np.ndarray,
    tm: np.ndarray,
    A: np.ndarray,
    b: np.ndarray,
    replayer: Replayer,
) -> Counterexample | None:
    centre = (lo + hi) / 2.0
    y = chain.forward(centre)
    viol = (np.einsum("nkm,nm->nk", A[tm], y) - b[tm]).max(axis=1)
    if (viol <= 0).any():
        return replayer.confirm_batch(centre, tm, viol)
    return None
