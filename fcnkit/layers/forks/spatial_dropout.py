"""SpatialDropout: ENet, TimoSaemann/ENet caffe-enet src/caffe/layers/spatial_dropout_layer.cpp.

Drops whole channels with probability ``spatial_dropout_param.dropout_ratio`` (default 0.5)
and scales the kept ones by ``1 / (1 - ratio)`` in TRAIN; the identity in TEST (inference),
as Caffe's Dropout. torch's Dropout2d is the same rule. Coordinate map: IDENTITY.
"""

from __future__ import annotations

from fcnkit.caffe.forks import fork_param
from fcnkit.layers import register
from fcnkit.layers.dropout import Dropout


@register
class SpatialDropout(Dropout):
    """ENet ``SpatialDropout`` (``spatial_dropout_param``): Caffe's Dropout rule and phase
    dependence, applied to whole channels."""

    type = "SpatialDropout"
    fork = "ENet (TimoSaemann/ENet)"

    def dropout_ratio(self) -> float:
        p = fork_param(self.param, "spatial_dropout_param")
        return 0.5 if p is None else float(p.dropout_ratio)

    def build_module(self, bottom_shapes):
        import torch

        return torch.nn.Dropout2d(self.ratio)
