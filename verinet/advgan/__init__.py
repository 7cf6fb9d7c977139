"""AdvGAN: adversarial examples made by a generative adversarial network (Xiao, Li, Zhu,
He, Liu, Song, IJCAI 2018).

A generator ``G`` maps an input ``x`` to a perturbation ``G(x) = eps * tanh(h(x))``, so
``||G(x)||_inf <= eps`` holds by construction; the example is ``x' = clip(x + G(x))`` to
the input domain.  ``G`` is trained against a frozen target ``f`` (the verinet IR lowered
to torch, logits) and a discriminator ``D`` on

``L = L_adv + alpha L_GAN + beta L_hinge``

* ``L_adv = E max(f_y(x') - max_{j != y} f_j(x'), -kappa)``: the untargeted C&W loss,
* ``L_GAN``: least-squares GAN loss (LSGAN, default) or binary cross-entropy, ``D``
  telling clean ``x`` from ``x'``,
* ``L_hinge = E max(0, ||G(x)||_2 - c)``: a soft bound on the perturbation's L2 size.

Once trained, ``G`` makes an example in one forward pass (no gradient steps, no queries):
:class:`verinet.attacks.AdvGAN`, which goes through the attacks' final call (clip to the
ball ∩ domain, confirm on the float64 IR); :func:`attack_samples` also replays every
success on the original ONNX model.  Modules: :mod:`~verinet.advgan.config` (the
settings), :mod:`~verinet.advgan.nets` (G and D), :mod:`~verinet.advgan.losses`,
:mod:`~verinet.advgan.train`, :mod:`~verinet.advgan.checkpoint` (save/load),
:mod:`~verinet.advgan.evaluate`.

>>> from verinet.advgan import GeneratorConfig, TrainOptions, train_advgan
>>> cfg = GeneratorConfig(input_shape=net.input_shape, eps=0.1)
>>> trained = train_advgan(net, x_train, y_train, config=cfg, options=TrainOptions())
>>> save_generator(trained.generator, "gen.pt", result=trained.result)
"""

from verinet.lazy import lazy_exports

_HOMES = {
    "SavedGenerator": "checkpoint", "load_generator": "checkpoint",
    "save_generator": "checkpoint", "GeneratorConfig": "config", "TrainOptions": "config",
    "AdvGANReport": "evaluate", "attack_samples": "evaluate", "Discriminator": "nets",
    "Generator": "nets", "Trained": "train", "TrainResult": "train", "train_advgan": "train",
}

__all__ = sorted(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)
