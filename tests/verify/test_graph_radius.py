"""The radius search on the graph (one tree kept across calls) against a brute-force
oracle on tiny CNNs and ResNets: every certified radius is robust by the oracle, and every
counterexample is real and no closer than the certified radius."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.graph_oracle import min_violation
from tests.verify.test_graph_bab import tiny_cnn, tiny_resnet, tiny_smooth
from verinet.bounds.graph import GraphModel
from verinet.ir import ops as O
from verinet.ir.graph import Network
from verinet.spec.property import Property
from verinet.verify.deadline import Deadline
from verinet.verify.graph_bab import GraphBabOptions, GraphSplitOptions
from verinet.verify.graph_bab.radius import RadiusSearch, shrink_root
from verinet.verify.graph_bab.root import make_root


def _sample(seed: int, make: object) -> tuple[Network, np.ndarray, int, tuple]:
    rng = np.random.default_rng(seed)
    net = make(rng)  # type: ignore[operator]
    x0 = rng.uniform(-0.5, 0.5, net.n_inputs)
    label = int(np.argmax(net.evaluate(x0)))
    domain = (np.full(net.n_inputs, -1.0), np.full(net.n_inputs, 1.0))
    return net, x0, label, domain


def _robust_by_oracle(net: Network, search: RadiusSearch, eps: float) -> float:
    """The oracle's smallest margin over the ball of radius eps (> 0: robust)."""
    if eps <= 0:
        return np.inf
    prop = Property.robustness(search.ball(eps), search.label, net.n_outputs)
    return min(min_violation(net, t.box, t.unsafe.A, t.unsafe.b)[0] for t in prop.terms)


@pytest.mark.parametrize("make", [tiny_resnet, tiny_cnn], ids=["resnet", "cnn"])
@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), iterations=st.sampled_from([0, 5]))
def test_radius_search_brackets_the_exact_radius(make: object, seed: int,
                                                 iterations: int) -> None:
    net, x0, label, domain = _sample(seed, make)
    opts = GraphBabOptions(batch=8, split=GraphSplitOptions(iterations=iterations),
                           root_iterations=iterations, root_tighten=0)
    search = RadiusSearch(GraphModel.of(net), net, None, x0, label, domain, opts)
    top, upper, tol = float(np.max(np.maximum(x0 - domain[0], domain[1] - x0))), np.inf, 1e-4
    for _ in range(12):
        step = search.run(top, Deadline(5))
        assert step.lower <= min(top, upper)
        assert _robust_by_oracle(net, search, step.lower) > -1e-9
        if step.counterexample is not None:
            x = step.counterexample.x
            d = float(np.max(np.abs(x - x0)))
            assert d <= top * (1 + 1e-12) and d >= step.lower
            y = net.evaluate(x)
            assert np.delete(y, label).max() >= y[label]
            upper = min(upper, d)
            top = upper - tol / 2
            if top <= step.lower or top <= 0:
                break
        else:
            assert step.proven and step.lower == top
            break
    # the exact radius lies in [lower, upper]
    if upper < np.inf:
        assert _robust_by_oracle(net, search, upper * (1 + 1e-9)) <= 1e-9


@pytest.mark.parametrize("act", [O.Sigmoid, O.Tanh], ids=["sigmoid", "tanh"])
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_radius_search_on_smooth_nets_stays_below_sampled_examples(act: type,
                                                                   seed: int) -> None:
    """No exact oracle: the certified radius never exceeds the distance of a sampled
    adversarial point (dense sampling of the input domain)."""
    net, x0, label, domain = _sample(seed, lambda rng: tiny_smooth(rng, act))
    search = RadiusSearch(GraphModel.of(net), net, None, x0, label, domain,
                          GraphBabOptions(batch=16, root_tighten=0))
    step = search.run(1.5, Deadline(5))
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-1, 1, size=(20000, net.n_inputs))
    ys = net.evaluate(xs)
    bad = np.delete(ys, label, axis=1).max(axis=1) >= ys[:, label]
    if bad.any():
        assert step.lower < np.abs(xs[bad] - x0).max(axis=1).min()
    if step.counterexample is not None:
        assert float(np.max(np.abs(step.counterexample.x - x0))) >= step.lower


def test_shrink_root_keeps_the_bounds_and_refuses_a_larger_box() -> None:
    net, x0, _, _ = _sample(1, tiny_resnet)
    gm = GraphModel.of(net)
    lo, hi = torch.tensor(x0 - 0.3), torch.tensor(x0 + 0.3)
    root = make_root(gm, lo, hi)
    small = shrink_root(root, lo + 0.1, hi - 0.1)
    name = gm.input_name
    assert torch.equal(small.state.lo[name].reshape(-1), lo + 0.1)
    for z in root.inputs:
        assert torch.equal(small.state.lo[z], root.state.lo[z])
    with pytest.raises(ValueError, match="not inside the root's"):
        shrink_root(root, lo - 0.1, hi)


def test_radius_search_refuses_a_non_positive_top() -> None:
    net, x0, label, domain = _sample(2, tiny_cnn)
    search = RadiusSearch(GraphModel.of(net), net, None, x0, label, domain)
    with pytest.raises(ValueError, match="top must be positive"):
        search.run(0.0, Deadline(1))
