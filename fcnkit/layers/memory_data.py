"""MemoryData: Caffe src/caffe/layers/memory_data_layer.cpp (arrays handed over in memory).

Tops: data ``(batch_size, channels, height, width)`` and label ``(batch_size,)``; all four
parameters must be positive.
"""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers.input import InputLayer


@register
class MemoryData(InputLayer):
    """Caffe ``MemoryData``."""

    type = "MemoryData"
    tops = (2, 2)

    def setup(self) -> None:
        self._check_tops(2, 2)
        p = self.param.memory_data_param
        dims = (p.batch_size, p.channels, p.height, p.width)
        if min(dims) <= 0:
            raise self.error("batch_size, channels, height and width must be set and positive "
                             "in memory_data_param")
        self.shape = tuple(int(d) for d in dims)

    def partial_shapes(self):
        return [self.shape, (self.shape[0],)]
