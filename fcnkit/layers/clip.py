"""Clip: Caffe src/caffe/layers/clip_layer.cpp. ``y = max(min, min(x, max))``.

Both ``clip_param.min`` and ``clip_param.max`` are required. With ``min < max`` this is
torch.nn.Hardtanh(min, max); otherwise (Caffe does not forbid it) every value becomes
``min``, which torch.clamp (and ONNX Clip) would not give.
"""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer, lazy


@register
class Clip(ElementwiseLayer):
    """Caffe ``Clip``."""

    type = "Clip"

    def setup(self) -> None:
        p = self.param.clip_param
        if not (p.HasField("min") and p.HasField("max")):
            raise self.error("clip_param needs both min and max")
        self.min, self.max = float(p.min), float(p.max)

    def build_module(self, bottom_shapes):
        import torch

        if self.min < self.max:
            return torch.nn.Hardtanh(self.min, self.max)
        return _torch().Clip(self.min, self.max)


@lazy
def _torch():
    import types

    import torch

    class Clip(torch.nn.Module):
        def __init__(self, lo, hi):
            super().__init__()
            self.lo, self.hi = lo, hi

        def forward(self, x):
            # min >= max: max(min, min(x, max)) is min everywhere
            return torch.full_like(x, self.lo)

    return types.SimpleNamespace(Clip=Clip)
