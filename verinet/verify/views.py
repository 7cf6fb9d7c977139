"""The engines' views of one network, derived once per model and shared by every call.

* ``graph``: the graph bound engine's :class:`~verinet.bounds.graph.GraphModel` (every
  model; its ``unsupported`` list names the nodes it cannot bound);
* ``chain``: the dense chain (:mod:`verinet.ir.chain`), only for fully connected models
  (dense layers, elementwise affine ops and activations), where it is cheaper: the star
  search and input splitting on low-dimensional inputs, and the chain engines of fully
  connected nets.  On convolutional models its dense matrices would cost far more than the
  network itself, so it is never formed there (``chain_reason`` says why it is absent).

Both are computed lazily and kept on the instance: a certify run or a radius bisection
passes one ``ModelViews`` to every verification instead of re-deriving them per call.
The graph engine is imported only when ``graph`` is first asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from verinet.ir import ops as O
from verinet.ir.chain import Chain, to_chain
from verinet.ir.graph import Network
from verinet.types import UnsupportedModelError

if TYPE_CHECKING:
    from verinet.bounds.graph import GraphModel

#: Ops of a fully connected model (the chain derives them by dense matrices cheaply).
DENSE_OPS = (O.Const, O.Linear, O.Binary, O.ChannelAffine, O.Reshape, O.Transpose, O.Concat,
             O.Relu, O.LeakyRelu, O.Clip, O.Sigmoid, O.Tanh)


@dataclass(frozen=True)
class ModelViews:
    network: Network
    _cache: dict[str, object] = field(default_factory=dict, repr=False, compare=False)

    @property
    def graph(self) -> GraphModel:
        if "graph" not in self._cache:
            from verinet.bounds.graph import GraphModel

            self._cache["graph"] = GraphModel.of(self.network)
        return self._cache["graph"]  # type: ignore[return-value]

    @property
    def dense(self) -> bool:
        """Only dense layers, elementwise ops and activations."""
        return all(isinstance(n.op, DENSE_OPS) for n in self.network.nodes)

    @property
    def chain(self) -> Chain | None:
        """The chain form, or None (see :attr:`chain_reason`)."""
        if "chain" not in self._cache:
            chain, why = None, "not a fully connected model (the graph engine bounds it)"
            if self.dense:
                try:
                    chain, why = to_chain(self.network), ""
                except UnsupportedModelError as e:
                    why = str(e)
            self._cache["chain"], self._cache["chain_reason"] = chain, why
        return self._cache["chain"]  # type: ignore[return-value]

    @property
    def chain_reason(self) -> str:
        _ = self.chain
        return str(self._cache["chain_reason"])

    def unsplittable(self) -> list[tuple[str, str]]:
        """(op, node) of the nonlinear nodes graph branch and bound cannot cut: it cuts
        ReLU/LeakyReLU/Sigmoid/Tanh units; MaxPool and Clip stay relaxed (their domains can
        end as unknown leaves)."""
        from verinet.bounds.graph.activations import ClipRule
        from verinet.bounds.graph.maxpool import MaxPoolRule
        from verinet.verify.graph_bab.root import SPLITTABLE

        gm = self.graph
        return [(type(self.network.node(n).op).__name__, n) for n in gm.nonlinear()
                if not isinstance(gm.rules[n], (*SPLITTABLE, MaxPoolRule, ClipRule))]

    def milp_lacking(self) -> list[tuple[str, str]]:
        """(op, node) of the nodes the graph MILP encoding cannot express exactly."""
        from verinet.milp.graph_encode import milp_lacking

        return [(op, name) for op, name, _ in milp_lacking(self.graph)]

    def lacking(self, bad: list[tuple[str, str]] | None = None,
                what: str = "complete search") -> str:
        """Why no ``what`` runs (for an ``unknown`` reason): the nodes it lacks (``bad``,
        by default the nodes branch and bound cannot cut)."""
        bad = self.unsplittable() if bad is None else bad
        shown = "; ".join(f"{op} '{name}'" for op, name in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        return f"no {what} for {len(bad)} node(s): {shown}{more}"
