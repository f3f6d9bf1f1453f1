"""SoftmaxWithLoss: Caffe src/caffe/layers/softmax_loss_layer.cpp.

Softmax along ``softmax_param.axis`` (default 1), then the multinomial logistic loss
``-sum log(max(p[label], FLT_MIN))`` over the ``outer * inner`` positions whose label is
not ``loss_param.ignore_label``, divided by the normaliser (default VALID; see
fcnkit.layers._loss). Labels (``outer * inner`` of them, floats truncated to integers)
index the softmax axis. Top 0: the loss, shape ``()``; optional top 1: the softmax
probabilities (the bottom's shape).
"""

from __future__ import annotations

import numpy as np

from fcnkit.errors import ShapeError
from fcnkit.layers import canonical_axis, prod, register
from fcnkit.layers._common import lazy
from fcnkit.layers._loss import LossLayer, label_index, normalizer

FLT_MIN = float(np.finfo(np.float32).tiny)


@register
class SoftmaxWithLoss(LossLayer):
    """Caffe ``SoftmaxWithLoss``."""

    type = "SoftmaxWithLoss"
    tops = (1, 2)

    def setup(self) -> None:
        super().setup()
        self.axis = int(self.param.softmax_param.axis)

    def geometry(self, bottom_shapes) -> tuple[int, int, int, int]:
        """(axis, outer, channels, inner) of the prediction bottom."""
        s = tuple(bottom_shapes[0])
        a = canonical_axis(self.axis, len(s), self)
        return a, prod(s[:a]), s[a], prod(s[a + 1:])

    def output_shapes(self, bottom_shapes):
        self.check_batch(bottom_shapes)
        _, outer, _, inner = self.geometry(bottom_shapes)
        if prod(bottom_shapes[1]) != outer * inner:
            raise self.error(
                f"the label count {prod(bottom_shapes[1])} must equal the number of predictions "
                f"{outer * inner}; e.g. with softmax axis 1 and predictions (N, C, H, W) the labels "
                "are N*H*W integers in {0, ..., C-1}", ShapeError)
        tops = [()]
        if len(self.param.top) > 1:
            tops.append(tuple(bottom_shapes[0]))
        return tops

    def build_module(self, bottom_shapes):
        a, outer, c, inner = self.geometry(bottom_shapes)
        return _torch().SoftmaxWithLoss(a, outer, c, inner, self.ignore_label,
                                        self.normalization, len(self.param.top) > 1)


@lazy
def _torch():
    import types

    import torch

    class SoftmaxWithLoss(torch.nn.Module):
        def __init__(self, axis, outer, channels, inner, ignore_label, normalization, with_prob):
            super().__init__()
            self.axis, self.outer, self.channels, self.inner = axis, outer, channels, inner
            self.ignore_label, self.normalization = ignore_label, normalization
            self.with_prob = with_prob

        def forward(self, x, label):
            prob = torch.softmax(x, dim=self.axis)
            p = prob.reshape(self.outer, self.channels, self.inner)
            index, valid = label_index(label, self.outer, self.inner, self.ignore_label)
            picked = torch.gather(p, 1, index)
            nll = -torch.log(torch.clamp_min(picked, FLT_MIN))
            loss = torch.where(valid, nll, torch.zeros_like(nll)).sum()
            loss = loss / normalizer(self.normalization, self.outer, self.inner, valid.sum())
            return (loss, prob) if self.with_prob else loss

    return types.SimpleNamespace(SoftmaxWithLoss=SoftmaxWithLoss)
