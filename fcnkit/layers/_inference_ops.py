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

    return types.SimpleNamespace(BatchNormAffine=BatchNormAffine, ConvAct=ConvAct,
                                 PackedConv=_packed_conv_class(torch))


#: oneDNN post-op (``attr`` of ``torch.ops.mkldnn._convolution_pointwise``) for each in-place
#: activation module a Convolution may be fused with: (attr, scalars from the module).
_POST_OPS = {"ReLU": lambda m: ("relu", []),
             "LeakyReLU": lambda m: ("leaky_relu", [float(m.negative_slope)])}


def _packed_conv_class(torch):
    """The prepacked convolution's class (see its docstring)."""
    import torch.nn.functional as F

    class PackedConv(torch.nn.Module):
        """A ``Conv2d`` (optionally followed by an in-place ReLU / LeakyReLU) run by oneDNN on
        a weight reordered once into oneDNN's blocked layout, with the activation as a
        oneDNN post-op: one kernel call per forward and no weight reorder in it.

        Why: torch's eager ``conv2d`` on a channels-last (N, C, H, W) input copies the
        (Cout, Cin/g, kh, kw) weight to channels-last and oneDNN reorders it again, on every
        call (FCN-8s at 512x512: fc6's 411 MB weight twice per forward), and the ReLU is a
        second pass over the top. ONNX Runtime prepacks its weights once; this does the same
        (what ``torch.compile``'s CPU freezing pass does, through the same operators:
        ``torch._C._nn.mkldnn_reorder_conv2d_weight`` and
        ``torch.ops.mkldnn._convolution_pointwise``).

        The packed weight is made on the first call and again whenever the convolution's
        weight is replaced, changed in place (its version counter) or the input size
        changes, so it never goes stale. Calls the packed kernel cannot serve run the plain
        ``conv`` (+ activation): inputs that are not float32, CPU and channels-last
        contiguous, weights that are not float32 CPU tensors (or are inference tensors,
        whose in-place changes cannot be seen), or autograd recording (the packed operator
        has no backward). Costs one extra copy of the weight in memory
        (FCN-8s: 512 MiB).

        Input (N, C, H, W) float32 in ``torch.channels_last`` memory; output (N, Cout, H',
        W'), channels-last. Values: the same oneDNN kernels as the plain path (tests: equal
        to the unfused module to <= 1e-5 relative).
        """

        def __init__(self, conv, act=None):
            super().__init__()
            self.conv, self.act = conv, act
            self.attr, self.scalars = ("none", []) if act is None else _POST_OPS[type(act).__name__](act)
            self._packed = None  # (weight, weight version, input shape, packed weight)

        def __getstate__(self):  # copies (deepcopy, pickle) repack on first use
            state = dict(super().__getstate__())
            state["_packed"] = None
            return state

        def _plain(self, x):
            c = self.conv
            y = F.conv2d(x, c.weight, c.bias, c.stride, c.padding, c.dilation, c.groups)
            return y if self.act is None else self.act(y)

        def _servable(self, x) -> bool:
            w = self.conv.weight
            return (x.dtype == torch.float32 and w.dtype == torch.float32 and x.device.type == "cpu"
                    and w.device.type == "cpu" and x.dim() == 4
                    and x.is_contiguous(memory_format=torch.channels_last)
                    and not w.is_inference()  # no version counter: a change would go unseen
                    and not (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad)))

        def _packed_weight(self, x):
            c, cached = self.conv, self._packed
            w = c.weight
            if cached is None or cached[0] is not w or cached[1] != w._version or cached[2] != x.shape:
                with torch.no_grad():
                    packed = torch._C._nn.mkldnn_reorder_conv2d_weight(
                        w.detach().to_mkldnn(), list(c.padding), list(c.stride), list(c.dilation),
                        c.groups, list(x.shape))
                cached = self._packed = (w, w._version, x.shape, packed)
            return cached[3]

        def forward(self, x):
            if not self._servable(x):
                return self._plain(x)
            c = self.conv
            return torch.ops.mkldnn._convolution_pointwise(
                x, self._packed_weight(x), c.bias, list(c.padding), list(c.stride), list(c.dilation),
                c.groups, self.attr, self.scalars, "")

    return PackedConv


def packed_conv(module):
    """A :class:`PackedConv` for ``module`` (a ``Conv2d``, or a ``ConvAct`` of one and a
    ReLU / LeakyReLU), or None when it has no packed form."""
    conv, act = (module.conv, module.act) if isinstance(module, ops().ConvAct) else (module, None)
    if not _packable_conv(conv) or (act is not None and type(act).__name__ not in _POST_OPS):
        return None
    return ops().PackedConv(conv, act)


def _packable_conv(module) -> bool:
    """Whether ``module`` is a plain ``torch.nn.Conv2d`` (zero padding given as numbers) that
    :class:`PackedConv` can run, on a torch built with oneDNN."""
    import torch

    return (type(module) is torch.nn.Conv2d and module.padding_mode == "zeros"
            and not isinstance(module.padding, str) and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))
