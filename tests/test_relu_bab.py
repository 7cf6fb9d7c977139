"""Branch and bound over ReLU phases against the brute-force oracle on tiny nets.

The oracle (tests/oracle.py) gives every term's exact minimum violation.  A term with
minimum > 1e-6 is unreachable, one with minimum < -1e-6 reachable: relu_bab must prove
the property exactly when every term is unreachable and must return a confirmed witness
when some term is reachable.  Witnesses are replayed on the IR and on the ONNX model
(onnx's reference evaluator), as in the portfolio.
"""

import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.nets import (
    draw_instance,
    float32_layers,
    random_layers,
    relu_network,
    relu_onnx,
)
from tests.oracle import check_complete_search, exact_min_violation
from verinet.bounds.split import (
    Domains,
    SplitOptions,
    bound_splits,
    domain_bounds,
    optimise,
    relaxation_lines,
)
from verinet.bounds.split_root import make_root
from verinet.ir.chain import to_chain
from verinet.onnx_import.check import reference_evaluator
from verinet.optim import Adam
from verinet.spec.property import Halfspaces, Property, Term
from verinet.types import Box, Status
from verinet.verify.deadline import Deadline
from verinet.verify.portfolio import VerifyOptions, verify
from verinet.verify.relu_bab import ReluBabOptions, _certify_empty, relu_bab
from verinet.verify.witness import Replayer

MARGIN = 1e-6


@st.composite
def instances(draw):
    net, layers, prop = draw_instance(draw, n_in=(2, 4), width=(3, 8), terms=(1, 2))
    batch = draw(st.sampled_from([2, 64]))
    branching = draw(st.sampled_from(["fsb", "babsr", "intercept"]))
    return net, layers, prop, ReluBabOptions(batch=batch, split=SplitOptions(branching=branching))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_relu_bab_matches_oracle(inst):
    net, layers, prop, options = inst
    chain = to_chain(net)
    replayer = Replayer(net, prop, reference_evaluator(relu_onnx(layers)))
    out = relu_bab(chain, prop, replayer, Deadline(30.0), options=options)
    check_complete_search(net, prop, out.proven, out.counterexample, MARGIN)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_split_bounds_hold_on_sampled_points(seed):
    """Every input of a sub-domain satisfies the bounds computed for it; a domain flagged
    empty has no sampled input."""
    rng = np.random.default_rng(seed)
    layers = random_layers(rng, [3, 6, 6, 2])
    chain = to_chain(relu_network(layers))
    box = Box(rng.uniform(-1, 0, 3), rng.uniform(0, 1, 3))
    root = make_root(chain, box.lower, box.upper, iterations=5)
    B, U = 16, root.size
    split = torch.tensor(rng.integers(-1, 2, size=(B, U)), dtype=torch.int8)
    lo, hi = root.flat_bounds()
    dom = Domains(split, torch.tensor(rng.uniform(0, 1, (B, U))),
                  torch.tensor(rng.uniform(0, 2, (B, U))), lo.expand(B, U), hi.expand(B, U),
                  torch.full((B,), -1))
    C = torch.tensor(rng.normal(size=(B, 2, 2)))
    offset = torch.tensor(rng.normal(size=(B, 2)))
    res = bound_splits(root, dom, C, offset, SplitOptions(iterations=5))
    x = rng.uniform(box.lower, box.upper, size=(4000, 3))
    pre = chain.pre_activations(x)
    z = np.concatenate([pre[j][:, root.index[j].numpy()] for j in range(len(root.index))], 1)
    y = pre[-1]
    for d in range(B):
        s = split[d].numpy()
        inside = np.all(((s > 0) & (z >= 0)) | ((s < 0) & (z <= 0)) | (s == 0), axis=1)
        if not inside.any():
            continue
        val = y[inside] @ C[d].numpy().T - offset[d].numpy()
        assert np.all(val >= res.lower[d].numpy() - 1e-9)
        assert np.all(z[inside] >= res.lo[d].numpy() - 1e-9)
        assert np.all(z[inside] <= res.hi[d].numpy() + 1e-9)


def test_optimise_drops_proven_domains_without_changing_the_others():
    """Domains proven along the way leave the optimisation (the batch is compacted); the
    others get the same parameters as when optimised alone."""
    rng = np.random.default_rng(7)
    layers = random_layers(rng, [4, 8, 8, 3])
    chain = to_chain(relu_network(layers))
    box = Box(np.full(4, -1.0), np.full(4, 1.0))
    root = make_root(chain, box.lower, box.upper, iterations=0)
    B, U = 12, root.size
    lo, hi = root.flat_bounds()
    split = torch.tensor(rng.integers(-1, 2, size=(B, U)), dtype=torch.int8)
    dom = Domains(split, torch.full((B, U), 0.5, dtype=torch.float64),
                  torch.zeros((B, U), dtype=torch.float64), lo.expand(B, U), hi.expand(B, U),
                  torch.full((B,), -1))
    C = torch.tensor(rng.normal(size=(B, 1, 3)))
    easy = torch.arange(B) % 2 == 0  # offsets far below the bound: proven at once
    offset = torch.where(easy, -1e3, 1e3).to(torch.float64).reshape(B, 1)
    with torch.no_grad():
        pre, vmag, _ = domain_bounds(root, dom, True)
        lines = relaxation_lines(root, pre, vmag)
    opts = SplitOptions(iterations=6)
    alpha, beta = optimise(root, lines, split, dom.alpha, dom.beta, C, offset, opts, None)
    hard = torch.nonzero(~easy).reshape(-1)
    sub = [ln.take(hard) for ln in lines]
    a1, b1 = optimise(root, sub, split[hard], dom.alpha[hard], dom.beta[hard], C[hard],
                      offset[hard], opts, None)
    assert torch.allclose(alpha[hard], a1, atol=1e-5)
    assert torch.allclose(beta[hard], b1, atol=1e-5)
    assert not torch.equal(alpha[hard], dom.alpha[hard])  # the hard ones did move


def test_adam_keep_rows_matches_full_steps():
    """A separable objective: steps on kept rows equal the full run's rows."""
    torch.manual_seed(0)
    target = torch.randn(6, 3)
    p_full = torch.zeros(6, 3, requires_grad=True)
    p_sub = torch.zeros(6, 3, requires_grad=True)
    full, part = Adam([p_full], lr=0.1), Adam([p_sub], lr=0.1)
    rows = torch.tensor([1, 4, 5])
    for it in range(8):
        for opt, p in ((full, p_full), (part, p_sub)):
            opt.zero_grad()
            ((p - target[rows if p.shape[0] == 3 else slice(None)]) ** 2).sum().backward()
            opt.step()
        if it == 2:
            (p_sub,) = part.keep_rows(rows)
    assert torch.equal(p_full.detach()[rows], p_sub.detach())


def _one_unit_chain():
    """z = x0 (one ReLU) on x in [-1, 1]^2, output relu(z) + x1."""
    layers = [(np.array([[1.0, 0.0]]), np.zeros(1)), (np.array([[1.0]]), np.zeros(1))]
    return to_chain(relu_network(layers))


def test_certify_empty_proves_only_empty_domains():
    from verinet.bounds.interval import LayerBounds

    chain = _one_unit_chain()
    term = Term(Box(np.array([0.5, -1.0]), np.array([1.0, 1.0])),
                Halfspaces(np.ones((1, 1)), np.zeros(1)))
    inactive = LayerBounds((np.array([-1.0]), np.array([-1.0])), (np.array([0.0]), np.array([1.0])))
    assert _certify_empty(chain, term, inactive, "highs", 5.0)  # z = x0 >= 0.5 > 0
    active = LayerBounds((np.array([0.0]), np.array([0.0])), (np.array([1.0]), np.array([1.0])))
    assert not _certify_empty(chain, term, active, "highs", 5.0)


def test_deadline_is_respected():
    """An unreachable term no bound can prove (``0 <= -1e-12``: the margin is below
    PROOF_TOL) keeps the search busy until the deadline."""
    rng = np.random.default_rng(0)
    layers = float32_layers(random_layers(rng, [20, 60, 60, 60, 3], scale=0.5))
    net = relu_network(layers)
    chain = to_chain(net)
    box = Box(np.full(20, -1.0), np.ones(20))
    prop = Property((Term(box, Halfspaces(np.zeros((1, 3)), np.array([-1e-12]))),), 20, 3)
    t0 = time.monotonic()
    out = relu_bab(chain, prop, Replayer(net, prop, None), Deadline(3.0))
    assert time.monotonic() - t0 < 3.0 + 2.0
    assert not out.proven and out.counterexample is None
    assert out.domains > 0


@pytest.mark.parametrize("strategy", ["relu-bab", "chain-bab"])
def test_portfolio_relu_bab_strategy(strategy):
    rng = np.random.default_rng(3)
    layers = float32_layers(random_layers(rng, [4, 8, 8, 3]))
    net = relu_network(layers)
    box = Box(np.full(4, -0.2), np.full(4, 0.2))
    prop = Property.robustness(box, int(np.argmax(net.evaluate(box.center))), 3)
    chain = to_chain(net)
    exact = min(exact_min_violation(chain, t.box, t.unsafe)[0] for t in prop.terms)
    res = verify(net, prop, reference_evaluator(relu_onnx(layers)), timeout=30.0,
                 options=VerifyOptions(complete=strategy))
    assert res.status is (Status.VERIFIED if exact > MARGIN else Status.FALSIFIED)
