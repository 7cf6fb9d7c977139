"""Models for a VNN-LIB 2.0 query over several networks: which ONNX file is which
declared network, and the composed :class:`~verinet.api.Model` the property is about.

On the command line the first positional model is the first declared network and
``--network NAME=PATH`` (repeatable) names the others::

    verinet verify f.onnx prop.vnnlib --network g=g.onnx

A network declared ``(equal-to f)`` is the same ONNX file as ``f`` by definition, so its
``--network`` may be left out.  Every other mismatch (an undeclared name, the first
network's name, a name given twice, a declared network without a file, ``--network`` on
a single-network query) is an :class:`InputError` (exit 2) naming it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from verinet.spec.query import Query
from verinet.types import Box, InputError

if TYPE_CHECKING:
    from verinet.api import Model

logger = logging.getLogger(__name__)


def network_paths(query: Query, first: str, specs: Sequence[tuple[str, str]],
                  source: str = "the property") -> dict[str, str]:
    """The ONNX file of every declared network, in declaration order."""
    names = query.names
    declared = ", ".join(repr(n) for n in names)
    if not query.multi:
        if specs:
            raise InputError(f"--network {specs[0][0]}=...: {source} declares a single "
                             "network (the positional model); --network names the further "
                             "networks of a query over several")
        return {names[0]: first}
    paths = {names[0]: first}
    for name, path in specs:
        if name == names[0]:
            raise InputError(f"--network {name}=...: {name!r} is the first declared network, "
                             "given by the positional model")
        if name not in names:
            raise InputError(f"--network {name}=...: {source} declares no network {name!r} "
                             f"(declared: {declared})")
        if name in paths:
            raise InputError(f"--network {name}=... given twice")
        paths[name] = path
    for net in query.networks[1:]:
        if net.name in paths:
            continue
        if net.relation == "equal-to":
            paths[net.name] = paths[net.related]
            logger.info("network %s (equal-to %s): %s", net.name, net.related,
                        paths[net.name])
            continue
        raise InputError(f"network {net.name!r} declared in {source} has no ONNX file: "
                         f"give --network {net.name}=PATH (declared: {declared})")
    return {n: paths[n] for n in names}


def load_composed(query: Query, paths: Mapping[str, str | os.PathLike[str]], *,
                  mean: Sequence[float] | float | None = None,
                  std: Sequence[float] | float | None = None, check: bool = True,
                  input_box: Box | None = None) -> Model:
    """Load every network of ``query`` (each checked against its ONNX file, with the
    same normalisation of the shared input) and compose them (:mod:`verinet.ir.compose`):
    the IR network and the ONNX evaluator both give the concatenated outputs."""
    from verinet import api
    from verinet.ir.compose import compose, concat_evaluators

    models = []
    for net in query.networks:
        m = api.load_model(paths[net.name], mean=mean, std=std, check=check,
                           input_box=input_box)
        if m.n_outputs != net.n_outputs:
            raise InputError(f"network {net.name!r} ({paths[net.name]}) has {m.n_outputs} "
                             f"outputs but the query declares {net.n_outputs} for it "
                             "(dimension mismatch)")
        models.append(m)
    network = compose([m.network for m in models], name="+".join(query.names))
    evals = [m.onnx_eval for m in models]
    onnx_eval = concat_evaluators(evals) if all(e is not None for e in evals) else None
    notes = tuple(dict.fromkeys(f"{n}: {note}" for n, m in zip(query.names, models, strict=True)
                                for note in m.notes))
    path = ";".join(f"{n}={paths[n]}" for n in query.names)
    return api.Model(network, onnx_eval, path, notes, max(m.max_check_error for m in models))
