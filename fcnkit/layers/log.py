"""Log: Caffe src/caffe/layers/log_layer.cpp.

``y = log_base(shift + scale * x)``; ``base = -1`` (default) means e, otherwise it must
be positive. Computed as Caffe does: ``ln(shift + scale * x) / ln(base)``.
"""

from __future__ import annotations

import math

from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer, lazy


@register
class Log(ElementwiseLayer):
    """Caffe ``Log``."""

    type = "Log"

    def setup(self) -> None:
        p = self.param.log_param
        base = float(p.base)
        if base != -1 and base <= 0:
            raise self.error(f"log_param.base must be positive (or -1 for e), got {base}")
        if base == 1:
            raise self.error("log_param.base 1 has no logarithm")
        self.base_scale = 1.0 if base == -1 else 1.0 / math.log(base)
        self.scale, self.shift = float(p.scale), float(p.shift)

    def build_module(self, bottom_shapes):
        return _torch().Log(self.scale, self.shift, self.base_scale)


@lazy
def _torch():
    import types

    import torch

    class Log(torch.nn.Module):
        def __init__(self, scale, shift, base_scale):
            super().__init__()
            self.scale, self.shift, self.base_scale = scale, shift, base_scale

        def forward(self, x):
            y = x * self.scale if self.scale != 1 else x
            y = y + self.shift if self.shift != 0 else y
            y = torch.log(y)
            return y * self.base_scale if self.base_scale != 1 else y

    return types.SimpleNamespace(Log=Log)
