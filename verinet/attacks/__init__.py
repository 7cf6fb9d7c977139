"""Adversarial attacks: upper bounds on the minimal adversarial L-inf radius.

Every attack is called the same way (:meth:`Attack.__call__`) and returns an
:class:`AttackResult` confirmed on the float64 IR.  ``REGISTRY`` maps each attack's
``name`` to its class (default options when called without arguments).  EAD (L1),
L-BFGS (L2) and the Boundary Attack (L2, decision-based) minimise other norms: their
region is still the L-inf ball ∩ domain, their ``distance`` is in their ``norm``.
:class:`AdvGAN` needs a trained generator (:mod:`verinet.advgan`), so it is exported but
not in ``REGISTRY``.
:mod:`verinet.attacks.property_pgd` is the verifier's PGD on general properties.
"""

from verinet.attacks.advgan import AdvGAN
from verinet.attacks.base import NORMS, Attack, AttackResult, margin_loss
from verinet.attacks.boundary import Boundary
from verinet.attacks.cw import CWL2, CWLinf
from verinet.attacks.deepfool import DeepFool
from verinet.attacks.ead import EAD
from verinet.attacks.fmn import FMN
from verinet.attacks.gradient import BIM, FGSM, PGD
from verinet.attacks.lbfgs import LBFGS

REGISTRY: dict[str, type[Attack]] = {
    cls.name: cls for cls in (FGSM, BIM, PGD, CWL2, CWLinf, DeepFool, FMN, EAD, LBFGS, Boundary)
}

__all__ = [
    "BIM", "CWL2", "EAD", "FGSM", "FMN", "LBFGS", "NORMS", "PGD", "REGISTRY", "AdvGAN",
    "Attack", "AttackResult", "Boundary", "CWLinf", "DeepFool", "margin_loss",
]
