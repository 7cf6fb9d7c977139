"""The small models, samples and result contract every attack test file shares."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from tests.nets import float32_layers, random_layers, relu_network
from verinet.attacks import EAD, LBFGS, Attack, AttackResult, Boundary
from verinet.attacks.base import np_distance
from verinet.ir.graph import Network
from verinet.spec.property import Property
from verinet.types import Box

#: EAD, L-BFGS and Boundary with small budgets (the contract does not depend on them,
#: the test time does); every contract test of ``test_attacks.py`` runs them too.
EXTRA_ATTACKS: list[Attack] = [
    EAD(steps=80, binary_steps=4, initial_const=0.1, lr=0.05),
    EAD(steps=80, binary_steps=4, initial_const=0.1, lr=0.05, rule="l1", fista=False),
    LBFGS(search_steps=4, binary_steps=4, maxiter=30),
    LBFGS(search_steps=4, binary_steps=3, maxiter=30, loss="pair", targets=2),
    Boundary(steps=300, init_tries=50),
]


@dataclass(frozen=True)
class Fixture:
    """A small float32-exact ReLU MLP, optionally with an input normalisation prefix."""

    sizes: tuple[int, ...]
    seed: int
    normalised: bool = False

    def __repr__(self) -> str:
        return f"mlp{'-'.join(map(str, self.sizes))}{'-norm' if self.normalised else ''}"

    @functools.cached_property
    def layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return float32_layers(random_layers(np.random.default_rng(self.seed), list(self.sizes)))

    @functools.cached_property
    def network(self) -> Network:
        net = relu_network(self.layers)
        if self.normalised:
            net = net.with_normalization(np.full(self.sizes[0], 0.5), np.full(self.sizes[0], 0.25))
        return net


MODELS = [Fixture((6, 16, 3), 3), Fixture((5, 12, 12, 4), 2, normalised=True)]


def samples(model: Fixture, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points in [0, 1]^d with the IR's labels."""
    x0 = np.random.default_rng(seed).uniform(0, 1, (n, model.sizes[0]))
    return x0, np.argmax(model.network.evaluate(x0), axis=1)


def region(x0: np.ndarray, eps: float | None, lo: float = 0.0,
           hi: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The ball of radius ``eps`` (the whole domain for None) clipped to [lo, hi]."""
    if eps is None:
        return np.full(x0.shape, lo), np.full(x0.shape, hi)
    return np.maximum(lo, x0 - eps), np.minimum(hi, x0 + eps)


def check_contract(net: Network, attack: Attack, res: AttackResult, x0: np.ndarray,
                   labels: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
    """Shapes, region, success exactly as the verifier's robustness property says, and the
    distance in the attack's norm."""
    n = x0.shape[0]
    assert res.x.shape == x0.shape and res.x.dtype == np.float64
    assert res.success.shape == res.distance.shape == res.predicted.shape == (n,)
    assert res.norm == attack.norm and res.attack == attack.name and res.seconds >= 0
    assert np.all(res.x >= lo) and np.all(res.x <= hi)
    y = net.evaluate(res.x)
    np.testing.assert_array_equal(res.predicted, np.argmax(y, axis=1))
    want = np_distance(res.x, x0, attack.norm)
    for i in range(n):
        prop = Property.robustness(Box(lo[i], hi[i]), int(labels[i]), net.n_outputs)
        assert (prop.violated_by(res.x[i], y[i]) >= 0) == res.success[i]
        if res.success[i]:
            assert res.distance[i] == want[i]
        else:
            assert res.distance[i] == np.inf
            np.testing.assert_array_equal(res.x[i], x0[i])
