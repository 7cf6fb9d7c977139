"""Pooling windows as gathered columns: ``unfold`` (forward) and ``fold`` (its transpose).

A :class:`Window` is the geometry of a 2-D pooling op on one input shape (kernel,
strides, dilations, ONNX pads plus the trailing padding ``ceil_mode`` adds, exactly as
:func:`verinet.ir.torch.pool_extra` evaluates it).  ``unfold`` gathers every window of an
``(N, C, H, W)`` tensor into ``(N, C, kk, Ho, Wo)`` (padding filled with ``fill``);
``fold`` sums window columns back onto the input positions and drops the padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from verinet.ir.torch import pool_extra


@dataclass(frozen=True)
class Window:
    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]      # top, left, bottom, right (ceil-mode extra included)
    onnx_pads: tuple[int, int, int, int]
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]

    @staticmethod
    def of(op: object, in_shape: tuple[int, int, int]) -> Window:
        kh, kw = op.kernel  # type: ignore[attr-defined]
        dh, dw = getattr(op, "dilations", (1, 1))
        sh, sw = op.strides  # type: ignore[attr-defined]
        t, left, b, r = op.pads  # type: ignore[attr-defined]
        ceil = bool(getattr(op, "ceil_mode", False))
        h, w = in_shape[1:]
        eh = pool_extra(h, (kh - 1) * dh + 1, sh, t, b, ceil)
        ew = pool_extra(w, (kw - 1) * dw + 1, sw, left, r, ceil)
        hp, wp = h + t + b + eh, w + left + r + ew
        ho = (hp - (kh - 1) * dh - 1) // sh + 1
        wo = (wp - (kw - 1) * dw - 1) // sw + 1
        return Window((kh, kw), (sh, sw), (dh, dw), (t, left, b + eh, r + ew), (t, left, b, r),
                      (h, w), (ho, wo))

    @property
    def kk(self) -> int:
        return self.kernel[0] * self.kernel[1]

    @property
    def padded_hw(self) -> tuple[int, int]:
        t, left, b, r = self.pads
        return self.in_hw[0] + t + b, self.in_hw[1] + left + r

    def unfold(self, x: Tensor, fill: float) -> Tensor:
        """``(N, C, H, W) -> (N, C, kk, Ho, Wo)``; padded positions hold ``fill``."""
        t, left, b, r = self.pads
        n, c = x.shape[:2]
        xp = F.pad(x, (left, r, t, b), value=fill) if any(self.pads) else x
        cols = F.unfold(xp.reshape(n * c, 1, *xp.shape[2:]), self.kernel, self.dilations, 0,
                        self.strides)
        return cols.reshape(n, c, self.kk, *self.out_hw)

    def fold(self, cols: Tensor) -> Tensor:
        """Transpose of :meth:`unfold`: ``(N, C, kk, Ho, Wo) -> (N, C, H, W)``, summing
        overlapping windows and dropping the padding."""
        n, c = cols.shape[:2]
        flat = cols.reshape(n * c, self.kk, -1)
        out = F.fold(flat, self.padded_hw, self.kernel, self.dilations, 0, self.strides)
        t, left, _, _ = self.pads
        h, w = self.in_hw
        return out.reshape(n, c, *self.padded_hw)[:, :, t: t + h, left: left + w]

    def counts(self, include_pad: bool) -> np.ndarray:
        """Per output position, the number of cells average pooling divides by."""
        region = torch.zeros((1, 1) + self.padded_hw, dtype=torch.float64)
        t, left, b, r = self.onnx_pads
        h, w = self.in_hw
        if include_pad:
            region[..., : t + h + b, : left + w + r] = 1.0
        else:
            region[..., t: t + h, left: left + w] = 1.0
        cols = F.unfold(region, self.kernel, self.dilations, 0, self.strides)
        return cols.sum(dim=1).reshape(self.out_hw).numpy()
