"""Softmax: Caffe src/caffe/layers/softmax_layer.cpp.

``y = exp(x - max) / sum(exp(x - max))`` along ``axis`` (default 1, negative counts from
the end); torch.nn.Softmax(dim). ONNX needs opset >= 13 (earlier Softmax flattens).
Coordinate map: the identity along the batch or channel axis.
"""

from __future__ import annotations

from fcnkit.layers import Layer, canonical_axis, register
from fcnkit.layers._common import axis_coord_map


@register
class Softmax(Layer):
    """Caffe ``Softmax``."""

    type = "Softmax"
    output_kind = "probabilities"

    def setup(self) -> None:
        self.axis = int(self.param.softmax_param.axis)

    def output_shapes(self, bottom_shapes):
        canonical_axis(self.axis, len(bottom_shapes[0]), self)
        return [tuple(bottom_shapes[0])]

    def coord_map(self):
        return axis_coord_map(self.axis, self, "normalises")

    def build_module(self, bottom_shapes):
        import torch

        return torch.nn.Softmax(dim=canonical_axis(self.axis, len(bottom_shapes[0]), self))
