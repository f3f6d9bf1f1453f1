"""Crop: Caffe src/caffe/layers/crop_layer.cpp.

Two bottoms: ``bottom[0]`` is cropped to the shape of ``bottom[1]`` on every axis from
``axis`` (default 2, negative counts from the end); earlier axes keep bottom[0]'s size.
Offsets: none -> 0 on every cropped axis; one -> that offset on every cropped axis; else
one per cropped axis. Each must leave room: ``offset + bottom[1].shape[i] <=
bottom[0].shape[i]``.

Coordinate map (bottom 0 only): ``F = 1``, ``O = -offset`` on the spatial axes (H, W).
"""

from __future__ import annotations

from fractions import Fraction

from fcnkit.errors import ShapeError
from fcnkit.layers import CoordMap, Layer, NoCoordMap, canonical_axis, register
from fcnkit.layers._common import lazy


@register
class Crop(Layer):
    """Caffe ``Crop``."""

    type = "Crop"
    bottoms = (2, 2)

    crops_to_reference = True

    def setup(self) -> None:
        p = self.param.crop_param
        self.axis = int(p.axis)
        self.offset = [int(o) for o in p.offset]

    def declared_offsets(self, ndim: int) -> tuple[int, list[int]]:
        """(first cropped axis, offsets as declared, expanded): none -> 0 on each of the
        ``ndim - axis`` cropped axes; one -> that offset on each; else as given (the count
        is not checked here, :meth:`offsets` does)."""
        a = self.axis + ndim if self.axis < 0 else self.axis
        n = ndim - a
        if not self.offset:
            return a, [0] * n
        if len(self.offset) == 1:
            return a, self.offset * n
        return a, list(self.offset)

    def _offsets(self, ndim: int, error) -> list[int]:
        a, offs = self.declared_offsets(ndim)
        if len(offs) != ndim - a:
            raise error(f"{len(self.offset)} offsets for {ndim - a} cropped axes (axis {self.axis} of "
                        f"{ndim}-D bottoms); give one offset, or one per cropped axis")
        return offs

    @staticmethod
    def write_offsets(param, offsets) -> None:
        """Set the ``crop_param.offset`` of a Crop LayerParameter: one value when all
        cropped axes agree, else one per cropped axis."""
        del param.crop_param.offset[:]
        param.crop_param.offset.extend([offsets[0]] if len(set(offsets)) == 1 else offsets)

    def offsets(self, bottom_shapes) -> list[int]:
        """The offset of each cropped axis (``axis`` .. last) for these bottoms.

        Raises:
            ShapeError: the number of offsets does not fit the bottoms' axes.
        """
        ndim = len(bottom_shapes[0])
        canonical_axis(self.axis, ndim, self)
        return self._offsets(ndim, lambda m: self.error(m, ShapeError))

    def spatial_offsets(self) -> tuple[int, int]:
        """The (y, x) offsets for (N, C, H, W) bottoms (0 on an axis that is not cropped).

        Raises:
            NoCoordMap: the offsets do not fit 4-D bottoms.
        """
        if not -4 <= self.axis < 4:
            raise NoCoordMap(f"crop axis {self.axis} does not fit (N, C, H, W) bottoms")

        def fail(msg):
            return NoCoordMap(msg)

        offs = self._offsets(4, fail)
        a = self.axis + 4 if self.axis < 0 else self.axis
        per_axis = [0] * a + offs
        return per_axis[2], per_axis[3]

    def output_shapes(self, bottom_shapes):
        b0, b1 = (tuple(s) for s in bottom_shapes)
        if len(b0) != len(b1):
            raise self.error(f"bottoms have {len(b0)} and {len(b1)} axes; they must have the same",
                             ShapeError)
        a = canonical_axis(self.axis, len(b0), self)
        offs = self.offsets(bottom_shapes)
        for i, o in zip(range(a, len(b0)), offs):
            if o + b1[i] > b0[i]:
                raise self.error(f"cannot crop axis {i} of size {b0[i]} to {b1[i]} at offset {o}",
                                 ShapeError)
        return [b0[:a] + b1[a:]]

    def coord_map(self):
        return self.coord_map_at(self.spatial_offsets())

    def coord_map_at(self, offset):
        """``F = 1``, ``O = -offset`` on (y, x) (exact fractions allowed)."""
        oy, ox = offset
        return CoordMap((Fraction(1), Fraction(1)), (-Fraction(oy), -Fraction(ox)))

    def dynamic_export_module(self, module, bottom_shapes):
        """The crop with its sizes read from the reference bottom at run time (ONNX Shape
        and Slice): the offsets come from the prototxt or the coordinate maps, which do not
        depend on the input size, and the sizes are the reference's by definition."""
        return _torch().DynamicCrop(module.axis, module.offsets)

    def coord_bottoms(self):
        return [0]

    def build_module(self, bottom_shapes):
        b0, b1 = bottom_shapes
        a = canonical_axis(self.axis, len(b0), self)
        offs = self.offsets(bottom_shapes)
        return _torch().Crop(a, offs, tuple(b1[a:]))


@lazy
def _torch():
    import types

    import torch

    class Crop(torch.nn.Module):
        """``x[..., o_i : o_i + size_i, ...]`` on the axes from ``axis``; the reference
        bottom only fixes the sizes."""

        def __init__(self, axis, offsets, sizes):
            super().__init__()
            self.axis, self.offsets, self.sizes = axis, list(offsets), list(sizes)

        def forward(self, x, reference=None):
            index = (slice(None),) * self.axis + tuple(
                slice(o, o + s) for o, s in zip(self.offsets, self.sizes))
            return x[index]

        def extra_repr(self):
            return f"axis={self.axis}, offsets={self.offsets}, sizes={self.sizes}"

    class DynamicCrop(torch.nn.Module):
        """``x[..., o_i : o_i + reference.shape[i], ...]`` on the axes from ``axis``."""

        def __init__(self, axis, offsets):
            super().__init__()
            self.axis, self.offsets = axis, list(offsets)

        def forward(self, x, reference):
            index = (slice(None),) * self.axis + tuple(
                slice(o, o + reference.shape[self.axis + j]) for j, o in enumerate(self.offsets))
            return x[index]

    return types.SimpleNamespace(Crop=Crop, DynamicCrop=DynamicCrop)
