"""WindowData: Caffe src/caffe/layers/window_data_layer.cpp (R-CNN style windows).

Tops: data ``(batch_size, 3, crop_size, crop_size)`` and label ``(batch_size,)``;
``transform_param.crop_size`` must be positive.
"""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers.input import InputLayer, crop_size


@register
class WindowData(InputLayer):
    """Caffe ``WindowData``."""

    type = "WindowData"
    tops = (2, 2)
    shape_source = "window_data_param.batch_size is not set"

    def setup(self) -> None:
        self._check_tops(2, 2)
        p = self.param.window_data_param
        self.crop = crop_size(self.param, p)
        if self.crop <= 0:
            raise self.error("transform_param.crop_size must be positive")
        self.batch_size = int(p.batch_size) or None

    def partial_shapes(self):
        n = self.batch_size
        return [(n, 3, self.crop, self.crop), (n,)]
