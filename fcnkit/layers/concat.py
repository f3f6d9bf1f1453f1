"""Concat: Caffe src/caffe/layers/concat_layer.cpp.

Concatenates along ``axis`` (default 1, negative counts from the end) or the legacy
``concat_dim`` (non-negative; not both). Every other axis must agree.
Coordinate map: the identity along the batch or channel axis; none along a spatial one.
"""

from __future__ import annotations

from fcnkit.errors import ShapeError
from fcnkit.layers import Layer, canonical_axis, register
from fcnkit.layers._common import axis_coord_map, lazy


@register
class Concat(Layer):
    """Caffe ``Concat``."""

    type = "Concat"
    bottoms = (1, None)

    def setup(self) -> None:
        p = self.param.concat_param
        if p.HasField("axis") and p.HasField("concat_dim"):
            raise self.error("give either axis or concat_dim, not both")
        self.legacy = p.HasField("concat_dim")
        self.axis = int(p.concat_dim) if self.legacy else int(p.axis)

    def canonical_axis(self, ndim: int) -> int:
        if self.legacy:
            if self.axis >= ndim:
                raise self.error(f"concat_dim {self.axis} is out of range for {ndim}-D bottoms",
                                 ShapeError)
            return self.axis
        return canonical_axis(self.axis, ndim, self)

    def output_shapes(self, bottom_shapes):
        first = tuple(bottom_shapes[0])
        a = self.canonical_axis(len(first))
        total = 0
        for b, s in zip(self.param.bottom, bottom_shapes):
            if len(s) != len(first) or any(x != y for i, (x, y) in enumerate(zip(s, first)) if i != a):
                raise self.error(f"bottom '{b}' has shape {tuple(s)}, but all bottoms must have "
                                 f"the shape of the first, {first}, except along axis {a}",
                                 ShapeError)
            total += s[a]
        return [first[:a] + (total,) + first[a + 1:]]

    def coord_map(self):
        return axis_coord_map(self.axis, self, "concatenates")

    def build_module(self, bottom_shapes):
        return _torch().Concat(self.canonical_axis(len(bottom_shapes[0])))


@lazy
def _torch():
    import types

    import torch

    class Concat(torch.nn.Module):
        def __init__(self, axis):
            super().__init__()
            self.axis = axis

        def forward(self, *xs):
            return torch.cat(xs, dim=self.axis) if len(xs) > 1 else xs[0]

    return types.SimpleNamespace(Concat=Concat)
