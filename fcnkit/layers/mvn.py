"""MVN: Caffe src/caffe/layers/mvn_layer.cpp (mean-variance normalisation).

Per row, a row being one (n, c) map (or one n with ``across_channels``):
``y = x - mean(x)``; with ``normalize_variance`` (default) then
``y = y / (sqrt(mean(y^2)) + eps)``: Caffe adds ``eps`` (default 1e-9) after the square
root. The bottom has at most 4 axes (Caffe's legacy num/channels accessors).
"""

from __future__ import annotations

from fcnkit.errors import ShapeError
from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer, lazy


@register
class MVN(ElementwiseLayer):
    """Caffe ``MVN``."""

    type = "MVN"

    def setup(self) -> None:
        p = self.param.mvn_param
        self.normalize_variance = bool(p.normalize_variance)
        self.across_channels = bool(p.across_channels)
        self.eps = float(p.eps)

    def output_shapes(self, bottom_shapes):
        s = bottom_shapes[0]
        if not 1 <= len(s) <= 4:
            raise self.error(f"bottom has shape {s}; MVN takes 1 to 4 axes", ShapeError)
        return [tuple(s)]

    def build_module(self, bottom_shapes):
        start = 1 if self.across_channels else 2
        return _torch().MVN(start, len(bottom_shapes[0]), self.normalize_variance, self.eps)


@lazy
def _torch():
    import types

    import torch

    class MVN(torch.nn.Module):
        def __init__(self, start, ndim, normalize_variance, eps):
            super().__init__()
            self.start, self.normalize_variance, self.eps = start, normalize_variance, eps
            self.one_per_row = ndim <= start  # no axes after the row axes

        def forward(self, x):
            # rows: the axes before `start`; one value per row when x has no more axes
            rows = x.unsqueeze(-1) if self.one_per_row else x.flatten(self.start)
            y = rows - rows.mean(dim=-1, keepdim=True)
            if self.normalize_variance:
                std = torch.sqrt(torch.square(y).mean(dim=-1, keepdim=True))
                y = y / (std + self.eps)
            return y.reshape(x.shape)

        def extra_repr(self):
            return (f"across_channels={self.start == 1}, "
                    f"normalize_variance={self.normalize_variance}, eps={self.eps}")

    return types.SimpleNamespace(MVN=MVN)
