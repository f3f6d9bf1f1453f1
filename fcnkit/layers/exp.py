"""Exp: Caffe src/caffe/layers/exp_layer.cpp.

``y = base ^ (shift + scale * x)``; ``base = -1`` (default) means e, otherwise it must be
positive. Computed as Caffe does: ``y = outer * exp(inner * x)`` with
``inner = ln(base) * scale`` and ``outer = base ^ shift``.
"""

from __future__ import annotations

import math

from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer, lazy


@register
class Exp(ElementwiseLayer):
    """Caffe ``Exp``."""

    type = "Exp"

    def setup(self) -> None:
        p = self.param.exp_param
        base, scale, shift = float(p.base), float(p.scale), float(p.shift)
        if base != -1 and base <= 0:
            raise self.error(f"exp_param.base must be positive (or -1 for e), got {base}")
        log_base = 1.0 if base == -1 else math.log(base)
        self.inner_scale = log_base * scale
        self.outer_scale = 1.0 if shift == 0 else (math.exp(shift) if base == -1 else base ** shift)

    def build_module(self, bottom_shapes):
        return _torch().Exp(self.inner_scale, self.outer_scale)


@lazy
def _torch():
    import types

    import torch

    class Exp(torch.nn.Module):
        def __init__(self, inner_scale, outer_scale):
            super().__init__()
            self.inner_scale, self.outer_scale = inner_scale, outer_scale

        def forward(self, x):
            y = torch.exp(x * self.inner_scale if self.inner_scale != 1 else x)
            return y * self.outer_scale if self.outer_scale != 1 else y

    return types.SimpleNamespace(Exp=Exp)
