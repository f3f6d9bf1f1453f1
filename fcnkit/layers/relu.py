"""ReLU: Caffe src/caffe/layers/relu_layer.cpp.

``y = max(x, 0) + negative_slope * min(x, 0)`` (leaky when ``negative_slope`` != 0).
Torch: ReLU, or LeakyReLU(negative_slope) (same formula).
"""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer


@register
class ReLU(ElementwiseLayer):
    """Caffe ``ReLU`` (leaky with ``relu_param.negative_slope``)."""

    type = "ReLU"

    def setup(self) -> None:
        self.negative_slope = float(self.param.relu_param.negative_slope)

    def build_module(self, bottom_shapes):
        import torch

        if self.negative_slope == 0:
            return torch.nn.ReLU()
        return torch.nn.LeakyReLU(self.negative_slope)

    def inplace_activation(self, module):
        """``ReLU(inplace=True)`` or ``LeakyReLU(negative_slope, inplace=True)``: the same
        formula, written into its input."""
        import torch

        if isinstance(module, torch.nn.LeakyReLU):
            return torch.nn.LeakyReLU(module.negative_slope, inplace=True)
        if isinstance(module, torch.nn.ReLU):
            return torch.nn.ReLU(inplace=True)
        return None
