"""ImageData: Caffe src/caffe/layers/image_data_layer.cpp (images listed in a text file).

Tops: data ``(batch_size, C, H, W)`` and label ``(batch_size,)``. C = 3 when ``is_color``
(default) else 1; H, W = ``transform_param.crop_size`` when set, else ``new_height`` /
``new_width`` when set (both or neither), else the first image's size (not declared).
``batch_size`` defaults to 1.
"""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers.input import InputLayer, crop_size


@register
class ImageData(InputLayer):
    """Caffe ``ImageData``: images and labels listed in ``image_data_param.source``."""

    type = "ImageData"
    tops = (2, 2)
    shape_source = "the first image of image_data_param.source decides it"

    def setup(self) -> None:
        self._check_tops(2, 2)
        p = self.param.image_data_param
        if p.batch_size <= 0:
            raise self.error("image_data_param.batch_size must be positive")
        if (p.new_height == 0) != (p.new_width == 0):
            raise self.error("new_height and new_width must be set together")
        self.batch_size = int(p.batch_size)
        self.channels = 3 if p.is_color else 1
        crop = crop_size(self.param, p)
        if crop:
            self.hw = (crop, crop)
        elif p.new_height:
            self.hw = (int(p.new_height), int(p.new_width))
        else:
            self.hw = (None, None)

    def partial_shapes(self):
        return [(self.batch_size, self.channels, *self.hw), (self.batch_size,)]
