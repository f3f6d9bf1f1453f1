"""Tile: Caffe src/caffe/layers/tile_layer.cpp.

Repeats the block of axes from ``axis`` (default 1, negative counts from the end)
``tiles`` times along ``axis``: top ``shape[axis] *= tiles`` (torch ``Tensor.repeat``).
"""

from __future__ import annotations

from fcnkit.layers import Layer, canonical_axis, register
from fcnkit.layers._common import axis_coord_map, lazy


@register
class Tile(Layer):
    """Caffe ``Tile``."""

    type = "Tile"

    def setup(self) -> None:
        p = self.param.tile_param
        if not p.HasField("tiles") or p.tiles <= 0:
            raise self.error("tile_param.tiles must be set to a positive number")
        self.axis, self.tiles = int(p.axis), int(p.tiles)

    def output_shapes(self, bottom_shapes):
        s = tuple(bottom_shapes[0])
        a = canonical_axis(self.axis, len(s), self)
        return [s[:a] + (s[a] * self.tiles,) + s[a + 1:]]

    def coord_map(self):
        return axis_coord_map(self.axis, self, "tiles")

    def build_module(self, bottom_shapes):
        s = tuple(bottom_shapes[0])
        reps = [1] * len(s)
        reps[canonical_axis(self.axis, len(s), self)] = self.tiles
        return _torch().Tile(reps)


@lazy
def _torch():
    import types

    import torch

    class Tile(torch.nn.Module):
        def __init__(self, reps):
            super().__init__()
            self.reps = list(reps)

        def forward(self, x):
            return x.repeat(self.reps)

    return types.SimpleNamespace(Tile=Tile)
