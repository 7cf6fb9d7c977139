"""Complete search over the graph: ReLU branch and bound (beta-CROWN) for CNNs, ResNets
and pooling nets, with exact LP leaves (:mod:`.root`, :mod:`.bound`, :mod:`.leaf`,
:mod:`.search`)."""

from verinet.verify.graph_bab.bound import GraphSplitOptions
from verinet.verify.graph_bab.search import GraphBabOptions, GraphBabOutcome, graph_bab

__all__ = ["GraphBabOptions", "GraphBabOutcome", "GraphSplitOptions", "graph_bab"]
