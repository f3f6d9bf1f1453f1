"""Embed: Caffe src/caffe/layers/embed_layer.cpp.

A lookup table: each bottom value, truncated to an integer index in
``[0, input_dim)``, selects a row of the weight ``(input_dim, num_output)``; plus the
bias ``(num_output,)`` with ``bias_term`` (default true). Top shape
``bottom.shape + (num_output,)``. No FLOPs (a gather), no coordinate map.
"""

from __future__ import annotations

from fcnkit.layers import Layer, NoCoordMap, register
from fcnkit.layers._common import lazy


@register
class Embed(Layer):
    """Caffe ``Embed``."""

    type = "Embed"

    def setup(self) -> None:
        p = self.param.embed_param
        if not p.num_output:
            raise self.error("embed_param.num_output must be set to a positive number")
        if not p.input_dim:
            raise self.error("embed_param.input_dim must be set to a positive number")
        self.num_output, self.input_dim = int(p.num_output), int(p.input_dim)
        self.bias_term = bool(p.bias_term)

    def output_shapes(self, bottom_shapes):
        return [tuple(bottom_shapes[0]) + (self.num_output,)]

    def param_shapes(self, bottom_shapes):
        shapes = [(self.input_dim, self.num_output)]
        if self.bias_term:
            shapes.append((self.num_output,))
        return shapes

    def param_names(self):
        return ["weight", "bias"] if self.bias_term else ["weight"]

    def fillers(self):
        p = self.param.embed_param
        f = [p.weight_filler if p.HasField("weight_filler") else None]
        if self.bias_term:
            f.append(p.bias_filler if p.HasField("bias_filler") else None)
        return f

    def coord_map(self):
        raise NoCoordMap("Embed looks values up in a table")

    def build_module(self, bottom_shapes):
        return _torch().Embed(self.input_dim, self.num_output, self.bias_term)


@lazy
def _torch():
    import types

    import torch
    import torch.nn.functional as F

    class Embed(torch.nn.Module):
        def __init__(self, input_dim, num_output, bias_term):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(input_dim, num_output))
            self.bias = torch.nn.Parameter(torch.zeros(num_output)) if bias_term else None

        def forward(self, x):
            y = F.embedding(x.long(), self.weight)
            return y + self.bias if self.bias is not None else y

    return types.SimpleNamespace(Embed=Embed)
