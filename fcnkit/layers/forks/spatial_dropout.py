"""SpatialDropout: ENet, TimoSaemann/ENet caffe-enet src/caffe/layers/spatial_dropout_layer.cpp.

Drops whole channels with probability ``spatial_dropout_param.dropout_ratio`` (default 0.5)
and scales the kept ones by ``1 / (1 - ratio)`` in TRAIN; the identity in TEST (inference),
as Caffe's Dropout. torch's Dropout2d is the same rule. Coordinate map: IDENTITY.
"""

from __future__ import annotations

from fcnkit.caffe.forks import fork_param
from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer


@register
class SpatialDropout(ElementwiseLayer):
    """ENet ``SpatialDropout`` (``spatial_dropout_param``)."""

    type = "SpatialDropout"
    fork = "ENet (TimoSaemann/ENet)"

    def setup(self) -> None:
        p = fork_param(self.param, "spatial_dropout_param")
        self.ratio = 0.5 if p is None else float(p.dropout_ratio)
        if not 0.0 <= self.ratio < 1.0:
            raise self.error(f"dropout_ratio must be in [0, 1), got {self.ratio}")

    @property
    def phase_dependent(self) -> bool:
        return True

    def build_module(self, bottom_shapes):
        import torch

        return torch.nn.Dropout2d(self.ratio)
