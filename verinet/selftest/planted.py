"""Networks with planted counterexamples, and their provably safe twins.

In the spirit of SoundnessBench (arXiv 2412.03154): a verifier that answers ``unsat``
where a counterexample exists is unsound, and hidden counterexamples that gradient
attacks miss are how such bugs are found.  Every instance here is a 3-class network, an
input box and the robustness property "class 0 wins" (its unsafe set: some other class
scores at least as high).  The ground truth is known by construction, not by running any
engine:

* the network's class-0 margin ``y0 - y1`` is ``m(x) + A2 bump2(x) - A bump(x)`` where the
  *base margin* ``m(x) = c + beta . r(x) + g(x) >= c > 0`` (``r`` and ``g`` are outputs of
  ReLU or Sigmoid units of a random network, ``beta >= 0``) and ``y0 - y2 >= c + c3 > 0``;
* ``bump(x) = relu(1 - |x_S - x*_S|_1 / w)`` is a narrow ReLU bump on a few coordinates
  ``S`` around a centre ``x*`` (``w`` is 1-3 % of the box width), so it lies in ``[0, 1]``
  and is 0 outside an L1 ball of radius ``w``; ``bump2`` is the same bump with radius
  ``w2 = 2.5 w``, so ``bump2 >= bump`` everywhere.

Instances come in twins that share the network and differ in the plant:

============  =====  ==========================================================
kind          truth  why
============  =====  ==========================================================
``bump``      sat    ``A = (1 + eps) m(x*)``: the margin at ``x*`` is ``-eps m(x*)``
``bump-low``  unsat  ``A = (1 - eps) c``: margin ``>= c - A = eps c``
``edge``      sat    ``x*`` lies ``0.4 w`` outside a face; at its projection onto the
                     box the bump is 0.6 and ``A = (1 + eps) m / 0.6``
``outside``   unsat  ``x*`` lies ``1.5 w`` outside a face: the bump is 0 on the box
``notch``     sat    ``A2 = A - (1 + eps) m(x*)``: margin ``-eps m(x*)`` at ``x*``
``cancel``    unsat  ``A2 = A``: margin ``>= m(x) >= c`` since ``bump2 >= bump``
============  =====  ==========================================================

Every sat instance carries its witness, checked when the instance is built by onnx's
reference evaluator (independent of verinet's IR) to violate the property by at least
``eps m / 2``.  The violation region is a tiny neighbourhood of the witness; outside the
bump's support the bump has zero gradient, so gradient attacks started elsewhere do not
see it.  Weights are stored as float32 and every unsat argument above holds for the
stored numbers (the generator checks its preconditions on them).

Families: ``mlp`` (Gemm/ReLU, a chain), ``cnn`` (Conv/ReLU/Flatten/Gemm), ``resnet``
(two branches from the input, a residual Add, MaxPool, Concat) and ``sigmoid`` (a ReLU
head beside a Sigmoid branch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx

from verinet.selftest.names import FAMILIES
from verinet.selftest.onnx_graph import OnnxGraph
from verinet.types import frozen_array

TWINS = (("bump", "bump-low"), ("edge", "outside"), ("notch", "cancel"))
KINDS = tuple(k for pair in TWINS for k in pair)
SAT_KINDS = frozenset(pair[0] for pair in TWINS)
N_OUTPUTS = 3


@dataclass(frozen=True)
class PlantedInstance:
    """One self-test instance: an ONNX model, a VNN-LIB property and the known truth."""

    name: str
    family: str
    kind: str
    truth: str                    # "sat" or "unsat"
    model: onnx.ModelProto
    vnnlib: str
    box_lower: np.ndarray
    box_upper: np.ndarray
    witness: np.ndarray | None    # flat input violating the property (sat only)
    why: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "box_lower", frozen_array(self.box_lower))
        object.__setattr__(self, "box_upper", frozen_array(self.box_upper))
        if self.witness is not None:
            object.__setattr__(self, "witness", frozen_array(self.witness))
        if self.truth not in ("sat", "unsat") or (self.truth == "sat") != (
                self.witness is not None):
            raise ValueError(f"{self.name}: a sat instance needs a witness, unsat none")


@dataclass(frozen=True)
class _Plant:
    centre: np.ndarray       # x* on the coordinates S (may lie outside the box)
    coords: np.ndarray       # S
    a: float                 # 1 / w as stored (float32)
    a2: float                # 1 / w2
    amp: float               # A
    amp2: float              # A2


def _f32(v: float) -> float:
    return float(np.float32(v))


# ----------------------------------------------------------------------------- bodies


@dataclass(frozen=True)
class _Body:
    """The random part of a network: features, the head's random rows, the box."""

    family: str
    input_shape: tuple[int, ...]
    lower: np.ndarray
    upper: np.ndarray
    weights: dict[str, np.ndarray]
    c: float
    c3: float

    @property
    def n(self) -> int:
        return math.prod(self.input_shape[1:])


def _normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
    return (rng.normal(0.0, 1.0, size=shape) / math.sqrt(fan_in)).astype(np.float32)


def _body(family: str, rng: np.random.Generator) -> _Body:
    if family in ("mlp", "sigmoid"):
        shape: tuple[int, ...] = (1, int(rng.integers(2, 7)))
    else:
        c, s = (1, int(rng.integers(3, 5))) if rng.random() < 0.6 else (2, 3)
        shape = (1, c, s, s)
    n = math.prod(shape[1:])
    if family in ("cnn", "resnet"):  # image-like boxes: a ball around a point of [0, 1]
        mid = rng.uniform(0.2, 0.8, n)
        half = rng.uniform(0.05, 0.2)
        lower, upper = mid - half, mid + half
    else:
        lower = rng.uniform(-1.0, 0.5, n)
        upper = lower + rng.uniform(0.5, 2.0, n)
    lower = lower.astype(np.float32).astype(np.float64)
    upper = upper.astype(np.float32).astype(np.float64)
    w: dict[str, np.ndarray] = {}
    k = int(rng.integers(3, 7))   # random units per layer
    if family == "cnn":
        C = shape[1]
        w["conv"] = _normal(rng, k, C, 3, 3)
        w["conv_b"] = _normal(rng, k) * 0.3
    elif family == "resnet":
        C = shape[1]
        w["conv"] = _normal(rng, k, C, 3, 3)
        w["conv_b"] = _normal(rng, k) * 0.3
        w["res"] = _normal(rng, k, k, 3, 3) * 0.5
        w["res_b"] = _normal(rng, k) * 0.3
    n_feat = _n_features(family, shape, k)
    j = int(rng.integers(2, 5))
    w["Wr"] = _normal(rng, j, n_feat)
    w["br"] = _normal(rng, j) * 0.5
    w["beta"] = rng.uniform(0.0, 1.0 / j, j).astype(np.float32)
    w["H1"] = _normal(rng, k, n_feat)
    w["c1"] = _normal(rng, k) * 0.5
    w["H2"] = _normal(rng, k, k)
    w["c2"] = _normal(rng, k) * 0.5
    w["V"] = _normal(rng, 2, k)
    w["d"] = _normal(rng, 2) * 0.5
    return _Body(family, shape, lower, upper, w, _f32(rng.uniform(0.5, 1.5)),
                 _f32(rng.uniform(0.5, 1.5)))


def _n_features(family: str, shape: tuple[int, ...], k: int) -> int:
    n = math.prod(shape[1:])
    if family in ("mlp", "sigmoid"):
        return n
    C, H, W = shape[1:]
    if family == "cnn":
        return (2 * C + k) * H * W
    return 2 * C * H * W + k * (H - 1) * (W - 1)


def _features(g: OnnxGraph, body: _Body) -> tuple[str, np.ndarray]:
    """The feature tensor (1, F) and ``P`` (n, F) with ``x = P f`` (flat x)."""
    w, n = body.weights, body.n
    if body.family in ("mlp", "sigmoid"):
        return g.input, np.eye(n, dtype=np.float32)
    C, H, W = body.input_shape[1:]
    pix = H * W
    if body.family == "cnn":
        k = w["conv"].shape[0]
        kernel = np.zeros((2 * C + k, C, 3, 3), dtype=np.float32)
        for ch in range(C):  # relu(x) and relu(-x) of each channel: x = the difference
            kernel[2 * ch, ch, 1, 1], kernel[2 * ch + 1, ch, 1, 1] = 1.0, -1.0
        kernel[2 * C:] = w["conv"]
        bias = np.concatenate([np.zeros(2 * C, np.float32), w["conv_b"]])
        f = g.flatten(g.relu(g.conv(g.input, kernel, bias, pad=1)))
        n_feat = (2 * C + k) * pix
    else:
        k = w["conv"].shape[0]
        pas = np.zeros((2 * C, C, 1, 1), dtype=np.float32)
        for ch in range(C):
            pas[2 * ch, ch], pas[2 * ch + 1, ch] = 1.0, -1.0
        a = g.flatten(g.relu(g.conv(g.input, pas, np.zeros(2 * C, np.float32))))
        h = g.relu(g.conv(g.input, w["conv"], w["conv_b"], pad=1))
        h = g.relu(g.add(h, g.conv(h, w["res"], w["res_b"], pad=1)))
        b = g.flatten(g.maxpool(h, 2, 1))
        f = g.concat([a, b])
        n_feat = 2 * C * pix + k * (H - 1) * (W - 1)
    P = np.zeros((n, n_feat), dtype=np.float32)
    for ch in range(C):
        for p in range(pix):
            P[ch * pix + p, 2 * ch * pix + p] = 1.0
            P[ch * pix + p, (2 * ch + 1) * pix + p] = -1.0
    return f, P


def _emit(body: _Body, plant: _Plant, name: str) -> onnx.ModelProto:
    """The network of ``body`` with ``plant`` (see the module docstring)."""
    w = body.weights
    g = OnnxGraph(body.input_shape)
    f, P = _features(g, body)
    S, ns = plant.coords, len(plant.coords)
    j, k = w["Wr"].shape[0], w["H1"].shape[0]
    PS = P[S]
    xs = plant.centre.astype(np.float32)
    rows1 = [PS, -PS, w["Wr"]]
    bias1 = [-xs, xs, w["br"]]
    relu_h = body.family != "sigmoid"
    if relu_h:
        rows1.append(w["H1"])
        bias1.append(w["c1"])
    h = g.relu(g.gemm(f, np.vstack(rows1), np.concatenate(bias1)))
    # layer 2: both bumps from s = sum(p + q), r passed on, h2
    width = 2 * ns + j + (k if relu_h else 0)
    n2 = 2 + j + (k if relu_h else 0)
    W2 = np.zeros((n2, width), dtype=np.float32)
    W2[0, :2 * ns], W2[1, :2 * ns] = -plant.a, -plant.a2
    W2[2:2 + j, 2 * ns:2 * ns + j] = np.eye(j)
    b2 = np.zeros(n2, dtype=np.float32)
    b2[:2] = 1.0
    if relu_h:
        W2[2 + j:, 2 * ns + j:] = w["H2"]
        b2[2 + j:] = w["c2"]
    h = g.relu(g.gemm(h, W2, b2))
    if relu_h:  # layer 3: bumps and r passed on, g = relu(V h2 + d) (2 units)
        W3 = np.zeros((2 + j + 2, n2), dtype=np.float32)
        W3[:2 + j, :2 + j] = np.eye(2 + j)
        W3[2 + j:, 2 + j:] = w["V"]
        b3 = np.concatenate([np.zeros(2 + j, np.float32), w["d"]])
        head = g.relu(g.gemm(h, W3, b3))
    else:  # a Sigmoid branch on the input beside the ReLU head: g in (0, 1)^2
        s = g.sigmoid(g.gemm(f, w["H1"], w["c1"]))
        s = g.sigmoid(g.gemm(s, w["H2"], w["c2"]))
        s = g.sigmoid(g.gemm(s, w["V"], w["d"]))
        head = g.concat([h, s])
    # output: y0 = c + beta r + A2 bump2, y1 = A bump - g1, y2 = -g2 - c3
    Wo = np.zeros((N_OUTPUTS, 2 + j + 2), dtype=np.float32)
    Wo[0, 1], Wo[0, 2:2 + j] = plant.amp2, w["beta"]
    Wo[1, 0], Wo[1, 2 + j] = plant.amp, -1.0
    Wo[2, 3 + j] = -1.0
    bo = np.array([body.c, 0.0, -body.c3], dtype=np.float32)
    return g.model(g.gemm(head, Wo, bo), N_OUTPUTS, name)


# ----------------------------------------------------------------------------- instances


def _reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    from verinet.onnx_import.check import reference_evaluator

    return np.asarray(reference_evaluator(model)(x[None, :]), dtype=np.float64).reshape(-1)


def _margin(model: onnx.ModelProto, x: np.ndarray) -> float:
    """min over classes 1, 2 of ``y0 - y_j`` (the property is violated iff <= 0)."""
    y = _reference(model, x)
    return float(min(y[0] - y[1], y[0] - y[2]))


def _sat_check(model: onnx.ModelProto, x: np.ndarray, need: float, name: str) -> float:
    got = _margin(model, x)
    if not got <= -need:
        raise AssertionError(f"{name}: the planted witness has margin {got:.4g}, "
                             f"expected <= {-need:.4g} (a generator bug)")
    return got


def instance_pair(family: str, pair: int, seed: int) -> tuple[PlantedInstance,
                                                              PlantedInstance]:
    """The twins ``TWINS[pair]`` of one random network of ``family`` (deterministic in
    ``seed``)."""
    if family not in FAMILIES or not 0 <= pair < len(TWINS):
        raise ValueError(f"unknown family {family!r} or twin pair {pair}")
    rng = np.random.default_rng([seed, FAMILIES.index(family), pair])
    body = _body(family, rng)
    n = body.n
    lo, hi = body.lower, body.upper
    ns = int(min(n, rng.integers(2, 5)))
    S = np.sort(rng.choice(n, size=ns, replace=False))
    width = float(rng.uniform(0.01, 0.03) * (hi[S] - lo[S]).min())
    a, a2 = _f32(1.0 / width), _f32(1.0 / (2.5 * width))
    eps = float(rng.uniform(0.1, 0.3))
    centre = rng.uniform(lo[S] + 2 * width, hi[S] - 2 * width)
    witness = rng.uniform(lo, hi)
    sat_kind, unsat_kind = TWINS[pair]
    stem = f"{family}-{seed}"
    version2 = seed % 2 == 1

    def build(kind: str, plant: _Plant, wit: np.ndarray | None, why: str) -> PlantedInstance:
        name = f"{stem}-{kind}"
        model = _emit(body, plant, name)
        if wit is not None:
            _sat_check(model, wit, 0.5 * eps * body.c, name)
        return PlantedInstance(name, family, kind, "sat" if wit is not None else "unsat",
                               model, vnnlib_text(name, lo, hi, version2), lo, hi, wit, why)

    def base_margin(x: np.ndarray, c: np.ndarray) -> float:
        """``m(x) = y0 - y1`` without the plant."""
        y = _reference(_emit(body, _Plant(c, S, a, a2, 0.0, 0.0), stem), x)
        return float(y[0] - y[1])

    if pair == 0:
        witness[S] = centre
        m = base_margin(witness, centre)
        sat = _Plant(centre, S, a, a2, _f32((1 + eps) * m), 0.0)
        low = _Plant(centre, S, a, a2, _f32((1 - eps) * body.c), 0.0)
        if not low.amp < body.c:
            raise AssertionError(f"{stem}: amplitude {low.amp} >= c {body.c}")
        return (build(sat_kind, sat, witness, f"margin -{eps:.2f} m(x*) at the witness"),
                build(unsat_kind, low, None, f"margin >= c - A = {body.c - low.amp:.4g}"))
    if pair == 1:
        face = int(rng.integers(ns))
        i = S[face]
        side = 1.0 if rng.random() < 0.5 else -1.0
        edge = lo[i] if side < 0 else hi[i]
        witness[S] = centre
        witness[i] = edge
        near = centre.copy()
        near[face] = edge + side * 0.4 * width
        far = centre.copy()
        far[face] = edge + side * 1.5 * width
        m = base_margin(witness, near)
        dist = float(np.abs(witness[S].astype(np.float32) - near.astype(np.float32)).sum())
        height = 1.0 - a * dist
        amp = _f32((1 + eps) * m / height)
        if not (a * abs(float(np.float32(far[face])) - edge) > 1.2):
            raise AssertionError(f"{stem}: the outside bump reaches the box")
        return (build(sat_kind, _Plant(near, S, a, a2, amp, 0.0), witness,
                      f"bump {height:.2f} at the face point, margin -{eps:.2f} m"),
                build(unsat_kind, _Plant(far, S, a, a2, amp, 0.0), None,
                      "the bump is 0 on the box (centre 1.5 w outside), margin >= c"))
    witness[S] = centre
    m = base_margin(witness, centre)
    amp = _f32(3.0 * m)
    notch = _Plant(centre, S, a, a2, amp, _f32(amp - (1 + eps) * m))
    if not a2 < a:
        raise AssertionError(f"{stem}: bump2 narrower than bump")
    return (build(sat_kind, notch, witness, f"margin -{eps:.2f} m(x*) at the witness"),
            build(unsat_kind, _Plant(centre, S, a, a2, amp, amp), None,
                  "A2 = A and bump2 >= bump: margin >= c"))


def vnnlib_text(name: str, lower: np.ndarray, upper: np.ndarray, version2: bool) -> str:
    """The robustness property "class 0 wins" on the box, in VNN-LIB 1.0 or 2.0."""
    n = lower.size
    lines = [f"; verinet selftest instance {name}: unsafe iff class 1 or 2 >= class 0"]
    if version2:
        lines += ["(vnnlib-version <2.0>)", "(declare-network f",
                  f"  (declare-input X real [{n}])",
                  f"  (declare-output Y real [{N_OUTPUTS}]))"]
        x, y = "X[{}]", "Y[{}]"
    else:
        lines += [f"(declare-const X_{i} Real)" for i in range(n)]
        lines += [f"(declare-const Y_{j} Real)" for j in range(N_OUTPUTS)]
        x, y = "X_{}", "Y_{}"
    for i in range(n):
        lines.append(f"(assert (>= {x.format(i)} {float(lower[i])!r}))")
        lines.append(f"(assert (<= {x.format(i)} {float(upper[i])!r}))")
    y0 = y.format(0)
    lines.append(f"(assert (or (and (>= {y.format(1)} {y0})) (and (>= {y.format(2)} {y0}))))")
    return "\n".join(lines) + "\n"


def generate(n_instances: int, seed: int = 0,
             families: tuple[str, ...] = FAMILIES) -> list[PlantedInstance]:
    """``n_instances`` (rounded up to whole twins) over ``families`` and every twin pair
    in turn, deterministic in ``seed``."""
    if n_instances < 1:
        raise ValueError(f"n_instances must be >= 1, got {n_instances}")
    out: list[PlantedInstance] = []
    k = 0
    while len(out) < n_instances:
        family = families[k % len(families)]
        pair = (k // len(families)) % len(TWINS)
        out.extend(instance_pair(family, pair, seed + k))
        k += 1
    return out
