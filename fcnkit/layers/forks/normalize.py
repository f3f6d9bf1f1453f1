"""Normalize: SSD, weiliu89/caffe (branch ssd) src/caffe/layers/normalize_layer.cpp.

L2 normalisation of an (N, C, H, W) bottom, then a learned scale:

- ``across_spatial`` (default true): one norm per sample, ``sqrt(sum_{c,h,w} x^2 + eps)``;
  false: one norm per position, ``sqrt(sum_c x^2 + eps)`` (SSD's conv4_3_norm).
- ``channel_shared`` (default true): the scale is one value (blob shape ``()``); false: one
  per channel (shape ``(C,)``). ``scale_filler`` fills it (Caffe default: constant 1).

``eps`` (default 1e-10) is added before the square root in both cases, as in the fork.
Coordinate map: IDENTITY when the norm is per position; across_spatial mixes every position,
so it has none.
"""

from __future__ import annotations

from fcnkit.caffe.forks import fork_param
from fcnkit.errors import ShapeError
from fcnkit.layers import IDENTITY, NoCoordMap, register
from fcnkit.layers._common import ElementwiseLayer, lazy, new_filler


@register
class Normalize(ElementwiseLayer):
    """SSD ``Normalize`` (``norm_param``)."""

    type = "Normalize"
    fork = "SSD (weiliu89/caffe)"
    min_bottom_rank = 2  # normalize_layer.cpp: CHECK_GE(num_axes, 2)

    def setup(self) -> None:
        p = fork_param(self.param, "norm_param")
        self.across_spatial = True if p is None else bool(p.across_spatial)
        self.channel_shared = True if p is None else bool(p.channel_shared)
        self.eps = 1e-10 if p is None else float(p.eps)
        self._filler = None if p is None or not p.HasField("scale_filler") else p.scale_filler

    def output_shapes(self, bottom_shapes):
        if len(bottom_shapes[0]) < 2:
            raise self.error(f"bottom has shape {bottom_shapes[0]}; Normalize needs N, C, ...",
                             ShapeError)
        return [tuple(bottom_shapes[0])]

    def coord_map(self):
        if self.across_spatial:
            raise NoCoordMap("Normalize with across_spatial divides by a norm over all positions")
        return IDENTITY

    def param_names(self):
        return ["weight"]

    def param_shapes(self, bottom_shapes):
        return [() if self.channel_shared else (bottom_shapes[0][1],)]

    def fillers(self):
        if self._filler is not None:
            return [self._filler]
        from fcnkit.caffe import caffe_pb2

        return [new_filler(caffe_pb2.FillerParameter(), "constant", 1.0)]

    def build_module(self, bottom_shapes):
        shape = self.param_shapes(bottom_shapes)[0]
        return _torch().Normalize(shape, self.across_spatial, self.eps, len(bottom_shapes[0]))


@lazy
def _torch():
    import types

    import torch

    class Normalize(torch.nn.Module):
        """``x / sqrt(sum x^2 + eps) * weight`` (sum over C, H, W or over C)."""

        def __init__(self, shape, across_spatial, eps, rank):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(shape))
            # axes and the scale's view fixed here (from the rank), so torch.fx can trace
            self.dims = tuple(range(1, rank)) if across_spatial else (1,)
            self.view = (1, -1) + (1,) * (rank - 2) if len(shape) else ()
            # a 1-element buffer of the bottom's rank, not a scalar: onnxscript's optimizer
            # rewrites `x + c` with a scalar c close to 0 (1e-10) into Identity (add_0 rule)
            self.register_buffer("eps", torch.full((1,) * rank, float(eps)), persistent=False)

        def forward(self, x):
            norm = torch.sqrt((x * x).sum(dim=self.dims, keepdim=True) + self.eps)
            return x / norm * self.weight.reshape(self.view)

    return types.SimpleNamespace(Normalize=Normalize)
