"""Models to train: ReLU MLPs of any widths and depth, initialised from a seed.

The initialisation is torch's default for ``nn.Linear`` (Kaiming-uniform weights with
``a = sqrt(5)``, uniform biases in ``±1/sqrt(fan_in)``), drawn layer by layer from a
generator seeded with ``seed``: the same numbers as ``torch.manual_seed(seed)`` followed
by building the layers, without touching torch's global random state.
"""

from __future__ import annotations

import math

import torch

from verinet.types import InputError


def build_mlp(n_in: int, n_out: int, hidden: tuple[int, ...], *, seed: int) -> torch.nn.Sequential:
    """``Linear, ReLU, ..., Linear`` with the given hidden widths (float32)."""
    if n_in < 1 or n_out < 2 or any(h < 1 for h in hidden):
        raise InputError(f"bad MLP shape: {n_in} inputs, hidden {hidden}, {n_out} outputs")
    layers: list[torch.nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [torch.nn.Linear(width, h, device="meta"), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, n_out, device="meta"))
    net = torch.nn.Sequential(*layers).to_empty(device="cpu")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for lin in linear_layers(net):
            torch.nn.init.kaiming_uniform_(lin.weight, a=math.sqrt(5), generator=gen)
            bound = 1 / math.sqrt(lin.in_features)
            torch.nn.init.uniform_(lin.bias, -bound, bound, generator=gen)
    return net


def linear_layers(net: torch.nn.Sequential) -> list[torch.nn.Linear]:
    """The Linear layers of an MLP built by :func:`build_mlp`, in order."""
    return [m for m in net if isinstance(m, torch.nn.Linear)]


def hidden_widths(net: torch.nn.Sequential) -> tuple[int, ...]:
    return tuple(lin.out_features for lin in linear_layers(net)[:-1])
