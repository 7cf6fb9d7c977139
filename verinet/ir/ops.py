"""IR operations as immutable data.

Tensors in the IR keep the ONNX layout, batch axis first.  Shapes recorded in the graph
use batch size 1; evaluation broadcasts over any batch size.  Constant parameters are
read-only float64 arrays.  Each op documents its inputs and its semantics; the one
lowering to torch lives in :mod:`verinet.ir.torch`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verinet.types import frozen_array


class Op:
    """Base of all ops. ``n_inputs`` is the number of tensor inputs the node takes."""

    n_inputs: int = 1
    #: True for ops whose output is an affine function of their (joint) inputs.
    affine: bool = False

    def __eq__(self, other: object) -> bool:  # arrays make dataclass __eq__ ambiguous
        return self is other

    def __hash__(self) -> int:
        return id(self)


def _freeze_fields(obj: object, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        if v is not None:
            object.__setattr__(obj, n, frozen_array(v))


@dataclass(frozen=True, eq=False)
class Const(Op):
    """A constant tensor (no inputs). Broadcasts against batched tensors like ONNX."""

    value: np.ndarray
    n_inputs = 0
    affine = True

    def __post_init__(self) -> None:
        _freeze_fields(self, "value")


@dataclass(frozen=True, eq=False)
class Linear(Op):
    """``y = x @ weight.T + bias`` on the last axis; ``weight`` has shape (out, in)."""

    weight: np.ndarray
    bias: np.ndarray | None = None
    affine = True

    def __post_init__(self) -> None:
        _freeze_fields(self, "weight", "bias")
        if self.weight.ndim != 2:
            raise ValueError(f"Linear weight must be 2-D, got {self.weight.shape}")
        if self.bias is not None and self.bias.shape != (self.weight.shape[0],):
            raise ValueError(f"Linear bias {self.bias.shape} != ({self.weight.shape[0]},)")


@dataclass(frozen=True, eq=False)
class Binary(Op):
    """Elementwise ``a (+|-|*|/) b`` with ONNX broadcasting; ``kind`` in add/sub/mul/div.

    Affine only when at most one operand depends on the input (and for mul/div the
    divisor/factor is constant); :mod:`verinet.ir.chain` checks this per node.
    """

    kind: str
    n_inputs = 2
    affine = True

    def __post_init__(self) -> None:
        if self.kind not in ("add", "sub", "mul", "div"):
            raise ValueError(f"unknown binary kind {self.kind}")


@dataclass(frozen=True, eq=False)
class Conv(Op):
    """2-D convolution, NCHW. ``pads`` = (top, left, bottom, right)."""

    weight: np.ndarray
    bias: np.ndarray | None
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilations: tuple[int, int] = (1, 1)
    groups: int = 1
    affine = True

    def __post_init__(self) -> None:
        _freeze_fields(self, "weight", "bias")
        if self.weight.ndim != 4:
            raise ValueError(f"Conv weight must be 4-D (2-D convolution), got {self.weight.shape}")


@dataclass(frozen=True, eq=False)
class ChannelAffine(Op):
    """``y = x * scale[c] + shift[c]`` along axis 1 (folded batch normalisation)."""

    scale: np.ndarray
    shift: np.ndarray
    affine = True

    def __post_init__(self) -> None:
        _freeze_fields(self, "scale", "shift")


@dataclass(frozen=True, eq=False)
class Reshape(Op):
    """Reshape each sample to ``shape`` (the batch axis is kept): covers ONNX Reshape,
    Flatten, Squeeze and Unsqueeze that leave the batch axis alone."""

    shape: tuple[int, ...]
    affine = True


@dataclass(frozen=True, eq=False)
class Transpose(Op):
    """Permute axes; ``perm[0] == 0`` (the batch axis stays first)."""

    perm: tuple[int, ...]
    affine = True


@dataclass(frozen=True, eq=False)
class Concat(Op):
    """Concatenate ``n`` inputs along ``axis`` (> 0; the batch axis is never concatenated)."""

    axis: int
    n: int = 2
    affine = True

    @property
    def n_inputs(self) -> int:  # type: ignore[override]  # per-instance arity
        return self.n


@dataclass(frozen=True, eq=False)
class Relu(Op):
    """``max(x, 0)``."""


@dataclass(frozen=True, eq=False)
class LeakyRelu(Op):
    """``x if x >= 0 else alpha * x``."""

    alpha: float = 0.01


@dataclass(frozen=True, eq=False)
class Clip(Op):
    """``min(max(x, lo), hi)``; ``None`` means unbounded on that side."""

    lo: float | None = None
    hi: float | None = None


@dataclass(frozen=True, eq=False)
class Sigmoid(Op):
    """``1 / (1 + exp(-x))``."""


@dataclass(frozen=True, eq=False)
class Tanh(Op):
    """``tanh(x)``."""


@dataclass(frozen=True, eq=False)
class Softmax(Op):
    """Softmax along ``axis`` (only kept when it is not the trailing op)."""

    axis: int = -1


@dataclass(frozen=True, eq=False)
class MaxPool(Op):
    """2-D max pooling, NCHW. ``pads`` = (top, left, bottom, right), padded with -inf."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilations: tuple[int, int] = (1, 1)
    ceil_mode: bool = False


@dataclass(frozen=True, eq=False)
class AveragePool(Op):
    """2-D average pooling, NCHW. ``pads`` = (top, left, bottom, right)."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    count_include_pad: bool = False
    ceil_mode: bool = False
    affine = True


@dataclass(frozen=True, eq=False)
class GlobalAveragePool(Op):
    """Mean over all spatial axes (axes >= 2), keeping them with size 1."""

    affine = True


ACTIVATIONS: tuple[type[Op], ...] = (Relu, LeakyRelu, Clip, Sigmoid, Tanh, MaxPool, Softmax)
