"""BN: the batch normalisation layer of SegNet/ENet and of PSPNet (two forks, one type).

Which one a layer is follows its ``bn_param`` (fcnkit.caffe.forks resolves the name by the
fields the block uses; an empty or absent block is PSPNet's):

- SegNet (alexgkendall/caffe-segnet src/caffe/layers/bn_layer.cpp; ENet's caffe-enet has
  the same layer). Blobs: scale, shift, each (1, C, 1, 1). ``bn_mode: INFERENCE`` computes
  ``y = scale x + shift`` (SegNet's compute_bn_statistics.py folds the statistics into
  scale and shift); ``LEARN`` (the default) normalises with the statistics of the current
  batch in every phase: ``y = scale (x - E x) / sqrt(E x^2 - (E x)^2 + 1e-9) + shift``, the
  expectations over N, H, W.
- PSPNet (hszhao/PSPNet src/caffe/layers/bn_layer.cpp, from yjxiong/caffe). Blobs: slope,
  bias, moving mean, moving variance, each (1, C, 1, 1). In TEST or with ``frozen``:
  ``y = slope (x - mean) / sqrt(var + eps) + bias`` (``eps`` default 1e-5); in TRAIN the
  batch statistics replace the moving ones (fcnkit's module does not update them).

Coordinate map: IDENTITY (except SegNet LEARN, whose statistics span the whole batch, it is
per position; the statistics do not move positions either).
"""

from __future__ import annotations

from fcnkit.caffe.forks import fork_param
from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer, lazy, new_filler

SEGNET_EPS = 1e-9  # bn_layer.cpp: var_eps_ = 1e-9


@register
class BN(ElementwiseLayer):
    """SegNet/ENet or PSPNet ``BN`` (``bn_param``)."""

    type = "BN"
    fork = "SegNet / ENet (bn_mode), PSPNet (slope, bias, mean, var)"
    min_bottom_rank = 4

    def setup(self) -> None:
        segnet = fork_param(self.param, "segnet_bn_param")
        self.segnet = segnet is not None
        if self.segnet:
            self.inference = segnet.bn_mode == segnet.INFERENCE
            self._fillers = [segnet.scale_filler if segnet.HasField("scale_filler") else None,
                             segnet.shift_filler if segnet.HasField("shift_filler") else None]
            if len(self.param.top) > 1:
                raise self.error("fcnkit computes only the first top of SegNet's BN (the "
                                 "batch mean and variance tops are not supported)")
        else:
            p = fork_param(self.param, "bn_param")
            self.eps = 1e-5 if p is None else float(p.eps)
            self.frozen = False if p is None else bool(p.frozen)
            self._fillers = [None if p is None or not p.HasField("slope_filler") else p.slope_filler,
                             None if p is None or not p.HasField("bias_filler") else p.bias_filler,
                             None, None]

    @property
    def phase_dependent(self) -> bool:
        return not self.segnet and not self.frozen

    def param_names(self):
        if self.segnet:
            return ["weight", "bias"]
        return ["weight", "bias", "running_mean", "running_var"]

    def learnable(self):
        return [True, True] if self.segnet else [True, True, False, False]

    def param_shapes(self, bottom_shapes):
        return [(1, bottom_shapes[0][1], 1, 1)] * len(self.param_names())

    def fillers(self):
        from fcnkit.caffe import caffe_pb2

        f = list(self._fillers)
        # Caffe's GetFiller of an unset FillerParameter is constant 0; PSPNet starts the
        # moving variance at 1 when frozen (bn_layer.cpp LayerSetUp).
        if not self.segnet and self.frozen:
            f[3] = new_filler(caffe_pb2.FillerParameter(), "constant", 1.0)
        return f

    def build_module(self, bottom_shapes):
        c = bottom_shapes[0][1]
        if self.segnet:
            return _torch().SegNetBN(c, self.inference)
        return _torch().PSPNetBN(c, self.eps, self.frozen)


@lazy
def _torch():
    import types

    import torch

    class SegNetBN(torch.nn.Module):
        def __init__(self, c, inference):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(1, c, 1, 1))
            self.bias = torch.nn.Parameter(torch.zeros(1, c, 1, 1))
            self.inference = inference

        def forward(self, x):
            if not self.inference:
                mean = x.mean(dim=(0, 2, 3), keepdim=True)
                var = (x * x).mean(dim=(0, 2, 3), keepdim=True) - mean * mean
                x = (x - mean) / torch.sqrt(var + SEGNET_EPS)
            return x * self.weight + self.bias

    class PSPNetBN(torch.nn.Module):
        def __init__(self, c, eps, frozen):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(1, c, 1, 1))
            self.bias = torch.nn.Parameter(torch.zeros(1, c, 1, 1))
            self.register_buffer("running_mean", torch.zeros(1, c, 1, 1))
            self.register_buffer("running_var", torch.ones(1, c, 1, 1))
            self.eps, self.frozen = float(eps), frozen

        def forward(self, x):
            if self.training and not self.frozen:
                mean = x.mean(dim=(0, 2, 3), keepdim=True)
                var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
            else:
                mean, var = self.running_mean, self.running_var
            return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias

    return types.SimpleNamespace(SegNetBN=SegNetBN, PSPNetBN=PSPNetBN)
