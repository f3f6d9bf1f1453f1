"""Reduction: Caffe src/caffe/layers/reduction_layer.cpp.

Reduces every axis from ``axis`` (default 0, negative counts from the end) on: top shape
``bottom.shape[:axis]`` (a scalar for axis 0). Operation SUM (default), ASUM (sum of
absolute values), SUMSQ (sum of squares) or MEAN; the result is multiplied by ``coeff``
(default 1).
"""

from __future__ import annotations

from fcnkit.layers import Layer, NoCoordMap, canonical_axis, prod, register
from fcnkit.layers._common import lazy

SUM, ASUM, SUMSQ, MEAN = 1, 2, 3, 4


@register
class Reduction(Layer):
    """Caffe ``Reduction``."""

    type = "Reduction"

    def setup(self) -> None:
        p = self.param.reduction_param
        self.operation = int(p.operation)
        if self.operation not in (SUM, ASUM, SUMSQ, MEAN):
            raise self.error(f"unknown reduction operation {self.operation}")
        self.axis, self.coeff = int(p.axis), float(p.coeff)

    def output_shapes(self, bottom_shapes):
        s = tuple(bottom_shapes[0])
        return [s[:canonical_axis(self.axis, len(s), self)]]

    def coord_map(self):
        raise NoCoordMap("Reduction removes axes")

    def build_module(self, bottom_shapes):
        s = tuple(bottom_shapes[0])
        a = canonical_axis(self.axis, len(s), self)
        coeff = self.coeff / prod(s[a:]) if self.operation == MEAN else self.coeff
        return _torch().Reduction(a, self.operation, coeff)


@lazy
def _torch():
    import types

    import torch

    class Reduction(torch.nn.Module):
        def __init__(self, axis, operation, coeff):
            super().__init__()
            self.axis, self.operation, self.coeff = axis, operation, coeff

        def forward(self, x):
            x = x.flatten(self.axis)
            if self.operation == ASUM:
                x = torch.abs(x)
            elif self.operation == SUMSQ:
                x = x * x
            y = x.sum(dim=-1)
            return y * self.coeff if self.coeff != 1 else y

    return types.SimpleNamespace(Reduction=Reduction)
