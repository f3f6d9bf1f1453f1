"""Swish: Caffe src/caffe/layers/swish_layer.cpp. ``y = x * sigmoid(beta * x)``
(torch.nn.SiLU when ``beta == 1``, the default)."""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer, lazy


@register
class Swish(ElementwiseLayer):
    """Caffe ``Swish``."""

    type = "Swish"

    def setup(self) -> None:
        self.beta = float(self.param.swish_param.beta)

    def build_module(self, bottom_shapes):
        import torch

        if self.beta == 1:
            return torch.nn.SiLU()
        return _torch().Swish(self.beta)


@lazy
def _torch():
    import types

    import torch

    class Swish(torch.nn.Module):
        def __init__(self, beta):
            super().__init__()
            self.beta = beta

        def forward(self, x):
            return x * torch.sigmoid(x * self.beta)

    return types.SimpleNamespace(Swish=Swish)
