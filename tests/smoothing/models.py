"""Models for the smoothing tests: linear classifiers whose smoothed probabilities are
known in closed form, and a tiny noise-trained MLP on 2-D blobs."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import norm

from verinet.ir import ops as O
from verinet.ir.graph import Network, Node
from verinet.train import GaussianNoise, TrainConfig, build_mlp, fit, mlp_to_onnx, to_network


def linear_network(weight: np.ndarray, bias: np.ndarray, *, softmax: bool = False,
                   name: str = "linear") -> Network:
    """``x -> weight @ x + bias`` (optionally followed by a Softmax)."""
    w = np.asarray(weight, dtype=np.float64)
    nodes = [Node("fc", O.Linear(w, np.asarray(bias, dtype=np.float64)), ("x",),
                  (1, w.shape[0]))]
    if softmax:
        nodes.append(Node("sm", O.Softmax(axis=1), ("fc",), (1, w.shape[0])))
    return Network("x", (1, w.shape[1]), tuple(nodes), nodes[-1].name, name)


def binary(w: np.ndarray, b: float) -> Network:
    """Two classes, logits ``(0, w.x + b)``: class 1 iff ``w.x + b > 0``."""
    w = np.asarray(w, dtype=np.float64)
    return linear_network(np.stack([np.zeros_like(w), w]), np.array([0.0, b]))


def binary_p1(w: np.ndarray, b: float, x: np.ndarray, sigma: float) -> float:
    """``P(class 1)`` under ``N(0, sigma^2 I)``: ``Phi((w.x + b) / (sigma ||w||))``."""
    return float(norm.cdf((np.dot(w, x) + b) / (sigma * np.linalg.norm(w))))


def bands(w: np.ndarray, thresholds: np.ndarray) -> Network:
    """Multiclass linear: ``z_c = c (w.x) - sum_{j<=c} theta_j``, so class ``c`` wins
    iff ``theta_c < w.x < theta_{c+1}`` (classes are bands along ``w``)."""
    w = np.asarray(w, dtype=np.float64)
    k = len(thresholds) + 1
    weight = np.stack([c * w for c in range(k)])
    bias = -np.concatenate([[0.0], np.cumsum(thresholds)])
    return linear_network(weight, bias, name="bands")


def bands_probs(w: np.ndarray, thresholds: np.ndarray, x: np.ndarray,
                sigma: float) -> np.ndarray:
    """Closed-form class probabilities of :func:`bands` under the noise."""
    s, scale = float(np.dot(w, x)), sigma * float(np.linalg.norm(w))
    edges = np.concatenate([[-np.inf], thresholds, [np.inf]])
    return np.diff(norm.cdf((edges - s) / scale))


CENTRES = np.array([[0.2, 0.2], [0.8, 0.2], [0.5, 0.75]])


def blobs(n: int, seed: int, spread: float = 0.06) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian clusters in [0, 1]^2."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = np.clip(CENTRES[y] + rng.normal(0, spread, (n, 2)), 0, 1)
    return x.astype(np.float32), y


def trained_blobs(sigma: float = 0.12, seed: int = 0) -> tuple[torch.nn.Sequential, Network]:
    """An MLP 2-16-3 trained with Gaussian noise of ``sigma`` on :func:`blobs` (~1 s),
    and its IR network through the ONNX export."""
    x, y = blobs(600, seed)
    model = build_mlp(2, 3, (16,), seed=seed)
    fit(model, x, y, TrainConfig(epochs=40, lr=1e-2, log_every=0, seed=seed),
        objective=GaussianNoise(sigma=sigma))
    return model, to_network(mlp_to_onnx(model))
