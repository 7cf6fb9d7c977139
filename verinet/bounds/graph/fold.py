"""Fold elementwise affine prefixes (input normalisation) into the dense layer after them.

``Linear(Reshape(Div(Sub(x, mean), std)))`` becomes one ``Linear`` on ``Reshape(x)`` with
``W' = W diag(1/std)`` and ``b' = b - W' mean``: one node instead of three, and the same
affine map the chain engine reads off densely, so both engines bound fully connected
models alike.  Only nodes read by nothing else are folded, and only into a Linear (a
zero-padded convolution does not commute with an offset).  Forming ``W'``/``b'`` rounds
each coefficient once (relative ``2^-53``); the folded node's magnitude ``|W'| max|x| +
|b'|`` enters every bound's slack, whose relative ``1e-10`` covers that many times over.
"""

from __future__ import annotations

from math import prod

import numpy as np

from verinet.bounds.graph.affine import LinearRule, ReshapeRule, ScaleRule


def fold_scales(order: list[str], inputs: dict[str, tuple[str, ...]],
                shape: dict[str, tuple[int, ...]], rules: dict[str, object],
                output: str) -> tuple[list[str], set[str]]:
    """Fold in place (``inputs``/``rules`` are updated); returns the new order and the
    nodes whose rule or inputs changed."""
    users: dict[str, list[str]] = {n: [] for n in order}
    for n in order[1:]:
        for i in inputs[n]:
            if i in users:
                users[i].append(n)
    removed: set[str] = set()
    changed: set[str] = set()
    for name in order:
        rule = rules.get(name)
        if not isinstance(rule, LinearRule):
            continue
        while True:
            src = inputs[name][0]
            via = None
            if isinstance(rules.get(src), ReshapeRule) and users[src] == [name]:
                via, src = src, inputs[src][0]
                if len(shape[via]) != 1:
                    break
            scale = rules.get(src)
            if (not isinstance(scale, ScaleRule) or users[src] != [via or name] or src == output
                    or scale.in_shape != scale.out_shape):
                break
            rule = _fold(rule, scale, prod(shape[src]))
            rules[name] = rule
            changed.update({name} if via is None else {name, via})
            new_in = [i for i in inputs[src] if i in shape][0]
            users[new_in] = [via or name if u == src else u for u in users[new_in]]
            if via is not None:
                inputs[via] = (new_in,)
            else:
                inputs[name] = (new_in,)
            removed.add(src)
            del rules[src]
    for name in order:  # Linear -> scale/add by a constant: the Add of a MatMul's bias
        lin = rules.get(name)
        if name in removed or not isinstance(lin, LinearRule) or len(users[name]) != 1:
            continue
        nxt = users[name][0]
        sc = rules.get(nxt)
        if (not isinstance(sc, ScaleRule) or sc.in_shape != sc.out_shape
                or len(sc.out_shape) != 1 or name == output):
            continue
        rules[nxt] = _fold_after(lin, sc)
        inputs[nxt] = inputs[name]
        changed.add(nxt)
        for i in inputs[name]:
            if i in users:
                users[i] = [nxt if u == name else u for u in users[i]]
        removed.add(name)
        del rules[name]
    return [n for n in order if n not in removed], changed - removed


def _vec(v: object, shape: tuple[int, ...], default: float) -> np.ndarray:
    n = prod(shape)
    return np.full(n, default) if v is None else np.broadcast_to(np.asarray(v), shape).reshape(-1)


def _fold_after(lin: LinearRule, sc: ScaleRule) -> LinearRule:
    """``(W x + b) * s + c`` (or ``/ s``) as one Linear."""
    W = np.asarray(lin.weight)
    b = np.zeros(W.shape[0]) if lin.offset is None else np.asarray(lin.offset)
    s, c = _vec(sc.scale, sc.out_shape, 1.0), _vec(sc.offset, sc.out_shape, 0.0)
    W2 = W / s[:, None] if sc.divide else W * s[:, None]
    b2 = (b / s if sc.divide else b * s) + c
    return LinearRule(W2, np.abs(W2), b2, fan_in=lin.fan_in + 1)


def _fold(lin: LinearRule, sc: ScaleRule, n: int) -> LinearRule:
    W = np.asarray(lin.weight)
    if W.shape[1] != n:
        return lin
    s, c = _vec(sc.scale, sc.out_shape, 1.0), _vec(sc.offset, sc.out_shape, 0.0)
    W2 = W / s if sc.divide else W * s
    b = np.zeros(W.shape[0]) if lin.offset is None else np.asarray(lin.offset)
    return LinearRule(W2, np.abs(W2), b + W @ c, fan_in=lin.fan_in)
