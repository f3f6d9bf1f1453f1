"""LRN: Caffe src/caffe/layers/lrn_layer.cpp (local response normalisation).

ACROSS_CHANNELS (default): ``y = x (k + alpha/n * sum_{c' in window(c)} x_{c'}^2)^-beta``
over ``n = local_size`` channels centred on ``c`` (zero outside), which is
torch.nn.LocalResponseNorm(n, alpha, beta, k) for odd ``n``.

WITHIN_CHANNEL: ``y = x (1 + alpha * avgpool_nxn(x^2))^-beta`` with Caffe's AVE pooling
of kernel ``n``, stride 1, pad ``(n - 1)/2``, whose divisor is always ``n^2`` (padding
counts); ``k`` is not used.

``local_size`` must be odd; the bottom must be (N, C, H, W).
"""

from __future__ import annotations

from fcnkit.errors import ShapeError
from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer, lazy

ACROSS_CHANNELS, WITHIN_CHANNEL = 0, 1


@register
class LRN(ElementwiseLayer):
    """Caffe ``LRN``: ACROSS_CHANNELS or WITHIN_CHANNEL."""

    type = "LRN"

    def setup(self) -> None:
        p = self.param.lrn_param
        self.size = int(p.local_size)
        if self.size <= 0 or self.size % 2 == 0:
            raise self.error(f"local_size must be a positive odd number, got {self.size}")
        self.alpha, self.beta, self.k = float(p.alpha), float(p.beta), float(p.k)
        self.region = int(p.norm_region)
        if self.region not in (ACROSS_CHANNELS, WITHIN_CHANNEL):
            raise self.error(f"unknown norm_region {self.region}")

    def output_shapes(self, bottom_shapes):
        s = bottom_shapes[0]
        if len(s) != 4:
            raise self.error(f"bottom has shape {s}; LRN needs 4 axes (N, C, H, W)", ShapeError)
        return [tuple(s)]

    def build_module(self, bottom_shapes):
        import torch

        if self.region == ACROSS_CHANNELS:
            return torch.nn.LocalResponseNorm(self.size, self.alpha, self.beta, self.k)
        return _torch().WithinChannelLRN(self.size, self.alpha, self.beta)


    def export_module(self, module, bottom_shapes):
        """ACROSS_CHANNELS as one ONNX LRN node (:mod:`fcnkit.layers._export_ops`: same
        window and ``alpha / size`` scaling as Caffe); WITHIN_CHANNEL exports as compiled."""
        if self.region != ACROSS_CHANNELS:
            return None
        from fcnkit.layers._export_ops import LRNExport

        return LRNExport(self.size, self.alpha, self.beta, self.k)


@lazy
def _torch():
    import types

    import torch
    import torch.nn.functional as F

    class WithinChannelLRN(torch.nn.Module):
        """Caffe's WITHIN_CHANNEL LRN: ``x (1 + alpha * avgpool(x^2))^-beta``."""

        def __init__(self, size, alpha, beta):
            super().__init__()
            self.size, self.alpha, self.beta = size, alpha, beta

        def forward(self, x):
            avg = F.avg_pool2d(x * x, self.size, stride=1, padding=(self.size - 1) // 2,
                               count_include_pad=True)
            return x * torch.pow(avg * self.alpha + 1.0, -self.beta)

        def extra_repr(self):
            return f"size={self.size}, alpha={self.alpha}, beta={self.beta}"

    return types.SimpleNamespace(WithinChannelLRN=WithinChannelLRN)
