"""The three terms of the AdvGAN objective (Xiao et al. 2018, Sec. 3.1), per batch mean.

* :func:`adversarial_loss`: the untargeted C&W loss ``max(f_y - max_{j != y} f_j, -kappa)``
  on the target's logits; it is ``<= 0`` exactly where the example is misclassified and
  stops pushing once the margin reaches ``kappa``.
* :func:`hinge_loss`: ``max(0, ||delta||_2 - c)``, the soft bound on the perturbation size.
* :func:`generator_gan_loss` / :func:`discriminator_loss`: the realism term, least squares
  (LSGAN, Mao et al. 2017: the form AdvGAN's experiments use) or binary cross-entropy
  (the original GAN form ``log D(x) + log(1 - D(x'))`` written in logits).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def adversarial_loss(logits: Tensor, labels: Tensor, kappa: float) -> Tensor:
    """Mean over the batch of ``max(f_y - max_{j != y} f_j, -kappa)``."""
    own = logits.gather(1, labels[:, None]).squeeze(1)
    rival = logits.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
    return torch.clamp(own - rival, min=-kappa).mean()


def hinge_loss(delta: Tensor, c: float) -> Tensor:
    """Mean over the batch of ``max(0, ||delta||_2 - c)``."""
    return F.relu(torch.linalg.vector_norm(delta, dim=1) - c).mean()


def generator_gan_loss(d_fake: Tensor, kind: str) -> Tensor:
    """The generator's realism loss on the discriminator's logits of its examples."""
    if kind == "lsgan":
        return ((d_fake - 1.0) ** 2).mean()
    return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))


def discriminator_loss(d_real: Tensor, d_fake: Tensor, kind: str) -> Tensor:
    """The discriminator's loss: clean inputs are real (1), adversarial ones fake (0)."""
    if kind == "lsgan":
        return 0.5 * (((d_real - 1.0) ** 2).mean() + (d_fake ** 2).mean())
    return 0.5 * (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
