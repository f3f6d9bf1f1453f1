"""The custom torch op that stands for Caffe LRN (ACROSS_CHANNELS) while a net is exported,
and its ONNX translation: one ``LRN`` node.

Caffe (``src/caffe/layers/lrn_layer.cpp``): ``y = x (k + alpha/n * sum x_c'^2)^-beta`` over a
window of n channels starting ``(n-1)//2`` channels before c. ONNX LRN-13 uses the same window
and the same ``alpha / size`` scaling (``bias`` is Caffe's ``k``).

Imported lazily by :mod:`fcnkit.deploy.onnx`. This module deliberately has no
``from __future__ import annotations``: ``torch.library.custom_op`` and the onnxscript
translation read the annotations as real types.
"""

import torch
import torch.nn.functional as F
from onnxscript import opset18 as op


@torch.library.custom_op("fcnkit_deploy::lrn", mutates_args=())
def lrn(x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """Caffe ACROSS_CHANNELS LRN of x (N, C, H, W) (eager implementation, used only when the
    export wrapper is run directly)."""
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


class LRNExport(torch.nn.Module):
    """Drop-in for a compiled LRN module during export."""

    def __init__(self, size, alpha, beta, k):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)

    def forward(self, x):
        return torch.ops.fcnkit_deploy.lrn(x, self.size, self.alpha, self.beta, self.k)


TARGET = torch.ops.fcnkit_deploy.lrn.default
