"""The graph-native bound engine: interval, CROWN and alpha-CROWN bounds on any network
the IR holds (convolutions, pooling, residual connections, smooth activations), at the
memory cost of the network itself.

* :mod:`.model` -- :class:`GraphModel`, the engine's view of a network (derived once per
  model), and the list of nodes it cannot bound;
* :mod:`.registry` -- one rule per op (:mod:`.affine`, :mod:`.activations`,
  :mod:`.maxpool`; pooling windows in :mod:`.windows`);
* :mod:`.propagate` -- interval bounds forward, linear bounds backward, float slack;
* :mod:`.bounds` -- :func:`graph_crown` and :func:`graph_alpha_crown`.
"""

from verinet.bounds.graph.bounds import graph_alpha_crown, graph_crown
from verinet.bounds.graph.model import GraphModel
from verinet.bounds.graph.propagate import GraphOptions, GraphState, build_state

__all__ = ["GraphModel", "GraphOptions", "GraphState", "build_state", "graph_crown",
           "graph_alpha_crown"]
