"""Torch modules for layers fused at inference (:meth:`fcnkit.layers.Layer.inference_fused`):
built by :func:`fcnkit.compile.inference.inference_module`, never in a training module.

They hold the layers' own modules (not copies of their tensors), so a weight changed or
reassigned in the compiled module is what they compute with.
"""

from __future__ import annotations

import types

from fcnkit.layers._common import lazy


@lazy
def ops():
    """The classes (built on first use: torch stays unimported for analysis)."""
    import torch
    import torch.nn.functional as F

    class BatchNormAffine(torch.nn.Module):
        """Caffe BatchNorm with its stored statistics, then optionally its per-channel
        Scale (``weight``, optional ``bias``) and an in-place activation, as one
        ``F.batch_norm`` call: ``act((x - mean) / sqrt(var + eps) * weight + bias)``
        (Caffe batch_norm_layer.cpp then scale_layer.cpp). Input (N, C, ...)."""

        def __init__(self, bn, scale=None, act=None):
            super().__init__()
            self.bn, self.scale, self.act = bn, scale, act

        def forward(self, x):
            bn, scale = self.bn, self.scale
            weight = bias = None
            if scale is not None:
                weight = scale.weight.reshape(-1)
                bias = None if scale.bias is None else scale.bias.reshape(-1)
            y = F.batch_norm(x, bn.running_mean, bn.running_var, weight, bias, False, 0.0, bn.eps)
            return y if self.act is None else self.act(y)

    class ConvAct(torch.nn.Module):
        """A convolution whose output (a new tensor that no one else reads) the next
        element-wise activation overwrites in place."""

        def __init__(self, conv, act):
            super().__init__()
            self.conv, self.act = conv, act

        def forward(self, x):
            return self.act(self.conv(x))

    return types.SimpleNamespace(BatchNormAffine=BatchNormAffine, ConvAct=ConvAct)
