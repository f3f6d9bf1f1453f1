"""SigmoidCrossEntropyLoss: Caffe src/caffe/layers/sigmoid_cross_entropy_loss_layer.cpp.

Per element, with target t (a float; positions whose truncated t equals
``loss_param.ignore_label`` are skipped), the stable form of
``-[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))]``:
``-(x (t - [x >= 0]) - log(1 + exp(x - 2 x [x >= 0])))``. The sum is divided by the
normaliser: default BATCH_SIZE (Caffe's historical choice, unlike SoftmaxWithLoss), with
outer = N and inner = count(1). The bottoms must have the same count. Top: shape ``()``.
"""

from __future__ import annotations

from fcnkit.errors import ShapeError
from fcnkit.layers import prod, register
from fcnkit.layers._common import lazy
from fcnkit.layers._loss import BATCH_SIZE, LossLayer, normalizer


@register
class SigmoidCrossEntropyLoss(LossLayer):
    """Caffe ``SigmoidCrossEntropyLoss``."""

    type = "SigmoidCrossEntropyLoss"
    min_bottom_rank = 1  # sigmoid_cross_entropy_loss_layer.cpp: outer_num_ = shape(0)
    default_normalization = BATCH_SIZE

    def output_shapes(self, bottom_shapes):
        self.check_batch(bottom_shapes)
        b0, b1 = bottom_shapes
        if prod(b0) != prod(b1):
            raise self.error(f"bottoms {tuple(b0)} and {tuple(b1)} must have the same count",
                             ShapeError)
        return [()]

    def build_module(self, bottom_shapes):
        s = tuple(bottom_shapes[0])
        return _torch().SigmoidCrossEntropyLoss(s[0], prod(s[1:]), self.ignore_label,
                                                self.normalization)


@lazy
def _torch():
    import types

    import torch

    class SigmoidCrossEntropyLoss(torch.nn.Module):
        def __init__(self, outer, inner, ignore_label, normalization):
            super().__init__()
            self.outer, self.inner = outer, inner
            self.ignore_label, self.normalization = ignore_label, normalization

        def forward(self, x, target):
            t = target.reshape(x.shape).to(x.dtype)
            pos = (x >= 0).to(x.dtype)
            term = x * (t - pos) - torch.log1p(torch.exp(x - 2 * x * pos))
            if self.ignore_label is None:
                valid = torch.ones_like(x, dtype=torch.bool)
                loss = -term.sum()
            else:
                valid = target.reshape(x.shape).long() != self.ignore_label
                loss = -torch.where(valid, term, torch.zeros_like(term)).sum()
            return loss / normalizer(self.normalization, self.outer, self.inner, valid.sum())

    return types.SimpleNamespace(SigmoidCrossEntropyLoss=SigmoidCrossEntropyLoss)
