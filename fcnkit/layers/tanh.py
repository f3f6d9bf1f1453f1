"""TanH: Caffe src/caffe/layers/tanh_layer.cpp. ``y = tanh(x)``."""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer


@register
class TanH(ElementwiseLayer):
    """Caffe ``TanH``."""

    type = "TanH"

    def build_module(self, bottom_shapes):
        import torch

        return torch.nn.Tanh()
