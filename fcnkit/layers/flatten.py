"""Flatten: Caffe src/caffe/layers/flatten_layer.cpp.

Merges the axes ``axis`` (default 1) .. ``end_axis`` (default -1) into one of their
product; negative axes count from the end. In-place computation is not allowed.
"""

from __future__ import annotations

from fcnkit.errors import ShapeError
from fcnkit.layers import Layer, NoCoordMap, canonical_axis, prod, register
from fcnkit.layers._common import lazy


@register
class Flatten(Layer):
    """Caffe ``Flatten``."""

    type = "Flatten"
    flattens = True

    def static_hw_reason(self, module):
        return "fixes the C x H x W size of its input"

    def setup(self) -> None:
        p = self.param.flatten_param
        self.axis, self.end_axis = int(p.axis), int(p.end_axis)
        if list(self.param.top) == list(self.param.bottom):
            raise self.error("Flatten cannot be computed in place; give the top another name")

    def axes(self, bottom_shape) -> tuple[int, int]:
        n = len(bottom_shape)
        start = canonical_axis(self.axis, n, self)
        end = canonical_axis(self.end_axis, n, self)
        if end < start - 1:
            raise self.error(f"end_axis {self.end_axis} is before axis {self.axis}", ShapeError)
        return start, end

    def output_shapes(self, bottom_shapes):
        s = tuple(bottom_shapes[0])
        start, end = self.axes(s)
        return [s[:start] + (prod(s[start:end + 1]),) + s[end + 1:]]

    def coord_map(self):
        raise NoCoordMap("Flatten merges axes")

    def build_module(self, bottom_shapes):
        import torch

        start, end = self.axes(bottom_shapes[0])
        if end >= start:
            return torch.nn.Flatten(start, end)
        return _torch().InsertAxis(start)  # end == start - 1: Caffe inserts a 1


@lazy
def _torch():
    import types

    import torch

    class InsertAxis(torch.nn.Module):
        def __init__(self, axis):
            super().__init__()
            self.axis = axis

        def forward(self, x):
            return x.unsqueeze(self.axis)

    return types.SimpleNamespace(InsertAxis=InsertAxis)
