"""Several networks over one shared input as one network with concatenated outputs.

``compose([f, g])`` is the network ``x -> concat(flat f(x), flat g(x))``: a VNN-LIB 2.0
query over several networks whose inputs are identified (``X_f[i] == X_g[i]``) is a
property of it, and every engine runs on it unchanged.  Two forms:

* **block-diagonal chain** (:func:`compose` picks it when every network has a chain form
  with the same sequence of activation kinds, as ``isomorphic-to`` networks do): one
  Linear layer per stage, stacking the first layers' rows and putting the later layers'
  weights on the block diagonal, so the composition is again a fully connected chain
  (the star search, input splitting and the chain bounds apply);
* **parallel graph** otherwise: each network's nodes, renamed ``<k>_<name>/...``, read
  the shared input (reshaped to their own input shape where it differs), and a
  ``Concat`` of their flattened outputs ends the graph (the graph engines bound it).

Either is checked against the networks evaluated one by one on random points
(SoundnessError on a difference).  :func:`concat_evaluators` is the same composition for
the original ONNX models (witness replay).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import scipy.linalg

from verinet.ir import ops as O
from verinet.ir.chain import Activation, Affine, Chain, to_chain
from verinet.ir.graph import Network, Node
from verinet.types import InputError, SoundnessError, UnsupportedModelError

logger = logging.getLogger(__name__)

Evaluator = Callable[[np.ndarray], np.ndarray]

#: Ops for which the block-diagonal form is tried (fully connected networks).
_DENSE = (O.Const, O.Linear, O.Binary, O.ChannelAffine, O.Reshape, O.Transpose, O.Concat,
          O.Relu, O.LeakyRelu, O.Clip, O.Sigmoid, O.Tanh)
_ACT_OPS = {"relu": O.Relu, "sigmoid": O.Sigmoid, "tanh": O.Tanh}


def compose(networks: Sequence[Network], name: str = "composed", *,
            block_diagonal: bool = True, check_points: int = 8, seed: int = 0) -> Network:
    """One network computing every network of ``networks`` on the same input, its flat
    output the concatenation of theirs (in order).  The networks must have the same
    number of flat inputs.  ``block_diagonal=False`` always builds the parallel graph."""
    nets = list(networks)
    if not nets:
        raise InputError("compose: no networks")
    n = nets[0].n_inputs
    for net in nets[1:]:
        if net.n_inputs != n:
            raise InputError(f"compose: network '{net.name}' has {net.n_inputs} inputs, "
                             f"'{nets[0].name}' {n}; a shared input needs equal sizes")
    if len(nets) == 1:
        return nets[0]
    out = _block_diagonal(nets, name) if block_diagonal else None
    form = "block-diagonal chain"
    if out is None:
        out, form = _parallel(nets, name), "parallel graph"
    _check(nets, out, check_points, seed)
    logger.info("composed %s: %s, %d nodes", " + ".join(n.name for n in nets), form,
                len(out.nodes))
    return out


def concat_evaluators(evaluators: Sequence[Evaluator]) -> Evaluator:
    """``x (B, n) -> concat(e(x) for e in evaluators)`` along the output axis: the
    composition of the original models for witness replay."""
    evs = tuple(evaluators)

    def run(x: np.ndarray) -> np.ndarray:
        xb = np.asarray(x, dtype=np.float64)
        ys = [np.asarray(e(xb), dtype=np.float64).reshape(xb.shape[0], -1) for e in evs]
        return np.concatenate(ys, axis=1)

    return run


# ----------------------------------------------------------------------------- forms


def _parallel(nets: list[Network], name: str) -> Network:
    shared = nets[0].input_shape if all(
        n.input_shape == nets[0].input_shape for n in nets) else (1, nets[0].n_inputs)
    x = "input"
    nodes: list[Node] = []
    flat_outs = []
    for k, net in enumerate(nets):
        prefix = f"{k}_{net.name}/"

        own = net.input_shape == shared  # reads the shared input as it is

        def rn(t: str, net: Network = net, prefix: str = prefix, own: bool = own) -> str:
            return x if own and t == net.input_name else prefix + t

        if not own:
            nodes.append(Node(rn(net.input_name), O.Reshape(net.input_shape[1:]), (x,),
                              net.input_shape))
        nodes.extend(Node(rn(nd.name), nd.op, tuple(rn(i) for i in nd.inputs), nd.shape)
                     for nd in net.nodes)
        flat = rn(net.output_name) + "__flat"
        nodes.append(Node(flat, O.Reshape((net.n_outputs,)), (rn(net.output_name),),
                          (1, net.n_outputs)))
        flat_outs.append(flat)
    total = sum(n.n_outputs for n in nets)
    nodes.append(Node("output", O.Concat(axis=1, n=len(nets)), tuple(flat_outs), (1, total)))
    return Network(x, shared, tuple(nodes), "output", name)


def _block_diagonal(nets: list[Network], name: str) -> Network | None:
    """The block-diagonal chain, or None when some network has no chain form or the
    activation sequences differ."""
    if not all(isinstance(nd.op, _DENSE) for net in nets for nd in net.nodes):
        return None
    try:
        chains = [to_chain(net) for net in nets]
    except UnsupportedModelError as e:
        logger.debug("compose: no chain form (%s); parallel graph", e)
        return None
    kinds = [tuple(a.kind for a in c.activations) for c in chains]
    if any(k != kinds[0] for k in kinds[1:]):
        logger.debug("compose: activation sequences differ; parallel graph")
        return None
    stages = list(zip(*(c.affines for c in chains), strict=True))
    layers: list[Affine | Activation] = []
    for s, affines in enumerate(stages):
        if s == 0:
            w = np.vstack([a.weight for a in affines])
        else:
            w = scipy.linalg.block_diag(*(a.weight for a in affines))
        b = np.concatenate([a.bias for a in affines])
        layers.append(Affine(w, b))
        if s < len(kinds[0]):
            layers.append(Activation(kinds[0][s], w.shape[0]))
    return _chain_network(Chain(tuple(layers)), nets[0].input_shape, name)


def _chain_network(chain: Chain, input_shape: tuple[int, ...], name: str) -> Network:
    """The chain as an IR network of Linear and activation nodes (flat after the input)."""
    n = chain.n_inputs
    nodes: list[Node] = []
    prev = "input"
    if input_shape != (1, n):
        nodes.append(Node("input__flat", O.Reshape((n,)), (prev,), (1, n)))
        prev = "input__flat"
    for i, layer in enumerate(chain.layers):
        if isinstance(layer, Affine):
            node = Node(f"linear{i // 2}", O.Linear(layer.weight, layer.bias), (prev,),
                        (1, layer.n_out))
        else:
            node = Node(f"{layer.kind}{i // 2}", _ACT_OPS[layer.kind](), (prev,),
                        (1, layer.size))
        nodes.append(node)
        prev = node.name
    return Network("input", input_shape, tuple(nodes), prev, name)


def _check(nets: list[Network], out: Network, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, out.n_inputs))
    want = np.concatenate([net.evaluate(x) for net in nets], axis=1)
    got = out.evaluate(x)
    err = float(np.max(np.abs(want - got))) if want.size else 0.0
    if err > 1e-8 * (1.0 + float(np.max(np.abs(want)))):
        raise SoundnessError(f"composed network differs from its parts by {err:.3g}")
