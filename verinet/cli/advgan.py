"""``verinet advgan train [MODEL.onnx] --data FILE --eps E --out gen.pt`` and ``verinet
advgan attack [MODEL.onnx] --generator gen.pt --data FILE [--out JSON]``: AdvGAN
(Xiao et al., IJCAI 2018, :mod:`verinet.advgan`).

``train`` fits a generator of L-inf-bounded perturbations (``eps * tanh``, raw input
space: ``--mean/--std`` are folded into the model, as for ``certify``) against the model
and a discriminator, and saves it.  ``attack`` loads it, makes one example per correctly
classified sample in one forward pass, and reports the success rate: the share of the
correctly classified samples whose example is misclassified by the float64 IR and by the
original ONNX model (confirmed as ``certify`` confirms witnesses).  Without a model (and
without ``--data``) both run on the bundled digits example.  Bad input is one line and
exit 2 (a corrupt model: 3); see :mod:`verinet.cli`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from verinet.cli.options import (
    add_layout,
    add_model_and_data,
    add_no_check,
    add_normalisation,
    add_seed,
    add_selection,
    add_threads,
    number,
    positive_number,
)

log = logging.getLogger("verinet")


def _common(p: argparse.ArgumentParser) -> None:
    add_model_and_data(p)
    add_selection(p)
    add_normalisation(p)
    add_layout(p)
    add_threads(p)
    add_no_check(p)


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``advgan`` with its ``train`` and ``attack`` subcommands."""
    from verinet.advgan.config import GAN_LOSSES, KINDS, TrainOptions

    a = sub.add_parser("advgan", parents=[common],
                       help="AdvGAN: train a perturbation generator, attack with it")
    steps = a.add_subparsers(dest="advgan_command", required=True, metavar="{train,attack}")
    t = steps.add_parser("train", parents=[common], help="train a generator against a model")
    _common(t)
    t.add_argument("--eps", type=positive_number, required=True,
                   help="L-inf bound of the perturbations (raw input space, 0..1)")
    t.add_argument("--out", required=True, help="generator file to write (torch, .pt)")
    t.add_argument("--kind", choices=KINDS, default="mlp",
                   help="generator: mlp (any input, default) or conv (image inputs)")
    t.add_argument("--width", type=int, default=0,
                   help="hidden units (mlp) or base channels (conv); 0: default")
    d = TrainOptions()  # the defaults are the training options' own
    t.add_argument("--epochs", type=int, default=d.epochs,
                   help=f"passes over the data ({d.epochs})")
    t.add_argument("--batch-size", type=int, default=d.batch_size,
                   help=f"mini-batch size ({d.batch_size})")
    t.add_argument("--lr", type=positive_number, default=d.lr,
                   help=f"generator Adam rate ({d.lr:g})")
    t.add_argument("--lr-disc", type=positive_number, default=d.lr_disc,
                   help=f"discriminator Adam rate ({d.lr_disc:g})")
    t.add_argument("--alpha", type=number, default=d.alpha,
                   help=f"weight of the GAN loss ({d.alpha:g})")
    t.add_argument("--beta", type=number, default=d.beta,
                   help=f"weight of the hinge loss ({d.beta:g})")
    t.add_argument("--c", type=number,
                   help=f"hinge bound on ||delta||_2 (default: {d.c_share:g} eps sqrt(n))")
    t.add_argument("--kappa", type=number, default=d.kappa,
                   help=f"C&W confidence: the logit margin the loss aims for ({d.kappa:g})")
    t.add_argument("--gamma", type=number, default=d.gamma,
                   help=f"weight of the penalty on pre-tanh values beyond {d.saturation:g} "
                   f"(keeps the tanh from saturating; 0: the paper's objective; {d.gamma:g})")
    t.add_argument("--gan-loss", choices=GAN_LOSSES, default=d.gan_loss,
                   help=f"realism loss: lsgan (least squares) or bce ({d.gan_loss})")
    t.add_argument("--shift", type=int, default=d.shift,
                   help="image inputs: random shifts of up to this many pixels (augmentation; "
                   f"{d.shift})")
    add_seed(t, help="random seed (weights, batch order, shifts)")
    k = steps.add_parser("attack", parents=[common],
                         help="attack samples with a trained generator (one pass each)")
    _common(k)
    k.add_argument("--generator", required=True, help="generator file (advgan train --out)")
    k.add_argument("--eps", type=positive_number,
                   help="the ball radius (default and only accepted: the generator's eps)")
    k.add_argument("--out", help="JSON report")


def cmd_advgan(args: argparse.Namespace) -> int:
    return _train(args) if args.advgan_command == "train" else _attack(args)


def _load(args: argparse.Namespace) -> tuple[Any, Any, str, str]:
    from verinet import api
    from verinet.cli.samples import model_and_data
    from verinet.data import load_samples

    model_path, data_path = model_and_data(args)
    model = api.load_model(model_path, mean=args.mean, std=args.std, check=not args.no_check)
    data = load_samples(data_path, n_inputs=model.n_inputs, n_classes=model.n_outputs,
                        scale=args.scale, samples=args.samples, start=args.start,
                        layout=args.layout, input_shape=model.network.input_shape)
    return model, data, model_path, data_path


def _options(args: argparse.Namespace) -> Any:
    from verinet.advgan.config import TrainOptions

    return TrainOptions(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        lr_disc=args.lr_disc, alpha=args.alpha, beta=args.beta, c=args.c,
                        kappa=args.kappa, gamma=args.gamma, gan_loss=args.gan_loss,
                        shift=args.shift, seed=args.seed)


def _train(args: argparse.Namespace) -> int:
    from verinet.advgan.checkpoint import save_generator
    from verinet.advgan.config import GeneratorConfig
    from verinet.advgan.train import train_advgan
    from verinet.data import validate_eps
    from verinet.report.paths import check_output
    from verinet.report.records import file_sha256

    eps = validate_eps(args.eps)
    options = _options(args)  # option values first, before the model loads
    check_output(args.out, "--out")
    model, data, model_path, _ = _load(args)
    config = GeneratorConfig(input_shape=model.network.input_shape, eps=eps, kind=args.kind,
                             width=args.width)
    trained = train_advgan(model.network, data.x, data.y, config=config, options=options)
    r = trained.result
    save_generator(trained.generator, args.out, result=r, target_name=Path(model_path).name,
                   target_sha256=file_sha256(model_path))
    sys.stdout.write(
        f"advgan: trained a {r.config.kind} generator (width {r.config.width}, eps {eps:g}) "
        f"on {r.n_train} samples in {r.seconds:.1f} s; it fools {r.train_success:.1%} of the "
        f"{r.n_correct} correctly classified training samples (float32 target, epoch "
        f"{r.best_epoch} of {options.epochs}; not confirmed); wrote {args.out}\n")
    return 0


def _attack(args: argparse.Namespace) -> int:
    from verinet.advgan.checkpoint import check_fit, load_generator
    from verinet.advgan.evaluate import attack_samples
    from verinet.attacks.advgan import AdvGAN
    from verinet.report.paths import check_output
    from verinet.report.records import file_sha256

    if args.out is not None:
        check_output(args.out, "--out")
    saved = load_generator(args.generator, eps=args.eps)  # a bad file fails before the model
    model, data, model_path, data_path = _load(args)
    check_fit(args.generator, saved.generator.config, input_shape=model.network.input_shape)
    sha = file_sha256(model_path)
    if saved.target_sha256 and saved.target_sha256 != sha:
        log.warning("the generator was trained on another model (%s): this is a transfer "
                    "attack", saved.target_name or "unknown")
    report = attack_samples(model.network, model.onnx_eval, AdvGAN(generator=saved.generator),
                            data.x, data.y, indices=data.indices)
    per = report.attack_seconds / max(1, report.n_correct)
    line = (f"advgan (eps {report.eps:g}): {report.n} samples, {report.n_correct} correctly "
            f"classified, {report.n_success_ir} fooled on the float64 IR, "
            f"{report.n_confirmed} confirmed on the IR and the ONNX model: success rate "
            f"{report.success_rate:.1%}; {1e3 * per:.3f} ms per example (one pass and the "
            f"IR check), replay {report.confirm_seconds:.2f} s\n")
    if args.out is not None:
        from verinet.report.atomic import atomic_write

        payload = {"model": model_path, "data": data_path, "generator": args.generator,
                   "model_sha256": sha, "trained_on": saved.target_name,
                   "guarantee": "empirical", **report.as_dict()}
        atomic_write(args.out, json.dumps(payload, indent=1, allow_nan=False))
    sys.stdout.write(line)
    return 0

