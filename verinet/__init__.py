"""verinet: how robust a neural network really is, with proof where proof is possible."""

__version__ = "0.1.0"
