"""Scale: Caffe src/caffe/layers/scale_layer.cpp.

``y = x * scale (+ bias)``, the scale broadcast from ``axis`` (default 1) of the bottom.
One bottom: the scale is a learned blob of shape ``bottom.shape[axis : axis + num_axes]``
(``num_axes`` default 1; -1 = to the end; 0 = a scalar), filled by ``filler`` (default
constant 1). Two bottoms: the scale is ``bottom[1]``, whose shape must match
``bottom[0]`` from ``axis``. ``bias_term`` (default false) adds a learned bias of the
scale's shape (filler ``bias_filler``, default constant 0), as Caffe's inner Bias layer.

Blobs: ``weight`` (one bottom only) and ``bias`` (with ``bias_term``).
"""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers._broadcast import learned_shape, operand_view
from fcnkit.layers._common import ElementwiseLayer, lazy, new_filler


@register
class Scale(ElementwiseLayer):
    """Caffe ``Scale``: learned or second-bottom multiplier, optional learned bias."""

    type = "Scale"
    bottoms = (1, 2)

    def setup(self) -> None:
        p = self.param.scale_param
        self.axis, self.num_axes = int(p.axis), int(p.num_axes)
        self.bias_term = bool(p.bias_term)
        self.learned = len(self.param.bottom) == 1
        if self.num_axes < -1:
            raise self.error(f"num_axes must be >= 0, or -1 for all axes after axis; got {self.num_axes}")

    def operand_shape(self, bottom_shapes):
        """Shape of the scale (the learned blob, or bottom[1])."""
        if self.learned:
            return learned_shape(self, bottom_shapes[0], self.axis, self.num_axes)
        return tuple(bottom_shapes[1])

    def output_shapes(self, bottom_shapes):
        operand_view(self, bottom_shapes[0], self.operand_shape(bottom_shapes), self.axis)
        return [tuple(bottom_shapes[0])]

    def param_shapes(self, bottom_shapes):
        s = self.operand_shape(bottom_shapes)
        return [s] * len(self.param_names())

    def param_names(self):
        return (["weight"] if self.learned else []) + (["bias"] if self.bias_term else [])

    def fillers(self):
        p = self.param.scale_param
        f = []
        if self.learned:
            f.append(p.filler if p.HasField("filler") else new_filler(p.filler, "constant", 1.0))
        if self.bias_term:
            f.append(p.bias_filler if p.HasField("bias_filler") else None)
        return f

    def coord_bottoms(self):
        """Only bottom 0 carries positions (a second bottom is a broadcast operand)."""
        return [0]

    def per_channel_affine(self, module, channels: int, view: tuple):
        """(weight, bias or None) of the compiled ``module`` when it computes
        ``x * weight + bias`` with a learned scale of ``channels`` values broadcast as
        ``view`` (what a BatchNorm before it needs to fuse), else None."""
        if not isinstance(module, _torch().Scale) or module.weight is None:
            return None
        if module.view != tuple(view) or module.weight.numel() != channels or \
                (module.bias is not None and module.bias.numel() != channels):
            return None
        return module.weight, module.bias

    def build_module(self, bottom_shapes):
        shape = self.operand_shape(bottom_shapes)
        view = operand_view(self, bottom_shapes[0], shape, self.axis)
        return _torch().Scale(shape, view, self.learned, self.bias_term)


@lazy
def _torch():
    import types

    import torch

    class Scale(torch.nn.Module):
        """``x * scale (+ bias)`` with the operand viewed as ``view`` to broadcast."""

        def __init__(self, shape, view, learned, bias_term):
            super().__init__()
            self.view = tuple(view)
            self.weight = torch.nn.Parameter(torch.ones(shape)) if learned else None
            self.bias = torch.nn.Parameter(torch.zeros(shape)) if bias_term else None

        def forward(self, x, scale=None):
            s = self.weight if scale is None else scale
            y = x * s.reshape(self.view)
            if self.bias is not None:
                y = y + self.bias.reshape(self.view)
            return y

    return types.SimpleNamespace(Scale=Scale)
