"""Bias: Caffe src/caffe/layers/bias_layer.cpp.

``y = x + bias``, the bias broadcast from ``axis`` (default 1) of the bottom. One bottom:
a learned blob of shape ``bottom.shape[axis : axis + num_axes]`` (``num_axes`` default 1;
-1 = to the end; 0 = a scalar), filled by ``filler`` (default constant 0). Two bottoms:
the bias is ``bottom[1]``, whose shape must match ``bottom[0]`` from ``axis``.
"""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers._broadcast import learned_shape, operand_view
from fcnkit.layers._common import ElementwiseLayer, lazy


@register
class Bias(ElementwiseLayer):
    """Caffe ``Bias``: learned or second-bottom addend."""

    type = "Bias"
    bottoms = (1, 2)

    def setup(self) -> None:
        p = self.param.bias_param
        self.axis, self.num_axes = int(p.axis), int(p.num_axes)
        self.learned = len(self.param.bottom) == 1
        if self.num_axes < -1:
            raise self.error(f"num_axes must be >= 0, or -1 for all axes after axis; got {self.num_axes}")

    def operand_shape(self, bottom_shapes):
        if self.learned:
            return learned_shape(self, bottom_shapes[0], self.axis, self.num_axes)
        return tuple(bottom_shapes[1])

    def output_shapes(self, bottom_shapes):
        operand_view(self, bottom_shapes[0], self.operand_shape(bottom_shapes), self.axis)
        return [tuple(bottom_shapes[0])]

    def param_shapes(self, bottom_shapes):
        return [self.operand_shape(bottom_shapes)] if self.learned else []

    def param_names(self):
        return ["bias"] if self.learned else []

    def fillers(self):
        p = self.param.bias_param
        return [p.filler if p.HasField("filler") else None] if self.learned else []

    def coord_bottoms(self):
        """Only bottom 0 carries positions (a second bottom is a broadcast operand)."""
        return [0]

    def build_module(self, bottom_shapes):
        shape = self.operand_shape(bottom_shapes)
        view = operand_view(self, bottom_shapes[0], shape, self.axis)
        return _torch().Bias(shape, view, self.learned)


@lazy
def _torch():
    import types

    import torch

    class Bias(torch.nn.Module):
        def __init__(self, shape, view, learned):
            super().__init__()
            self.view = tuple(view)
            self.bias = torch.nn.Parameter(torch.zeros(shape)) if learned else None

        def forward(self, x, bias=None):
            b = self.bias if bias is None else bias
            return x + b.reshape(self.view)

    return types.SimpleNamespace(Bias=Bias)
