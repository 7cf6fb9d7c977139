"""Fault injection: HiGHS answering at random with an error, a spurious "infeasible" or a
time-out never yields a wrong verdict or a bracket that misses the exact radius (an
infeasible encoding is never taken as a proof, and emptiness is only accepted from
certified duals), and every injected error is logged with its cause."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.nets import float32_layers, random_layers, relu_network, relu_onnx
from tests.oracle import exact_radius
from verinet.certify.engine import CertifyOptions, certify_sample
from verinet.certify.result import SampleStatus
from verinet.ir.chain import to_chain
from verinet.milp.backend import HighsBackend, SolveResult, SolverStatus
from verinet.onnx_import.check import onnx_evaluator
from verinet.spec.property import Property
from verinet.types import Box, Status, linf_ball_bounds
from verinet.verify.portfolio import VerifyOptions, verify


@pytest.fixture
def faulty_highs(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Half of all HiGHS solves answer with an injected fault instead of solving."""
    rng = np.random.default_rng(1234)
    solve = HighsBackend.solve
    counts = {"error": 0, "infeasible": 0, "time limit": 0, "real": 0}

    def faulty(self: HighsBackend, relax: bool = False, warm: bool = True) -> SolveResult:
        if rng.random() < 0.5:
            counts["real"] += 1
            return solve(self, relax, warm)
        kind = str(rng.choice(["error", "infeasible", "time limit"]))
        counts[kind] += 1
        status = {"error": SolverStatus.ERROR, "infeasible": SolverStatus.INFEASIBLE,
                  "time limit": SolverStatus.TIME_LIMIT}[kind]
        bound = math.inf if status is SolverStatus.INFEASIBLE else -math.inf
        return SolveResult(status, math.nan, bound, None, 0.0, None, f"injected {kind}")

    monkeypatch.setattr(HighsBackend, "solve", faulty)
    return counts


def _tiny(seed: int):
    rng = np.random.default_rng(seed)
    layers = float32_layers(random_layers(rng, [3, 5, 4, 3]))
    net = relu_network(layers)
    x0 = rng.uniform(0.0, 1.0, 3)
    return net, onnx_evaluator(relu_onnx(layers)), x0, int(np.argmax(net.evaluate(x0)))


@pytest.mark.parametrize("seed", range(6))
def test_certify_brackets_the_exact_radius_under_solver_faults(faulty_highs, seed,
                                                               caplog) -> None:
    net, onnx_eval, x0, label = _tiny(seed)
    exact = exact_radius(to_chain(net), x0, label, Box(np.zeros(3), np.ones(3)))
    with caplog.at_level("WARNING"):
        rep = certify_sample(net, onnx_eval, 0, x0, label,
                             CertifyOptions(radius=True, timeout=10.0, seed=seed))
    if rep.status is SampleStatus.MISCLASSIFIED:
        assert exact == 0.0
        return
    assert rep.radius is not None
    assert rep.radius.lower <= exact + 1e-7 and exact <= rep.radius.upper + 1e-9
    for rec in caplog.records:  # a logged solver failure names its cause
        if "radius MILP class" in rec.getMessage():
            assert "injected" in rec.getMessage()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("complete", ["milp", "relu-bab"])
def test_verdicts_stay_right_under_solver_faults(faulty_highs, seed, complete) -> None:
    net, onnx_eval, x0, label = _tiny(seed)
    domain = Box(np.zeros(3), np.ones(3))
    exact = exact_radius(to_chain(net), x0, label, domain)
    if not 0 < exact < math.inf:
        return
    for eps, truth in ((0.8 * exact, Status.VERIFIED), (1.2 * exact, Status.FALSIFIED)):
        box = Box(*linf_ball_bounds(x0, eps, 0.0, 1.0))
        prop = Property.robustness(box, label, net.n_outputs)
        res = verify(net, prop, onnx_eval, 10.0, VerifyOptions(complete=complete, seed=seed))
        assert res.status in (truth, Status.UNKNOWN), (eps, exact, res.status, res.reason)


@pytest.mark.parametrize("seed", range(6))
def test_the_milp_alone_is_never_wrong_under_solver_faults(faulty_highs, seed) -> None:
    from verinet.bounds.crown import crown_layer_bounds
    from verinet.milp.solve import milp_check_term

    net, _, x0, label = _tiny(seed)
    chain = to_chain(net)
    exact = exact_radius(chain, x0, label, Box(np.zeros(3), np.ones(3)))
    if not 0 < exact < math.inf:
        return
    for eps, truth in ((0.8 * exact, Status.VERIFIED), (1.2 * exact, Status.FALSIFIED)):
        box = Box(*linf_ball_bounds(x0, eps, 0.0, 1.0))
        prop = Property.robustness(box, label, net.n_outputs)
        got = [milp_check_term(chain, box, t.unsafe, crown_layer_bounds(chain, box),
                               time_limit=10.0).status for t in prop.terms]
        if truth is Status.VERIFIED:  # every term must be unreachable
            assert Status.FALSIFIED not in got, (eps, exact, got)
        else:  # some term is reachable: none of those may be "proven"
            assert got.count(Status.VERIFIED) < len(got), (eps, exact, got)
    assert sum(v for k, v in faulty_highs.items() if k != "real") > 0  # faults ran
