"""Upsample: SegNet, alexgkendall/caffe-segnet src/caffe/layers/upsample_layer.cpp (ENet's
caffe-enet has the same layer).

Max unpooling. Bottoms: the values (N, C, H, W) and the mask (N, C, H, W): the second top of
a MAX Pooling, each value the flat index ``h * W_in + w`` of the maximum in the pooling's
input plane. Top: (N, C, OH, OW), zero except ``top[n, c].flat[mask[n, c, i]] =
bottom[n, c].flat[i]`` (in order, so a repeated index keeps the last value; torch's scatter
leaves that case unspecified, which overlapping pooling windows can produce).

Size: ``upsample_h`` x ``upsample_w`` when given, else ``H scale_h - pad_out_h`` x
``W scale_w - pad_out_w`` (``scale`` default 2 for both; ``pad_out_*`` only with scale 2).
An index beyond OH * OW is an error in Caffe (LOG(FATAL)); fcnkit's module clamps nothing,
torch raises.

Coordinate map: with a scale, ``F = scale``, ``O = (scale - 1) / 2`` (the inverse of the
2 x 2 / stride 2 pooling's ``O = -1/4`` map); with ``upsample_h``/``_w`` none (the size comes
from the declared output, not from a factor).
"""

from __future__ import annotations

from fractions import Fraction

from fcnkit.caffe.forks import fork_param
from fcnkit.errors import ShapeError
from fcnkit.layers import CoordMap, Layer, NoCoordMap, register
from fcnkit.layers._common import lazy


@register
class Upsample(Layer):
    """SegNet/ENet ``Upsample`` (``upsample_param``) with the pooling mask."""

    type = "Upsample"
    fork = "SegNet / ENet (alexgkendall/caffe-segnet)"
    bottoms = (2, 2)
    min_bottom_rank = 4

    def setup(self) -> None:
        p = fork_param(self.param, "upsample_param")
        if p is None:
            raise self.error("needs upsample_param (upsample_h and upsample_w, or scale)")
        self.size = None
        if p.HasField("upsample_h") or p.HasField("upsample_w"):
            if not (p.HasField("upsample_h") and p.HasField("upsample_w")):
                raise self.error("upsample_h and upsample_w must be given together")
            self.size = (int(p.upsample_h), int(p.upsample_w))
            if min(self.size) <= 1:
                raise self.error(f"upsample_h and upsample_w must be > 1, got {self.size}")
            return
        if p.HasField("scale_h") != p.HasField("scale_w"):
            raise self.error("scale_h and scale_w must be given together")
        if p.HasField("scale_h") and p.HasField("scale"):
            raise self.error("give scale or scale_h and scale_w, not both")
        self.scale = (int(p.scale_h), int(p.scale_w)) if p.HasField("scale_h") else (int(p.scale),) * 2
        if min(self.scale) <= 1:
            raise self.error(f"the scale must be > 1, got {self.scale}")
        self.pad_out = (bool(p.pad_out_h), bool(p.pad_out_w))
        if any(po and s != 2 for po, s in zip(self.pad_out, self.scale)):
            raise self.error("pad_out_h / pad_out_w require a scale of 2")

    def out_hw(self, bottom_shape) -> tuple[int, int]:
        if self.size is not None:
            return self.size
        h, w = bottom_shape[2:]
        return (h * self.scale[0] - self.pad_out[0], w * self.scale[1] - self.pad_out[1])

    def output_shapes(self, bottom_shapes):
        values, mask = (tuple(s) for s in bottom_shapes)
        if len(values) != 4 or values != mask:
            raise self.error(f"the mask {mask} must have the shape of the values {values} "
                             "(N, C, H, W)", ShapeError)
        return [values[:2] + self.out_hw(values)]

    def coord_bottoms(self):
        return [0]

    def coord_map(self):
        if self.size is not None:
            raise NoCoordMap("Upsample with upsample_h/upsample_w has a declared size, no factor")
        return CoordMap(tuple(Fraction(s) for s in self.scale),
                        tuple(Fraction(s - 1, 2) for s in self.scale))

    def static_hw_reason(self, module):
        return "scatters into an output of the compile-time size" if self.size else None

    def build_module(self, bottom_shapes):
        return _torch().Unpool(self.size, None if self.size else self.scale,
                               None if self.size else self.pad_out)


@lazy
def _torch():
    import types

    import torch

    class Unpool(torch.nn.Module):
        """Scatter each value to the flat index its mask gives, zeros elsewhere."""

        def __init__(self, size, scale, pad_out):
            super().__init__()
            self.size, self.scale, self.pad_out = size, scale, pad_out

        def forward(self, x, mask):
            # shapes read one by one (not unpacked): torch.fx can trace this
            n, c, h, w = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
            if self.size is not None:
                oh, ow = self.size
            else:
                oh = h * self.scale[0] - int(self.pad_out[0])
                ow = w * self.scale[1] - int(self.pad_out[1])
            index = mask.reshape(n, c, -1).to(torch.int64)
            out = x.new_zeros((n, c, oh * ow))
            out = out.scatter(2, index, x.reshape(n, c, -1))
            return out.reshape(n, c, oh, ow)

    return types.SimpleNamespace(Unpool=Unpool)
