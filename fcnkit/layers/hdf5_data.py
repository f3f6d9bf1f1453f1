"""HDF5Data: Caffe src/caffe/layers/hdf5_data_layer.cpp.

Each top is the HDF5 dataset of the same name, batched along its first axis:
``(batch_size, *dataset.shape[1:])``. The shapes live in the files listed in
``hdf5_data_param.source``, so none is declared (give them with ``--input-shape``).
"""

from __future__ import annotations

from fcnkit.layers import register
from fcnkit.layers.input import InputLayer


@register
class HDF5Data(InputLayer):
    """Caffe ``HDF5Data``: one top per dataset."""

    type = "HDF5Data"
    shape_source = "the HDF5 files of hdf5_data_param.source decide it"

    def setup(self) -> None:
        self._check_tops(1, None)
        self.batch_size = int(self.param.hdf5_data_param.batch_size) or None
        if self.batch_size:
            self.shape_source = f"{type(self).shape_source} (batch size {self.batch_size})"

    def partial_shapes(self):
        return [None] * len(self.param.top)
