"""Randomized soundness campaign: hypothesis-generated tiny networks and boxes, every
engine checked against a brute-force exact oracle.

    python3 benchmarks/soundness_campaign.py [--cases 10000] [--seed 0] [--jobs 2] \
        [--timeout 2] [--out benchmarks/results/soundness_campaign]

Two families of cases, drawn by hypothesis (``tests/nets.py`` strategies):

* ``chain``: a float32 ReLU MLP with 1-3 inputs and 1-2 hidden layers of 1-4 units, a
  random VNN-LIB-style property of 1-2 terms (box, 1-2 halfspace rows), its ONNX twin;
  oracle: ``tests/oracle.py`` (every activation region, one LP each);
* ``graph``: a tiny ONNX CNN (Conv, ReLU, a residual Add, or a Concat of two
  flattened branches,
  Flatten, Gemm) with at most ``GRAPH_UNITS`` ReLU units, imported by verinet; oracle:
  ``tests/graph_oracle.py`` (every activation pattern).

Every case runs every bound engine of :mod:`verinet.selftest.engines` (the graph
engine's interval, CROWN in float64 and float32 and alpha-CROWN, and the dense chain's)
and one complete engine in rotation (MILP on HiGHS and on PuLP, ReLU BaB on the graph
and on the chain, input BaB, the star search, the portfolio without and with attacks).
A violation is:

* a bound above the network's value at a sampled point of the box (vertices included)
  or at the oracle's minimiser, or a bound certificate ``max_k lower_k`` above the
  oracle's exact minimum (up to ``TOL``);
* a complete verdict that contradicts the oracle: ``unsat`` where the exact minimum is
  below ``-MARGIN``, ``sat`` where it is above ``MARGIN`` on every term;
* a witness outside its box, or one that does not violate the property on the IR and on
  onnx's reference evaluator;
* a :class:`~verinet.types.SoundnessError` raised inside verinet, or a crash.

Each job is one process with its own hypothesis seed; ``campaign.json`` gets the counts
per engine and family, every violation with the case's seed, and the command.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the oracles and strategies of tests/

log = logging.getLogger("benchmarks.soundness_campaign")

COMPLETE = ("milp", "milp-pulp", "relu-bab", "chain-bab", "input-bab", "star", "auto",
            "portfolio")
#: An exact minimum within MARGIN of 0 accepts either verdict (float32 ONNX vs float64).
MARGIN = 1e-6
#: Slack of bound checks (relative to the values' size).
TOL = 1e-7
GRAPH_UNITS = 7
N_SAMPLES = 64


def _graph_case(rng: np.random.Generator):
    """A tiny random ONNX CNN and its ReLU unit count."""
    from verinet.selftest.onnx_graph import OnnxGraph

    c, h = int(rng.integers(1, 3)), int(rng.integers(2, 4))
    g = OnnxGraph((1, c, h, h))
    hw = h - 1

    def conv(src: str, k: int) -> str:
        W = rng.normal(0, 1.0 / np.sqrt(c * k * k), (1, c, k, k)).astype(np.float32)
        return g.conv(src, W, rng.normal(0, 0.3, 1).astype(np.float32))

    a = g.relu(conv(g.input, 2))
    if rng.random() < 0.5:  # residual: ReLU branch + linear branch, added
        f = g.flatten(g.add(a, conv(g.input, 2)))
        feats = units = hw * hw
    else:  # concat of the flattened ReLU branch and a full-kernel ReLU unit
        f = g.concat([g.flatten(a), g.flatten(g.relu(conv(g.input, h)))])
        feats = units = hw * hw + 1
    hidden = int(rng.integers(1, max(2, GRAPH_UNITS - units + 1)))
    f = g.relu(g.gemm(f, rng.normal(0, 1.0 / np.sqrt(feats), (hidden, feats)).astype(
        np.float32), rng.normal(0, 0.3, hidden).astype(np.float32)))
    n_out = int(rng.integers(1, 4))
    y = g.gemm(f, rng.normal(0, 1.0 / np.sqrt(hidden), (n_out, hidden)).astype(np.float32),
               rng.normal(0, 0.3, n_out).astype(np.float32))
    return g.model(y, n_out, "campaign"), units + hidden


def _draw(data, family: str):
    """(network, property, ONNX model, exact per-term minima and minimisers, seed)."""
    from hypothesis import strategies as st

    from tests.nets import draw_instance, random_property, relu_onnx
    from verinet.onnx_import.loader import import_model

    if family == "chain":
        net, layers, prop = draw_instance(data.draw, (1, 3), (1, 4), (1, 2))
        model = relu_onnx(layers)
        seed = -1
    else:
        seed = data.draw(st.integers(0, 2**31 - 1))
        rng = np.random.default_rng(seed)
        model, units = _graph_case(rng)
        if units > GRAPH_UNITS:
            raise AssertionError(f"graph case with {units} units")
        net = import_model(model, name=f"graph{seed}").network
        prop = random_property(rng, net, int(rng.integers(1, 3)))
    return net, prop, model, seed


def _oracle(family: str, net, prop) -> list[tuple[float, np.ndarray]]:
    if family == "chain":
        from tests.oracle import exact_min_violation
        from verinet.ir.chain import to_chain

        chain = to_chain(net)
        return [exact_min_violation(chain, t.box, t.unsafe) for t in prop.terms]
    from tests.graph_oracle import min_violation

    return [min_violation(net, t.box, t.unsafe.A, t.unsafe.b) for t in prop.terms]


class _Case:
    """One case's independent checks."""

    def __init__(self, net, prop, model, exact, rng: np.random.Generator) -> None:
        from tests.graphs import sample_box
        from verinet.onnx_import.check import reference_evaluator
        from verinet.spec.matrices import stacked_terms

        self.net, self.prop, self.exact = net, prop, exact
        self.ref = reference_evaluator(model)
        lo, hi, self.A, self.b = stacked_terms(prop)
        # points per term: samples (half vertices) and the oracle's minimiser
        self.values = []
        for t in range(len(lo)):
            pts = np.vstack([sample_box(rng, lo[t], hi[t], N_SAMPLES), exact[t][1][None, :]])
            pts = np.clip(pts, lo[t], hi[t])
            self.values.append(net.evaluate(pts) @ self.A[t].T - self.b[t])

    def bounds(self, lower: np.ndarray) -> list[str]:
        bad = []
        for t, vals in enumerate(self.values):
            tol = TOL * (1.0 + np.abs(vals).max())
            if (lower[t][None, :] > vals + tol).any():
                bad.append(f"term {t}: a lower bound is above a sampled value")
            if lower[t].max() > self.exact[t][0] + tol:
                bad.append(f"term {t}: certificate {lower[t].max():.9g} above the exact "
                           f"minimum {self.exact[t][0]:.9g}")
        return bad

    def verdict(self, ans) -> list[str]:
        s = [e[0] for e in self.exact]
        if ans.verdict == "unsat" and min(s) < -MARGIN:
            return [f"unsat, but the exact minimum is {min(s):.3g}"]
        if ans.verdict != "sat":
            return []
        bad = [] if min(s) <= MARGIN else [f"sat, but every exact minimum is > {MARGIN}"]
        x = np.asarray(ans.witness, dtype=np.float64)
        y_ir = self.net.evaluate(x)
        y_ref = np.asarray(self.ref(x[None, :]), dtype=np.float64).reshape(-1)
        hits = [t for t in self.prop.terms if t.box.contains(x)]
        if not hits:
            bad.append("the witness lies outside every term's box")
        for y, where in ((y_ir, "IR"), (y_ref, "reference evaluator")):
            tol = 1e-5 * (1.0 + np.abs(y).max())
            if hits and min(t.unsafe.violation(y) for t in hits) > tol:
                bad.append(f"the witness does not violate the property on the {where}")
        return bad


def _run_job(job: int, cases: int, seed: int, timeout: float) -> dict:
    import torch
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from hypothesis import strategies as st

    from verinet.onnx_import.check import onnx_evaluator
    from verinet.selftest.engines import BOUND_ENGINES, ENGINES, Subject
    from verinet.types import SoundnessError
    from verinet.verify.views import ModelViews

    torch.set_num_threads(1)
    counts: Counter[str] = Counter()
    violations: list[dict] = []
    n = [0]

    @hseed(seed * 1000 + job)
    @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def case(data) -> None:
        i = n[0]
        family = data.draw(st.sampled_from(("chain", "graph", "chain")))
        net, prop, model, gseed = _draw(data, family)
        n[0] += 1
        exact = _oracle(family, net, prop)
        chk = _Case(net, prop, model, exact, np.random.default_rng(i))
        subject = Subject(ModelViews(net), prop, onnx_evaluator(model))
        complete = COMPLETE[(i + job) % len(COMPLETE)]
        counts[f"cases/{family}"] += 1
        counts["sat" if min(e[0] for e in exact) < -MARGIN else "unsat" if min(
            e[0] for e in exact) > MARGIN else "borderline"] += 1
        for name in (*BOUND_ENGINES, complete):
            try:
                ans = ENGINES[name](subject, timeout)
                bad = chk.verdict(ans)
                if name in BOUND_ENGINES and ans.lower is not None:
                    bad += chk.bounds(ans.lower)
            except SoundnessError as e:
                ans, bad = None, [f"soundness check: {e}"]
            except Exception as e:  # a crash is counted as a violation too
                ans, bad = None, [f"crash: {type(e).__name__}: {e}"]
            verdict = ans.verdict if ans is not None else "error"
            counts[f"{name}/{family}/{verdict}"] += 1
            if bad:
                violations.append({"job": job, "case": i, "family": family,
                                   "graph_seed": gseed, "engine": name, "verdict": verdict,
                                   "problems": bad, "exact": [e[0] for e in exact]})
                log.error("VIOLATION job %d case %d %s %s: %s", job, i, family, name, bad)
        if (i + 1) % 250 == 0:
            log.info("job %d: %d cases, %d violations", job, i + 1, len(violations))

    case()
    return {"counts": dict(counts), "violations": violations, "cases": n[0]}


def _job(a: tuple[int, int, int, float]) -> dict:
    """One job's process: its own logging (verinet's warnings off: engines log expected
    events, such as an unconfirmed candidate, that are not campaign results)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("verinet").setLevel(logging.ERROR)
    return _run_job(*a)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per engine call")
    p.add_argument("--out", type=Path,
                   default=ROOT / "benchmarks" / "results" / "soundness_campaign")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    per = [args.cases // args.jobs + (j < args.cases % args.jobs) for j in range(args.jobs)]
    t0 = time.perf_counter()
    todo = [(j, per[j], args.seed, args.timeout) for j in range(args.jobs)]
    if args.jobs == 1:
        parts = [_job(todo[0])]
    else:
        with mp.get_context("spawn").Pool(args.jobs) as pool:
            parts = pool.map(_job, todo)
    wall = time.perf_counter() - t0
    counts: Counter[str] = Counter()
    for part in parts:
        counts.update(part["counts"])
    violations = [v for part in parts for v in part["violations"]]
    engines: dict[str, dict[str, int]] = {}
    for key, c in sorted(counts.items()):
        if not key.startswith("cases/") and key.count("/") >= 2:  # verdict "n/a" has one
            name, family, verdict = key.split("/", 2)
            engines.setdefault(name, Counter())[f"{family}/{verdict}"] += c
    result = {
        "command": "python3 benchmarks/soundness_campaign.py " + " ".join(
            argv if argv is not None else sys.argv[1:]),
        "cases": sum(part["cases"] for part in parts),
        "families": {k.split("/")[1]: c for k, c in counts.items() if k.startswith("cases/")},
        "truth": {k: counts[k] for k in ("sat", "unsat", "borderline")},
        "engines": {k: dict(v) for k, v in engines.items()},
        "violations": violations,
        "counts": dict(sorted(counts.items())),
        "wall_s": round(wall, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "campaign.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{result['cases']} cases ({result['families']}), truth {result['truth']}, "
          f"{len(violations)} violations, {wall:.0f} s")
    for name, c in result["engines"].items():
        print(f"  {name:<18} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
