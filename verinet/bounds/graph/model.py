"""The bound engine's view of a network: every node the output needs, with its rule.

:class:`GraphModel` is derived once per :class:`~verinet.ir.graph.Network`: it evaluates
the constant sub-graph, keeps the nodes that depend on the input in topological order,
and builds one bound rule per node from :data:`verinet.bounds.graph.registry.RULES`.  An
op without a rule (or with attributes the rule cannot bound) is recorded in
``unsupported`` -- every such node at once, never a guess -- and :meth:`GraphModel.check`
raises :class:`~verinet.types.UnsupportedModelError` listing them all.

Rules hold numpy parameters; :meth:`GraphModel.rules_on` converts them once per
(dtype, device) and keeps the result on the instance (no global cache).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from math import prod

import numpy as np
import torch

from verinet.bounds.fp import Slack
from verinet.ir.graph import Network
from verinet.ir.torch import torch_network
from verinet.types import UnsupportedModelError


class RuleError(Exception):
    """A rule cannot bound this node: ``reason`` says why (becomes an unsupported entry)."""


@dataclass(frozen=True)
class NodeInfo:
    """What a rule builder sees of one node: its op, inputs, shapes and constants.

    ``dynamic[i]`` tells whether input ``i`` depends on the network input; ``const[i]`` is
    the value of a constant input (full shape with the batch axis of size 1) or None.
    Shapes include the batch axis (size 1)."""

    name: str
    op: object
    inputs: tuple[str, ...]
    in_shapes: tuple[tuple[int, ...], ...]
    shape: tuple[int, ...]
    dynamic: tuple[bool, ...]
    const: tuple[np.ndarray | None, ...]


@dataclass(frozen=True)
class GraphModel:
    """The input-dependent part of ``network`` in topological order, with a rule each.

    ``order`` starts with the network input and ends with the output; ``inputs[name]``
    are a node's input tensors (constants included, see ``dynamic``); ``shape[name]`` its
    per-sample shape (no batch axis); ``folded`` the nodes that absorbed an elementwise
    affine neighbour (:mod:`.fold`)."""

    network: Network
    order: tuple[str, ...]
    inputs: dict[str, tuple[str, ...]]
    shape: dict[str, tuple[int, ...]]
    rules: dict[str, object]
    unsupported: tuple[tuple[str, str, str], ...]
    folded: frozenset[str] = frozenset()
    _on: dict[object, object] = field(default_factory=dict, repr=False,
                                                          compare=False)

    # ------------------------------------------------------------------ building
    @staticmethod
    def of(network: Network) -> GraphModel:
        from verinet.bounds.graph.registry import build_rule

        dyn = {network.input_name}
        for node in network.nodes:
            if any(i in dyn for i in node.inputs):
                dyn.add(node.name)
        needed = network.ancestors(network.output_name) | {network.output_name}
        const_names = [n.name for n in network.nodes if n.name in needed and n.name not in dyn]
        consts = _constants(network, const_names)
        shape: dict[str, tuple[int, ...]] = {network.input_name: network.input_shape[1:]}
        inputs: dict[str, tuple[str, ...]] = {}
        rules: dict[str, object] = {}
        order = [network.input_name]
        bad: list[tuple[str, str, str]] = []
        full = {network.input_name: network.input_shape}
        for node in network.nodes:
            full[node.name] = node.shape
            if node.name not in dyn or node.name not in needed:
                continue
            order.append(node.name)
            shape[node.name] = node.shape[1:]
            inputs[node.name] = node.inputs
            info = NodeInfo(node.name, node.op, node.inputs,
                            tuple(full[i] for i in node.inputs), node.shape,
                            tuple(i in dyn for i in node.inputs),
                            tuple(consts.get(i) for i in node.inputs))
            try:
                rules[node.name] = build_rule(info)
            except RuleError as e:
                bad.append((type(node.op).__name__, node.name, str(e)))
        if network.output_name not in dyn:
            bad.append(("Network", network.output_name, "output does not depend on the input"))
        folded: set[str] = set()
        if not bad:
            from verinet.bounds.graph.fold import fold_scales

            order, folded = fold_scales(order, inputs, shape, rules, network.output_name)
        return GraphModel(network, tuple(order), inputs, shape, rules, tuple(bad),
                          frozenset(folded))

    def check(self) -> None:
        """Raise ``UnsupportedModelError`` listing every node without a bound rule."""
        if self.unsupported:
            raise UnsupportedModelError(list(self.unsupported), "graph bound engine")

    # ------------------------------------------------------------------ queries
    @property
    def input_name(self) -> str:
        return self.network.input_name

    @property
    def output_name(self) -> str:
        return self.network.output_name

    def size(self, name: str) -> int:
        return prod(self.shape[name])

    def consumers(self, name: str) -> tuple[str, ...]:
        return tuple(n for n in self.order[1:] if name in self.inputs[n])

    def ancestors(self, name: str) -> tuple[str, ...]:
        """Dynamic nodes ``name`` depends on (itself included), in topological order."""
        seen = {name}
        stack = [name]
        while stack:
            for i in self.inputs.get(stack.pop(), ()):
                if i in self.shape and i not in seen:
                    seen.add(i)
                    stack.append(i)
        return tuple(n for n in self.order if n in seen)

    @property
    def covered(self) -> frozenset[str]:
        """Affine nodes read only by elementwise activations: the activations' relaxation
        magnitudes already cover their terms (see :mod:`.propagate`)."""
        if "covered" not in self._on:
            from verinet.bounds.graph.activations import Elementwise

            out = set()
            for n in self.order[1:]:
                users = self.consumers(n)
                if (getattr(self.rules.get(n), "linear", False) and users
                        and all(isinstance(self.rules.get(u), Elementwise) for u in users)):
                    out.add(n)
            self._on["covered"] = frozenset(out)  # type: ignore[assignment]
        return self._on["covered"]  # type: ignore[return-value]

    def cached(self, key: object, make: Callable[[], object]) -> object:
        """A value derived from the model alone (``make()``), computed once per ``key`` and
        kept on the instance (e.g. the MILP encoding's sparse rows of a node)."""
        if key not in self._on:
            self._on[key] = make()
        return self._on[key]

    def nonlinear(self) -> tuple[str, ...]:
        """Nodes whose rule is a relaxation (activations, pooling maxima)."""
        return tuple(n for n in self.order[1:] if not getattr(self.rules[n], "linear", False))

    def roundings(self) -> int:
        """An upper bound on the roundings along any path of a bound computation (every
        node's fan-in and a few more per node, the cast of parameters and the input's
        concretisation): the ``n`` of :meth:`verinet.bounds.fp.Slack.for_dtype`."""
        total = self.size(self.input_name) + 4
        for n in self.order[1:]:
            total += int(getattr(self.rules[n], "fan_in", 1)) + 6
        return total

    def slack(self, dtype: torch.dtype) -> Slack:
        return Slack.for_dtype(dtype, self.roundings())

    def rules_on(self, dtype: torch.dtype, device: str | torch.device) -> dict[str, object]:
        """The rules with torch parameters in ``dtype`` on ``device`` (converted once)."""
        self.check()
        key = (str(dtype), str(device))
        if key not in self._on:
            self._on[key] = {n: r.on(dtype, device)  # type: ignore[attr-defined]
                             for n, r in self.rules.items()}
        return self._on[key]


def _constants(net: Network, names: list[str]) -> dict[str, np.ndarray]:
    """Values of constant (input-independent) nodes, full shape, float64."""
    if not names:
        return {}
    mod = torch_network(net, torch.float64)
    with torch.no_grad():
        out = mod.run({}, names)
    return {k: v.numpy().copy() for k, v in out.items()}
