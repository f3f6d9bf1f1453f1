"""Convolution: Caffe src/caffe/layers/conv_layer.cpp, base_conv_layer.cpp.

Top size per spatial axis: ``floor((i + 2p - (d(k-1)+1)) / s) + 1``.
Weights ``(num_output, C_in / group, kh, kw)``, bias ``(num_output,)``.
Coordinate map: ``F = 1/s``, ``O = (p - (k_eff - 1)/2) / s`` with ``k_eff = d(k-1)+1``.
"""

from __future__ import annotations

from fractions import Fraction

from fcnkit.errors import ShapeError
from fcnkit.layers import CoordMap, Layer, Window, prod, register, spatial_pair


def _opt(msg, field):
    return getattr(msg, field) if msg.HasField(field) else None


class ConvolutionBase(Layer):
    """Parameters shared by Convolution and Deconvolution (``convolution_param``)."""

    num_output_param = "convolution_param"

    def setup(self) -> None:
        p = self.param.convolution_param
        if not p.HasField("num_output") or p.num_output <= 0:
            raise self.error("convolution_param.num_output must be set to a positive number")
        self.num_output = int(p.num_output)
        self.bias_term = bool(p.bias_term)
        self.group = int(p.group)
        if self.group <= 0:
            raise self.error(f"group must be positive, got {self.group}")
        if p.axis != 1:
            raise self.error(f"axis {p.axis} is not supported (channels must be axis 1)")
        self.kernel = spatial_pair(p.kernel_size, _opt(p, "kernel_h"), _opt(p, "kernel_w"),
                                   None, "kernel_size", self)
        self.stride = spatial_pair(p.stride, _opt(p, "stride_h"), _opt(p, "stride_w"), 1,
                                   "stride", self)
        self.pad = spatial_pair(p.pad, _opt(p, "pad_h"), _opt(p, "pad_w"), 0, "pad", self)
        self.dilation = spatial_pair(p.dilation, None, None, 1, "dilation", self)
        for what, v in (("kernel_size", self.kernel), ("stride", self.stride), ("dilation", self.dilation)):
            if min(v) <= 0:
                raise self.error(f"{what} must be positive, got {v}")
        if min(self.pad) < 0:
            raise self.error(f"pad must be >= 0, got {self.pad}")
        if self.num_output % self.group:
            raise self.error(f"num_output {self.num_output} is not divisible by group {self.group}")
        if len(self.param.bottom) != len(self.param.top):
            raise self.error("needs as many tops as bottoms")

    @property
    def kernel_extent(self) -> tuple[int, int]:
        """Effective kernel size ``d(k-1)+1`` per axis (pixels)."""
        return tuple(d * (k - 1) + 1 for d, k in zip(self.dilation, self.kernel))

    def window(self) -> Window:
        return Window(tuple(self.kernel), self.kernel_extent, tuple(self.stride), tuple(self.pad))

    def _check_input(self, bottom_shapes):
        for b, s in zip(self.param.bottom, bottom_shapes):
            if len(s) != 4:
                raise self.error(f"bottom '{b}' has shape {s}; a 2-D convolution needs N, C, H, W",
                                 ShapeError)
            if s[1] != bottom_shapes[0][1]:
                raise self.error("all bottoms must have the same number of channels", ShapeError)
        c = bottom_shapes[0][1]
        if c % self.group:
            raise self.error(f"input channels {c} are not divisible by group {self.group}", ShapeError)
        return c

    def spatial_size(self, i: int, k_eff: int, s: int, p: int) -> int:
        """Top size along one spatial axis (pixels) from the bottom's ``i``; <= 0 is empty."""
        raise NotImplementedError

    def empty_output_message(self, h: int, w: int) -> str:
        """Why a bottom of ``h`` x ``w`` gives an empty top."""
        raise NotImplementedError

    def output_shapes(self, bottom_shapes):
        self._check_input(bottom_shapes)
        tops = []
        for n, c, h, w in bottom_shapes:
            hw = [self.spatial_size(i, k, s, p)
                  for i, k, s, p in zip((h, w), self.kernel_extent, self.stride, self.pad)]
            if min(hw) <= 0:
                raise self.error(self.empty_output_message(h, w), ShapeError)
            tops.append((n, self.num_output, *hw))
        return tops

    def param_names(self) -> list[str]:
        return ["weight", "bias"] if self.bias_term else ["weight"]

    def fillers(self):
        p = self.param.convolution_param
        f = [p.weight_filler if p.HasField("weight_filler") else None]
        if self.bias_term:
            f.append(p.bias_filler if p.HasField("bias_filler") else None)
        return f

    # Caffe's conv layers accept several bottom/top pairs that share weights.
    bottoms = (1, None)
    tops = (1, None)


@register
class Convolution(ConvolutionBase):
    """Caffe ``Convolution``: grouped, dilated 2-D convolution."""

    type = "Convolution"
    spatial_filter = True

    def spatial_size(self, i, k_eff, s, p):
        return (i + 2 * p - k_eff) // s + 1

    def empty_output_message(self, h, w):
        return (f"input {h}x{w} is smaller than the kernel extent {self.kernel_extent} "
                f"with pad {self.pad}")

    def param_shapes(self, bottom_shapes):
        c = bottom_shapes[0][1]
        shapes = [(self.num_output, c // self.group, *self.kernel)]
        if self.bias_term:
            shapes.append((self.num_output,))
        return shapes

    def coord_map(self):
        return CoordMap(
            tuple(Fraction(1, s) for s in self.stride),
            tuple(Fraction(2 * p - (k - 1), 2 * s) for p, k, s in
                  zip(self.pad, self.kernel_extent, self.stride)),
        )

    def flops(self, bottom_shapes, top_shapes):
        c = bottom_shapes[0][1]
        macs = sum(prod(t) * (c // self.group) * prod(self.kernel) for t in top_shapes)
        return 2 * macs

    def build_module(self, bottom_shapes):
        import torch

        cls = torch.nn.Conv2d if len(bottom_shapes) == 1 else _multi(torch.nn.Conv2d)
        return cls(bottom_shapes[0][1], self.num_output, self.kernel, self.stride, self.pad,
                   self.dilation, self.group, self.bias_term)

    def inference_fused(self, module, after, after_module):
        """A one-bottom convolution and the in-place form of the activation after it
        (:meth:`Layer.inplace_activation`: ReLU), which overwrites the convolution's new
        output instead of allocating another blob; None otherwise."""
        import torch

        act = after.inplace_activation(after_module)
        if act is None or type(module) is not torch.nn.Conv2d:
            return None
        from fcnkit.layers._inference_ops import ops

        return ops().ConvAct(module, act)

    def inference_packed(self, module):
        """The convolution (or its fusion with an activation) on a weight prepacked for
        oneDNN (:class:`fcnkit.layers._inference_ops` ``PackedConv``), or None."""
        from fcnkit.layers._inference_ops import packed_conv

        return packed_conv(module)


def _multi(base):
    """A subclass of ``base`` applied to each of several bottoms with the same weights
    (Caffe conv layers with n bottoms and n tops); parameter names stay weight/bias."""

    class Multi(base):
        def forward(self, *xs):
            return tuple(super(Multi, self).forward(x) for x in xs)

    Multi.__name__ = f"Multi{base.__name__}"
    return Multi
