"""InnerProduct: Caffe src/caffe/layers/inner_product_layer.cpp.

The bottom is flattened from ``axis`` (default 1, negative counts from the end):
``M = count(0, axis)`` rows of ``K = count(axis)``; the top is
``bottom.shape[:axis] + (num_output,)``. Caffe's weight blob is ``(N, K)``, or ``(K, N)``
with ``transpose: true``; bias ``(N,)``. Legacy 4-D blobs (``1x1xNxK``, bias
``1x1x1xN``) are accepted by element count. The torch module always holds ``weight`` as
``(N, K)`` (torch.nn.Linear's layout): :meth:`InnerProduct.params_to_torch` and
:meth:`InnerProduct.torch_to_params` transpose for ``transpose: true``.

FLOPs: ``2 M K N``. No coordinate map.
"""

from __future__ import annotations

import numpy as np

from fcnkit.layers import Layer, NoCoordMap, canonical_axis, prod, register
from fcnkit.layers._common import lazy


@register
class InnerProduct(Layer):
    """Caffe ``InnerProduct`` (fully connected)."""

    type = "InnerProduct"
    fully_connected = True
    num_output_param = "inner_product_param"

    @classmethod
    def stores_transposed(cls, param):
        return bool(param.inner_product_param.transpose)

    def static_hw_reason(self, module):
        return "fixes the C x H x W size of its input"

    def setup(self) -> None:
        p = self.param.inner_product_param
        if not p.HasField("num_output") or p.num_output <= 0:
            raise self.error("inner_product_param.num_output must be set to a positive number")
        self.num_output = int(p.num_output)
        self.bias_term = bool(p.bias_term)
        self.transpose = bool(p.transpose)
        self.axis = int(p.axis)

    def geometry(self, bottom_shape) -> tuple[int, int, int]:
        """(canonical axis, M, K) for a bottom shape."""
        axis = canonical_axis(self.axis, len(bottom_shape), self)
        return axis, prod(bottom_shape[:axis]), prod(bottom_shape[axis:])

    def output_shapes(self, bottom_shapes):
        axis, _, _ = self.geometry(bottom_shapes[0])
        return [tuple(bottom_shapes[0][:axis]) + (self.num_output,)]

    def param_shapes(self, bottom_shapes):
        _, _, k = self.geometry(bottom_shapes[0])
        shapes = [(k, self.num_output) if self.transpose else (self.num_output, k)]
        if self.bias_term:
            shapes.append((self.num_output,))
        return shapes

    def param_names(self):
        return ["weight", "bias"] if self.bias_term else ["weight"]

    def fillers(self):
        p = self.param.inner_product_param
        f = [p.weight_filler if p.HasField("weight_filler") else None]
        if self.bias_term:
            f.append(p.bias_filler if p.HasField("bias_filler") else None)
        return f

    def params_to_torch(self, blobs, bottom_shapes):
        out = super().params_to_torch(blobs, bottom_shapes)
        if self.transpose:
            out["weight"] = np.ascontiguousarray(out["weight"].T)
        return out

    def torch_to_params(self, tensors, bottom_shapes):
        tensors = dict(tensors)
        if self.transpose:
            _, _, k = self.geometry(bottom_shapes[0])
            w = np.asarray(tensors["weight"], dtype=np.float32).reshape(self.num_output, k)
            tensors["weight"] = np.ascontiguousarray(w.T)
        return super().torch_to_params(tensors, bottom_shapes)

    def coord_map(self):
        raise NoCoordMap("InnerProduct flattens the spatial axes (convert it to a "
                         "Convolution for a fully convolutional net)")

    def flops(self, bottom_shapes, top_shapes):
        _, m, k = self.geometry(bottom_shapes[0])
        return 2 * m * k * self.num_output

    def build_module(self, bottom_shapes):
        import torch

        axis, _, k = self.geometry(bottom_shapes[0])
        if axis == len(bottom_shapes[0]) - 1:
            return torch.nn.Linear(k, self.num_output, bias=self.bias_term)
        return _torch().FlattenLinear(axis, k, self.num_output, self.bias_term)


@lazy
def _torch():
    import types

    import torch

    class FlattenLinear(torch.nn.Linear):
        """torch.nn.Linear on the input flattened from ``axis`` (Caffe's InnerProduct)."""

        def __init__(self, axis, in_features, out_features, bias):
            super().__init__(in_features, out_features, bias=bias)
            self.axis = axis

        def forward(self, x):
            return super().forward(x.flatten(self.axis))

    return types.SimpleNamespace(FlattenLinear=FlattenLinear)
