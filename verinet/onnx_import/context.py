"""State shared by the per-op converters while one ONNX graph is lowered to the IR.

A converter receives a :class:`ConvertContext` and one ``onnx.NodeProto``.  It reads
constants and shapes through the context, emits IR nodes with :meth:`ConvertContext.emit`
and binds the node's ONNX outputs to IR tensors.  It raises :class:`Unsupported` with a
one-line reason when the node cannot be represented exactly; it never guesses.

Every ONNX tensor is in one of three states:

* constant: an initializer, a ``Constant`` output or a folded result (``consts``);
* dynamic: depends on the network input and is an IR tensor (``tensors`` maps the ONNX
  name to the IR name, ``shapes`` records the IR shape at batch size 1);
* unknown: produced by a node that failed to convert.  Its shape comes from ONNX shape
  inference when available so that later nodes can still be checked; a converter that
  needs an unknown shape raises :class:`Blocked` (not reported: the cause already is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
import torch
from onnx import helper

from verinet.ir import ops as O
from verinet.ir.graph import Node
from verinet.ir.torch import TorchNetwork

Shape = tuple[int, ...]


class Unsupported(Exception):
    """A converter cannot represent the node exactly; the message is the reason."""


class Blocked(Exception):
    """A converter needs a tensor whose producer failed to convert (already reported)."""


def _attr_value(node: onnx.NodeProto, name: str) -> object | None:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return None


def attr_int(node: onnx.NodeProto, name: str, default: int) -> int:
    """Integer attribute ``name`` of ``node`` (``default`` when absent)."""
    value = _attr_value(node, name)
    return default if value is None else int(value)  # type: ignore[call-overload]  # INT attr


def attr_float(node: onnx.NodeProto, name: str, default: float) -> float:
    """Float attribute ``name`` of ``node`` (``default`` when absent)."""
    value = _attr_value(node, name)
    return default if value is None else float(value)  # type: ignore[arg-type]  # FLOAT attr


def attr_str(node: onnx.NodeProto, name: str, default: str) -> str:
    """String attribute ``name`` of ``node``, decoded (``default`` when absent)."""
    value = _attr_value(node, name)
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else str(value)


def attr_ints(node: onnx.NodeProto, name: str, default: Sequence[int] | None = None
              ) -> tuple[int, ...] | None:
    """An integer-list attribute as a tuple (``default`` when absent)."""
    value = _attr_value(node, name)
    if value is None:
        return None if default is None else tuple(default)
    return tuple(int(v) for v in value)  # type: ignore[attr-defined]  # an INTS attribute


def node_label(node: onnx.NodeProto, index: int) -> str:
    """The name used in error messages: the node name, else its first output."""
    if node.name:
        return node.name
    if node.output and node.output[0]:
        return node.output[0]
    return f"#{index}"


@dataclass(frozen=True)
class _Probe:
    """The two attributes :class:`TorchNetwork` reads from a Network: enough to run one
    node on placeholder inputs (the IR's own shape dry run)."""

    nodes: tuple[Node, ...]
    input_name: str = "__probe_input__"


def dry_run_shape(op: O.Op, input_shapes: Sequence[Shape]) -> Shape:
    """Output shape of ``op`` on zero inputs of ``input_shapes``, by the IR's torch kernels."""
    if isinstance(op, O.Const):
        return tuple(op.value.shape)
    names = tuple(f"__in{i}" for i in range(len(input_shapes)))
    node = Node("__probe__", op, names, ())
    # duck-typed network: TorchNetwork only reads .nodes and .input_name
    mod = TorchNetwork(_Probe((node,)))  # type: ignore[arg-type]
    start = {
        n: torch.zeros(s, dtype=torch.float64)
        for n, s in zip(names, input_shapes, strict=True)
    }
    with torch.no_grad():
        out = mod.run(start, ["__probe__"])["__probe__"]
    return tuple(int(d) for d in out.shape)


@dataclass
class ConvertContext:
    """Mutable conversion state for one graph (see the module docstring)."""

    opset: int
    consumers: dict[str, list[onnx.NodeProto]]
    output_aliases: frozenset[str]
    inferred: dict[str, Shape]
    taken: set[str]
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    tensors: dict[str, str] = field(default_factory=dict)
    shapes: dict[str, Shape | None] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    const_nodes: dict[str, str] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    #: the ONNX tensor the network output equals when a trailing Softmax was stripped
    stripped_output: str | None = None

    # ------------------------------------------------------------------ tensors
    def is_const(self, name: str) -> bool:
        return name in self.consts

    def is_dynamic(self, name: str) -> bool:
        return name in self.tensors

    def require_known(self, *names: str) -> None:
        """Raise :class:`Blocked` if any of ``names`` comes from a failed node."""
        if any(n in self.unknown for n in names):
            raise Blocked(",".join(names))

    def const(self, name: str, role: str) -> np.ndarray:
        """The value of constant tensor ``name``; ``role`` names it in the error."""
        if name in self.unknown:
            raise Blocked(name)
        if name not in self.consts:
            raise Unsupported(f"{role} '{name}' must be a constant, it depends on the input")
        return self.consts[name]

    def optional_const(self, node: onnx.NodeProto, index: int, role: str) -> np.ndarray | None:
        """Constant input ``index`` of ``node``, or None when it is absent/empty."""
        if index >= len(node.input) or not node.input[index]:
            return None
        return self.const(node.input[index], role)

    def dynamic(self, name: str, role: str = "input") -> str:
        """The IR name of input-dependent ONNX tensor ``name``."""
        if name not in self.tensors:
            raise Unsupported(f"{role} '{name}' must depend on the network input")
        return self.tensors[name]

    def shape(self, name: str) -> Shape:
        """Shape at batch size 1 of ONNX tensor ``name`` (constant or dynamic)."""
        if name in self.consts:
            return tuple(self.consts[name].shape)
        shape = self.shapes.get(self.dynamic(name))
        if shape is None:
            raise Blocked(name)
        return shape

    def set_const(self, name: str, value: np.ndarray) -> None:
        self.consts[name] = np.asarray(value)

    def bind(self, onnx_name: str, ir_name: str) -> None:
        """Make ONNX tensor ``onnx_name`` an alias of IR tensor ``ir_name``."""
        self.tensors[onnx_name] = ir_name

    def bind_unknown(self, onnx_name: str) -> None:
        """Mark the output of a failed node; its shape comes from shape inference if known."""
        name = self.fresh(f"{onnx_name}__unconverted")
        self.unknown.add(onnx_name)
        self.tensors[onnx_name] = name
        self.shapes[name] = self.inferred.get(onnx_name)

    # ------------------------------------------------------------------ IR nodes
    def fresh(self, hint: str) -> str:
        """A tensor name not used by the ONNX graph nor the IR so far."""
        name, k = hint, 1
        while name in self.taken:
            name, k = f"{hint}_{k}", k + 1
        self.taken.add(name)
        return name

    def emit(self, op: O.Op, inputs: Sequence[str], output: str | None = None,
             hint: str = "") -> str:
        """Append ``op(*inputs)`` (IR names) and return its IR name.

        With ``output`` (an ONNX tensor name) the node is named after it when possible
        and the ONNX tensor is bound to it.
        """
        in_shapes = [self.shapes.get(i) for i in inputs]
        if any(s is None for s in in_shapes):
            raise Blocked(",".join(inputs))
        try:
            shape = dry_run_shape(op, in_shapes)  # type: ignore[arg-type]  # None excluded above
        except (RuntimeError, ValueError, IndexError, TypeError) as e:  # kernel rejects shapes
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise Unsupported(f"IR kernel rejects input shapes {in_shapes}: {msg}") from None
        if output is not None and output not in self.shapes:
            name = output
            self.taken.add(name)
        else:
            name = self.fresh(hint or (f"{output}__ir" if output else "t"))
        self.nodes.append(Node(name, op, tuple(inputs), shape))
        self.shapes[name] = shape
        if output is not None:
            self.bind(output, name)
        return name

    def const_node(self, value: np.ndarray, hint: str) -> str:
        """Emit a ``Const`` node holding ``value`` (float64) and return its name."""
        return self.emit(O.Const(np.asarray(value, dtype=np.float64)), (), hint=hint)

    def operand(self, name: str) -> str:
        """IR name for ONNX tensor ``name``: dynamic tensors as they are, constants as a
        (cached) ``Const`` node."""
        if name in self.tensors:
            return self.tensors[name]
        if name not in self.const_nodes:
            value = np.asarray(self.const(name, "operand"), dtype=np.float64)
            ir = self.fresh(name) if name in self.shapes else name
            self.taken.add(ir)
            self.nodes.append(Node(ir, O.Const(value), (), value.shape))
            self.shapes[ir] = tuple(value.shape)
            self.const_nodes[name] = ir
        return self.const_nodes[name]

    def producer(self, ir_name: str) -> Node | None:
        for n in self.nodes:
            if n.name == ir_name:
                return n
        return None

    def replace(self, ir_name: str, op: O.Op) -> None:
        """Replace the op of IR node ``ir_name`` (same inputs and shape)."""
        for i, n in enumerate(self.nodes):
            if n.name == ir_name:
                self.nodes[i] = Node(n.name, op, n.inputs, n.shape)
                return
        raise KeyError(ir_name)

    # ------------------------------------------------------------------ graph queries
    def is_used(self, name: str) -> bool:
        return bool(name) and (bool(self.consumers.get(name)) or name in self.output_aliases)

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)
