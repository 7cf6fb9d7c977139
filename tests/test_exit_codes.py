"""Every exit code of the README's table, in one place."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.nets import float32_layers, random_layers, relu_onnx
from verinet.cli import main
from verinet.interrupts import Terminated
from verinet.types import SoundnessError

README = Path(__file__).resolve().parents[1] / "README.md"


def _documented() -> set[int]:
    text = README.read_text()
    table = text[text.index("### Exit codes"):]
    table = table[:table.index("\n\n", table.index("| code |"))]
    return {int(m) for m in re.findall(r"^\| (\d+) \|", table, flags=re.M)}


def _files(tmp_path: Path) -> tuple[str, str]:
    layers = float32_layers(random_layers(np.random.default_rng(0), [2, 6, 2]))
    net = tmp_path / "net.onnx"
    onnx.save(relu_onnx(layers), net)
    prop = tmp_path / "p.vnnlib"
    decl = [f"(declare-const X_{i} Real)" for i in range(2)]
    decl += [f"(declare-const Y_{j} Real)" for j in range(2)]
    body = [f"(assert (>= X_{i} -1))" for i in range(2)]
    body += [f"(assert (<= X_{i} 1))" for i in range(2)] + ["(assert (>= Y_0 1000000))"]
    prop.write_text("\n".join(decl + body) + "\n")
    return str(net), str(prop)


CODES = (0, 1, 2, 3, 4, 70, 130, 143)


def _argv(code: int, tmp: Path, net: str, prop: str, mp: pytest.MonkeyPatch) -> list[str]:
    """A ``verinet verify`` command line that ends with exit ``code``."""
    raised = {1: RuntimeError("unexpected"), 70: SoundnessError("lower above upper"),
              130: KeyboardInterrupt(), 143: Terminated("terminated (SIGTERM)")}
    if code in raised:
        def run(*args: object, **kwargs: object) -> None:
            raise raised[code]

        mp.setattr("verinet.cli.verify._run_verify", run)
    if code == 2:
        return ["verify", str(tmp / "missing.onnx"), prop]
    if code == 3:
        (tmp / "bad.onnx").write_bytes(b"not onnx")
        return ["verify", str(tmp / "bad.onnx"), prop]
    if code == 4:
        (tmp / "bad.vnnlib").write_text("(assert (<= X_0")
        return ["verify", net, str(tmp / "bad.vnnlib")]
    return ["verify", net, prop, "--timeout", "20"]


def test_every_documented_code_is_tested() -> None:
    assert _documented() == set(CODES)


@pytest.mark.parametrize("code", CODES)
def test_exit_code(code, tmp_path, monkeypatch, capsys) -> None:
    net, prop = _files(tmp_path)
    argv = _argv(code, tmp_path, net, prop, monkeypatch)
    assert main(argv) == code
    err = capsys.readouterr()[1]
    assert "Traceback" not in err
    if code:
        assert len([ln for ln in err.splitlines() if ln.startswith("verinet:")]) == 1
