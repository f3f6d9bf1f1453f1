"""Accuracy: Caffe src/caffe/layers/accuracy_layer.cpp.

Predictions ``(outer, C, inner)`` around ``axis`` (default 1), labels ``outer * inner``
(floats truncated to integers). A position counts as correct when fewer than ``top_k``
classes other than the true one score at least as high as it (ties count against);
positions labelled ``ignore_label`` are skipped. Top 0: correct / counted (0 when nothing
is counted), shape ``()``; optional top 1: the same per class, shape ``(C,)`` (0 for a
class that never occurs).
"""

from __future__ import annotations

from fcnkit.errors import ShapeError
from fcnkit.layers import Layer, NoCoordMap, canonical_axis, prod, register
from fcnkit.layers._common import lazy
from fcnkit.layers._loss import label_index


@register
class Accuracy(Layer):
    """Caffe ``Accuracy`` (a metric: no loss weight)."""

    type = "Accuracy"
    role = "metric"
    bottoms = (2, 2)
    tops = (1, 2)

    def setup(self) -> None:
        p = self.param.accuracy_param
        self.top_k = int(p.top_k)
        if self.top_k < 1:
            raise self.error(f"top_k must be at least 1, got {self.top_k}")
        self.axis = int(p.axis)
        self.ignore_label = int(p.ignore_label) if p.HasField("ignore_label") else None

    def geometry(self, bottom_shapes) -> tuple[int, int, int, int]:
        s = tuple(bottom_shapes[0])
        a = canonical_axis(self.axis, len(s), self)
        return a, prod(s[:a]), s[a], prod(s[a + 1:])

    def output_shapes(self, bottom_shapes):
        _, outer, c, inner = self.geometry(bottom_shapes)
        nlabels = prod(bottom_shapes[1])
        if outer * inner != nlabels:
            raise self.error(f"the label count {nlabels} must equal the number of predictions "
                             f"{outer * inner}", ShapeError)
        if self.top_k > prod(bottom_shapes[0]) // nlabels:
            raise self.error(f"top_k {self.top_k} is larger than the {c} classes", ShapeError)
        return [()] + ([(c,)] if len(self.param.top) > 1 else [])

    def coord_map(self):
        raise NoCoordMap("Accuracy is a metric")

    def build_module(self, bottom_shapes):
        _, outer, c, inner = self.geometry(bottom_shapes)
        return _torch().Accuracy(outer, c, inner, self.top_k, self.ignore_label,
                                 len(self.param.top) > 1)


@lazy
def _torch():
    import types

    import torch

    class Accuracy(torch.nn.Module):
        def __init__(self, outer, channels, inner, top_k, ignore_label, per_class):
            super().__init__()
            self.outer, self.channels, self.inner = outer, channels, inner
            self.top_k, self.ignore_label, self.per_class = top_k, ignore_label, per_class

        def forward(self, x, label):
            scores = x.reshape(self.outer, self.channels, self.inner)
            index, valid = label_index(label, self.outer, self.inner, self.ignore_label)
            true_score = torch.gather(scores, 1, index)
            # classes scoring at least the true class's, the true class included
            at_least = (scores >= true_score).sum(dim=1, keepdim=True)
            correct = (at_least <= self.top_k) & valid
            count = valid.sum()
            acc = correct.sum().to(x.dtype) / torch.clamp_min(count, 1).to(x.dtype)
            if not self.per_class:
                return acc
            onehot = torch.nn.functional.one_hot(index.squeeze(1), self.channels)  # (O, I, C)
            seen = (onehot * valid.squeeze(1).unsqueeze(-1)).sum(dim=(0, 1))
            hits = (onehot * correct.squeeze(1).unsqueeze(-1)).sum(dim=(0, 1))
            per_class = hits.to(x.dtype) / torch.clamp_min(seen, 1).to(x.dtype)
            return acc, per_class

    return types.SimpleNamespace(Accuracy=Accuracy)
