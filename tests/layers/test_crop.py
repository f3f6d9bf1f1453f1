"""Crop: default axis, 0 / 1 / per-axis offsets, coordinate map."""

import numpy as np
import pytest

from fcnkit.errors import ShapeError
from fcnkit.layers import CoordMap, NoCoordMap

from . import caffe_reference as ref
from ._util import make, rand, run


def crop(params=""):
    return make(f'type: "Crop" bottom: "a" bottom: "b" top: "c" crop_param {{ {params} }}')


@pytest.mark.parametrize("params,axis,offset,yx", [
    ("", 2, (), (0, 0)),
    ("offset: 3", 2, (3,), (3, 3)),
    ("offset: 2 offset: 1", 2, (2, 1), (2, 1)),
    ("axis: 3 offset: 4", 3, (4,), (0, 4)),
    ("axis: -1 offset: 2", -1, (2,), (0, 2)),
    ("axis: 1 offset: 1 offset: 2 offset: 3", 1, (1, 2, 3), (2, 3)),
])
def test_crop(params, axis, offset, yx):
    layer = crop(params)
    a, b = rand(2, 4, 9, 8), np.zeros((2, 3, 5, 4), np.float32)
    want = ref.crop(a, b.shape, axis, offset)
    assert layer.output_shapes([a.shape, b.shape]) == [want.shape]
    np.testing.assert_array_equal(run(layer, a, b), want)
    assert layer.spatial_offsets() == yx
    assert layer.coord_map() == CoordMap.make((1, 1), (-yx[0], -yx[1]))
    assert layer.coord_bottoms() == [0]


def test_offsets_per_axis():
    assert crop("offset: 5").offsets([(1, 3, 20, 20), (1, 3, 10, 10)]) == [5, 5]
    assert crop("axis: 1 offset: 5").offsets([(1, 3, 20, 20), (1, 3, 10, 10)]) == [5, 5, 5]
    assert crop().offsets([(1, 3, 20, 20), (1, 3, 10, 10)]) == [0, 0]


def test_crop_errors():
    with pytest.raises(ShapeError, match="2 offsets for 3 cropped axes"):
        crop("axis: 1 offset: 1 offset: 2").output_shapes([(1, 3, 9, 9), (1, 3, 5, 5)])
    with pytest.raises(NoCoordMap):
        crop("axis: 1 offset: 1 offset: 2").coord_map()
    with pytest.raises(ShapeError, match="cannot crop axis 3"):
        crop("offset: 1 offset: 5").output_shapes([(1, 3, 9, 9), (1, 3, 5, 5)])
