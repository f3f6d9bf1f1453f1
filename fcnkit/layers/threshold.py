"""Threshold: Caffe src/caffe/layers/threshold_layer.cpp. ``y = 1 if x > threshold else 0``
(torch.nn.Threshold is a different function)."""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer, lazy


@register
class Threshold(ElementwiseLayer):
    """Caffe ``Threshold``: a step function."""

    type = "Threshold"

    def setup(self) -> None:
        self.threshold = float(self.param.threshold_param.threshold)

    def build_module(self, bottom_shapes):
        return _torch().Step(self.threshold)


@lazy
def _torch():
    import types

    import torch

    class Step(torch.nn.Module):
        def __init__(self, threshold):
            super().__init__()
            self.threshold = threshold

        def forward(self, x):
            return (x > self.threshold).to(x.dtype)

        def extra_repr(self):
            return f"threshold={self.threshold}"

    return types.SimpleNamespace(Step=Step)
