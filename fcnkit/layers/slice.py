"""Slice: Caffe src/caffe/layers/slice_layer.cpp.

Splits the bottom along ``axis`` (default 1, negative counts from the end) or the legacy
``slice_dim`` (not both) into the tops: at the increasing ``slice_point``s (one fewer
than the tops), or, with none, into equal parts (the axis must divide evenly).
Coordinate map: the identity along the batch or channel axis; none along a spatial one.
"""

from __future__ import annotations

from fcnkit.errors import ShapeError
from fcnkit.layers import Layer, canonical_axis, register
from fcnkit.layers._common import axis_coord_map, lazy


@register
class Slice(Layer):
    """Caffe ``Slice``."""

    type = "Slice"
    tops = (1, None)

    def setup(self) -> None:
        p = self.param.slice_param
        if p.HasField("axis") and p.HasField("slice_dim"):
            raise self.error("give either axis or slice_dim, not both")
        self.legacy = p.HasField("slice_dim")
        self.axis = int(p.slice_dim) if self.legacy else int(p.axis)
        self.points = [int(x) for x in p.slice_point]
        ntop = len(self.param.top)
        if self.points:
            if len(self.points) != ntop - 1:
                raise self.error(f"{len(self.points)} slice_points for {ntop} tops; give one "
                                 "fewer than the tops, or none for equal parts")
            if any(b <= a for a, b in zip([0] + self.points, self.points)):
                raise self.error(f"slice_points {self.points} must be positive and increasing")

    def canonical_axis(self, ndim: int) -> int:
        if self.legacy:
            if self.axis >= ndim:
                raise self.error(f"slice_dim {self.axis} is out of range for a {ndim}-D bottom",
                                 ShapeError)
            return self.axis
        return canonical_axis(self.axis, ndim, self)

    def sizes(self, bottom_shape) -> list[int]:
        """The size of each top along the slice axis."""
        a = self.canonical_axis(len(bottom_shape))
        n, ntop = bottom_shape[a], len(self.param.top)
        if self.points:
            if ntop > n or self.points[-1] > n:
                raise self.error(f"slice_points {self.points} do not fit axis {a} of size {n}",
                                 ShapeError)
            return [b - a_ for a_, b in zip([0] + self.points, self.points + [n])]
        if n % ntop:
            raise self.error(f"{ntop} tops do not divide axis {a} of size {n} evenly; give "
                             "slice_points", ShapeError)
        return [n // ntop] * ntop

    def output_shapes(self, bottom_shapes):
        s = tuple(bottom_shapes[0])
        a = self.canonical_axis(len(s))
        return [s[:a] + (k,) + s[a + 1:] for k in self.sizes(s)]

    def coord_map(self):
        return axis_coord_map(self.axis, self, "slices")

    def build_module(self, bottom_shapes):
        s = bottom_shapes[0]
        return _torch().Slice(self.canonical_axis(len(s)), self.sizes(s))


@lazy
def _torch():
    import types

    import torch

    class Slice(torch.nn.Module):
        def __init__(self, axis, sizes):
            super().__init__()
            self.axis, self.sizes = axis, list(sizes)

        def forward(self, x):
            if len(self.sizes) == 1:
                return x
            starts = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
            return tuple(x.narrow(self.axis, b, n) for b, n in zip(starts, self.sizes))

    return types.SimpleNamespace(Slice=Slice)
