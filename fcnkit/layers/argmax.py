"""ArgMax: Caffe src/caffe/layers/argmax_layer.cpp.

With ``axis``: the indices of the ``top_k`` largest values along ``axis`` (negative counts
from the end), or with ``out_max_val`` their values; top shape = the bottom's with
``shape[axis] = top_k``. Without ``axis``: per item of the batch, over all other axes
flattened: top shape ``(N, 1, top_k)`` (``(N, 2, top_k)`` with ``out_max_val``: indices
then values), padded with 1s to the bottom's number of axes. Indices are stored as
floats. Caffe sorts (value, index) pairs in decreasing order, so among equal values the
larger index comes first; fcnkit does the same (argmax or a stable sort on the
reversed axis; when exported, ONNX TopK, whose tie rule gives the same order).
"""

from __future__ import annotations

from fcnkit.errors import ShapeError
from fcnkit.layers import Layer, NoCoordMap, canonical_axis, prod, register
from fcnkit.layers._common import lazy


@register
class ArgMax(Layer):
    """Caffe ``ArgMax``."""

    type = "ArgMax"
    min_bottom_rank = 2  # N and at least one axis to take the maximum over

    def setup(self) -> None:
        p = self.param.argmax_param
        self.out_max_val = bool(p.out_max_val)
        self.top_k = int(p.top_k)
        if self.top_k < 1:
            raise self.error(f"top_k must be at least 1, got {self.top_k}")
        self.axis = int(p.axis) if p.HasField("axis") else None

    def output_shapes(self, bottom_shapes):
        s = tuple(bottom_shapes[0])
        if self.axis is not None:
            a = canonical_axis(self.axis, len(s), self)
            if self.top_k > s[a]:
                raise self.error(f"top_k {self.top_k} is larger than axis {a} of size {s[a]}",
                                 ShapeError)
            return [s[:a] + (self.top_k,) + s[a + 1:]]
        if self.top_k > prod(s[1:]):
            raise self.error(f"top_k {self.top_k} is larger than the {prod(s[1:])} values per item",
                             ShapeError)
        shape = [1] * max(len(s), 3)
        shape[0] = s[0]
        shape[1] = 2 if self.out_max_val else 1
        shape[2] = self.top_k
        return [tuple(shape)]

    def coord_map(self):
        raise NoCoordMap("ArgMax replaces values by indices")

    def build_module(self, bottom_shapes):
        s = tuple(bottom_shapes[0])
        top = self.output_shapes(bottom_shapes)[0]
        if self.axis is None:
            return _torch().ArgMax(None, self.top_k, self.out_max_val, top[1:])
        return _torch().ArgMax(canonical_axis(self.axis, len(s), self), self.top_k,
                               self.out_max_val, None)


@lazy
def _torch():
    import types

    import torch

    class ArgMax(torch.nn.Module):
        def __init__(self, axis, top_k, out_max_val, flat_top):
            super().__init__()
            self.axis, self.top_k, self.out_max_val = axis, top_k, out_max_val
            self.flat_top = None if flat_top is None else tuple(flat_top)

        def _topk(self, x, dim):
            # on the reversed axis, so that among equal values the larger index comes
            # first, as in Caffe's sort; argmax and stable sort keep the first of equals
            n = x.shape[dim]
            rx = torch.flip(x, dims=(dim,))
            if self.top_k == 1:
                rev = torch.argmax(rx, dim=dim, keepdim=True)
                values = torch.gather(rx, dim, rev)
            elif torch.compiler.is_exporting():
                # ONNX TopK puts the lower index first among equal values (and
                # aten.sort.stable has no ONNX translation)
                values, rev = torch.topk(rx, self.top_k, dim=dim)
            else:
                values, rev = torch.sort(rx, dim=dim, descending=True, stable=True)
                values = values.narrow(dim, 0, self.top_k)
                rev = rev.narrow(dim, 0, self.top_k)
            return values, (n - 1 - rev).to(x.dtype)

        def forward(self, x):
            if self.axis is not None:
                values, index = self._topk(x, self.axis)
                return values if self.out_max_val else index
            values, index = self._topk(x.flatten(1), 1)
            y = torch.stack((index, values), dim=1) if self.out_max_val else index.unsqueeze(1)
            return y.reshape((x.shape[0],) + self.flat_top)

    return types.SimpleNamespace(ArgMax=ArgMax)
