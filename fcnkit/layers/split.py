"""Split: Caffe src/caffe/layers/split_layer.cpp. Every top is a copy of the bottom (Caffe
inserts these itself where a blob feeds several layers)."""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer, lazy


@register
class Split(ElementwiseLayer):
    """Caffe ``Split``."""

    type = "Split"
    role = "alias"  # its tops are its bottom: compiled as no module
    tops = (1, None)

    def output_shapes(self, bottom_shapes):
        return [tuple(bottom_shapes[0])] * len(self.param.top)

    def build_module(self, bottom_shapes):
        return _torch().Split(len(self.param.top))


@lazy
def _torch():
    import types

    import torch

    class Split(torch.nn.Module):
        def __init__(self, n):
            super().__init__()
            self.n = n

        def forward(self, x):
            return x if self.n == 1 else (x,) * self.n

    return types.SimpleNamespace(Split=Split)
