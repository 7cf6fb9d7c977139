"""The self-test's engine and family names, light enough for the command line's parser
(which lists them in its help without importing torch, onnx or the engines).
:data:`verinet.selftest.engines.ENGINES` holds the engines under these names, in this
order (a test keeps the two equal)."""

from __future__ import annotations

ENGINE_NAMES = ("interval", "crown", "crown-f32", "alpha-crown", "lipschitz",
                "chain-interval", "chain-crown", "chain-alpha-crown", "milp", "milp-pulp",
                "relu-bab", "chain-bab", "input-bab", "star", "auto", "pgd", "portfolio")

#: The planted networks' families (:mod:`verinet.selftest.planted`).
FAMILIES = ("mlp", "cnn", "resnet", "sigmoid")
