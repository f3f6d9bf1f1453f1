"""Data: Caffe src/caffe/layers/data_layer.cpp (LevelDB/LMDB of Datum records).

Tops: data ``(batch_size, C, H, W)`` and, optionally, label ``(batch_size,)``. C, and H, W
unless ``transform_param.crop_size`` is set, come from the first Datum in the database,
so they are not declared (give them with ``--input-shape``).
"""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers.input import InputLayer, crop_size


@register
class Data(InputLayer):
    """Caffe ``Data``: batches of Datum records from a database."""

    type = "Data"
    tops = (1, 2)
    shape_source = "the database (data_param.source) decides it"

    def setup(self) -> None:
        self._check_tops(1, 2)
        p = self.param.data_param
        self.batch_size = int(p.batch_size) or None
        self.crop = crop_size(self.param, p) or None

    def partial_shapes(self):
        n = self.batch_size
        shapes = [(n, None, self.crop, self.crop)]
        if len(self.param.top) > 1:
            shapes.append((n,))
        return shapes
