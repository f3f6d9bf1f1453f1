"""AbsVal: Caffe src/caffe/layers/absval_layer.cpp. ``y = |x|``."""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer, lazy


@register
class AbsVal(ElementwiseLayer):
    """Caffe ``AbsVal``."""

    type = "AbsVal"

    def build_module(self, bottom_shapes):
        return _torch().Abs()


@lazy
def _torch():
    import types

    import torch

    class Abs(torch.nn.Module):
        def forward(self, x):
            return torch.abs(x)

    return types.SimpleNamespace(Abs=Abs)
