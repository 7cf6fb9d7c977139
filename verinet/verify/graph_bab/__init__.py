"""Complete search over the graph: ReLU branch and bound (beta-CROWN) for CNNs, ResNets
and pooling nets, with exact LP leaves (:mod:`.root`, :mod:`.bound`, :mod:`.leaf`,
:mod:`.search`).

The options (:mod:`.options`) import no engine; the search is imported on first use, so
that naming the options (the portfolio's defaults) costs no start-up time."""

from verinet.lazy import lazy_exports
from verinet.verify.graph_bab.options import GraphBabOptions, GraphSplitOptions

_HOMES = {"GraphBabOutcome": "search", "graph_bab": "search"}

__all__ = ["GraphBabOptions", "GraphBabOutcome", "GraphSplitOptions", "graph_bab"]
__getattr__ = lazy_exports(__name__, _HOMES)
