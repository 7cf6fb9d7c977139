"""Model views and what each engine lacks: the graph bound engine bounds every op but
Softmax; the dense chain exists only for fully connected, sequential models; graph
branch and bound cuts ReLU/LeakyReLU/Sigmoid/Tanh units and relaxes MaxPool and Clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.graphs import random_graph
from verinet.bounds.graph.propagate import exact_kernels
from verinet.ir import ops as O
from verinet.ir.graph import Network, Node
from verinet.types import InputError
from verinet.verify.graph_bab.root import SPLITTABLE
from verinet.verify.views import ModelViews


def _net(act: O.Op) -> Network:
    nodes = (Node("fc", O.Linear(np.eye(2), np.zeros(2)), ("x",), (1, 2)),
             Node("act", act, ("fc",), (1, 2)),
             Node("out", O.Linear(np.eye(2), np.zeros(2)), ("act",), (1, 2)))
    return Network("x", (1, 2), nodes, "out")


def test_convolutional_models_get_no_dense_chain() -> None:
    views = ModelViews(random_graph(3, blocks=("conv",)))
    assert not views.dense and views.chain is None
    assert "not a fully connected model" in views.chain_reason
    assert not views.graph.unsupported


def test_the_chain_lacks_skip_connections() -> None:
    nodes = (Node("fc", O.Linear(np.eye(2), np.zeros(2)), ("x",), (1, 2)),
             Node("r", O.Relu(), ("fc",), (1, 2)),
             Node("skip", O.Binary("add"), ("r", "x"), (1, 2)))
    views = ModelViews(Network("x", (1, 2), nodes, "skip"))
    assert views.dense and views.chain is None
    assert "non-sequential graph (skip connection)" in views.chain_reason
    assert not views.graph.unsupported


@pytest.mark.parametrize("act, cut", [
    (O.Relu(), True), (O.LeakyRelu(0.1), True), (O.Sigmoid(), True), (O.Tanh(), True),
    (O.Clip(-1.0, 1.0), False)], ids=repr)
def test_what_graph_branch_and_bound_cuts(act: O.Op, cut: bool) -> None:
    views = ModelViews(_net(act))
    rule = views.graph.rules["act"]
    assert isinstance(rule, SPLITTABLE) is cut
    assert views.unsplittable() == []  # Clip is relaxed, not refused


def test_maxpool_is_relaxed_by_the_search() -> None:
    views = ModelViews(random_graph(5, blocks=("maxpool",), acts=("relu",)))
    assert views.unsplittable() == []


def test_cuda_refuses_tf32_matmuls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)
    with pytest.raises(InputError, match="allow_tf32 is on"):
        with exact_kernels("cuda"):
            pass
    with exact_kernels("cpu"):
        pass
