"""Lipschitz bounds: a sound local radius (Fast-Lip on the graph) and global constants.

* :mod:`.jacobian` -- interval bounds on the Jacobian of ``C f`` over input boxes;
* :mod:`.radius` -- the certified radius ``min_j margin_j / L_j`` with its ball search;
* :mod:`.global_bound` -- an upper bound on the Lipschitz constant of the whole network
  (products of per-node operator norms along the graph).
"""

from verinet.lipschitz.jacobian import JacobianBounds, jacobian_bounds
from verinet.lipschitz.radius import LipschitzRadius, lipschitz_radius

__all__ = ["JacobianBounds", "LipschitzRadius", "jacobian_bounds", "lipschitz_radius"]
