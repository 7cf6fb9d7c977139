"""Package exports imported on first use (PEP 562), so that importing one light
submodule of a package does not import the package's heavy ones (torch, onnx, the
engines): the command line builds its parser, and ``--ray`` starts its cluster, before
anything heavy is imported."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``name`` from the submodule
    ``homes[name]`` (relative to the package) when it is first asked for."""

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{homes[name]}"), name)

    return __getattr__
