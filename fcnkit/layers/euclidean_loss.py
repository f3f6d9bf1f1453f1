"""EuclideanLoss: Caffe src/caffe/layers/euclidean_loss_layer.cpp.

``loss = sum((a - b)^2) / (2 N)`` with N = the first dimension; the bottoms must have the
same number of elements per item (``count(1)``). Top: shape ``()``.
"""

from __future__ import annotations

from fcnkit.errors import ShapeError
from fcnkit.layers import prod, register
from fcnkit.layers._common import lazy
from fcnkit.layers._loss import LossLayer


@register
class EuclideanLoss(LossLayer):
    """Caffe ``EuclideanLoss``."""

    type = "EuclideanLoss"
    min_bottom_rank = 1  # euclidean_loss_layer.cpp compares count(1)

    def output_shapes(self, bottom_shapes):
        self.check_batch(bottom_shapes)
        b0, b1 = bottom_shapes
        if prod(b0[1:]) != prod(b1[1:]):
            raise self.error(f"bottoms {tuple(b0)} and {tuple(b1)} must have the same number of "
                             "elements per item", ShapeError)
        return [()]

    def build_module(self, bottom_shapes):
        return _torch().EuclideanLoss(bottom_shapes[0][0])


@lazy
def _torch():
    import types

    import torch

    class EuclideanLoss(torch.nn.Module):
        def __init__(self, num):
            super().__init__()
            self.num = num

        def forward(self, a, b):
            d = a - b.reshape(a.shape)
            return torch.sum(d * d) / (2 * self.num)

    return types.SimpleNamespace(EuclideanLoss=EuclideanLoss)
