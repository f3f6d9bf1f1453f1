"""Power: Caffe src/caffe/layers/power_layer.cpp.

``y = (shift + scale * x) ^ power`` (defaults power 1, scale 1, shift 0). As in Caffe,
``power * scale == 0`` gives a constant, ``shift ^ power`` (1 when ``power == 0``), and
``power == 1`` skips the power.
"""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer, lazy


@register
class Power(ElementwiseLayer):
    """Caffe ``Power``."""

    type = "Power"

    def setup(self) -> None:
        p = self.param.power_param
        self.power, self.scale, self.shift = float(p.power), float(p.scale), float(p.shift)

    def build_module(self, bottom_shapes):
        return _torch().Power(self.power, self.scale, self.shift)


@lazy
def _torch():
    import math
    import types

    import torch

    class Power(torch.nn.Module):
        def __init__(self, power, scale, shift):
            super().__init__()
            self.power, self.scale, self.shift = power, scale, shift

        def forward(self, x):
            if self.power * self.scale == 0:
                return torch.full_like(x, self._constant())
            y = x
            if self.scale != 1:
                y = y * self.scale
            if self.shift != 0:
                y = y + self.shift
            if self.power != 1:
                y = torch.pow(y, self.power)
            return y

        def _constant(self):
            if self.power == 0:
                return 1.0
            try:
                return math.pow(self.shift, self.power)
            except (ValueError, OverflowError):  # C pow: NaN / inf
                return float("nan") if self.shift < 0 else float("inf")

        def extra_repr(self):
            return f"power={self.power}, scale={self.scale}, shift={self.shift}"

    return types.SimpleNamespace(Power=Power)
