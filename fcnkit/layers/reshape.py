"""Reshape: Caffe src/caffe/layers/reshape_layer.cpp.

``reshape_param.shape`` replaces the bottom axes ``axis`` .. ``axis + num_axes``
(``axis`` default 0, negative counts from the end with -1 meaning "after the last axis";
``num_axes`` default -1 = to the end). In the new shape, 0 copies the bottom's dimension
at the same position (counted from ``axis``) and one -1 is inferred from the element
count. In-place computation is not allowed.
"""

from __future__ import annotations

from fcnkit.errors import ShapeError
from fcnkit.layers import Layer, NoCoordMap, prod, register
from fcnkit.layers._common import lazy


@register
class Reshape(Layer):
    """Caffe ``Reshape``."""

    type = "Reshape"

    def static_hw_reason(self, module):
        return "fixes the C x H x W size of its input"

    def setup(self) -> None:
        p = self.param.reshape_param
        self.dims = [int(d) for d in p.shape.dim]
        self.axis, self.num_axes = int(p.axis), int(p.num_axes)
        if list(self.param.top) == list(self.param.bottom):
            raise self.error("Reshape cannot be computed in place; give the top another name")
        if self.dims.count(-1) > 1:
            raise self.error(f"shape {self.dims} has more than one -1; at most one dimension "
                             "can be inferred")
        if any(d < -1 for d in self.dims):
            raise self.error(f"shape {self.dims} has a negative dimension other than -1")
        if self.num_axes < -1:
            raise self.error(f"num_axes must be >= 0, or -1 for all; got {self.num_axes}")

    def spec(self, bottom_shape) -> list:
        """Per top axis: ``("copy", i)`` for bottom axis ``i``, ``-1`` (inferred) or a
        constant; and the static top shape."""
        n = len(bottom_shape)
        start = self.axis if self.axis >= 0 else n + self.axis + 1
        if not 0 <= start <= n:
            raise self.error(f"axis {self.axis} is out of range for a {n}-D bottom", ShapeError)
        end = n if self.num_axes == -1 else start + self.num_axes
        if end > n:
            raise self.error(f"axis + num_axes = {end} is out of range for a {n}-D bottom",
                             ShapeError)
        spec: list = [("copy", i) for i in range(start)]
        for j, d in enumerate(self.dims):
            if d == 0:
                if start + j >= n:
                    raise self.error(f"shape dimension {j} is 0 (copy), but the bottom has no "
                                     f"axis {start + j} to copy", ShapeError)
                spec.append(("copy", start + j))
            else:
                spec.append(d)
        spec += [("copy", i) for i in range(end, n)]
        return spec

    def output_shapes(self, bottom_shapes):
        s = tuple(bottom_shapes[0])
        spec = self.spec(s)
        shape = [s[x[1]] if isinstance(x, tuple) else x for x in spec]
        if -1 in shape:
            known = prod(d for d in shape if d != -1)
            if known == 0 or prod(s) % known:
                raise self.error(f"the bottom's {prod(s)} elements cannot be reshaped to "
                                 f"{tuple(shape)} (-1 inferred)", ShapeError)
            shape[shape.index(-1)] = prod(s) // known
        if prod(shape) != prod(s):
            raise self.error(f"the bottom {s} has {prod(s)} elements, the new shape "
                             f"{tuple(shape)} has {prod(shape)}", ShapeError)
        return [tuple(shape)]

    def coord_map(self):
        raise NoCoordMap("Reshape rearranges axes")

    def build_module(self, bottom_shapes):
        return _torch().Reshape(self.spec(bottom_shapes[0]))


@lazy
def _torch():
    import types

    import torch

    class Reshape(torch.nn.Module):
        """Reshape with copied axes read from the input (batch size stays dynamic)."""

        def __init__(self, spec):
            super().__init__()
            self.spec = list(spec)

        def forward(self, x):
            shape = [x.shape[s[1]] if isinstance(s, tuple) else s for s in self.spec]
            return x.reshape(shape)

        def extra_repr(self):
            return f"spec={self.spec}"

    return types.SimpleNamespace(Reshape=Reshape)
