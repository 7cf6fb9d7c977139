"""Star-set verification against the brute-force oracle on tiny nets, its LP certificates,
its over-approximation, and two shared ACAS Xu instances (slow, skipped without them).

The oracle (tests/oracle.py) gives every term's exact minimum violation: a term with
minimum > 1e-6 is unreachable, one with minimum < -1e-6 reachable.  The star search must
prove the property exactly when every term is unreachable and return a confirmed witness
when some term is reachable (replayed on the IR and the ONNX reference evaluator).
"""

import csv
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from tests.nets import draw_instance, float32_layers, random_layers, relu_network, relu_onnx
from tests.oracle import check_complete_search, exact_min_violation
from verinet.ir.chain import to_chain
from verinet.onnx_import.check import reference_evaluator
from verinet.spec.property import Halfspaces, Property, Term
from verinet.types import Box, Status
from verinet.verify.deadline import Deadline
from verinet.verify.portfolio import VerifyOptions, verify
from verinet.verify.star import StarJob, StarOptions, star_verify, worker_count
from verinet.verify.star.lp import Cons, PolyLp
from verinet.verify.star.relax import Relaxer
from verinet.verify.star.search import Search
from verinet.verify.witness import Replayer

MARGIN = 1e-6
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "vnncomp"


@st.composite
def instances(draw):
    net, layers, prop = draw_instance(draw, n_in=(1, 4), width=(2, 7), terms=(1, 3))
    options = StarOptions(overapprox=draw(st.sampled_from(["crown", "none"])),
                          contract=draw(st.booleans()), vertices=draw(st.booleans()))
    return net, layers, prop, options


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_star_matches_oracle(inst):
    net, layers, prop, options = inst
    chain = to_chain(net)
    replayer = Replayer(net, prop, reference_evaluator(relu_onnx(layers)))
    out = star_verify(chain, prop, replayer, Deadline(30.0), options=options)
    check_complete_search(net, prop, out.proven, out.counterexample, MARGIN)


def _halfspace_instance(rng, sizes):
    """A random float32 ReLU net on 3 inputs, a random box and one term with two random
    halfspace rows passing near the output at the box centre."""
    layers = float32_layers(random_layers(rng, sizes))
    net = relu_network(layers)
    box = Box(rng.uniform(-1, 0, 3), rng.uniform(0, 1, 3))
    y = net.evaluate(box.center)
    A = rng.normal(size=(2, 2))
    prop = Property((Term(box, Halfspaces(A, A @ y + rng.normal(0, 1, 2))),), 3, 2)
    return layers, net, to_chain(net), box, prop


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.builds(lambda *a: a, st.integers(0, 2**31 - 1)))
def test_star_portfolio_matches_oracle(seed):
    rng = np.random.default_rng(seed[0])
    layers, net, chain, box, prop = _halfspace_instance(rng, [3, 6, 5, 2])
    exact = exact_min_violation(chain, box, prop.terms[0].unsafe)[0]
    res = verify(net, prop, reference_evaluator(relu_onnx(layers)), timeout=30.0,
                 options=VerifyOptions(complete="star", attack=False, alpha_crown=False))
    if exact > MARGIN:
        assert res.status is Status.VERIFIED, res
    if exact < -MARGIN:
        assert res.status is Status.FALSIFIED, res
        assert prop.terms[0].unsafe.violation(net.evaluate(res.counterexample.x)) <= 0


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_lp_bounds_are_certified_lower_bounds(seed):
    rng = np.random.default_rng(seed)
    d = int(rng.integers(1, 6))
    lo, hi = -rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    lp = PolyLp(lo, hi)
    cons = None
    for _ in range(int(rng.integers(0, 8))):
        cons = Cons(rng.normal(size=d), float(rng.uniform(-0.3, 1.0)), cons)
    lp.load(cons)
    c = rng.normal(size=d)
    ref = linprog(c, A_ub=lp.G if lp.G.size else None, b_ub=lp.h if lp.G.size else None,
                  bounds=list(zip(lo, hi, strict=True)), method="highs")
    got = lp.minimize(c)
    if ref.status == 2:  # infeasible: either certified empty or nothing claimed
        assert got.bound in (np.inf, -np.inf)
    else:
        assert got.bound <= ref.fun + 1e-9
        assert got.bound >= ref.fun - 1e-6
        L, l0 = rng.normal(size=(3, d)), rng.normal(size=3)
        mm = lp.min_max(L, l0)
        pts = rng.uniform(lo, hi, size=(2000, d))
        if lp.G.size:
            pts = pts[(pts @ lp.G.T <= lp.h).all(axis=1)]
        if len(pts):
            assert mm.bound <= (pts @ L.T + l0).max(axis=1).min() + 1e-9


def test_empty_polytope_is_certified():
    lp = PolyLp(np.zeros(2), np.ones(2))
    cons = Cons(np.array([1.0, 1.0]), -0.5, None)  # x0 + x1 <= -0.5 on [0, 1]^2
    lp.load(cons)
    assert lp.minimize(np.array([1.0, 0.0])).bound == np.inf
    lp.load(None)
    assert lp.minimize(np.array([1.0, 0.0])).bound == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_relaxer_bounds_hold_on_samples(seed):
    rng = np.random.default_rng(seed)
    layers = random_layers(rng, [3, 8, 8, 6, 2])
    chain = to_chain(relu_network(layers))
    lo, hi = rng.uniform(-1, 0, 3), rng.uniform(0, 1, 3)
    W0, b0 = layers[0]
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    lb, ub = W0 @ mid + b0 - np.abs(W0) @ rad, W0 @ mid + b0 + np.abs(W0) @ rad
    A, b = rng.normal(size=(3, 2)), rng.normal(size=3)
    later, rows, _ = Relaxer(layers).run(0, np.zeros(8, dtype=bool), W0, b0, lb, ub, lo, hi,
                                         (), [(A, b)])
    x = rng.uniform(lo, hi, size=(500, 3))
    pre = chain.pre_activations(x)
    for (l_lo, l_hi), z in zip(later, pre[1:-1], strict=True):
        assert (z >= l_lo - 1e-9).all() and (z <= l_hi + 1e-9).all()
    L, l0, _ = rows[0]
    assert (pre[-1] @ A.T - b >= x @ L.T + l0 - 1e-9).all()


def _centre_robustness(seed, sizes, scale=1.0):
    """A random float32 ReLU net on the box [-1, 1]^n and the robustness property of the
    label it gives the box's centre."""
    layers = float32_layers(random_layers(np.random.default_rng(seed), sizes, scale=scale))
    net = relu_network(layers)
    box = Box(np.full(sizes[0], -1.0), np.ones(sizes[0]))
    prop = Property.robustness(box, int(np.argmax(net.evaluate(box.center))), sizes[-1])
    return layers, net, prop


def test_deadline_is_honoured():
    _, net, prop = _centre_robustness(0, [5, 40, 40, 40, 5], scale=0.5)
    t0 = time.monotonic()
    out = star_verify(to_chain(net), prop, Replayer(net, prop, None), Deadline(0.5))
    assert time.monotonic() - t0 < 3.0
    assert out.counterexample is not None or not out.proven or out.stars > 0


PARALLEL = StarOptions(workers=2, serial_s=0.0, slice_s=0.002)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31 - 1))
def test_parallel_star_matches_oracle(seed):
    """Two forked workers with tiny slices (many hand-backs): same answers as the oracle,
    witnesses replayed by the parent."""
    layers, net, prop = _centre_robustness(seed, [3, 8, 8, 2])
    replayer = Replayer(net, prop, reference_evaluator(relu_onnx(layers)))
    out = star_verify(to_chain(net), prop, replayer, Deadline(30.0), options=PARALLEL)
    check_complete_search(net, prop, out.proven, out.counterexample, MARGIN)
    serial = star_verify(to_chain(net), prop, replayer, Deadline(30.0),
                         options=StarOptions(workers=1))
    assert serial.proven == out.proven


def test_parallel_search_shares_work_and_counts_it():
    _, net, prop = _centre_robustness(3, [4, 20, 20, 2], scale=0.7)
    replayer = Replayer(net, prop, None)
    par = star_verify(to_chain(net), prop, replayer, Deadline(60.0), options=PARALLEL)
    ser = star_verify(to_chain(net), prop, replayer, Deadline(60.0),
                      options=StarOptions(workers=1))
    assert par.proven == ser.proven
    assert (par.counterexample is None) == (ser.counterexample is None)
    assert par.stars > 1 and par.lps > 0


def test_worker_error_reaches_the_parent(monkeypatch):
    def boom(self, star, stack):
        raise RuntimeError("worker failed")

    _, net, prop = _centre_robustness(1, [3, 8, 2])
    monkeypatch.setattr(Search, "advance", boom)
    with pytest.raises(RuntimeError, match="worker failed"):
        star_verify(to_chain(net), prop, Replayer(net, prop, None), Deadline(10.0),
                    options=PARALLEL)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31 - 1), st.booleans())
def test_input_bab_beside_star_matches_oracle(seed, short_bab):
    """The low-dimensional portfolio stage with the star search running beside input
    splitting (two workers): right answers whichever finishes first; a cut-short input
    BaB hands over to the running star search."""
    rng = np.random.default_rng(seed)
    layers, net, _, _, prop = _halfspace_instance(rng, [3, 8, 8, 2])
    opts = VerifyOptions(attack=False, alpha_crown=False, star=PARALLEL,
                         input_bab_alone_s=0.0,  # the star search starts at once
                         input_bab_first_s=1e-3 if short_bab else 5.0)
    res = verify(net, prop, reference_evaluator(relu_onnx(layers)), timeout=30.0,
                 options=opts)
    check_complete_search(net, prop, res.status is Status.VERIFIED, res.counterexample,
                          MARGIN)


def test_star_job_cancel_stops_workers():
    _, net, prop = _centre_robustness(0, [5, 40, 40, 40, 5], scale=0.5)
    job = StarJob(to_chain(net), prop, Replayer(net, prop, None), Deadline(60.0),
                  [0, 1, 2, 3], PARALLEL, workers=2)
    time.sleep(0.3)
    t0 = time.monotonic()
    job.cancel()
    assert time.monotonic() - t0 < 2.0
    assert job.alive_workers() == 0


def test_star_options_are_checked():
    with pytest.raises(ValueError, match="workers must be >= 0"):
        StarOptions(workers=-1)
    with pytest.raises(ValueError, match="slice_s > 0"):
        StarOptions(slice_s=0.0)


def _acas_rows():
    if not SHARED.is_dir():
        return []
    wanted = {"acasxu-1_1-prop_2", "acasxu-1_9-prop_2", "acasxu-1_5-prop_2"}
    with (SHARED / "manifest.csv").open() as f:
        return [r for r in csv.DictReader(f) if r["id"] in wanted]


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="shared VNN-COMP instances absent")
@pytest.mark.parametrize("row", _acas_rows(), ids=lambda r: r["id"])
def test_acas_star_end_to_end(row):
    from verinet import api

    prop = api.read_property(SHARED / row["vnnlib"])
    model = api.load_model(SHARED / row["onnx"], input_box=prop.terms[0].box)
    res = api.verify(model, prop, timeout=60.0,
                     options=VerifyOptions(complete="star", attack=False))
    assert res.vnncomp == row["expected"], res
    if res.status is Status.FALSIFIED:
        cex = res.counterexample
        term = prop.terms[cex.term]
        assert term.box.contains(cex.x)
        assert term.unsafe.violation(model.onnx_eval(cex.x[None])[0]) <= 0


def test_no_fork_means_one_worker(monkeypatch):
    """Where processes cannot be forked (Windows) the search runs in this process."""
    import multiprocessing

    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert worker_count(0) == 1 and worker_count(4) == 1
    _, net, prop = _centre_robustness(2, [3, 8, 8, 2])
    out = star_verify(to_chain(net), prop, Replayer(net, prop, None), Deadline(30.0),
                      options=PARALLEL)
    check_complete_search(net, prop, out.proven, out.counterexample, MARGIN)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31 - 1))
def test_input_bab_resumes_from_its_open_domains(seed):
    """Stopped on its deadline and resumed (as the portfolio does), input splitting
    reaches the answer of one uninterrupted run."""
    from verinet.verify import engines
    from verinet.verify.input_bab import input_bab

    rng = np.random.default_rng(seed)
    _, net, chain, box, prop = _halfspace_instance(rng, [3, 8, 8, 2])
    replayer = Replayer(net, prop, None)
    bound = engines.crown_bounder(chain)
    stopped = input_bab(chain, prop, bound, replayer, Deadline(0.0))
    assert not stopped.proven and stopped.open is not None and len(stopped.open) == 1
    out = input_bab(chain, prop, bound, replayer, Deadline(5.0), resume=stopped)
    whole = input_bab(chain, prop, bound, replayer, Deadline(5.0))
    if out.open is None and whole.open is None:  # both finished: the same search
        assert out.proven == whole.proven
        assert (out.counterexample is None) == (whole.counterexample is None)
        assert out.domains_bounded == whole.domains_bounded
    # input splitting may run out of time near a tie, but what it says is right
    exact = exact_min_violation(chain, box, prop.terms[0].unsafe)[0]
    if out.proven:
        assert exact > -MARGIN
    if out.counterexample is not None:
        assert exact < MARGIN and out.counterexample.confirmed


def test_a_dying_worker_costs_its_slice_never_a_proof(monkeypatch):
    """Workers that die (killed, out of memory) on their first slice: the search ends
    unfinished at once (no wait for the deadline), never "proven" with stars lost."""
    import os

    from verinet.verify.star import pool

    robust = None
    for seed in range(40):
        _, net, prop = _centre_robustness(seed, [3, 8, 8, 2])
        serial = star_verify(to_chain(net), prop, Replayer(net, prop, None), Deadline(30.0),
                             options=StarOptions(workers=1))
        if serial.proven and serial.stars > 3:
            robust = net, prop
            break
    assert robust is not None
    net, prop = robust

    def die(*args, **kwargs):
        os._exit(9)

    monkeypatch.setattr(pool, "work_slice", die)  # inherited by the forked workers
    t0 = time.monotonic()
    out = star_verify(to_chain(net), prop, Replayer(net, prop, None), Deadline(30.0),
                      options=PARALLEL)
    assert not out.proven and out.counterexample is None
    assert time.monotonic() - t0 < 10.0
