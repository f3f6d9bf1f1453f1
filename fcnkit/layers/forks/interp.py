"""Interp: PSPNet, hszhao/PSPNet src/caffe/layers/interp_layer.cpp and
src/caffe/util/interp.cpp (from DeepLab v2).

Bilinear resizing with aligned corners. The input is first cropped by ``pad_beg`` and
``pad_end`` (both <= 0: negative padding), giving ``H_eff = H + pad_beg + pad_end``; the
output size is, checked in the fork's order:

- ``shrink_factor`` s alone: ``(H_eff - 1) / s + 1`` (integer division);
- ``zoom_factor`` z alone: ``H_eff + (H_eff - 1)(z - 1)``;
- ``height`` and ``width``: as given;
- both factors: shrink, then zoom.

caffe_cpu_interp2: with ``r = (H_eff - 1) / (OH - 1)`` (0 when OH = 1), output row ``i``
reads input row ``r i``: ``floor`` and the next row (the last row has no next), weights
``1 - frac`` and ``frac`` — torch's ``interpolate(mode="bilinear", align_corners=True)``
on the cropped input, and ONNX Resize with ``coordinate_transformation_mode=align_corners``.

Coordinate map: with only ``zoom_factor``, ``F = z``, ``O = z pad_beg`` (exact: the output
grid spans the same corners); the other forms depend on the input size, so none.
"""

from __future__ import annotations

from fractions import Fraction

from fcnkit.caffe.forks import fork_param
from fcnkit.errors import ShapeError
from fcnkit.layers import CoordMap, Layer, NoCoordMap, register
from fcnkit.layers._common import lazy


@register
class Interp(Layer):
    """PSPNet ``Interp`` (``interp_param``)."""

    type = "Interp"
    fork = "PSPNet (hszhao/PSPNet, DeepLab v2)"
    min_bottom_rank = 4

    def setup(self) -> None:
        p = fork_param(self.param, "interp_param")
        if p is None:
            raise self.error("needs interp_param (zoom_factor, shrink_factor, or height and width)")
        self.zoom = int(p.zoom_factor) if p.HasField("zoom_factor") else None
        self.shrink = int(p.shrink_factor) if p.HasField("shrink_factor") else None
        self.hw = (int(p.height), int(p.width)) if p.HasField("height") and p.HasField("width") else None
        if self.zoom is None and self.shrink is None and self.hw is None:
            raise self.error("interp_param gives no output size: set zoom_factor, "
                             "shrink_factor, or height and width")
        if (self.zoom or 1) < 1 or (self.shrink or 1) < 1:
            raise self.error("zoom_factor and shrink_factor must be >= 1")
        self.pad = (int(p.pad_beg), int(p.pad_end))
        if max(self.pad) > 0:
            raise self.error(f"pad_beg and pad_end must be <= 0 (cropping), got {self.pad}")

    def out_hw(self, bottom_shape) -> tuple[int, int]:
        """(height, width) of the top for an (N, C, H, W) bottom, in pixels."""
        eff = [d + self.pad[0] + self.pad[1] for d in bottom_shape[2:4]]
        if min(eff) <= 0:
            raise self.error(f"pad_beg/pad_end {self.pad} crop the {bottom_shape[2]}x"
                             f"{bottom_shape[3]} input to nothing", ShapeError)
        if self.shrink is not None and self.zoom is None:
            return tuple((e - 1) // self.shrink + 1 for e in eff)
        if self.zoom is not None and self.shrink is None:
            return tuple(e + (e - 1) * (self.zoom - 1) for e in eff)
        if self.hw is not None and (self.zoom is None or self.shrink is None):
            return self.hw
        out = [(e - 1) // self.shrink + 1 for e in eff]
        return tuple(o + (o - 1) * (self.zoom - 1) for o in out)

    def output_shapes(self, bottom_shapes):
        s = tuple(bottom_shapes[0])
        if len(s) != 4:
            raise self.error(f"bottom has shape {s}; Interp needs N, C, H, W", ShapeError)
        return [s[:2] + self.out_hw(s)]

    def coord_map(self):
        if self.zoom is not None and self.shrink is None:
            z = Fraction(self.zoom)
            return CoordMap((z, z), (z * self.pad[0], z * self.pad[0]))
        raise NoCoordMap("Interp's scale depends on the input size unless only zoom_factor is given")

    def static_hw_reason(self, module):
        return "resizes to an output size resolved for the compile-time input size"

    def build_module(self, bottom_shapes):
        h, w = bottom_shapes[0][2:4]
        crop = (-self.pad[0], h + self.pad[1], -self.pad[0], w + self.pad[1])
        size = self.out_hw(bottom_shapes[0])
        # caffe_cpu_interp2 copies when the sizes agree (bilinear would too, up to rounding)
        same = size == (crop[1] - crop[0], crop[3] - crop[2])
        return _torch().Interp(size, None if self.pad == (0, 0) else crop, same)


@lazy
def _torch():
    import types

    import torch
    import torch.nn.functional as F

    class Interp(torch.nn.Module):
        """Crop (pad_beg/pad_end), then bilinear resize with aligned corners."""

        def __init__(self, size, crop, same):
            super().__init__()
            self.size, self.crop, self.same = tuple(size), crop, same

        def forward(self, x):
            if self.crop is not None:
                y0, y1, x0, x1 = self.crop
                x = x[:, :, y0:y1, x0:x1]
            if self.same:
                return x
            return F.interpolate(x, size=self.size, mode="bilinear", align_corners=True)

    return types.SimpleNamespace(Interp=Interp)
