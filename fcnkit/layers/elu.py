"""ELU: Caffe src/caffe/layers/elu_layer.cpp.

``y = x`` for ``x > 0``, else ``alpha (exp(x) - 1)``; torch.nn.ELU(alpha).
"""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer


@register
class ELU(ElementwiseLayer):
    """Caffe ``ELU``."""

    type = "ELU"

    def setup(self) -> None:
        self.alpha = float(self.param.elu_param.alpha)

    def build_module(self, bottom_shapes):
        import torch

        return torch.nn.ELU(alpha=self.alpha)
