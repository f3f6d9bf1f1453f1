"""BatchNorm: Caffe src/caffe/layers/batch_norm_layer.cpp.

Blobs: ``b0 = mean * s``, ``b1 = var * s`` (per channel, axis 1) and ``s``, a 1-element
scale factor; the statistics are ``mean = b0 / s``, ``var = b1 / s`` (0 when ``s == 0``).
``y = (x - mean) / sqrt(var + eps)``; there is no affine part (a following Scale layer
has it).

Which statistics: ``use_global_stats`` when set, in both phases; unset, the stored ones
in TEST (eval()) and the batch's in TRAIN (train()). With batch statistics the biased
batch variance normalises, and the stored blobs are updated as Caffe does::

    s'  = s * maf + 1
    b0' = b0 * maf + batch_mean
    b1' = b1 * maf + m / (m - 1) * batch_var      (m = count / C; factor 1 when m == 1)

The torch module keeps the normalised ``running_mean``, ``running_var`` and the
``scale_factor`` s as buffers (none learnable), so that update is exact.
"""

from __future__ import annotations

import numpy as np

from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer, lazy


@register
class BatchNorm(ElementwiseLayer):
    """Caffe ``BatchNorm`` (statistics only)."""

    type = "BatchNorm"
    min_bottom_rank = 1  # batch_norm_layer.cpp reads shape(0) (channels: shape(1) or 1)

    def setup(self) -> None:
        p = self.param.batch_norm_param
        self.use_global_stats = bool(p.use_global_stats) if p.HasField("use_global_stats") else None
        self.maf = float(p.moving_average_fraction)
        self.eps = float(p.eps)
        if self.eps <= 0:
            raise self.error(f"eps must be positive, got {self.eps}")

    @property
    def phase_dependent(self) -> bool:
        return self.use_global_stats is None

    @staticmethod
    def _channels(bottom_shapes) -> int:
        s = bottom_shapes[0]
        return 1 if len(s) == 1 else int(s[1])

    def param_shapes(self, bottom_shapes):
        c = self._channels(bottom_shapes)
        return [(c,), (c,), (1,)]

    def param_names(self):
        return ["running_mean", "running_var", "scale_factor"]

    def learnable(self):
        return [False, False, False]

    def params_to_torch(self, blobs, bottom_shapes):
        raw = super().params_to_torch(blobs, bottom_shapes)
        s = float(raw["scale_factor"][0])
        inv = np.float32(0 if s == 0 else 1 / s)
        return {"running_mean": raw["running_mean"] * inv,
                "running_var": raw["running_var"] * inv,
                "scale_factor": raw["scale_factor"]}

    def torch_to_params(self, tensors, bottom_shapes):
        s = np.asarray(tensors["scale_factor"], dtype=np.float32).reshape(1)
        return super().torch_to_params({"running_mean": np.asarray(tensors["running_mean"]) * s[0],
                                       "running_var": np.asarray(tensors["running_var"]) * s[0],
                                       "scale_factor": s}, bottom_shapes)

    def build_module(self, bottom_shapes):
        return _torch().CaffeBatchNorm(self._channels(bottom_shapes), len(bottom_shapes[0]),
                                       self.eps, self.maf, self.use_global_stats)


    def export_fused(self, module, after, after_module):
        """With stored statistics on an N, C, ... blob, followed by a Scale with a learned
        per-channel scale: one per-channel affine op, ``(x - mean) / sqrt(var + eps) *
        scale + bias`` (:class:`fcnkit.layers._export_ops.BatchNormScaleExport`; ONNX: one
        BatchNormalization node with scale and bias instead of BatchNormalization, Mul and
        Add). None otherwise (batch statistics, a 1-D blob, another layer after it)."""
        from fcnkit.layers.scale import Scale

        if not isinstance(after, Scale) or not isinstance(module, _torch().CaffeBatchNorm):
            return None
        if module.use_global_stats is False or module.one_axis:
            return None
        affine = after.per_channel_affine(after_module, module.channels, module.view)
        if affine is None:
            return None
        from fcnkit.layers._export_ops import BatchNormScaleExport

        return BatchNormScaleExport(module, *affine)

    def inference_fused(self, module, after, after_module):
        """With stored statistics on an (N, C, ...) blob: the BatchNorm, its per-channel
        Scale and an in-place activation (ReLU) after them, as one ``F.batch_norm`` call
        and the activation on its output
        (:class:`fcnkit.layers._inference_ops.ops().BatchNormAffine`); built up one
        following layer at a time. None otherwise (batch statistics, a 1-D blob, a Scale
        that is not per channel, any other layer after it)."""
        from fcnkit.layers._inference_ops import ops
        from fcnkit.layers.scale import Scale

        fused = ops().BatchNormAffine
        if isinstance(module, _torch().CaffeBatchNorm):
            if module.use_global_stats is False or module.one_axis:
                return None
            module = fused(module)
        if not isinstance(module, fused) or module.act is not None:
            return None
        bn = module.bn
        if isinstance(after, Scale):
            if module.scale is not None or after.per_channel_affine(
                    after_module, bn.channels, bn.view) is None:
                return None
            return fused(bn, after_module)
        act = after.inplace_activation(after_module)
        return None if act is None else fused(bn, module.scale, act)


@lazy
def _torch():
    import types

    import torch
    import torch.nn.functional as F

    class CaffeBatchNorm(torch.nn.Module):
        """Caffe's BatchNorm; see the module docstring of fcnkit.layers.batch_norm.

        Every use of a buffer is an op that also takes the input (or a value derived
        from it), so that torch.fx records buffer reads instead of baking their values.
        """

        def __init__(self, channels, ndim, eps, maf, use_global_stats):
            super().__init__()
            self.channels, self.eps, self.maf = channels, eps, maf
            self.use_global_stats = use_global_stats
            self.one_axis = ndim == 1  # Caffe: one channel
            self.view = (channels,) + (1,) * (ndim - 2) if ndim > 1 else (1,)
            self.dims = tuple(i for i in range(ndim) if i != 1) if ndim > 1 else (0,)
            self.register_buffer("running_mean", torch.zeros(channels))
            self.register_buffer("running_var", torch.zeros(channels))
            self.register_buffer("scale_factor", torch.zeros(1))

        def forward(self, x):
            use_global = (not self.training) if self.use_global_stats is None else self.use_global_stats
            if use_global:
                # (x - mean) / sqrt(var + eps) with the stored statistics
                x2 = x.unsqueeze(1) if self.one_axis else x
                y = F.batch_norm(x2, self.running_mean, self.running_var, None, None,
                                 False, 0.0, self.eps)
                return y.squeeze(1) if self.one_axis else y
            mean = x.mean(dim=self.dims)
            var = torch.square(x - mean.view(self.view)).mean(dim=self.dims)
            self._update(mean.detach(), var.detach(), x.numel() // self.channels)
            return (x - mean.view(self.view)) / torch.sqrt(var.view(self.view) + self.eps)

        @torch.no_grad()
        def _update(self, mean, var, m):
            # m / (m - 1), or 1 when m == 1 (no Python branch: m may be an fx Proxy)
            correction = m / (m - 1 + (m == 1))
            s_new = torch.add(torch.ones_like(mean[:1]), self.scale_factor, alpha=self.maf)
            b0 = torch.addcmul(mean, self.running_mean, self.scale_factor, value=self.maf)
            b1 = torch.addcmul(var * correction, self.running_var, self.scale_factor, value=self.maf)
            self.running_mean.copy_(b0 / s_new)
            self.running_var.copy_(b1 / s_new)
            self.scale_factor.copy_(s_new)

        def extra_repr(self):
            return (f"{self.channels}, eps={self.eps}, moving_average_fraction={self.maf}, "
                    f"use_global_stats={self.use_global_stats}")

    return types.SimpleNamespace(CaffeBatchNorm=CaffeBatchNorm)
