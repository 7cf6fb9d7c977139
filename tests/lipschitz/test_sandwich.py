"""The Lipschitz radii in the sandwich: recorded per sample, never above the upper end,
taken as the lower end when they are the largest; a witness below them is a bug."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.nets import random_layers, relu_network
from verinet.certify.engine import CertifyOptions, certify_sample
from verinet.certify.result import LipschitzBound, SampleReport, SampleStatus, Witness
from verinet.types import Sandwich, SoundnessError


def test_certify_records_the_lipschitz_radii_below_the_sandwich() -> None:
    from verinet.api import load_model
    from verinet.examples import data_path, model_path

    m = load_model(model_path())
    d = np.load(data_path())
    for i in range(3):
        rep = certify_sample(m.network, m.onnx_eval, i, d["x"][i], int(d["y"][i]),
                             CertifyOptions(radius=True, timeout=20.0))
        lip = rep.lipschitz
        assert lip is not None and rep.radius is not None
        assert 0 < lip.radius <= rep.radius.lower + 1e-12
        assert 0 <= lip.global_radius <= lip.radius  # the global constant is looser here
        assert lip.ball > 0 and dict(rep.timings)["lipschitz"] >= 0


def test_the_lower_end_is_never_below_the_lipschitz_radius() -> None:
    """A verdict at a tiny eps without the MILP: the Lipschitz radius alone already
    exceeds eps, and the lower end is at least as large."""
    rng = np.random.default_rng(4)
    net = relu_network(random_layers(rng, [3, 5, 3], scale=0.5))
    x0 = np.full(3, 0.5)
    label = int(np.argmax(net.evaluate(x0)))
    rep = certify_sample(net, None, 0, x0, label, CertifyOptions(eps=1e-6, milp=False,
                                                                  timeout=5.0))
    assert rep.lipschitz is not None and rep.radius is not None
    assert rep.lipschitz.best > 1e-6 and rep.radius.lower >= rep.lipschitz.best
    assert rep.status is SampleStatus.VERIFIED


def test_a_witness_below_the_lipschitz_radius_is_a_soundness_error() -> None:
    w = Witness(np.zeros(2), 1, 0.01, "pgd")
    with pytest.raises(SoundnessError, match="below the Lipschitz radius 0.02"):
        SampleReport(0, 0, 0, SampleStatus.NOT_ASKED, radius=Sandwich(0.0, 0.01, "none", "pgd"),
                     witness=w, lipschitz=LipschitzBound(0.02, 0.0, 0.05))
    ok = SampleReport(0, 0, 0, SampleStatus.NOT_ASKED, radius=Sandwich(0.0, 0.01, "none", "pgd"),
                      witness=w, lipschitz=LipschitzBound(0.01, 0.0, 0.05))
    assert ok.lipschitz is not None and ok.lipschitz.best == 0.01
    assert math.isfinite(ok.lipschitz.best)
