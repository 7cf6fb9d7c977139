"""VNN-LIB 2.0 queries over several networks: one composed network over the shared input,
outputs concatenated in declaration order; witnesses replayed on the IR and on every
original ONNX file; ``verinet verify f.onnx q.vnnlib --network g=g.onnx``; every other
relation between the networks' inputs refused by name."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.graphs import random_graph
from tests.nets import float32_layers, random_layers, relu_network, relu_onnx
from verinet import api
from verinet.cli import main
from verinet.ir.compose import compose, concat_evaluators
from verinet.onnx_import import load_onnx, onnx_evaluator
from verinet.spec.vnnlib import VnnlibSemanticError, parse_query, read_query
from verinet.types import InputError, Status

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
V2 = SHARED / "vnnlib2"
needs_shared = pytest.mark.skipif(not V2.is_dir(), reason="../shared/vnnlib2 not present")

HEAD = "(vnnlib-version <2.0>)\n"
TWO = (HEAD + "(declare-network f (declare-input X_f real [3]) (declare-output Y_f real [2]))\n"
       "(declare-network g (isomorphic-to f) (declare-input X_g real [3]) "
       "(declare-output Y_g real [2]))\n")
BOX = "".join(f"(assert (and (>= X_f[{i}] -1.0) (<= X_f[{i}] 1.0)))\n" for i in range(3))
IDENT = "".join(f"(assert (== X_f[{i}] X_g[{i}]))\n" for i in range(3))


# ----------------------------------------------------------------------------- composition


@pytest.mark.parametrize("seed", range(4))
def test_block_diagonal_composition_equals_the_concatenated_outputs(seed) -> None:
    rng = np.random.default_rng(seed)
    f = relu_network(random_layers(rng, [4, 7, 5, 3]), "f")
    g = relu_network(random_layers(rng, [4, 6, 8, 2]), "g")
    h = relu_network(random_layers(rng, [4, 3, 3, 4]), "h")
    net = compose([f, g, h])
    assert not any(type(n.op).__name__ == "Concat" for n in net.nodes)  # a chain again
    x = rng.uniform(-2, 2, size=(16, 4))
    want = np.concatenate([f.evaluate(x), g.evaluate(x), h.evaluate(x)], axis=1)
    assert net.n_outputs == 9
    assert np.allclose(net.evaluate(x), want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("seed", range(4))
def test_parallel_composition_of_graphs_equals_the_concatenated_outputs(seed) -> None:
    rng = np.random.default_rng(seed)
    f = random_graph(seed)  # a CNN on (1, C, H, W)
    g = relu_network(random_layers(rng, [f.n_inputs, 5, 4]), "g")  # flat input
    for net in (compose([f, g]), compose([g, f]), compose([f, f], block_diagonal=False)):
        assert any(type(n.op).__name__ == "Concat" for n in net.nodes)
    x = rng.uniform(-1, 1, size=(8, f.n_inputs))
    want = np.concatenate([f.evaluate(x), g.evaluate(x)], axis=1)
    assert np.allclose(compose([f, g]).evaluate(x), want, rtol=0, atol=1e-10)
    assert np.allclose(compose([g, f]).evaluate(x)[:, :4], g.evaluate(x), rtol=0, atol=1e-10)


def test_composition_needs_equal_input_sizes_and_concatenates_evaluators() -> None:
    rng = np.random.default_rng(0)
    f = relu_network(random_layers(rng, [3, 4, 2]), "f")
    g = relu_network(random_layers(rng, [2, 4, 2]), "g")
    with pytest.raises(InputError, match="network 'g' has 2 inputs, 'f' 3"):
        compose([f, g])
    ev = concat_evaluators([lambda x: x[:, :1] * 2.0, lambda x: x + 1.0])
    assert ev(np.array([[1.0, 2.0]])).tolist() == [[2.0, 2.0, 3.0]]


# ----------------------------------------------------------------------------- parsing


def test_two_networks_become_one_shared_input_and_concatenated_outputs() -> None:
    q = parse_query(TWO + BOX + IDENT + "(assert (<= X_g[0] 0.5))\n"
                    "(assert (>= (- Y_g[1] Y_f[0]) 0.25))\n")
    p = q.property
    assert (p.n_inputs, p.n_outputs, q.names) == (3, 4, ("f", "g"))
    assert [(n.output_offset, n.relation, n.related) for n in q.networks] == [
        (0, "", ""), (2, "isomorphic-to", "f")]
    t = p.terms[0]
    assert t.box.upper.tolist() == [0.5, 1.0, 1.0]  # the bound on X_g[0] bounds X_f[0]
    assert t.unsafe.A.tolist() == [[1.0, 0.0, 0.0, -1.0]] and t.unsafe.b.tolist() == [-0.25]


def test_identifications_may_sit_in_a_top_level_and_or_chain_through_networks() -> None:
    three = TWO + ("(declare-network h (declare-input X_h real [3]) "
                   "(declare-output Y_h real [1]))\n")
    text = three + BOX + "(assert (and (== X_f[0] X_g[0]) (== X_f[1] X_g[1]) (<= X_f[2] 0.0)))\n"
    text += "(assert (== X_g[2] X_f[2]))\n" + "".join(
        f"(assert (== X_h[{i}] X_g[{i}]))\n" for i in range(3)) + "(assert (>= Y_h[0] Y_g[1]))\n"
    p = parse_query(text).property
    assert (p.n_inputs, p.n_outputs) == (3, 5)
    assert p.terms[0].box.upper.tolist() == [1.0, 1.0, 0.0]
    assert p.terms[0].unsafe.A.tolist() == [[0.0, 0.0, 0.0, 1.0, -1.0]]


def test_an_input_tensor_declared_again_by_name_is_shared() -> None:
    text = (HEAD + "(declare-network f (declare-input X real [3]) (declare-output A real [2]))\n"
            "(declare-network g (declare-input X real [3]) (declare-output B real [2]))\n"
            + BOX.replace("X_f", "X") + "(assert (<= A[0] B[1]))\n")
    p = parse_query(text).property
    assert (p.n_inputs, p.n_outputs) == (3, 4)
    assert p.terms[0].unsafe.A.tolist() == [[1.0, 0.0, 0.0, -1.0]]
    with pytest.raises(VnnlibSemanticError, match="input 'X' is shared with network 'f' but "
                                                  r"has shape \[4\] here and \[3\] there"):
        parse_query(text.replace("(declare-input X real [3]) (declare-output B",
                                 "(declare-input X real [4]) (declare-output B"))


@pytest.mark.parametrize(("extra", "where", "match"), [
    ("(assert (<= X_f[0] X_g[0]))\n", "10:9", r"unsupported relation '\(<= X_f\[0\] X_g\[0\]\)' "
     "between the inputs of networks 'f' and 'g'"),
    ("(assert (== X_f[0] (+ X_g[0] 0.1)))\n", "10:9", r"unsupported relation '\(== X_f\[0\] "
     r"\(\+ X_g\[0\] 0.1\)\)' between the inputs"),
    ("(assert (== X_f[0] X_g[1]))\n", "10:9", r"unsupported input relation '\(== X_f\[0\] "
     r"X_g\[1\]\)': it identifies elements at different positions"),
    ("(assert (or (== X_f[0] X_g[0]) (<= Y_f[0] 0.0)))\n", "10:13",
     r"unsupported relation '\(== X_f\[0\] X_g\[0\]\)' inside \(or \.\.\.\)"),
    ("(assert (== X_f[0] X_f[1]))\n", "10:9",
     r"unsupported relation '\(== X_f\[0\] X_f\[1\]\)' between two inputs of network 'f'"),
], ids=["le", "offset", "other element", "in or", "same network"])
def test_other_input_relations_are_refused_naming_the_construct(extra, where, match) -> None:
    with pytest.raises(VnnlibSemanticError, match=f"<string>:{where}: {match}"):
        parse_query(TWO + BOX + IDENT + extra)


def test_independent_or_partly_identified_inputs_are_refused() -> None:
    with pytest.raises(VnnlibSemanticError, match=r"<string>:3:18: the inputs of network 'g' "
                       r"are not identified with those of 'f' \(X_g\[0\] has no \(== X_f\[0\] "
                       r"X_g\[0\]\)\): independent inputs are not supported"):
        parse_query(TWO + BOX + "(assert (<= X_g[0] 0.5))\n")
    with pytest.raises(VnnlibSemanticError, match=r"X_g\[2\] has no \(== X_f\[2\] X_g\[2\]\)"):
        parse_query(TWO + BOX + IDENT.rsplit("(assert", 1)[0])


def test_relations_are_checked() -> None:
    with pytest.raises(VnnlibSemanticError, match="names undeclared network 'h'"):
        parse_query(TWO.replace("(isomorphic-to f)", "(isomorphic-to h)"))
    with pytest.raises(VnnlibSemanticError, match=r"network 'g' is isomorphic-to 'f' but its "
                                                  r"output shapes \[\[3\]\] differ"):
        parse_query(TWO.replace("Y_g real [2]", "Y_g real [3]"))


def test_api_read_property_with_one_model_refuses_a_multi_network_query(tmp_path) -> None:
    prop = tmp_path / "q.vnnlib"
    prop.write_text(TWO + BOX + IDENT + "(assert (>= Y_f[0] Y_g[0]))\n")
    net = tmp_path / "f.onnx"
    onnx.save(relu_onnx(float32_layers(random_layers(np.random.default_rng(0), [3, 4, 2]))),
              net)
    model = api.load_model(net)
    with pytest.raises(InputError, match=r"declares 2 networks \(f, g\); load them together "
                                         "with api.load_models"):
        api.read_property(prop, model)


# ----------------------------------------------------------------------------- verification


def _pair(tmp_path: Path, same: bool = False, sizes: tuple[int, ...] = (3, 8, 8, 2)
          ) -> tuple[Path, Path]:
    rng = np.random.default_rng(3)
    lf = float32_layers(random_layers(rng, list(sizes)))
    lg = lf if same else float32_layers(random_layers(rng, list(sizes)))
    paths = tmp_path / "f.onnx", tmp_path / "g.onnx"
    onnx.save(relu_onnx(lf), paths[0])
    onnx.save(relu_onnx(lg), paths[1])
    return paths


def test_engines_prove_two_equal_networks_agree(tmp_path) -> None:
    f, g = _pair(tmp_path, same=True, sizes=(3, 6, 2))  # f - g: no relaxation cancels
    prop = tmp_path / "q.vnnlib"
    prop.write_text(TWO.replace("isomorphic-to", "equal-to") + BOX + IDENT
                    + "(assert (>= (- Y_f[0] Y_g[0]) 0.01))\n")
    query = api.read_query(prop)
    model = api.load_models(query, {"f": f, "g": g})
    result = api.verify(model, query.property, timeout=30)
    assert result.status is Status.VERIFIED, result


def test_a_falsified_multi_network_query_replays_its_witness_on_both_onnx_files(tmp_path):
    f, g = _pair(tmp_path)
    prop = tmp_path / "q.vnnlib"
    prop.write_text(TWO + BOX + IDENT + "(assert (>= (- Y_f[0] Y_g[0]) -1000.0))\n")
    query = api.read_query(prop)
    model = api.load_models(query, {"f": f, "g": g})
    result = api.verify(model, query.property, timeout=30)
    assert result.status is Status.FALSIFIED
    _check_witness(result.counterexample, query, [f, g])


def _check_witness(cex, query, paths) -> None:
    assert cex is not None and cex.confirmed and cex.y_onnx is not None
    x = np.asarray(cex.x)
    ys = [onnx_evaluator(load_onnx(p, check=False).onnx_model)(x[None])[0] for p in paths]
    assert np.array_equal(np.concatenate(ys), cex.y_onnx)  # the original files, in order
    assert query.property.violated_by(x, cex.y_onnx) >= 0
    assert query.property.violated_by(x, cex.y) >= 0


# ----------------------------------------------------------------------------- shared instance


def _instance() -> dict[str, str]:
    with open(V2 / "manifest_multinet.csv", newline="") as f:
        row = next(csv.DictReader(f))
    with open(V2 / "multinet_detail.csv", newline="") as f:
        row.update(next(csv.DictReader(f)))
    return row


def _networks(row: dict[str, str]) -> dict[str, Path]:
    return {k: V2 / v for k, v in (p.split("=", 1) for p in row["networks"].split(";"))}


@needs_shared
def test_the_shared_multi_network_query_parses() -> None:
    row = _instance()
    q = read_query(V2 / row["vnnlib"])
    assert q.names == tuple(_networks(row)) == ("f", "g")
    assert q.networks[1].relation == "isomorphic-to"
    p = q.property
    assert (p.n_inputs, p.n_outputs, len(p.terms)) == (5, 10, 1)
    t = p.terms[0]
    assert t.box.lower.tolist() == [0.6, -0.5, -0.5, 0.45, -0.45]
    assert t.box.upper[4] == -0.45
    assert t.unsafe.A.shape == (10, 10) and np.all(t.unsafe.b == 0.05)
    for i in range(5):  # |Y_g[i] - Y_f[i]| <= 0.05
        assert {tuple(r) for r in t.unsafe.A[2 * i:2 * i + 2]} == {
            tuple(np.eye(10)[5 + i] - np.eye(10)[i]), tuple(np.eye(10)[i] - np.eye(10)[5 + i])}
    x = np.array([float(v) for v in row["witness_x_f"].split()])
    y = np.array([float(v) for v in (row["witness_y_f"] + " " + row["witness_y_g"]).split()])
    assert p.violated_by(x, y) == 0  # the recorded witness (box centre) violates it


@needs_shared
def test_the_shared_multi_network_instance_is_falsified_with_a_replayed_witness() -> None:
    row = _instance()
    paths = _networks(row)
    query = api.read_query(V2 / row["vnnlib"])
    start = time.perf_counter()
    model = api.load_models(query, paths)
    x = np.array([float(v) for v in row["witness_x_f"].split()])
    y_rec = np.array([float(v) for v in (row["witness_y_f"] + " " + row["witness_y_g"]).split()])
    assert np.allclose(model.onnx_eval(x[None])[0], y_rec, atol=1e-7)
    assert np.allclose(model.network.evaluate(x), y_rec, atol=1e-5)
    result = api.verify(model, query.property, timeout=float(row["timeout_s"]))
    assert result.status is Status.FALSIFIED and row["expected"] == "sat"
    _check_witness(result.counterexample, query, list(paths.values()))
    assert time.perf_counter() - start < 20


# ----------------------------------------------------------------------------- CLI


def _cli(capsys, argv):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's usage errors
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str, code: int, match: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith(("WARNING", "INFO"))]
    assert code == 2 and len(lines) == 1 and match in lines[0], err
    assert "Traceback" not in err


def test_cli_verify_with_network_writes_the_witness(tmp_path, capsys) -> None:
    f, g = _pair(tmp_path)
    prop = tmp_path / "q.vnnlib"
    prop.write_text(TWO + BOX + IDENT + "(assert (>= (- Y_f[0] Y_g[0]) -1000.0))\n")
    out = tmp_path / "res.txt"
    code, stdout, err = _cli(capsys, ["verify", str(f), str(prop), "--network", f"g={g}",
                                      "--timeout", "20", "--out", str(out)])
    assert code == 0 and stdout.startswith("sat"), err
    lines = out.read_text().splitlines()  # the VNN-LIB 2.0 form, declaration order
    heads = [i for i, ln in enumerate(lines) if " real [" in ln]
    assert lines[0] == "sat" and [lines[i] for i in heads] == [
        "X_f real [3]", "Y_f real [2]", "X_g real [3]", "Y_g real [2]"]
    assert heads == [1, 5, 8, 12] and len(lines) == 15
    assert lines[2:5] == lines[9:12]  # X_g is identified with X_f


@pytest.mark.parametrize(("args", "match"), [
    ([], "network 'g' declared in"),
    (["--network", "h=G"], "declares no network 'h' (declared: 'f', 'g')"),
    (["--network", "f=G"], "'f' is the first declared network, given by the positional model"),
    (["--network", "g=G", "--network", "g=G"], "--network g=... given twice"),
    (["--network", "g"], "argument --network: expected NAME=PATH"),
    (["--network", "g=/nonexistent.onnx"], "model file not found: /nonexistent.onnx"),
], ids=["missing", "unknown", "first", "twice", "format", "no file"])
def test_cli_network_errors_are_one_line_exit_2(tmp_path, capsys, args, match) -> None:
    f, g = _pair(tmp_path)
    prop = tmp_path / "q.vnnlib"
    prop.write_text(TWO + BOX + IDENT + "(assert (>= Y_f[0] Y_g[0]))\n")
    argv = ["verify", str(f), str(prop), *[a.replace("=G", f"={g}") for a in args]]
    code, _, err = _cli(capsys, argv)
    _one_line(err, code, match)


def test_cli_network_on_a_single_network_query_is_exit_2(tmp_path, capsys) -> None:
    f, g = _pair(tmp_path)
    prop = tmp_path / "p.vnnlib"
    prop.write_text(HEAD + "(declare-network f (declare-input X real [3]) "
                    "(declare-output Y real [2]))\n" + BOX.replace("X_f", "X")
                    + "(assert (>= Y[0] Y[1]))\n")
    code, _, err = _cli(capsys, ["verify", str(f), str(prop), "--network", f"g={g}"])
    _one_line(err, code, "declares a single network")


def test_cli_refused_input_relation_is_exit_4_naming_it(tmp_path, capsys) -> None:
    f, g = _pair(tmp_path)
    prop = tmp_path / "q.vnnlib"
    prop.write_text(TWO + BOX + IDENT + "(assert (<= X_f[0] X_g[1]))\n")
    code, _, err = _cli(capsys, ["verify", str(f), str(prop), "--network", f"g={g}"])
    assert code == 4 and "unsupported relation '(<= X_f[0] X_g[1])'" in err, err
