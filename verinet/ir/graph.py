"""The network IR: an immutable DAG of nodes in topological order.

One input tensor, one output tensor (the VNN-COMP setting).  Every node records the
shape of its output at batch size 1; ``Network.__post_init__`` checks that every input
name is defined before use and that shapes are consistent (by a symbolic dry run in
:mod:`verinet.ir.torch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

from verinet.ir.ops import Op
from verinet.types import InputError, ModelError


@dataclass(frozen=True)
class Node:
    """``name = op(*inputs)``; ``shape`` is the output shape at batch size 1."""

    name: str
    op: Op
    inputs: tuple[str, ...]
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if self.op.n_inputs != len(self.inputs):
            raise ModelError(
                f"node '{self.name}': {type(self.op).__name__} takes {self.op.n_inputs} "
                f"input(s), got {len(self.inputs)}"
            )


@dataclass(frozen=True)
class Network:
    """A feed-forward network ``output = f(input)``.

    ``input_shape`` and ``output_shape`` include the batch axis (size 1).  The flat
    input/output vectors used by properties are the C-order flattening of one sample.
    """

    input_name: str
    input_shape: tuple[int, ...]
    nodes: tuple[Node, ...]
    output_name: str
    name: str = "network"

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        if not self.input_shape or self.input_shape[0] != 1:
            raise ModelError(f"input shape {self.input_shape} must have a leading batch axis 1")
        defined = {self.input_name}
        for node in self.nodes:
            for i in node.inputs:
                if i not in defined:
                    raise ModelError(f"node '{node.name}' uses '{i}' before it is defined")
            if node.name in defined:
                raise ModelError(f"tensor '{node.name}' is defined twice")
            defined.add(node.name)
        if self.output_name not in defined:
            raise ModelError(f"output '{self.output_name}' is not produced by any node")
        from verinet.ir.torch import check_shapes  # local import: torch.py imports graph

        check_shapes(self)

    # ------------------------------------------------------------------ shapes
    @property
    def n_inputs(self) -> int:
        return prod(self.input_shape[1:])

    @property
    def output_shape(self) -> tuple[int, ...]:
        if self.output_name == self.input_name:
            return self.input_shape
        return self.node(self.output_name).shape

    @property
    def n_outputs(self) -> int:
        return prod(self.output_shape[1:])

    def ancestors(self, name: str) -> set[str]:
        """The nodes ``name`` depends on, itself included (the input and unknown names
        are left out)."""
        by_name = {n.name: n for n in self.nodes}
        seen: set[str] = set()
        stack = [name]
        while stack:
            t = stack.pop()
            if t in seen or t not in by_name:
                continue
            seen.add(t)
            stack.extend(by_name[t].inputs)
        return seen

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """Evaluate on flat inputs ``(B, n_inputs)`` or ``(n_inputs,)`` in float64."""
        from verinet.ir.torch import evaluate_numpy

        x = np.asarray(x, dtype=np.float64)
        single = x.ndim == 1
        xb = x.reshape(1, -1) if single else x
        if xb.ndim != 2 or xb.shape[1] != self.n_inputs:
            raise InputError(
                f"input has {xb.shape[-1]} values per sample, the model expects {self.n_inputs}"
            )
        y = evaluate_numpy(self, xb)
        return y[0] if single else y

    def with_normalization(self, mean: np.ndarray, std: np.ndarray) -> Network:
        """Prepend ``(x - mean) / std`` (broadcast over the per-sample input shape) so that
        inputs, boxes and eps live in raw input space."""
        from verinet.ir.ops import Binary, Const

        mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        if np.any(~np.isfinite(mean)) or np.any(~np.isfinite(std)) or np.any(std <= 0):
            raise InputError("normalisation needs finite mean and positive finite std")
        shape = self.input_shape
        try:
            m = np.broadcast_to(_channel_shaped(mean, shape), shape).copy()
            s = np.broadcast_to(_channel_shaped(std, shape), shape).copy()
        except ValueError as e:
            raise InputError(f"mean/std do not broadcast to input shape {shape}: {e}") from None
        raw = f"{self.input_name}__raw"
        pre = (
            Node(f"{raw}__mean", Const(m), (), shape),
            Node(f"{raw}__std", Const(s), (), shape),
            Node(f"{raw}__centred", Binary("sub"), (raw, f"{raw}__mean"), shape),
            Node(self.input_name, Binary("div"), (f"{raw}__centred", f"{raw}__std"), shape),
        )
        return Network(raw, shape, pre + self.nodes, self.output_name, self.name)


def _channel_shaped(v: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A vector of per-channel values becomes (1, C, 1, ...) when it matches axis 1."""
    if v.ndim == 1 and v.size > 1 and len(shape) >= 3 and shape[1] == v.size:
        return v.reshape((1, v.size) + (1,) * (len(shape) - 2))
    return v
