"""ROBY (Jin et al., Information Sciences 2022; code ``Allen-piexl/ROBY``): attack-free
statistics of how a model's features separate the classes of a labelled set.  An
**estimate** of robustness to be compared across models (by rank), never a bound.

Features are the logits by default (a trailing Softmax is skipped), or the values of any
named node of the IR (flattened per sample).  Over the classes ``k`` present in the labels
(ground truth, not predictions):

* ``C_k``: the mean feature of class ``k``; ``d_k``: the mean Euclidean distance of the
  class-``k`` features to ``C_k`` (the class's spread);
* ``D_ij = ||C_i - C_j||_2`` for ``i < j``; ``O_ij = d_i + d_j - D_ij`` (positive when the
  two balls of radius ``d`` around the centres overlap);
* ``FSA_k = 1 - n(d_k)``, ``FSD_ij = n(D_ij)``, ``FSC_ij`` (the class-pair overlap) and
  ``ROBY_ij = FSA_i + FSA_j - FSD_ij``; ``FSA``, ``FSD``, ``FSC`` and ``ROBY`` are their
  means over the ``K`` classes or the ``K(K-1)/2`` pairs.

``n`` is a min-max normalisation over the model's own classes and pairs:

``"joint"`` (default)
    one range for all of the model's distances: ``lo``/``hi`` = the smallest/largest of
    all ``d_k`` and all ``D_ij``, ``n(v) = (v - lo) / (hi - lo)``; ``FSC_ij =
    max(O_ij, 0) / (d_i + d_j)``, the share of the two radii that overlaps (0 for
    disjoint balls, 1 for coinciding centres, 0 when both spreads are 0).  Spreads are
    thus measured against centre distances, so tight, far-apart classes score high FSA
    and low FSC, and diffuse, overlapping ones the opposite.
``"separate"``
    the original code (``feature_statistic.py``) and ``algorithms.md``: ``d`` min-max
    over the classes, ``D`` and ``O`` each min-max over the pairs, ``FSC_ij = n(O_ij)``.
    Each statistic is then invariant to its own scale: moving all centres apart (or
    together) changes neither FSA nor FSD, so this mode measures how uneven the classes
    are, not how separated they are (a test shows it).

A constant vector (``hi == lo``) normalises to 0.  All values lie in [0, 1] except
``ROBY_ij`` in [-1, 2].  Higher FSA and FSD and lower FSC read as more robust in the
paper; note that the combination requested in issue 5, ``FSA_i + FSA_j - FSD_ij``,
*subtracts* FSD (the paper's abstract says larger inter-class distances mean more
robustness), so ROBY is driven by FSA; the three statistics are reported alongside.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from verinet.estimates.common import logit_network, positive_int
from verinet.ir.graph import Network
from verinet.ir.torch import torch_network
from verinet.types import Guarantee, InputError, frozen_array

log = logging.getLogger(__name__)

NORMALISATIONS = ("joint", "separate")


@dataclass(frozen=True)
class RobyResult:
    """ROBY and its components for one model on one labelled set.

    Scalars: ``roby``, ``fsa``, ``fsd``, ``fsc`` (means, see the module docstring).
    Per class (order of ``classes``): ``counts``, ``spread`` (raw ``d_k``) and
    ``fsa_per_class``; per pair (K, K), symmetric with a zero diagonal:
    ``centre_distance`` (raw ``D_ij``), ``fsd_per_pair``, ``fsc_per_pair``,
    ``roby_per_pair``.  ``layer``: the feature node; ``n_features`` its size.
    """

    roby: float
    fsa: float
    fsd: float
    fsc: float
    classes: tuple[int, ...]
    counts: tuple[int, ...]
    spread: np.ndarray
    centre_distance: np.ndarray
    fsa_per_class: np.ndarray
    fsd_per_pair: np.ndarray
    fsc_per_pair: np.ndarray
    roby_per_pair: np.ndarray
    normalisation: str
    layer: str = "logits"
    n_features: int = 0
    guarantee: Guarantee = field(default=Guarantee.ESTIMATE)

    def __post_init__(self) -> None:
        for name in ("spread", "centre_distance", "fsa_per_class", "fsd_per_pair",
                     "fsc_per_pair", "roby_per_pair"):
            object.__setattr__(self, name, frozen_array(getattr(self, name)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "roby": self.roby, "fsa": self.fsa, "fsd": self.fsd, "fsc": self.fsc,
            "normalisation": self.normalisation, "layer": self.layer,
            "n_features": self.n_features, "guarantee": self.guarantee.value,
            "classes": list(self.classes), "counts": list(self.counts),
            "spread": self.spread.tolist(), "fsa_per_class": self.fsa_per_class.tolist(),
            "centre_distance": self.centre_distance.tolist(),
            "fsd_per_pair": self.fsd_per_pair.tolist(),
            "fsc_per_pair": self.fsc_per_pair.tolist(),
            "roby_per_pair": self.roby_per_pair.tolist(),
        }


# ----------------------------------------------------------------------------- statistics


def _minmax(v: np.ndarray) -> np.ndarray:
    lo, hi = float(v.min()), float(v.max())
    return np.zeros_like(v) if hi <= lo else (v - lo) / (hi - lo)


def roby_statistics(features: np.ndarray, labels: np.ndarray, *,
                    normalisation: str = "joint") -> RobyResult:
    """ROBY of feature rows ``features`` (N, F) with integer class ``labels`` (N,)."""
    f, y = _check(features, labels)
    if normalisation not in NORMALISATIONS:
        raise InputError(f"normalisation must be one of {', '.join(NORMALISATIONS)}, "
                         f"got {normalisation!r}")
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    k = classes.size
    if k < 2:
        raise InputError(f"ROBY needs samples of at least 2 classes, got {k}")
    centres = np.zeros((k, f.shape[1]))
    np.add.at(centres, inverse, f)
    centres /= counts[:, None]
    dist = np.linalg.norm(f - centres[inverse], axis=1)
    spread = np.bincount(inverse, weights=dist, minlength=k) / counts
    cd = np.linalg.norm(centres[:, None, :] - centres[None, :, :], axis=2)
    iu = np.triu_indices(k, 1)
    pair_d = cd[iu]
    overlap = spread[iu[0]] + spread[iu[1]] - pair_d
    if normalisation == "separate":
        nd, nD, fsc = _minmax(spread), _minmax(pair_d), _minmax(overlap)
    else:
        allv = np.concatenate([spread, pair_d])
        lo, width = float(allv.min()), float(allv.max() - allv.min())
        if width <= 0:
            log.warning("ROBY: every class spread and centre distance is equal; "
                        "the normalised values are 0")
            nd, nD = np.zeros(k), np.zeros(pair_d.size)
        else:
            nd, nD = (spread - lo) / width, (pair_d - lo) / width
        radii = spread[iu[0]] + spread[iu[1]]
        fsc = np.maximum(overlap, 0.0) / np.where(radii > 0, radii, 1.0)
    fsa_k = 1.0 - nd
    roby_pairs = fsa_k[iu[0]] + fsa_k[iu[1]] - nD
    return RobyResult(
        float(roby_pairs.mean()), float(fsa_k.mean()), float(nD.mean()), float(fsc.mean()),
        tuple(int(c) for c in classes), tuple(int(c) for c in counts), spread, cd, fsa_k,
        _square(nD, k, iu), _square(fsc, k, iu), _square(roby_pairs, k, iu), normalisation,
        n_features=int(f.shape[1]))


def _square(v: np.ndarray, k: int, iu: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    out = np.zeros((k, k))
    out[iu] = v
    return out + out.T


def _check(features: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] == 0 or f.shape[1] == 0:
        raise InputError(f"features must be a non-empty (N, F) array, got shape {f.shape}")
    if not np.isfinite(f).all():
        raise InputError("features contain NaN or infinite values")
    y = np.asarray(labels)
    if y.dtype == bool or not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"labels must be integers, got dtype {y.dtype}")
    if y.shape != (f.shape[0],):
        raise InputError(f"labels have shape {y.shape}, expected ({f.shape[0]},)")
    return f, y.astype(np.int64)


# ----------------------------------------------------------------------------- features


def layer_features(network: Network, x: np.ndarray, layer: str | None = None, *,
                   chunk: int = 1024) -> np.ndarray:
    """Features (N, F) in float64 of raw inputs ``x`` (N, n): the logits (``layer=None``;
    a trailing Softmax is skipped) or the flattened values of the IR node ``layer`` (any
    node name, or the input name)."""
    positive_int(chunk, "chunk")
    xa = np.asarray(x, dtype=np.float64)
    xa = xa.reshape(1, -1) if xa.ndim == 1 else xa
    if xa.ndim != 2 or xa.shape[1] != network.n_inputs:
        raise InputError(f"x has shape {np.shape(x)}, expected (N, {network.n_inputs})")
    if not np.isfinite(xa).all():
        raise InputError("x contains NaN or infinite values")
    if layer is None:
        return logit_network(network).evaluate(xa) if len(xa) else np.zeros((0, 0))
    names = [network.input_name] + [n.name for n in network.nodes]
    if layer not in names:
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise InputError(f"no node named {layer!r} in the model; nodes: {shown}")
    mod = torch_network(network, torch.float64)
    shape = network.input_shape[1:]
    parts = []
    with torch.no_grad():
        for s in range(0, len(xa), chunk):
            xb = torch.tensor(xa[s:s + chunk]).reshape((-1,) + shape)
            v = mod.run({network.input_name: xb}, [layer])[layer]
            v = v.expand((xb.shape[0],) + tuple(v.shape[1:])) if v.shape[0] != xb.shape[0] else v
            parts.append(v.reshape(xb.shape[0], -1).numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def roby(network: Network, x: np.ndarray, labels: np.ndarray, *, layer: str | None = None,
         normalisation: str = "joint", chunk: int = 1024) -> RobyResult:
    """ROBY of ``network`` on raw inputs ``x`` (N, n) with ground-truth ``labels`` (N,);
    see :func:`layer_features` and :func:`roby_statistics`."""
    y = np.asarray(labels)
    if y.ndim == 1 and np.issubdtype(y.dtype, np.integer) and y.size and (
            (y < 0) | (y >= network.n_outputs)).any():
        raise InputError(f"labels must lie in [0, {network.n_outputs}), "
                         f"got {y.min()}..{y.max()}")
    feats = layer_features(network, x, layer, chunk=chunk)
    res = roby_statistics(feats, y, normalisation=normalisation)
    return replace(res, layer="logits" if layer is None else layer)
