"""The one lowering of the IR to torch: evaluation, gradients and affine-map extraction.

``TorchNetwork`` evaluates a :class:`~verinet.ir.graph.Network` on flat batched inputs in
any float dtype and device.  ``homogeneous=True`` drops every constant offset (biases,
added constants), which turns an affine sub-graph into its linear part: this is how
:mod:`verinet.ir.chain` reads exact weight matrices off arbitrary affine op sequences.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from math import prod

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from verinet.ir import ops as O
from verinet.ir.graph import Network
from verinet.types import ModelError

# ----------------------------------------------------------------------------- kernels


def _pad4(x: Tensor, pads: tuple[int, int, int, int], value: float = 0.0) -> Tensor:
    top, left, bottom, right = pads
    if not any(pads):
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


def pool_extra(size: int, k_eff: int, stride: int, pad_begin: int, pad_end: int,
                ceil_mode: bool) -> int:
    """Extra trailing padding so torch's floor-mode pooling yields ONNX's output size.

    With ``ceil_mode`` a last window that would start beyond the input and the leading
    padding is dropped (as torch and the ONNX reference do).
    """
    span = size + pad_begin + pad_end - k_eff
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1
    return max(0, (out - 1) * stride + k_eff - (size + pad_begin + pad_end))


def _maxpool(op: O.MaxPool, x: Tensor) -> Tensor:
    kh, kw = op.kernel
    dh, dw = op.dilations
    t, left, b, r = op.pads
    eh = pool_extra(x.shape[-2], (kh - 1) * dh + 1, op.strides[0], t, b, op.ceil_mode)
    ew = pool_extra(x.shape[-1], (kw - 1) * dw + 1, op.strides[1], left, r, op.ceil_mode)
    xp = _pad4(x, (t, left, b + eh, r + ew), value=float("-inf"))
    return F.max_pool2d(xp, op.kernel, op.strides, dilation=op.dilations)


def _avgpool(op: O.AveragePool, x: Tensor) -> Tensor:
    kh, kw = op.kernel
    h, w = x.shape[-2:]
    t, left, b, r = op.pads
    eh = pool_extra(h, kh, op.strides[0], t, b, op.ceil_mode)
    ew = pool_extra(w, kw, op.strides[1], left, r, op.ceil_mode)
    full = (t, left, b + eh, r + ew)
    sums = F.avg_pool2d(_pad4(x, full), op.kernel, op.strides) * (kh * kw)
    if op.count_include_pad:
        region = _pad4(torch.ones(1, 1, h + t + b, w + left + r, dtype=x.dtype, device=x.device),
                       (0, 0, eh, ew))
    else:
        region = _pad4(torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device), full)
    counts = F.avg_pool2d(region, op.kernel, op.strides) * (kh * kw)
    return sums / counts


def _binary(op: O.Binary, a: Tensor, b: Tensor, homo: bool, const: tuple[bool, bool]) -> Tensor:
    if homo:
        # The linear part: additive constants vanish; scaling constants stay.
        if op.kind in ("add", "sub"):
            if const[0]:
                return -b if op.kind == "sub" else b
            if const[1]:
                return a
    if op.kind == "add":
        return a + b
    if op.kind == "sub":
        return a - b
    if op.kind == "mul":
        return a * b
    return a / b


def _unary(op: O.Op, x: Tensor) -> Tensor:
    if isinstance(op, O.Relu):
        return torch.relu(x)
    if isinstance(op, O.LeakyRelu):
        return F.leaky_relu(x, op.alpha)
    if isinstance(op, O.Clip):
        if op.lo is None and op.hi is None:  # torch.clamp rejects two open ends
            return x
        return torch.clamp(x, op.lo, op.hi)
    if isinstance(op, O.Sigmoid):
        return torch.sigmoid(x)
    if isinstance(op, O.Tanh):
        return torch.tanh(x)
    if isinstance(op, O.Softmax):
        return torch.softmax(x, dim=op.axis)
    if isinstance(op, O.MaxPool):
        return _maxpool(op, x)
    if isinstance(op, O.AveragePool):
        return _avgpool(op, x)
    if isinstance(op, O.GlobalAveragePool):
        return x.mean(dim=tuple(range(2, x.ndim)), keepdim=True)
    if isinstance(op, O.Reshape):
        return x.reshape((x.shape[0],) + tuple(op.shape))
    if isinstance(op, O.Transpose):
        return x.permute(op.perm)
    raise ModelError(f"no torch kernel for {type(op).__name__}")


# ----------------------------------------------------------------------------- module


class TorchNetwork(nn.Module):
    """Evaluate a Network on flat inputs ``(B, n_inputs) -> (B, n_outputs)``.

    Parameters are stored as buffers in ``dtype``; move with ``.to(device)``.
    """

    def __init__(self, net: Network, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.net = net
        self._names: dict[str, str] = {}
        for i, node in enumerate(net.nodes):
            for field in ("value", "weight", "bias", "scale", "shift"):
                arr = getattr(node.op, field, None)
                if isinstance(arr, np.ndarray):
                    key = f"p{i}_{field}"
                    self.register_buffer(key, torch.as_tensor(np.array(arr), dtype=dtype))
                    self._names[f"{node.name}:{field}"] = key
        self.const_nodes = {n.name for n in net.nodes if not _depends_on_input(n, net)}
        self._plan: tuple[object, ...] | None = None

    def _param(self, node_name: str, field: str) -> Tensor | None:
        key = self._names.get(f"{node_name}:{field}")
        return None if key is None else getattr(self, key)

    def run(
        self,
        start: dict[str, Tensor],
        targets: Iterable[str],
        homogeneous: bool = False,
    ) -> dict[str, Tensor]:
        """Evaluate the nodes needed for ``targets`` given tensors for names in ``start``.

        Values in ``start`` are full-layout tensors (batch first).  Nodes whose inputs are
        not available (and are not computable from ``start``) are skipped.
        """
        env: dict[str, Tensor] = dict(start)
        targets = list(targets)
        needed = _needed(self.net, targets, set(start))
        for node in self.net.nodes:
            if node.name in env or node.name not in needed:
                continue
            env[node.name] = self._apply_node(node, env, homogeneous)
        return {t: env[t] for t in targets}

    def _apply_node(self, node: O.Op | object, env: dict[str, Tensor], homo: bool) -> Tensor:
        op = node.op  # type: ignore[attr-defined]
        name = node.name  # type: ignore[attr-defined]
        args = [env[i] for i in node.inputs]  # type: ignore[attr-defined]
        p = self._param
        if isinstance(op, O.Const):
            v = p(name, "value")
            return torch.zeros_like(v) if homo and name not in self.const_nodes else v
        if isinstance(op, O.Linear):
            b = None if homo else p(name, "bias")
            return F.linear(args[0], p(name, "weight"), b)
        if isinstance(op, O.Conv):
            x = _pad4(args[0], op.pads)
            b = None if homo else p(name, "bias")
            return F.conv2d(x, p(name, "weight"), b, op.strides, 0, op.dilations, op.groups)
        if isinstance(op, O.ChannelAffine):
            shape = (1, -1) + (1,) * (args[0].ndim - 2)
            y = args[0] * p(name, "scale").reshape(shape)
            return y if homo else y + p(name, "shift").reshape(shape)
        if isinstance(op, O.Binary):
            const = tuple(i in self.const_nodes for i in node.inputs)  # type: ignore[attr-defined]
            return _binary(op, args[0], args[1], homo, const)  # type: ignore[arg-type]
        if isinstance(op, O.Concat):
            if homo:
                args = [
                    torch.zeros_like(a) if i in self.const_nodes else a
                    for a, i in zip(args, node.inputs, strict=True)  # type: ignore[attr-defined]
                ]
            batch = max(a.shape[0] for a in args)
            args = [a.expand((batch,) + tuple(a.shape[1:])) for a in args]
            return torch.cat(args, dim=op.axis)
        return _unary(op, args[0])

    def forward(self, x: Tensor) -> Tensor:
        """Flat ``(B, n_inputs)`` in, flat ``(B, n_outputs)`` out."""
        full = x.reshape((x.shape[0],) + self.net.input_shape[1:])
        if self._plan is None:  # the nodes the output needs, in order (computed once)
            needed = _needed(self.net, [self.net.output_name], {self.net.input_name})
            self._plan = tuple(n for n in self.net.nodes if n.name in needed)
        env: dict[str, Tensor] = {self.net.input_name: full}
        for node in self._plan:
            env[node.name] = self._apply_node(node, env, False)
        out = env[self.net.output_name]
        if out.shape[0] != x.shape[0]:
            out = out.expand((x.shape[0],) + tuple(out.shape[1:]))
        return out.reshape(x.shape[0], -1)


def _depends_on_input(node: object, net: Network) -> bool:
    dyn = {net.input_name}
    for n in net.nodes:
        if any(i in dyn for i in n.inputs):
            dyn.add(n.name)
        if n is node:
            return n.name in dyn
    return False


def _needed(net: Network, targets: list[str], available: set[str]) -> set[str]:
    by_name = {n.name: n for n in net.nodes}
    needed: set[str] = set()
    stack = [t for t in targets if t not in available]
    while stack:
        t = stack.pop()
        if t in needed or t in available:
            continue
        needed.add(t)
        stack.extend(i for i in by_name[t].inputs if i not in available)
    return needed


# ----------------------------------------------------------------------------- helpers


def torch_network(net: Network, dtype: torch.dtype = torch.float64) -> TorchNetwork:
    """Cached ``TorchNetwork`` per (network, dtype), on the CPU."""
    cache: dict[torch.dtype, TorchNetwork] = net.__dict__.setdefault("_torch_cache", {})
    if dtype not in cache:
        cache[dtype] = TorchNetwork(net, dtype).eval()
    return cache[dtype]


def evaluate_numpy(net: Network, x: np.ndarray, dtype: torch.dtype = torch.float64) -> np.ndarray:
    """Evaluate on flat ``(B, n)`` numpy inputs, returning float64 ``(B, m)``."""
    mod = torch_network(net, dtype)
    with torch.no_grad():
        y = mod(torch.tensor(np.asarray(x), dtype=dtype))
    return y.double().numpy()


def check_shapes(net: Network) -> None:
    """Dry-run the graph at batch size 1 and compare every node's output shape."""
    mod = TorchNetwork(net, torch.float64)
    x = torch.zeros(net.input_shape, dtype=torch.float64)
    env: dict[str, Tensor] = {net.input_name: x}
    for node in net.nodes:
        try:
            y = mod._apply_node(node, env, False)
        except ModelError:
            raise
        except Exception as e:  # a kernel rejected the shapes: report which node
            raise ModelError(
                f"node '{node.name}' ({type(node.op).__name__}) cannot be evaluated on inputs of "
                f"shape {[tuple(env[i].shape) for i in node.inputs]}: {e}"
            ) from None
        got = tuple(y.shape)
        same_size = prod(got) == prod(node.shape)
        if got != node.shape and not (isinstance(node.op, O.Const) and same_size):
            raise ModelError(
                f"node '{node.name}' ({type(node.op).__name__}) produces shape {got}, "
                f"graph records {node.shape}"
            )
        env[node.name] = y


def gradient(
    net: Network, x: np.ndarray, fn: Callable[[Tensor], Tensor], dtype: torch.dtype = torch.float64
) -> np.ndarray:
    """Gradient of ``fn(outputs).sum()`` with respect to flat inputs ``x`` (B, n)."""
    mod = torch_network(net, dtype)
    xt = torch.as_tensor(np.asarray(x), dtype=dtype).clone().requires_grad_(True)
    fn(mod(xt)).sum().backward()
    assert xt.grad is not None
    return xt.grad.double().numpy()
