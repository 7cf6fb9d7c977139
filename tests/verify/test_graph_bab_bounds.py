"""beta-CROWN on the graph stays sound on random cut sets: for random graphs (ReLU,
LeakyReLU, Sigmoid, Tanh, residual, pooling), random cuts of random units, random alpha
and beta, the bound never exceeds the objective at sampled inputs that satisfy every cut."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.graphs import random_graph, sample_box
from verinet.bounds.graph import GraphModel
from verinet.ir.torch import TorchNetwork
from verinet.verify.graph_bab.bound import GraphSplitOptions, Params, bound_domains
from verinet.verify.graph_bab.root import make_root

BLOCKS = ("conv", "residual", "avgpool", "maxpool", "bn", "concat")
ACTS = ("relu", "leaky", "sigmoid", "tanh")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), iterations=st.sampled_from([0, 3]))
def test_cut_domains_are_bounded_soundly(seed: int, iterations: int) -> None:
    rng = np.random.default_rng(seed)
    net = random_graph(seed, BLOCKS, ACTS, depth=2)
    gm = GraphModel.of(net)
    c = rng.uniform(-1, 1, net.n_inputs)
    r = rng.uniform(0.05, 0.6)
    root = make_root(gm, torch.tensor(c - r), torch.tensor(c + r))
    if root.size == 0:
        return
    xs = sample_box(rng, c - r, c + r, 4000)
    mod = TorchNetwork(net)
    with torch.no_grad():
        vals = mod.run({"x": torch.tensor(xs).reshape((len(xs),) + net.input_shape[1:])},
                       list(root.inputs) + [net.output_name])
    z = torch.cat([vals[zn].reshape(len(xs), -1)[:, idx]
                   for zn, idx in zip(root.inputs, root.index, strict=True)], dim=1)
    N = 6
    lo0, hi0 = root.unit_bounds()
    lo = lo0.expand(N, -1).clone().float()
    hi = hi0.expand(N, -1).clone().float()
    for i in range(N):  # cut a few units of each domain at the value of a sampled point
        anchor = z[int(rng.integers(len(xs)))]
        for u in rng.choice(root.size, size=min(3, root.size), replace=False):
            m = float(anchor[u])
            if rng.integers(2):
                hi[i, u] = min(float(hi[i, u]), m)
            else:
                lo[i, u] = max(float(lo[i, u]), m)
    hi = torch.maximum(hi, lo)
    prm = Params(torch.tensor(rng.uniform(0, 1, size=(N, root.size, 2)), dtype=torch.float32),
                 torch.tensor(rng.uniform(0, 2, size=(N, root.size)), dtype=torch.float32),
                 torch.tensor(rng.uniform(0, 2, size=(N, root.size)), dtype=torch.float32))
    C = torch.tensor(rng.normal(size=(N, 2, net.n_outputs)))
    b = torch.tensor(rng.normal(size=(N, 2)))
    res = bound_domains(root, lo, hi, prm, C, b, GraphSplitOptions(iterations=iterations))
    y = vals[net.output_name].reshape(len(xs), -1).double()
    for i in range(N):
        inside = ((z >= lo[i].double()) & (z <= hi[i].double())).all(dim=1)
        if not inside.any():
            continue
        obj = y[inside] @ C[i].T - b[i]
        assert torch.all(obj >= res.lower[i] - 1e-9), (i, float((res.lower[i] - obj).max()))
