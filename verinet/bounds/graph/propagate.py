"""Bound propagation on the graph: interval bounds forward, linear bounds backward.

**Forward** (:func:`build_state`), node by node in topological order, for a batch of B
input boxes: an affine node gets interval bounds from its inputs' (``mid``/``rad`` through
``L`` and ``|L|``); before an activation or pooling node, the bounds of its input are
tightened by CROWN back-substitution (``intermediate="crown"``) for the units the rule
``needs`` (ReLU: the unstable ones; Sigmoid/Tanh: all that are not flat; MaxPool: all),
and only when that input is an affine node (an activation's output is already bounded
exactly by its input's bounds).  Then the rule's relaxation is formed.

**Backward** (:func:`backward`): a coefficient tensor ``A`` (B, K, *shape) of a target
node walks the target's ancestors in reverse topological order; an affine node hands
``L^T A`` to each input, an activation hands ``A+ a_lo + A- a_up``; where a node fans
out, the contributions are summed, so a residual ``Add`` needs no special case.  The
result is a linear function of the input, minimised over the box by
:func:`concretize`.

**Floating point.**  Alongside every bound the engine sums the magnitude ``M`` of every
term that entered it: ``|A| . mag(n)`` for every affine node (``mag(n) = |L| max|x| +
|offset|``, from the interval bounds), ``|A| . X`` for every elementwise relaxation
(``X = 2 (|c_lo| + |c_up| + max(a_lo, a_up) mag(z))``, which bounds every term formed in
that step *and* in the following product with the affine node ``z`` before it, as in
:mod:`verinet.bounds.crown`; so an affine node read only by elementwise relaxations adds
no term of its own: :attr:`GraphModel.covered`), ``(|A_1| + |A_2|) . mag`` where
contributions are summed, and ``|coef| max|x|`` at the input when a nonlinear node reads
it directly; the bound is widened by the model's slack rule for the dtype
(:meth:`GraphModel.slack`, :mod:`verinet.bounds.fp`).  float32 boxes are rounded outward.
The bounds then hold for the real-valued network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor

from verinet.bounds.fp import Slack
from verinet.bounds.graph.activations import Relaxation
from verinet.bounds.graph.maxpool import MaxPoolRule, PoolRelaxation
from verinet.bounds.graph.model import GraphModel
from verinet.types import InputError

INTERMEDIATE = ("crown", "interval")


@dataclass(frozen=True)
class GraphOptions:
    """``dtype``/``device`` of the computation (float64 on the CPU keeps the float64
    slack; float32 uses the slack of :meth:`verinet.bounds.fp.Slack.for_dtype`);
    ``intermediate``: "crown" or "interval" bounds before every nonlinear node;
    ``chunk_elems``: the largest coefficient tensor formed at once; ``tighten``: Adam
    steps of alpha-CROWN on every intermediate node's unstable units after its CROWN
    bounds (0: none; :func:`verinet.bounds.graph.optimise.tighten_node`)."""

    dtype: torch.dtype = torch.float64
    device: str = "cpu"
    intermediate: str = "crown"
    chunk_elems: int = 1 << 20
    tighten: int = 0

    def __post_init__(self) -> None:
        if self.intermediate not in INTERMEDIATE:
            raise InputError(f"intermediate must be one of {INTERMEDIATE}, got "
                             f"{self.intermediate!r}")
        if self.dtype not in (torch.float64, torch.float32):
            raise InputError(f"the graph engine computes in float64 or float32, not {self.dtype}")
        if self.chunk_elems < 1 or self.tighten < 0:
            raise InputError("chunk_elems must be positive and tighten >= 0")


DEFAULT_OPTIONS = GraphOptions()


@dataclass
class GraphState:
    """Bounds of every node for one batch of boxes (built by :func:`build_state`).

    ``lo``/``hi``/``mag`` (B, *shape) per node (the input included); ``params`` the
    initial (CROWN) relaxation parameters (P, B, 1, *shape) and ``relax`` the relaxation
    of every nonlinear node."""

    gm: GraphModel
    options: GraphOptions
    rules: dict[str, object]
    slack: Slack
    lo: dict[str, Tensor] = field(default_factory=dict)
    hi: dict[str, Tensor] = field(default_factory=dict)
    mag: dict[str, Tensor] = field(default_factory=dict)
    params: dict[str, Tensor | None] = field(default_factory=dict)
    relax: dict[str, object] = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return int(self.lo[self.gm.input_name].shape[0])

    def dyn_inputs(self, name: str) -> list[str]:
        return [i for i in self.gm.inputs[name] if i in self.gm.shape]

    def relaxation(self, name: str, params: Tensor | None) -> object:
        """The relaxation of nonlinear node ``name`` for ``params`` (None: CROWN's)."""
        rule = self.rules[name]
        z = self.gm.inputs[name][0]
        lo, hi = self.lo[z].unsqueeze(1), self.hi[z].unsqueeze(1)
        if isinstance(rule, MaxPoolRule):
            return rule.relax_pool(lo, hi, params)
        return rule.relax(lo, hi, params, self.slack)  # type: ignore[attr-defined]


@contextmanager
def exact_kernels(device: str | torch.device) -> Iterator[None]:
    """Kernels whose rounding the slack rule covers: on CUDA, convolutions without TF32
    (cuDNN enables it by default; only inside this context) and matmuls refused when TF32
    is switched on for them (a 10-bit mantissa no float32 slack covers)."""
    if torch.device(device).type != "cuda":
        yield
        return
    if torch.backends.cuda.matmul.allow_tf32:
        raise InputError("torch.backends.cuda.matmul.allow_tf32 is on: bounds computed with "
                         "TF32 matrix products would not be sound; switch it off")
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        yield


def round_out(x: Tensor, dtype: torch.dtype, direction: int) -> Tensor:
    """``x`` in ``dtype``, rounded down (-1) or up (+1) so it stays a bound of ``x``."""
    y = x.to(dtype)
    if y.dtype == x.dtype:
        return y
    back = y.to(x.dtype)
    bad = back > x if direction < 0 else back < x
    if bool(bad.any()):
        toward = torch.full_like(y, direction * float("inf"))
        y = torch.where(bad, torch.nextafter(y, toward), y)
    return y


def build_state(gm: GraphModel, lo: Tensor, hi: Tensor, options: GraphOptions,
                prior: dict[str, tuple[Tensor, Tensor]] | None = None,
                stop: Callable[[], bool] | None = None) -> GraphState:
    """Bounds of every node over the boxes ``lo``/``hi`` (B, n) (float64 tensors).

    ``prior`` gives sound bounds (B, *shape) of inputs of nonlinear nodes (e.g. a
    branch-and-bound domain's): they replace the CROWN refinement of that node.
    ``stop()`` returning True ends the optional tightening early (bounds stay sound)."""
    with exact_kernels(options.device):
        return _build(gm, lo, hi, options, prior, stop)


def _build(gm: GraphModel, lo: Tensor, hi: Tensor, options: GraphOptions,
           prior: dict[str, tuple[Tensor, Tensor]] | None,
           stop: Callable[[], bool] | None) -> GraphState:
    st = GraphState(gm, options, gm.rules_on(options.dtype, options.device),
                    gm.slack(options.dtype))
    dev, dt = options.device, options.dtype
    shape = (lo.shape[0],) + gm.shape[gm.input_name]
    x_lo = round_out(lo.to(dev), dt, -1).reshape(shape)
    x_hi = round_out(hi.to(dev), dt, 1).reshape(shape)
    name0 = gm.input_name
    st.lo[name0], st.hi[name0] = x_lo, x_hi
    st.mag[name0] = torch.maximum(x_lo.abs(), x_hi.abs())
    for name in gm.order[1:]:
        rule = st.rules[name]
        if getattr(rule, "linear", False):
            _interval_affine(st, name)
            continue
        z = gm.inputs[name][0]
        if prior is not None and z in prior:
            p_lo, p_hi = prior[z]
            st.lo[z] = torch.maximum(st.lo[z], p_lo.to(dev, dt))
            st.hi[z] = torch.minimum(st.hi[z], p_hi.to(dev, dt))
        elif (options.intermediate == "crown" and z != name0
              and getattr(st.rules[z], "linear", False) and not _is_refined(st, z)):
            refine(st, z, _needs(st, z))
            if options.tighten and not (stop is not None and stop()):
                from verinet.bounds.graph.optimise import tighten_node  # (it imports this)

                tighten_node(st, z, _needs(st, z), options.tighten, stop=stop)
        _interval_nonlinear(st, name)
    return st


def _is_refined(st: GraphState, z: str) -> bool:
    """True when another consumer of ``z`` already refined it."""
    return any(c in st.relax for c in st.gm.consumers(z))


def _needs(st: GraphState, z: str) -> Tensor:
    mask = torch.zeros_like(st.lo[z], dtype=torch.bool)
    for c in st.gm.consumers(z):
        rule = st.rules[c]
        if not getattr(rule, "linear", False) and st.gm.inputs[c][0] == z:
            mask |= rule.needs(st.lo[z], st.hi[z])  # type: ignore[attr-defined]
    return mask


def _interval_affine(st: GraphState, name: str) -> None:
    rule = st.rules[name]
    ins = st.dyn_inputs(name)
    mids = [(st.lo[i] + st.hi[i]) / 2.0 for i in ins]
    rads = [(st.hi[i] - st.lo[i]) / 2.0 for i in ins]
    mids = _broadcast_batch(mids)
    rads = _broadcast_batch(rads)
    mid = rule.lin(mids)  # type: ignore[attr-defined]
    rad = rule.alin(rads)  # type: ignore[attr-defined]
    mag = rule.alin(_broadcast_batch([_maxabs(st, i) for i in ins]))  # type: ignore[attr-defined]
    off = rule.offset  # type: ignore[attr-defined]
    if off is not None:
        mid = mid + off
        mag = mag + off.abs()
    s = st.slack(mag)
    st.lo[name], st.hi[name] = mid - rad - s, mid + rad + s
    st.mag[name] = mag


def _maxabs(st: GraphState, name: str) -> Tensor:
    return torch.maximum(st.lo[name].abs(), st.hi[name].abs())


def _broadcast_batch(ts: list[Tensor]) -> list[Tensor]:
    n = max(t.shape[0] for t in ts)
    return [t if t.shape[0] == n else t.expand((n,) + tuple(t.shape[1:])) for t in ts]


def _interval_nonlinear(st: GraphState, name: str) -> None:
    rule = st.rules[name]
    z = st.gm.inputs[name][0]
    st.hi[z] = torch.maximum(st.hi[z], st.lo[z])  # sound enclosures meet (rounding)
    lo, hi = rule.interval(st.lo[z], st.hi[z], st.slack)  # type: ignore[attr-defined]
    st.lo[name], st.hi[name] = lo, hi
    st.mag[name] = torch.maximum(lo.abs(), hi.abs())
    st.params[name] = rule.init(st.lo[z].unsqueeze(1), st.hi[z].unsqueeze(1))  # type: ignore[attr-defined]
    st.relax[name] = st.relaxation(name, None)


def unit_rows(B: int, idx: Tensor, size: int, like: Tensor) -> Tensor:
    """Objective rows ``+e_i`` then ``-e_i`` for the units ``idx`` (B, 2k, size): their
    lower bounds are the units' lower bounds and negated upper bounds."""
    k = len(idx)
    A = torch.zeros((B, 2 * k, size), dtype=like.dtype, device=like.device)
    r = torch.arange(k, device=like.device)
    A[:, r, idx] = 1.0
    A[:, k + r, idx] = -1.0
    return A


def refine(st: GraphState, z: str, mask: Tensor) -> None:
    """Tighten the bounds of node ``z`` by back-substitution for the units in ``mask``
    (B, *shape) (their union over boxes is bounded for every box)."""
    gm = st.gm
    units = torch.nonzero(mask.reshape(mask.shape[0], -1).any(dim=0)).reshape(-1)
    if not len(units):
        return
    B = st.batch
    widest = max(gm.size(n) for n in gm.ancestors(z))
    rows = max(1, st.options.chunk_elems // (2 * B * widest))
    lo = st.lo[z].reshape(B, -1).clone()
    hi = st.hi[z].reshape(B, -1).clone()
    for start in range(0, len(units), rows):
        idx = units[start: start + rows]
        k = len(idx)
        A = unit_rows(B, idx, gm.size(z), lo)
        coef, const, mag = backward(st, z, A.reshape((B, 2 * k) + gm.shape[z]))
        b = concretize(st, coef, const, mag).nan_to_num(nan=-torch.inf)
        lo[:, idx] = torch.maximum(lo[:, idx], b[:, :k])
        hi[:, idx] = torch.minimum(hi[:, idx], -b[:, k:])
    st.lo[z] = lo.reshape(st.lo[z].shape)
    st.hi[z] = torch.maximum(hi, lo).reshape(st.hi[z].shape)


def backward(st: GraphState, target: str, A: Tensor,
             relax: dict[str, object] | None = None,
             add: dict[str, Tensor] | None = None,
             taps: dict[str, Tensor | None] | None = None,
             track: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Lower bound of ``A . target`` as a linear function of the input.

    ``A`` (B, K, *shape); ``relax`` overrides relaxations (alpha-CROWN); ``add[n]``
    (B, K, *shape_n) is added to node ``n``'s coefficients before it is processed (the
    split multipliers of beta-CROWN); ``taps`` (name -> None) receives the coefficients
    that reach each named node.  Returns ``(coef (B, K, n_in), const (B, K), mag
    (B, K))`` with ``A . target(x) >= coef x + const`` up to ``slack(mag)``; without
    ``track`` the magnitude stays 0 (an optimisation surrogate, not a sound bound)."""
    with exact_kernels(st.options.device):
        coefs, const, mag = _walk(st, target, A, relax, add, True, taps, track)
    B, K = A.shape[:2]
    x = coefs.get(st.gm.input_name)
    if x is None:
        x = torch.zeros((B, K, st.gm.size(st.gm.input_name)), dtype=A.dtype, device=A.device)
    return x.reshape(B, K, -1), const, mag


def _walk(st: GraphState, target: str, A: Tensor, relax: dict[str, object] | None,
          add: dict[str, Tensor] | None, nonlinear: bool,
          taps: dict[str, Tensor | None] | None = None,
          track: bool = True) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """Back-substitute ``A . target``; without ``nonlinear`` the walk stops at every
    nonlinear node (its coefficients are returned with the input's)."""
    gm = st.gm
    relax = st.relax if relax is None else {**st.relax, **relax}
    B, K = A.shape[:2]
    coefs: dict[str, Tensor] = {target: A}
    stopped: dict[str, Tensor] = {}
    const = torch.zeros((B, K), dtype=A.dtype, device=A.device)
    mag = torch.zeros_like(const)
    for name in reversed(gm.ancestors(target)):
        a = coefs.pop(name, None)
        if add is not None and name in add:
            extra = add[name]
            if track:
                mag = mag + 2.0 * _dot(extra.abs(), st.mag[name])
            a = extra if a is None else a + extra
        if a is None:
            continue
        if taps is not None and name in taps:
            taps[name] = a
        rule = st.rules.get(name)
        if name == gm.input_name or (not nonlinear and not getattr(rule, "linear", False)):
            stopped[name] = a
            continue
        if getattr(rule, "linear", False):
            if track and not rule.exact and (name == target or name not in st.gm.covered):  # type: ignore[attr-defined]
                mag = mag + _dot(a.abs(), st.mag[name])
            off = rule.offset  # type: ignore[attr-defined]
            if off is not None:
                const = const + (a * off).flatten(2).sum(-1)
            flat = a.reshape((B * K,) + tuple(a.shape[2:]))
            outs = rule.lin_t(flat)  # type: ignore[attr-defined]
            outs = [o.reshape((B, K) + tuple(o.shape[1:])) for o in outs]
        elif isinstance(rule, MaxPoolRule):
            r = relax[name]
            assert isinstance(r, PoolRelaxation)
            back, c, m = rule.backward(a, r)
            const, mag, outs = const + c, mag + m, [back]
        else:
            r = relax[name]
            assert isinstance(r, Relaxation)
            z = gm.inputs[name][0]
            pos = a.clamp(min=0.0)
            outs = [a * r.a_up + pos * (r.a_lo - r.a_up)]
            const = const + (a * r.c_up + pos * (r.c_lo - r.c_up)).flatten(2).sum(-1)
            if track:
                v = st.mag[z].unsqueeze(1)
                X = 2.0 * (r.c_lo.abs() + r.c_up.abs() + torch.maximum(r.a_lo, r.a_up) * v)
                mag = mag + (a.abs() * X).flatten(2).sum(-1)
        for i, o in zip(st.dyn_inputs(name), outs, strict=True):
            if o.shape[2:] != gm.shape[i]:  # an input broadcast over the batch of boxes
                o = o.reshape((B, K) + gm.shape[i])
            if i in coefs:
                if track:
                    mag = mag + _dot(coefs[i].abs() + o.abs(), st.mag[i])
                coefs[i] = coefs[i] + o
            else:
                coefs[i] = o
    return stopped, const, mag


def _dot(a: Tensor, m: Tensor) -> Tensor:
    """``sum a * m`` per (box, row): ``a`` (B, K, *s), ``m`` (B, *s)."""
    return (a * m.unsqueeze(1)).flatten(2).sum(-1)


def concretize(st: GraphState, coef: Tensor, const: Tensor, mag: Tensor,
               box: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Sound minimum of ``coef x + const`` over each box, widened by the slack.  ``box``:
    other input boxes (B, *s) inside the state's (the magnitudes of the state's boxes
    bound theirs, so the same slack covers them)."""
    x_lo, x_hi = (st.lo[st.gm.input_name], st.hi[st.gm.input_name]) if box is None else box
    x_lo, x_hi = (t.reshape(t.shape[0], -1, 1) for t in (x_lo, x_hi))  # a batch-1 state
    # broadcasts over many coefficient rows
    mid, rad = (x_lo + x_hi) / 2.0, (x_hi - x_lo) / 2.0
    val = (coef @ mid).squeeze(-1) - (coef.abs() @ rad).squeeze(-1) + const
    return val - st.slack(mag + input_mag(st, coef))


def input_mag(st: GraphState, coef: Tensor) -> Tensor:
    """``|coef| max|x|`` when a nonlinear node reads the input directly (else every input
    term is already inside some affine node's magnitude)."""
    gm = st.gm
    if all(getattr(st.rules[c], "linear", False) for c in gm.consumers(gm.input_name)):
        return torch.zeros(coef.shape[:2], dtype=coef.dtype, device=coef.device)
    x = st.mag[gm.input_name]
    return (coef.abs() @ x.reshape(x.shape[0], -1, 1)).squeeze(-1)


def spec_interval(st: GraphState, C: Tensor) -> tuple[Tensor, Tensor]:
    """Interval bounds of ``C y`` (C (B, K, m)): ``C`` goes back through the affine nodes
    before the output and meets the interval bounds of the first nonlinear nodes (or the
    input) there, which is tighter than the interval of ``y`` itself."""
    out = st.gm.output_name
    B, K = C.shape[:2]
    spec = torch.cat([C, -C], dim=1).reshape((B, 2 * K) + st.gm.shape[out])
    frontier, const, mag = _walk(st, out, spec, None, None, False)
    val = const
    for name, a in frontier.items():
        lo = st.lo[name].reshape(st.lo[name].shape[0], -1, 1)
        hi = st.hi[name].reshape(st.hi[name].shape[0], -1, 1)
        a = a.reshape(B, 2 * K, -1)
        val = val + (a @ ((lo + hi) / 2.0)).squeeze(-1) - (a.abs() @ ((hi - lo) / 2.0)).squeeze(-1)
        mag = mag + (a.abs() @ torch.maximum(lo.abs(), hi.abs())).squeeze(-1)
    val = val - st.slack(mag)
    return val[:, :K], -val[:, K:]
