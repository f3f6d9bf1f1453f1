"""Deconvolution: Caffe src/caffe/layers/deconv_layer.cpp, base_conv_layer.cpp.

The transpose of Convolution (its forward pass is Convolution's backward pass).
Top size per spatial axis: ``s(i - 1) + d(k - 1) + 1 - 2p``.
Weights ``(C_in, num_output / group, kh, kw)`` (torch ConvTranspose2d's layout), bias
``(num_output,)``.
Coordinate map: ``F = s``, ``O = (k_eff - 1)/2 - p`` with ``k_eff = d(k-1)+1``.
FLOPs (as FlopCounterMode counts conv_transpose): ``2 N C_in H_in W_in (num_output/group) kh kw``.
"""

from __future__ import annotations

import math
from fractions import Fraction

from fcnkit.layers import CoordMap, prod, register
from fcnkit.layers._common import lazy
from fcnkit.layers.convolution import ConvolutionBase


@register
class Deconvolution(ConvolutionBase):
    """Caffe ``Deconvolution``: grouped, dilated 2-D transposed convolution."""

    type = "Deconvolution"
    upsampling_filter = True

    def spatial_size(self, i, k_eff, s, p):
        return s * (i - 1) + k_eff - 2 * p

    def empty_output_message(self, h, w):
        return (f"input {h}x{w} with kernel extent {self.kernel_extent}, stride {self.stride} "
                f"and pad {self.pad} gives an empty output")

    def param_shapes(self, bottom_shapes):
        c = bottom_shapes[0][1]
        shapes = [(c, self.num_output // self.group, *self.kernel)]
        if self.bias_term:
            shapes.append((self.num_output,))
        return shapes

    def coord_map(self):
        return CoordMap(
            tuple(Fraction(s) for s in self.stride),
            tuple(Fraction(k - 1, 2) - p for k, p in zip(self.kernel_extent, self.pad)),
        )

    def receptive_field(self, field, jump):
        """Upsampling by ``s``: each output sees ``ceil(k_eff / s)`` inputs per axis, so
        ``rf += (ceil(k_eff / s) - 1) * jump`` and ``jump /= s``."""
        k, s = self.kernel_extent, self.stride
        return (tuple(field[a] + (math.ceil(k[a] / s[a]) - 1) * jump[a] for a in range(2)),
                tuple(jump[a] / s[a] for a in range(2)))

    def flops(self, bottom_shapes, top_shapes):
        macs = sum(prod(b) * (self.num_output // self.group) * prod(self.kernel)
                   for b in bottom_shapes)
        return 2 * macs

    def build_module(self, bottom_shapes):
        import torch

        cls = torch.nn.ConvTranspose2d if len(bottom_shapes) == 1 else _torch().MultiConvTranspose2d
        return cls(bottom_shapes[0][1], self.num_output, self.kernel, self.stride, self.pad,
                   output_padding=0, groups=self.group, bias=self.bias_term,
                   dilation=self.dilation)


@lazy
def _torch():
    import types

    import torch
    import torch.nn.functional as F

    class MultiConvTranspose2d(torch.nn.ConvTranspose2d):
        """ConvTranspose2d applied to each of several bottoms with the same weights (Caffe
        deconv layers with n bottoms and n tops); parameter names stay weight/bias."""

        def forward(self, *xs):
            return tuple(F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                            0, self.groups, self.dilation) for x in xs)

    return types.SimpleNamespace(MultiConvTranspose2d=MultiConvTranspose2d)
