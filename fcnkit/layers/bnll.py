"""BNLL: Caffe src/caffe/layers/bnll_layer.cpp (binomial normal log likelihood).

``y = log(1 + exp(x))``, computed as Caffe does, without overflow:
``x > 0 ? x + log(1 + exp(-x)) : log(1 + exp(x))``, i.e.
``max(x, 0) + log1p(exp(-|x|))``.
"""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer, lazy


@register
class BNLL(ElementwiseLayer):
    """Caffe ``BNLL``: softplus without overflow."""

    type = "BNLL"

    def build_module(self, bottom_shapes):
        return _torch().BNLL()


@lazy
def _torch():
    import types

    import torch

    class BNLL(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x) + torch.log1p(torch.exp(-torch.abs(x)))

    return types.SimpleNamespace(BNLL=BNLL)
