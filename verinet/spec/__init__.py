"""Properties: the normal form (:mod:`verinet.spec.property`) and the VNN-LIB reader."""

from verinet.spec.property import Halfspaces, Property, Term
from verinet.spec.vnnlib import (
    VnnlibError,
    VnnlibSemanticError,
    VnnlibSyntaxError,
    parse_vnnlib,
    read_vnnlib,
)

__all__ = [
    "Halfspaces",
    "Property",
    "Term",
    "VnnlibError",
    "VnnlibSemanticError",
    "VnnlibSyntaxError",
    "parse_vnnlib",
    "read_vnnlib",
]
