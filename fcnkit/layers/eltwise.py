"""Eltwise: Caffe src/caffe/layers/eltwise_layer.cpp.

Element-wise over 2 or more bottoms of equal shape: PROD, SUM (default; ``coeff``: none
or one per bottom, SUM only) or MAX.
"""

from __future__ import annotations

from fcnkit.layers import check_bottoms, register
from fcnkit.layers._common import ElementwiseLayer, lazy

PROD, SUM, MAX = 0, 1, 2


@register
class Eltwise(ElementwiseLayer):
    """Caffe ``Eltwise``."""

    type = "Eltwise"
    bottoms = (2, None)

    def setup(self) -> None:
        p = self.param.eltwise_param
        self.operation = int(p.operation)
        if self.operation not in (PROD, SUM, MAX):
            raise self.error(f"unknown operation {self.operation}")
        n = len(self.param.bottom)
        if len(p.coeff) and self.operation != SUM:
            raise self.error("coeff is only allowed with operation SUM")
        if len(p.coeff) not in (0, n):
            raise self.error(f"{len(p.coeff)} coeffs for {n} bottoms; give one per bottom or none")
        self.coeff = [float(c) for c in p.coeff] or [1.0] * n

    def output_shapes(self, bottom_shapes):
        check_bottoms(self, bottom_shapes, same=True)
        return [tuple(bottom_shapes[0])]

    def build_module(self, bottom_shapes):
        return _torch().Eltwise(self.operation, self.coeff)


@lazy
def _torch():
    import types

    import torch

    class Eltwise(torch.nn.Module):
        def __init__(self, operation, coeff):
            super().__init__()
            self.operation, self.coeff = operation, list(coeff)

        def forward(self, *xs):
            if self.operation == PROD:
                y = xs[0]
                for x in xs[1:]:
                    y = y * x
                return y
            if self.operation == MAX:
                y = xs[0]
                for x in xs[1:]:
                    y = torch.maximum(y, x)
                return y
            y = None
            for c, x in zip(self.coeff, xs):
                term = x if c == 1 else x * c
                y = term if y is None else y + term
            return y

        def extra_repr(self):
            return f"operation={['PROD', 'SUM', 'MAX'][self.operation]}, coeff={self.coeff}"

    return types.SimpleNamespace(Eltwise=Eltwise)
