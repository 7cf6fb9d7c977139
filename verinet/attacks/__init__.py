"""Adversarial attacks: upper bounds on the minimal adversarial L-inf radius.

Every attack is called the same way (:meth:`Attack.__call__`) and returns an
:class:`AttackResult` confirmed on the float64 IR.  ``REGISTRY`` maps each attack's
``name`` to its class (default options when called without arguments).
:mod:`verinet.attacks.property_pgd` is the verifier's PGD on general properties.
"""

from verinet.attacks.base import Attack, AttackResult, margin_loss
from verinet.attacks.cw import CWL2, CWLinf
from verinet.attacks.deepfool import DeepFool
from verinet.attacks.fmn import FMN
from verinet.attacks.gradient import BIM, FGSM, PGD

REGISTRY: dict[str, type[Attack]] = {
    cls.name: cls for cls in (FGSM, BIM, PGD, CWL2, CWLinf, DeepFool, FMN)
}

__all__ = [
    "BIM", "CWL2", "FGSM", "FMN", "PGD", "REGISTRY", "Attack", "AttackResult", "CWLinf",
    "DeepFool", "margin_loss",
]
