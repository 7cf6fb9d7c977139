"""Training models to compare: standard, adversarial (PGD, FGSM mixed), distilled, and
noise-trained (the base classifiers of randomized smoothing).

Small modules, each seeded and deterministic:

* :mod:`~verinet.train.data`: train/test splits (scikit-learn's digits; any samples file).
* :mod:`~verinet.train.models`: ReLU MLPs of any widths and depth.
* :mod:`~verinet.train.objectives`: standard, PGD adversarial training (Madry), the FGSM
  mixed objective (Goodfellow), Gaussian-noise augmentation (Cohen et al.).
* :mod:`~verinet.train.loop`: the seeded Adam loop (hard or soft targets, temperature).
* :mod:`~verinet.train.distill`: defensive distillation (Papernot), deployed at T = 1.
* :mod:`~verinet.train.export`: deterministic ONNX export and the round trip to the IR.
* :mod:`~verinet.train.recipes`: named recipes and the set used for the robustness study.

``scripts/train_defended.py`` trains the default set and writes ONNX files.
"""

from verinet.train.data import Split, digits, from_file, stratified_split
from verinet.train.distill import Distilled, distill, soft_labels
from verinet.train.export import check_export, mlp_to_onnx, save_onnx, to_network
from verinet.train.loop import TrainConfig, accuracy, data_loss, fit, predict
from verinet.train.models import build_mlp
from verinet.train.objectives import (
    FGSMMixed,
    GaussianNoise,
    PGDTraining,
    Standard,
    pgd_perturb,
)
from verinet.train.recipes import (
    DEFAULT_RECIPES,
    Recipe,
    Trained,
    noise_recipe,
    robust_accuracy,
    train_recipe,
)

__all__ = [
    "DEFAULT_RECIPES", "Distilled", "FGSMMixed", "GaussianNoise", "PGDTraining", "Recipe",
    "Split", "Standard", "TrainConfig", "Trained", "accuracy", "build_mlp", "check_export",
    "data_loss", "digits", "distill", "fit", "from_file", "mlp_to_onnx", "noise_recipe",
    "pgd_perturb", "predict", "robust_accuracy", "save_onnx", "soft_labels",
    "stratified_split", "to_network", "train_recipe",
]
