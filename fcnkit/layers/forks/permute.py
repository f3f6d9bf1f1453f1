"""Permute: SSD, weiliu89/caffe (branch ssd) src/caffe/layers/permute_layer.cpp.

``top = bottom.transpose(order)``. ``permute_param.order`` lists axes of the bottom
(each once, each < the bottom's rank); axes it leaves out follow in their original order
(PermuteLayer::LayerSetUp). SSD writes ``order: 0 order: 2 order: 3 order: 1`` (N, H, W, C)
before flattening box predictions; UltraFace does the same.

Coordinate map: IDENTITY when H and W stay axes 2 and 3; otherwise none.
"""

from __future__ import annotations

from fcnkit.caffe.forks import fork_param
from fcnkit.errors import ShapeError
from fcnkit.layers import IDENTITY, Layer, NoCoordMap, register
from fcnkit.layers._common import lazy


@register
class Permute(Layer):
    """SSD ``Permute`` (``permute_param``)."""

    type = "Permute"
    fork = "SSD (weiliu89/caffe)"

    def setup(self) -> None:
        p = fork_param(self.param, "permute_param")
        self.order_given = [] if p is None else [int(o) for o in p.order]
        if len(set(self.order_given)) != len(self.order_given):
            raise self.error(f"permute_param.order {self.order_given} names an axis twice")

    def order(self, rank: int) -> list[int]:
        """The full axis order for a bottom of ``rank`` axes."""
        bad = [o for o in self.order_given if o >= rank]
        if bad:
            raise self.error(f"permute_param.order {self.order_given} names axis {bad[0]}, but "
                             f"the bottom has {rank} axes", ShapeError)
        return self.order_given + [a for a in range(rank) if a not in self.order_given]

    def output_shapes(self, bottom_shapes):
        s = tuple(bottom_shapes[0])
        return [tuple(s[a] for a in self.order(len(s)))]

    def coord_map(self):
        full = self.order_given + [a for a in range(4) if a not in self.order_given]
        if full[2:4] == [2, 3]:
            return IDENTITY
        raise NoCoordMap(f"Permute moves the spatial axes (order {full})")

    def build_module(self, bottom_shapes):
        return _torch().Permute(self.order(len(bottom_shapes[0])))


@lazy
def _torch():
    import types

    import torch

    class Permute(torch.nn.Module):
        def __init__(self, order):
            super().__init__()
            self.order = tuple(order)

        def forward(self, x):
            # contiguous: a later Flatten/Reshape sees Caffe's memory order
            return x.permute(self.order).contiguous()

    return types.SimpleNamespace(Permute=Permute)
