"""Silence: Caffe src/caffe/layers/silence_layer.cpp. Takes any bottoms, has no tops,
computes nothing (it marks blobs as used so they are not net outputs)."""

from __future__ import annotations

from fcnkit.layers import Layer, NoCoordMap, register
from fcnkit.layers._common import lazy


@register
class Silence(Layer):
    """Caffe ``Silence``."""

    type = "Silence"
    role = "sink"  # consumes blobs, computes nothing: compiled as no module
    bottoms = (1, None)
    tops = (0, 0)

    def output_shapes(self, bottom_shapes):
        return []

    def coord_map(self):
        raise NoCoordMap("Silence has no tops")

    def build_module(self, bottom_shapes):
        return _torch().Silence()


@lazy
def _torch():
    import types

    import torch

    class Silence(torch.nn.Module):
        def forward(self, *xs):
            return ()

    return types.SimpleNamespace(Silence=Silence)
