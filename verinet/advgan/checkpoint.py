"""Saving and loading trained generators.

A generator file is ``torch.save`` of a plain dictionary: ``format``
(:data:`FORMAT`), ``version``, the :class:`~verinet.advgan.config.GeneratorConfig` as a
dictionary, the generator's ``state_dict`` and ``meta`` (the target's name and SHA-256,
the training options, the training statistics).  It is read with
``torch.load(weights_only=True)``, so a file never runs code.  Every problem -- missing,
empty or foreign file, another format or version, a config or weights that do not fit,
non-finite weights, a model or eps the generator was not made for -- is a one-line
:class:`~verinet.types.InputError` naming the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from verinet.advgan.config import GeneratorConfig
from verinet.advgan.nets import Generator
from verinet.advgan.train import TrainResult
from verinet.types import InputError

FORMAT = "verinet-advgan-generator"
VERSION = 1


@dataclass(frozen=True)
class SavedGenerator:
    """A loaded generator (eval mode) and what its file says about it: the target's
    file name and SHA-256 (empty when unknown) and the training record (``train``: the
    options and statistics as saved; empty when the file has none)."""

    generator: Generator
    target_name: str
    target_sha256: str
    train: tuple[tuple[str, Any], ...]


def _train_record(result: TrainResult | None) -> dict[str, Any]:
    if result is None:
        return {}
    return {"options": dataclasses.asdict(result.options), "n_train": result.n_train,
            "n_correct": result.n_correct, "hinge_c": result.hinge_c,
            "best_epoch": result.best_epoch, "train_success": result.train_success,
            "seconds": result.seconds}


def save_generator(generator: Generator, path: str | os.PathLike[str], *,
                   result: TrainResult | None = None, target_name: str = "",
                   target_sha256: str = "") -> Path:
    """Write ``generator`` to ``path`` (atomically: a temp file renamed over it)."""
    p = Path(path)
    payload = {
        "format": FORMAT, "version": VERSION, "config": generator.config.as_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in generator.state_dict().items()},
        "meta": {"target_name": target_name, "target_sha256": target_sha256,
                 "train": _train_record(result)},
    }
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, p)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise InputError(f"cannot write generator {p}: {e.strerror or e}") from None
    return p


def _read(p: Path) -> dict[str, Any]:
    if p.is_dir():
        raise InputError(f"generator {p}: is a directory, not a file")
    if not p.is_file():
        raise InputError(f"generator file not found: {p}")
    if p.stat().st_size == 0:
        raise InputError(f"generator file {p} is empty (0 bytes)")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # a foreign or corrupt file: pickle, zip and torch errors alike
        raise InputError(f"{p} is not a saved AdvGAN generator (torch.load failed: "
                         f"{type(e).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{p} is not a saved AdvGAN generator (no '{FORMAT}' header)")
    if data.get("version") != VERSION:
        raise InputError(f"{p}: generator file version {data.get('version')!r} is not "
                         f"supported (this verinet reads version {VERSION})")
    missing = [k for k in ("config", "state_dict") if k not in data]
    if missing:
        raise InputError(f"{p}: generator file lacks {', '.join(missing)}")
    return data


def _build(p: Path, data: dict[str, Any]) -> Generator:
    try:
        config = GeneratorConfig.from_dict(data["config"])
    except InputError as e:
        raise InputError(f"{p}: {e}") from None
    state = data["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise InputError(f"{p}: the generator weights are not a state dict of tensors")
    gen = Generator(config)
    try:
        gen.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = " ".join(str(e).split())[:160]
        raise InputError(f"{p}: the weights do not fit the generator config ({first})") from None
    if not all(bool(torch.isfinite(v).all()) for v in gen.state_dict().values()):
        raise InputError(f"{p}: the generator weights contain NaN or infinite values")
    return gen.eval()


def check_fit(path: str | os.PathLike[str], config: GeneratorConfig, *,
              input_shape: tuple[int, ...] | None = None, eps: float | None = None) -> None:
    """Raise InputError unless a generator of ``config`` (read from ``path``) fits inputs
    of ``input_shape`` and the ball radius ``eps`` (within 1e-9 relative); None: any."""
    if input_shape is not None and tuple(input_shape) != config.input_shape:
        raise InputError(f"{path}: the generator was trained for inputs of shape "
                         f"{config.input_shape}, the model takes {tuple(input_shape)}")
    if eps is not None and not math.isclose(eps, config.eps, rel_tol=1e-9, abs_tol=0.0):
        raise InputError(f"{path}: the generator was trained for eps {config.eps:g}, not "
                         f"{eps:g} (train one for this eps)")


def load_generator(path: str | os.PathLike[str], *, input_shape: tuple[int, ...] | None = None,
                   eps: float | None = None) -> SavedGenerator:
    """Read a generator file; with ``input_shape`` (the target's
    :attr:`~verinet.ir.graph.Network.input_shape`) and ``eps`` it must have been made for
    them (eps within 1e-9 relative)."""
    p = Path(path)
    data = _read(p)
    gen = _build(p, data)
    check_fit(p, gen.config, input_shape=input_shape, eps=eps)
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    train = meta.get("train") if isinstance(meta.get("train"), dict) else {}
    return SavedGenerator(gen, str(meta.get("target_name", "")),
                          str(meta.get("target_sha256", "")), tuple(sorted(train.items())))
