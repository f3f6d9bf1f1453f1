"""PReLU: Caffe src/caffe/layers/prelu_layer.cpp.

``y = max(x, 0) + a_c * min(x, 0)`` with one slope per channel (axis 1), or one for all
with ``channel_shared``. The bottom needs at least 2 axes. Caffe's blob has shape
``(C,)``, or ``()`` (a 0-axis blob) when channel-shared; the torch PReLU ``weight`` is
``(C,)`` or ``(1,)``. Filler: ``prelu_param.filler``, default constant 0.25.
"""

from __future__ import annotations

import numpy as np

from fcnkit.errors import ShapeError
from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer, new_filler


@register
class PReLU(ElementwiseLayer):
    """Caffe ``PReLU``: learnable leaky ReLU slopes."""

    type = "PReLU"

    def setup(self) -> None:
        self.channel_shared = bool(self.param.prelu_param.channel_shared)

    def _channels(self, bottom_shapes) -> int:
        s = bottom_shapes[0]
        if len(s) < 2:
            raise self.error(f"bottom has shape {s}; PReLU needs at least 2 axes (N, C, ...)",
                             ShapeError)
        return s[1]

    def output_shapes(self, bottom_shapes):
        self._channels(bottom_shapes)
        return [tuple(bottom_shapes[0])]

    def param_shapes(self, bottom_shapes):
        return [()] if self.channel_shared else [(self._channels(bottom_shapes),)]

    def param_names(self):
        return ["weight"]

    def fillers(self):
        p = self.param.prelu_param
        return [p.filler if p.HasField("filler") else new_filler(p.filler, "constant", 0.25)]

    def params_to_torch(self, blobs, bottom_shapes):
        out = super().params_to_torch(blobs, bottom_shapes)
        out["weight"] = out["weight"].reshape(-1)
        return out

    def torch_to_params(self, tensors, bottom_shapes):
        return [np.asarray(tensors["weight"], dtype=np.float32).reshape(self.param_shapes(bottom_shapes)[0])]

    def build_module(self, bottom_shapes):
        import torch

        n = 1 if self.channel_shared else self._channels(bottom_shapes)
        return torch.nn.PReLU(num_parameters=n)
