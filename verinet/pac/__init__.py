"""DeepPAC: black-box PAC-model robustness and the maximum PAC radius (Li et al., ICSE 2022).

Only forward passes of the network are used (batched through the IR's torch lowering);
LPs go through HiGHS (scipy) or a dense interior point method.  Modules:
:mod:`~verinet.pac.scenario` (sample counts, options), :mod:`~verinet.pac.sampling`
(ball, samples, features, forward passes), :mod:`~verinet.pac.learn` (the three phases),
:mod:`~verinet.pac.chebyshev` (the LP fits), :mod:`~verinet.pac.verdict` (one verdict),
:mod:`~verinet.pac.search` (the maximum radius), :mod:`~verinet.pac.result` (types),
:mod:`~verinet.pac.run` (what runs per sample of a data file; the loop is in
:mod:`verinet.runs`).

What a verdict guarantees
-------------------------
At radius ``r`` the K1 + K2 + K3 samples are drawn i.i.d. uniform in the clipped ball
``B = B(x0, r) ∩ [0, 1]^n`` (K3 last, from the same seeded stream, so independently of
the others).  The affine models ``g_j`` are functions of the K1 and K2 samples only;
``lambda* = max_j max_{k <= K3} |g_j(x_k) - Delta_j(x_k)|`` is a scenario program with one
decision variable on the K3 samples.  With ``K3 >= (2/epsilon)(ln(1/eta) + 1)`` the
scenario theorem gives: with probability at least ``1 - eta`` over the K3 samples,

    ``P_{x ~ U(B)} [ exists j: |g_j(x) - Delta_j(x)| > lambda* ] <= epsilon``.

PAC-robust (every ``U_j = max_B g_j + lambda* < 0``) therefore means: with confidence
``1 - eta``, the network gives the label on all of ``B`` except a set of probability at
most ``epsilon`` under the uniform distribution (it is *not* a proof; a counterexample may
exist).  The statement is about the network as evaluated for the samples (float32 by
default); it rests on Phase 3 alone, so Phases 1 and 2 are free to be fast (least squares,
constraint generation) and their LP optima are not trusted for anything.  UNSAFE is a fact:
a vertex or sampled point confirmed on the float64 IR and the original ONNX model.

Sample reuse
------------
Each verdict draws its own K1, K2 and K3 samples from ``RandomState(seed)`` restarted at
the verdict (the artifact's stream, hence its published radii): the K3 samples are fresh
for the model they test, so each verdict's guarantee holds on its own.  Across the radii
of one search the same uniform stream is mapped onto each ball, so the verdicts are
dependent; all verdicts of a search hold together with confidence at least
``1 - (number of verdicts) * eta`` (union bound; :attr:`PacRecord.joint_eta`).  The
maximum PAC radius is the radius the search settles on; its own verdict carries the
``(epsilon, eta)`` guarantee, it is not a bound on the true robust radius.
"""

from verinet.pac.result import PacCheck, PacRecord, PacVerdict
from verinet.pac.sampling import Ball, FeatureMap
from verinet.pac.scenario import PacOptions, ScenarioCounts, free_coefficients, scenario_count
from verinet.pac.search import RadiusSearch, pac_at, pac_radius
from verinet.pac.verdict import PacProblem, pac_check

__all__ = [
    "Ball", "FeatureMap", "PacCheck", "PacOptions", "PacProblem", "PacRecord", "PacVerdict",
    "RadiusSearch", "ScenarioCounts", "free_coefficients", "pac_at", "pac_check",
    "pac_radius", "scenario_count",
]
