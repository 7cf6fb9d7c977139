import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.nets import float32_layers, random_layers, relu_network, relu_onnx
from verinet.attacks.property_pgd import PgdOptions, property_pgd
from verinet.onnx_import.check import reference_evaluator
from verinet.report.vnncomp import format_result
from verinet.spec.property import Halfspaces, Property, Term
from verinet.types import Box, Reason, Status
from verinet.verify.result import VerificationResult
from verinet.verify.witness import Replayer, snap_into_box


@given(st.lists(st.floats(-1, 1), min_size=1, max_size=6), st.floats(1e-9, 0.3))
def test_snap_lands_inside_box_and_is_float32(center, eps):
    c = np.array(center)
    term = Term(Box(c - eps, c + eps), Halfspaces(np.zeros((0, 1)), np.zeros(0)))
    rng = np.random.default_rng(0)
    x = c + rng.uniform(-2 * eps, 2 * eps, size=c.size)
    xs = snap_into_box(x, term)
    assert term.box.contains(xs)
    representable = xs.astype(np.float32).astype(np.float64) == xs
    # Every coordinate is float32 unless the box is thinner than float32 spacing there.
    thin = (np.nextafter(term.box.lower.astype(np.float32), np.float32(np.inf)).astype(float)
            > term.box.upper)
    assert np.all(representable | thin)


def _net_and_prop(seed: int, sizes: list[int]):
    rng = np.random.default_rng(seed)
    layers = float32_layers(random_layers(rng, sizes))
    net = relu_network(layers)
    onnx_eval = reference_evaluator(relu_onnx(layers))
    box = Box(-np.ones(sizes[0]), np.ones(sizes[0]))
    y0 = net.evaluate(box.center)
    label = int(np.argmax(y0))
    return net, onnx_eval, Property.robustness(box, label, sizes[-1]), box


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000))
def test_pgd_candidates_in_box_and_confirmed_ones_violate(seed):
    net, onnx_eval, prop, box = _net_and_prop(seed, [3, 8, 8, 3])
    cands = property_pgd(net, prop, np.random.default_rng(seed), PgdOptions(steps=20, restarts=3))
    for x, t in zip(cands.x, cands.term, strict=True):
        assert prop.terms[t].box.contains(x, tol=1e-6)  # float32 attack arithmetic
    rep = Replayer(net, prop, onnx_eval)
    cex = rep.confirm_batch(cands.x, cands.term, cands.violation)
    if cex is not None:
        term = prop.terms[cex.term]
        assert term.box.contains(cex.x)
        assert float(term.unsafe.violation(net.evaluate(cex.x))) <= 0
        assert float(term.unsafe.violation(onnx_eval(cex.x[None])[0])) <= 0


def test_replayer_rejects_safe_point():
    net, onnx_eval, prop, box = _net_and_prop(1, [2, 4, 2])
    rep = Replayer(net, prop, onnx_eval)
    assert rep.confirm(box.center) is None  # the centre is classified as the label


def test_replayer_rejects_when_onnx_disagrees():
    net, _, prop, box = _net_and_prop(2, [2, 4, 2])
    # An "ONNX model" whose outputs always favour the label: IR-only violations fail.
    label_row = prop.terms[0].unsafe.A[0] > 0
    fake = lambda x: np.where(label_row, 1e6, 0.0)[None, :]  # noqa: E731
    rep = Replayer(net, prop, fake)
    unsafe_y = np.where(label_row, 0.0, 1.0)
    term = prop.terms[0]
    assert term.unsafe.violation(unsafe_y) <= 0
    rng = np.random.default_rng(0)
    for x in rng.uniform(box.lower, box.upper, size=(200, box.dim)):
        assert rep.confirm(x) is None


def test_result_file_format():
    from verinet.types import Counterexample

    cex = Counterexample(np.array([0.5, 0.25]), np.array([1.0, 2.0]), np.array([1.0, 2.0]),
                         term=0, margin=-1.0, confirmed=True)
    text = format_result(VerificationResult(Status.FALSIFIED, Reason.WITNESS_CONFIRMED, cex))
    assert text.splitlines() == ["sat", "((X_0 0.5)", " (X_1 0.25)", " (Y_0 1.0)", " (Y_1 2.0))"]
    assert format_result(VerificationResult(Status.VERIFIED, Reason.PROVEN_BY_BOUNDS)) == "unsat\n"
