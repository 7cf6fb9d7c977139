"""One DeepPAC verdict: sample the ball, learn the PAC model, decide.

``U_j = max over the ball of g_j + lambda*`` (exact for an affine ``g_j`` over a box).
All ``U_j < 0``: PAC-model robust.  Otherwise the box vertex maximising each ``g_j``
with ``U_j >= 0`` is a candidate counterexample (the artifact's test), and so is every
sampled point the forward pass misclassified (``check_samples``).  A candidate counts
only after :class:`~verinet.verify.witness.Replayer` confirmed it: snapped to float32
inside the ball, misclassified (ties count) by the float64 IR *and* by the original
ONNX model.  A confirmed counterexample makes the verdict UNSAFE -- also when every
``U_j < 0`` (possible only for a Phase 1/2 sample), since a PAC statement cannot outweigh
a fact; otherwise some ``U_j >= 0`` gives UNKNOWN.  (The artifact calls ``U_j = 0``
robust; verinet counts ties as misclassified everywhere, so a tie is not robust here.)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from verinet.ir.graph import Network
from verinet.pac.learn import PacModel, learn
from verinet.pac.result import PacCheck, PacVerdict
from verinet.pac.sampling import Ball, FeatureMap, ScoreDifferences, draw_phases
from verinet.pac.scenario import PacOptions
from verinet.spec.property import Property
from verinet.types import Box, Counterexample, InputError, linf_reach
from verinet.verify.witness import OnnxEval, Replayer

log = logging.getLogger(__name__)

MAX_SAMPLE_CANDIDATES = 8  # misclassified samples replayed per verdict (most violating)


@dataclass(frozen=True)
class PacProblem:
    """What every verdict on one sample shares: the network (raw inputs), the original
    ONNX evaluator (``None``: replay on the IR only), the sample, its label, the
    features, the input domain and the options."""

    network: Network
    onnx_eval: OnnxEval | None
    x0: np.ndarray
    label: int
    options: PacOptions
    features: FeatureMap
    domain: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        x = np.asarray(self.x0, dtype=np.float64).reshape(-1)
        if x.size != self.network.n_inputs:
            raise InputError(f"sample has {x.size} values, the model {self.network.n_inputs}")
        if self.features.dim != x.size:
            raise InputError(f"PAC features have {self.features.dim} inputs, the model "
                             f"{x.size}")
        if self.network.n_outputs < 2:
            raise InputError(f"DeepPAC needs at least 2 outputs, the model has "
                             f"{self.network.n_outputs}")
        if not 0 <= self.label < self.network.n_outputs:
            raise InputError(f"label {self.label} out of range [0, {self.network.n_outputs})")
        object.__setattr__(self, "x0", x)

    @property
    def max_distance(self) -> float:
        """Beyond this radius the ball is the whole domain."""
        return linf_reach(self.x0, *self.domain)


def pac_check(problem: PacProblem, radius: float) -> PacCheck:
    """DeepPAC's verdict at ``radius`` (raw input units) with ``problem.options``."""
    start = time.monotonic()
    opts = problem.options
    ball = Ball.around(problem.x0, radius, problem.domain)
    counts = opts.counts(ball.dim)
    scores = ScoreDifferences(problem.network, problem.label, opts.dtype, opts.batch)
    phases, candidates = [], []
    for x in draw_phases(ball, counts, opts.seed):
        xr = scores.rounded(x)
        d = scores(xr)
        phases.append((problem.features(xr), d))
        candidates.append(_misclassified(xr, d))
    model = learn(tuple(phases), scores.classes, counts.kappa, opts.phase1, opts.coef_bound,
                  opts.lawson_steps)
    flo, fhi = problem.features.bounds(ball)
    ups = model.upper(flo, fhi)
    top = int(np.argmax(ups))
    upper, rival = float(ups[top]), int(model.classes[top])
    tried = _vertex_candidates(model, ups, ball)
    if opts.check_samples:
        tried += [(x, "sample") for x in _most_violating(candidates)]
    cex, source, dist = _closest_confirmed(problem, ball, tried)
    if cex is not None:
        verdict = PacVerdict.UNSAFE
    else:
        verdict = PacVerdict.ROBUST if upper < 0 else PacVerdict.UNKNOWN
    check = PacCheck(float(radius), verdict, model.margin, upper, rival, counts, cex, source,
                     dist, time.monotonic() - start, opts.phase1_label)
    log.debug("radius %.6g: %s (lambda* %.5g, U %.5g class %d) in %.2fs", radius,
              verdict.value, model.margin, upper, rival, check.seconds)
    return check


def _misclassified(x: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Samples some other class scores at least as high as the label on, with how much."""
    worst = d.max(axis=1) if d.shape[1] else np.full(d.shape[0], -np.inf)
    bad = np.flatnonzero(worst >= 0)
    return x[bad], worst[bad]


def _most_violating(found: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    xs = np.concatenate([x for x, _ in found]) if found else np.zeros((0, 0))
    if xs.shape[0] == 0:
        return []
    v = np.concatenate([w for _, w in found])
    return [xs[i] for i in np.argsort(-v)[:MAX_SAMPLE_CANDIDATES]]


def _vertex_candidates(model: PacModel, ups: np.ndarray, ball: Ball
                       ) -> list[tuple[np.ndarray, str]]:
    order = [i for i in np.argsort(-ups) if ups[i] >= 0]
    verts = model.vertices(ball.lower, ball.upper)
    return [(verts[i], "vertex") for i in order]


def _closest_confirmed(problem: PacProblem, ball: Ball, tried: list[tuple[np.ndarray, str]]
                       ) -> tuple[Counterexample | None, str, float]:
    """Replay every candidate; the confirmed one closest to the sample."""
    if not tried:
        return None, "", float("inf")
    prop = Property.robustness(Box(ball.lower, ball.upper), problem.label,
                               problem.network.n_outputs)
    replay = Replayer(problem.network, prop, problem.onnx_eval)
    best: tuple[Counterexample | None, str, float] = (None, "", float("inf"))
    for x, source in tried:
        cex = replay.confirm(x)
        if cex is None:
            continue
        dist = float(np.max(np.abs(cex.x - problem.x0)))
        if dist < best[2]:
            best = (cex, source, dist)
    return best
