"""Run every engine on the planted instances and score each answer against the truth.

Scores, per engine and instance:

* ``right``: ``sat`` on a sat instance with a witness that lies in the box and violates
  the property on onnx's reference evaluator (independent of verinet's IR and of the
  replay inside verinet), or ``unsat`` on an unsat instance;
* ``wrong``: ``unsat`` on a sat instance, ``sat`` on an unsat instance, a witness that the
  independent replay rejects, a bound engine's lower bound above the network's value at
  the witness or at a sampled point of the box, or a soundness check raised inside
  verinet (:class:`~verinet.types.SoundnessError`);
* ``unknown``: no answer within the limit; ``n/a``: the engine does not apply to the model;
* ``error``: the engine raised any other exception (a bug, though not a wrong verdict).
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields

import numpy as np

from verinet.selftest.engines import BOUND_ENGINES, ENGINES, Answer, Subject
from verinet.selftest.planted import PlantedInstance
from verinet.spec.matrices import stacked_terms
from verinet.types import SoundnessError

log = logging.getLogger(__name__)

SCORES = ("right", "wrong", "unknown", "n/a", "error")
#: Relative tolerance of the independent witness check (float32 reference evaluation).
WITNESS_TOL = 1e-5
#: Points of the box (besides the witness) at which bound engines' bounds are checked.
N_SAMPLES = 64


@dataclass(frozen=True)
class Outcome:
    instance: str
    family: str
    kind: str
    truth: str
    engine: str
    verdict: str
    score: str
    seconds: float
    note: str = ""


@dataclass(frozen=True)
class EngineScore:
    engine: str
    right: int
    wrong: int
    unknown: int
    na: int
    error: int
    sat_found: int     # right answers on sat instances
    sat_total: int     # sat instances the engine applies to
    seconds: float


@dataclass(frozen=True)
class SelftestReport:
    outcomes: tuple[Outcome, ...]
    engines: tuple[str, ...]

    @property
    def wrong(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.score == "wrong")

    @property
    def errors(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.score == "error")

    @property
    def n_instances(self) -> int:
        return len({o.instance for o in self.outcomes})

    def scores(self) -> list[EngineScore]:
        out = []
        for e in self.engines:
            mine = [o for o in self.outcomes if o.engine == e]
            count = {s: sum(o.score == s for o in mine) for s in SCORES}
            sat = [o for o in mine if o.truth == "sat" and o.score != "n/a"]
            out.append(EngineScore(e, count["right"], count["wrong"], count["unknown"],
                                   count["n/a"], count["error"],
                                   sum(o.score == "right" for o in sat), len(sat),
                                   sum(o.seconds for o in mine)))
        return out

    def table(self) -> str:
        head = (f"{'engine':<18} {'right':>5} {'wrong':>5} {'unknown':>7} {'n/a':>4} "
                f"{'error':>5} {'sat found':>9} {'seconds':>8}")
        lines = [head, "-" * len(head)]
        for s in self.scores():
            found = f"{s.sat_found}/{s.sat_total}"
            lines.append(f"{s.engine:<18} {s.right:>5} {s.wrong:>5} {s.unknown:>7} {s.na:>4} "
                         f"{s.error:>5} {found:>9} {s.seconds:>8.1f}")
        for o in self.wrong + self.errors:
            lines.append(f"{o.score.upper()}: {o.engine} on {o.instance} ({o.truth}): "
                         f"{o.verdict}; {o.note}")
        return "\n".join(lines)

    def csv(self) -> str:
        """One row per outcome, the :class:`Outcome` fields as columns."""
        names = [f.name for f in fields(Outcome)]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(names)
        w.writerows([getattr(o, n) for n in names] for o in self.outcomes)
        return buf.getvalue()

    def to_json(self) -> dict[str, object]:
        return {
            "instances": self.n_instances,
            "engines": [s.__dict__ for s in self.scores()],
            "outcomes": [o.__dict__ for o in self.outcomes],
        }


def _score(inst: PlantedInstance, ans: Answer, check: Callable[[np.ndarray], str]) -> (
        tuple[str, str]):
    if ans.verdict == "n/a":
        return "n/a", ans.note
    if ans.verdict == "unknown":
        return "unknown", ans.note
    if ans.verdict == "unsat":
        return ("right", "") if inst.truth == "unsat" else (
            "wrong", "unsat, but the planted witness violates the property")
    if inst.truth == "unsat":
        return "wrong", "sat on an instance that is safe by construction"
    assert ans.witness is not None
    bad = check(ans.witness)
    return ("wrong", bad) if bad else ("right", "")


class _Checker:
    """Independent checks of one instance: witnesses on onnx's reference evaluator, and
    bound engines' lower bounds against the IR's values at the witness and samples."""

    def __init__(self, inst: PlantedInstance, subject: Subject, seed: int) -> None:
        from verinet.onnx_import.check import reference_evaluator

        self.inst = inst
        self.ref = reference_evaluator(inst.model)
        rng = np.random.default_rng(seed)
        pts = rng.uniform(inst.box_lower, inst.box_upper, (N_SAMPLES, inst.box_lower.size))
        if inst.witness is not None:
            pts = np.vstack([inst.witness[None, :], pts])
        self.points = pts
        self.y = subject.views.network.evaluate(pts)
        _, _, self.A, self.b = stacked_terms(subject.prop)

    def witness(self, x: np.ndarray) -> str:
        lo, hi = self.inst.box_lower, self.inst.box_upper
        if x.shape != lo.shape or (x < lo).any() or (x > hi).any():
            return "the witness lies outside the input box"
        y = np.asarray(self.ref(x[None, :]), dtype=np.float64).reshape(-1)
        margin = min(y[0] - y[1], y[0] - y[2])
        if margin > WITNESS_TOL * (1.0 + np.abs(y).max()):
            return f"the reference evaluator gives the witness margin {margin:.3g} > 0"
        return ""

    def bounds(self, lower: np.ndarray) -> str:
        # value of A_t y - b_t (T, k) at every point; the bound must lie below each
        vals = np.einsum("tkm,pm->ptk", self.A, self.y) - self.b[None]
        excess = lower[None] - vals
        tol = 1e-9 * (1.0 + np.abs(vals))
        if (excess > tol).any():
            p, t, k = np.unravel_index(int(np.argmax(excess - tol)), excess.shape)
            return (f"lower bound {lower[t, k]:.6g} of term {t} row {k} is above the "
                    f"value {vals[p, t, k]:.6g} at point {p}")
        return ""


def _subject(inst: PlantedInstance) -> Subject:
    from verinet.onnx_import.check import onnx_evaluator
    from verinet.onnx_import.loader import import_model
    from verinet.spec.vnnlib import parse_vnnlib
    from verinet.verify.views import ModelViews

    imported = import_model(inst.model, name=inst.name)
    net = imported.network
    prop = parse_vnnlib(inst.vnnlib, net.n_inputs, net.n_outputs, source=inst.name)
    return Subject(ModelViews(net), prop, onnx_evaluator(imported.onnx_model))


def run_instance(inst: PlantedInstance, engines: Sequence[str], timeout: float,
                 seed: int = 0) -> Iterator[Outcome]:
    """Every engine in ``engines`` on ``inst``, scored (see the module docstring)."""
    subject = _subject(inst)
    checker = _Checker(inst, subject, seed)
    for name in engines:
        t0 = time.perf_counter()
        try:
            ans = ENGINES[name](subject, timeout)
            score, note = _score(inst, ans, checker.witness)
            if score != "wrong" and name in BOUND_ENGINES and ans.lower is not None:
                bad = checker.bounds(ans.lower)
                score, note = ("wrong", bad) if bad else (score, note)
        except SoundnessError as e:
            ans, score, note = Answer("error", 0.0), "wrong", f"soundness check: {e}"
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as e:  # an engine crash is a bug to report, not a verdict
            log.debug("%s on %s", name, inst.name, exc_info=True)
            ans, score, note = Answer("error", 0.0), "error", f"{type(e).__name__}: {e}"
        seconds = time.perf_counter() - t0
        log.info("%s %s: %s (%s, %.2f s)", inst.name, name, ans.verdict, score, seconds)
        yield Outcome(inst.name, inst.family, inst.kind, inst.truth, name, ans.verdict,
                      score, seconds, note)


def run_selftest(instances: Sequence[PlantedInstance], engines: Sequence[str] | None = None,
                 timeout: float = 5.0, seed: int = 0) -> Iterator[Outcome]:
    """Outcomes of every engine on every instance, as they finish."""
    names = tuple(ENGINES) if engines is None else tuple(engines)
    unknown = [e for e in names if e not in ENGINES]
    if unknown:
        raise ValueError(f"unknown engine(s) {', '.join(unknown)}; known: {', '.join(ENGINES)}")
    for i, inst in enumerate(instances):
        yield from run_instance(inst, names, timeout, seed + i)
