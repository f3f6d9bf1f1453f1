"""Dropout: Caffe src/caffe/layers/dropout_layer.cpp.

TEST phase: the identity. TRAIN phase: each unit is kept with probability
``1 - dropout_ratio`` and kept units are scaled by ``1 / (1 - dropout_ratio)``:
torch.nn.Dropout(dropout_ratio), which is phase dependent the same way.
"""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers._common import ElementwiseLayer


@register
class Dropout(ElementwiseLayer):
    """Caffe ``Dropout``."""

    type = "Dropout"

    def setup(self) -> None:
        self.ratio = self.dropout_ratio()
        if not 0 <= self.ratio < 1:
            raise self.error(f"dropout_ratio must be in [0, 1), got {self.ratio}")

    def dropout_ratio(self) -> float:
        """The probability of dropping a unit, from the layer's parameters."""
        return float(self.param.dropout_param.dropout_ratio)

    @property
    def phase_dependent(self) -> bool:
        return True

    def build_module(self, bottom_shapes):
        import torch

        return torch.nn.Dropout(self.ratio)
