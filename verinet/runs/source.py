"""Where a worker gets its model: the ONNX file (path, or its bytes when it travels
through Ray's object store) and how it is loaded (normalisation, equivalence check).
Each worker loads and checks the model once and keeps it for all its samples."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelSource:
    """``verinet.api.load_model(path, mean=, std=, check=)``, picklable.  ``content``: the
    file's bytes (a worker on another machine cannot read the driver's path)."""

    path: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    check: bool = True
    content: bytes | None = None

    def with_content(self) -> ModelSource:
        """The same source carrying the file's bytes."""
        return replace(self, content=Path(self.path).read_bytes())

    def load(self) -> Any:
        """The :class:`verinet.api.Model` (named by ``path`` even when read from bytes)."""
        from verinet import api

        if self.content is None:
            return api.load_model(self.path, mean=self.mean, std=self.std, check=self.check)
        fd, tmp = tempfile.mkstemp(suffix=".onnx", prefix="verinet-model-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self.content)
            model = api.load_model(tmp, mean=self.mean, std=self.std, check=self.check)
        finally:
            os.unlink(tmp)
        return replace(model, path=self.path)
