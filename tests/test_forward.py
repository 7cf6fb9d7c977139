"""Forward symbolic bounds: sound on sampled points and vertices, batched like single boxes."""

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.nets import random_layers
from verinet.bounds.forward import forward_bounds
from verinet.bounds.interval import interval_bounds
from verinet.ir.chain import Activation, Affine, Chain
from verinet.types import Box


def _chain(rng, sizes, kind="relu"):
    layers = []
    for i, (W, b) in enumerate(random_layers(rng, sizes)):
        layers.append(Affine(W, b))
        if i < len(sizes) - 2:
            layers.append(Activation(kind, W.shape[0]))
    return Chain(tuple(layers))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n_in=st.integers(2, 6),
    hidden=st.lists(st.integers(2, 16), min_size=1, max_size=3),
    kind=st.sampled_from(["relu", "relu", "sigmoid", "tanh"]),
)
def test_forward_bounds_contain_samples(seed, n_in, hidden, kind):
    rng = np.random.default_rng(seed)
    chain = _chain(rng, [n_in, *hidden, 3], kind)
    c = rng.uniform(-1, 1, n_in)
    r = rng.uniform(0.0, 1.0, n_in)
    lo, hi = c - r, c + r
    bounds = forward_bounds(chain, lo[None], hi[None])
    xs = rng.uniform(lo, hi, size=(2000, n_in))
    verts = np.array(list(itertools.product(*zip(lo, hi, strict=True))))
    pre = chain.pre_activations(np.vstack([xs, verts]))
    for z, (bl, bu) in zip(pre, bounds, strict=True):
        assert np.all(z >= bl[0]) and np.all(z <= bu[0])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_forward_batched_equals_single_and_beats_interval(seed):
    rng = np.random.default_rng(seed)
    chain = _chain(rng, [3, 10, 10, 2])
    lo = rng.uniform(-1, 0, size=(5, 3))
    hi = lo + rng.uniform(0, 1, size=(5, 3))
    batched = forward_bounds(chain, lo, hi)
    for i in range(5):
        single = forward_bounds(chain, lo[i:i + 1], hi[i:i + 1])
        ibp = interval_bounds(chain, Box(lo[i], hi[i]))
        for (bl, bu), (sl, su) in zip(batched, single, strict=True):
            assert np.allclose(bl[i], sl[0]) and np.allclose(bu[i], su[0])
        # On the first affine layer both are exact up to rounding slack.
        assert np.allclose(single[0][0][0], ibp.lower[0], atol=1e-9)
        assert np.allclose(single[0][1][0], ibp.upper[0], atol=1e-9)
