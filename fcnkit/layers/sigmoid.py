"""Sigmoid: Caffe src/caffe/layers/sigmoid_layer.cpp. ``y = 1 / (1 + exp(-x))``."""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer


@register
class Sigmoid(ElementwiseLayer):
    """Caffe ``Sigmoid``."""

    type = "Sigmoid"

    def build_module(self, bottom_shapes):
        import torch

        return torch.nn.Sigmoid()
