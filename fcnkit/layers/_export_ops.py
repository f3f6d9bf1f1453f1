"""Custom torch ops that stand for Caffe layers while a net is exported, each with its ONNX
translation, so that the ONNX graph says exactly what Caffe computes:

- ``fcnkit_deploy::lrn``: Caffe LRN (ACROSS_CHANNELS) as one ONNX ``LRN`` node. Caffe
  (``src/caffe/layers/lrn_layer.cpp``): ``y = x (k + alpha/n * sum x_c'^2)^-beta`` over a
  window of n channels starting ``(n-1)//2`` before c; ONNX LRN-13 uses the same window and
  ``alpha / size`` scaling (``bias`` is Caffe's ``k``).
- ``fcnkit_deploy::max_pool`` / ``ave_pool``: Caffe pooling with its CEIL rounding and clip
  rule made explicit: floor-mode ONNX ``MaxPool`` / ``AveragePool`` (count_include_pad) with
  asymmetric ``pads`` (Caffe's pad at the start, pad plus the ceil overhang at the end).
  ONNX's own ``ceil_mode`` has no clip rule (its shape inference gives 7 where Caffe gives 6
  for AVE k2 s2 p1 on 11 pixels), so it is never used. The AVE divisor of the windows that
  reach into the ceil overhang (Caffe counts real padding, not the overhang) is restored by a
  constant multiplier applied after the op.

Imported lazily by the layers' ``export_module`` / ``export_fused`` (lrn.py, pooling.py,
batch_norm.py) and by :func:`fcnkit.layers.export_translations`. No ``from __future__ import annotations``
here: ``torch.library.custom_op`` and the onnxscript translation read the annotations as
real types.
"""

from typing import List

import torch
import torch.nn.functional as F
from onnxscript import opset18 as op


@torch.library.custom_op("fcnkit_deploy::lrn", mutates_args=())
def lrn(x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """Caffe ACROSS_CHANNELS LRN of x (N, C, H, W)."""
    pre = (size - 1) // 2
    sq = F.pad((x * x).unsqueeze(1), (0, 0, 0, 0, pre, size - 1 - pre)).squeeze(1)
    s = sq.unfold(1, size, 1).sum(-1)
    return x * (k + alpha / size * s).pow(-beta)


@lrn.register_fake
def _lrn_fake(x, size, alpha, beta, k):
    return torch.empty_like(x)


def lrn_onnx(x, size: int, alpha: float, beta: float, k: float):
    """ONNX translation of :func:`lrn`: one LRN node."""
    return op.LRN(x, size=size, alpha=alpha, beta=beta, bias=k)


def _pooled(n: int, k: int, s: int, begin: int, end: int) -> int:
    return (n + begin + end - k) // s + 1


def _pool_fake(x, kernel, stride, pads):
    h = _pooled(x.shape[2], kernel[0], stride[0], pads[0], pads[2])
    w = _pooled(x.shape[3], kernel[1], stride[1], pads[1], pads[3])
    return x.new_empty((x.shape[0], x.shape[1], h, w))


@torch.library.custom_op("fcnkit_deploy::max_pool", mutates_args=())
def max_pool(x: torch.Tensor, kernel: List[int], stride: List[int], pads: List[int]) -> torch.Tensor:
    """Floor-mode max pooling of x (N, C, H, W) with pads (top, left, bottom, right)."""
    xp = F.pad(x, (pads[1], pads[3], pads[0], pads[2]), value=float("-inf"))
    return F.max_pool2d(xp, kernel, stride)


@torch.library.custom_op("fcnkit_deploy::ave_pool", mutates_args=())
def ave_pool(x: torch.Tensor, kernel: List[int], stride: List[int], pads: List[int]) -> torch.Tensor:
    """Floor-mode average pooling of x with zero pads (top, left, bottom, right), every
    window divided by kernel_h * kernel_w (ONNX count_include_pad=1)."""
    xp = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
    return F.avg_pool2d(xp, kernel, stride)


max_pool.register_fake(_pool_fake)
ave_pool.register_fake(_pool_fake)


def max_pool_onnx(x, kernel: List[int], stride: List[int], pads: List[int]):
    """ONNX translation: MaxPool, floor mode, asymmetric pads (the optional Indices output
    is unused and pruned by the exporter's optimiser)."""
    y, _ = op.MaxPool(x, kernel_shape=kernel, strides=stride, pads=pads)
    return y


def ave_pool_onnx(x, kernel: List[int], stride: List[int], pads: List[int]):
    """ONNX translation: AveragePool, floor mode, asymmetric pads, pads counted."""
    return op.AveragePool(x, kernel_shape=kernel, strides=stride, pads=pads, count_include_pad=1)


class LRNExport(torch.nn.Module):
    """Drop-in for a compiled LRN (ACROSS_CHANNELS) module during export."""

    def __init__(self, size, alpha, beta, k):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)

    def forward(self, x):
        return torch.ops.fcnkit_deploy.lrn(x, self.size, self.alpha, self.beta, self.k)


class CaffePoolExport(torch.nn.Module):
    """Drop-in for a compiled ceil-mode pooling module during export: explicit pads, floor
    mode, and for AVE a constant (1, 1, OH, OW) divisor correction (kernel area / Caffe's
    divisor) where windows reach into the ceil overhang."""

    def __init__(self, is_max, kernel, stride, pads, correction=None):
        super().__init__()
        self.is_max = bool(is_max)
        self.kernel, self.stride, self.pads = list(kernel), list(stride), list(pads)
        if correction is not None:
            self.register_buffer("correction", correction, persistent=False)
        else:
            self.correction = None

    def forward(self, x):
        if self.is_max:
            return torch.ops.fcnkit_deploy.max_pool(x, self.kernel, self.stride, self.pads)
        y = torch.ops.fcnkit_deploy.ave_pool(x, self.kernel, self.stride, self.pads)
        return y if self.correction is None else y * self.correction.to(y.dtype)


TRANSLATIONS = {
    torch.ops.fcnkit_deploy.lrn.default: lrn_onnx,
    torch.ops.fcnkit_deploy.max_pool.default: max_pool_onnx,
    torch.ops.fcnkit_deploy.ave_pool.default: ave_pool_onnx,
}


class BatchNormScaleExport(torch.nn.Module):
    """Drop-in for a Caffe BatchNorm (stored statistics) followed by its in-place Scale
    (learned per-channel scale, optional bias) during export: one per-channel affine op,
    ``(x - mean) / sqrt(var + eps) * scale + bias``, which ONNX writes as one
    BatchNormalization node. Shares the two modules' tensors (no copy)."""

    def __init__(self, bn, weight, bias):
        super().__init__()
        self.eps = float(bn.eps)
        self.register_buffer("running_mean", bn.running_mean, persistent=False)
        self.register_buffer("running_var", bn.running_var, persistent=False)
        self.weight = weight
        self.bias = bias

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            False, 0.0, self.eps)
