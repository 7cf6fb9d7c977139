"""An AdvGAN attack on labelled samples, confirmed on the IR and on the original ONNX model.

Only the correctly classified samples (float64 IR) are attacked.  Their examples go
through the final :meth:`~verinet.attacks.base.Attack.__call__` (clipped to the L-inf ball
∩ domain, re-checked on the float64 IR); every IR success is then replayed exactly as
``verinet certify`` replays an attack's witness
(:func:`verinet.certify.bracket.confirm_witness`: moved to the nearest float32 point in
the ball, misclassified by the float64 IR *and* the ONNX model, tolerance 0).  The
success rate is the share of the correctly classified samples whose example is
confirmed that way (the IR alone when no ONNX evaluator is given).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from verinet.certify.bracket import Sample, confirm_witness
from verinet.ir.graph import Network
from verinet.types import InputError
from verinet.verify.witness import OnnxEval

if TYPE_CHECKING:  # verinet.attacks.advgan imports this package
    from verinet.attacks.advgan import AdvGAN


@dataclass(frozen=True)
class SampleOutcome:
    """One sample: ``correct`` (clean IR prediction == label), ``success_ir`` (the final
    call's verdict), ``confirmed`` (replayed on the IR and the ONNX model), ``predicted``
    (the class given to the confirmed example, else the clean prediction) and the
    example's L-inf and L2 distances (nan unless confirmed)."""

    index: int
    label: int
    correct: bool
    success_ir: bool
    confirmed: bool
    predicted: int
    linf: float
    l2: float


@dataclass(frozen=True)
class AdvGANReport:
    """The attack's outcome on a data set; ``x`` (N, n): the confirmed examples (float32
    points, as replayed) and ``x0`` elsewhere; ``attack_seconds`` is the final call (one
    generator pass and the float64 IR check), ``confirm_seconds`` the replays."""

    x: np.ndarray
    eps: float
    onnx_checked: bool
    attack_seconds: float
    confirm_seconds: float
    samples: tuple[SampleOutcome, ...]

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def n_correct(self) -> int:
        return sum(s.correct for s in self.samples)

    @property
    def n_success_ir(self) -> int:
        return sum(s.success_ir for s in self.samples)

    @property
    def n_confirmed(self) -> int:
        return sum(s.confirmed for s in self.samples)

    @property
    def success_rate(self) -> float:
        """Confirmed examples over correctly classified samples (nan when none is)."""
        return self.n_confirmed / self.n_correct if self.n_correct else float("nan")

    def summary(self) -> dict[str, Any]:
        return {"eps": self.eps, "n": self.n, "correct": self.n_correct,
                "success_ir": self.n_success_ir, "confirmed": self.n_confirmed,
                "onnx_checked": self.onnx_checked, "success_rate": self.success_rate,
                "attack_seconds": self.attack_seconds,
                "confirm_seconds": self.confirm_seconds}

    def as_dict(self) -> dict[str, Any]:
        def clean(d: dict[str, Any]) -> dict[str, Any]:
            return {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                    for k, v in d.items()}

        return {"summary": clean(self.summary()),
                "samples": [clean(asdict(s)) for s in self.samples]}


def attack_samples(network: Network, onnx_eval: OnnxEval | None, attack: AdvGAN,
                   x: np.ndarray, y: np.ndarray, *, eps: float | None = None,
                   domain: tuple[float, float] = (0.0, 1.0),
                   indices: np.ndarray | None = None) -> AdvGANReport:
    """Attack ``x`` (N, n) raw inputs with labels ``y`` (N,) at ``eps`` (default: the
    generator's) and confirm every success (see the module docstring)."""
    e = attack.eps if eps is None else float(eps)
    xa = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    ya = np.asarray(y, dtype=np.int64).reshape(-1)
    if len(xa) != len(ya):
        raise InputError(f"{len(xa)} inputs but {len(ya)} labels")
    idx = np.arange(len(xa)) if indices is None else np.asarray(indices, dtype=np.int64)
    clean = np.argmax(network.evaluate(xa), axis=1) if len(xa) else np.zeros(0, np.int64)
    correct = clean == ya
    start = time.perf_counter()
    res = attack(network, xa[correct], ya[correct], eps=e, domain=domain)
    attack_seconds = time.perf_counter() - start
    start = time.perf_counter()
    lo, hi = np.full(xa.shape[1], domain[0]), np.full(xa.shape[1], domain[1])
    rows = np.flatnonzero(correct)
    x_out = xa.copy()
    outcomes = [SampleOutcome(int(idx[i]), int(ya[i]), False, False, False, int(clean[i]),
                              float("nan"), float("nan")) for i in range(len(xa))]
    for k, i in enumerate(rows):
        ok = bool(res.success[k])
        w = None
        if ok:
            w = confirm_witness(network, onnx_eval, Sample(xa[i], int(ya[i]), (lo, hi)),
                                res.x[k], "advgan")
            w = w if w is not None and w.distance <= e else None
        d = None if w is None else w.x - xa[i]
        if w is not None:
            x_out[i] = w.x
        outcomes[i] = SampleOutcome(
            int(idx[i]), int(ya[i]), True, ok, w is not None,
            int(clean[i]) if w is None else w.predicted,
            float("nan") if d is None else float(np.abs(d).max()),
            float("nan") if d is None else float(np.linalg.norm(d)))
    x_out.flags.writeable = False
    return AdvGANReport(x_out, e, onnx_eval is not None, attack_seconds,
                        time.perf_counter() - start, tuple(outcomes))
