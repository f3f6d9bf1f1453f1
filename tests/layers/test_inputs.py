"""Input layers: declared shapes, unknown shapes and their error message."""

import pytest

from fcnkit.errors import NetDefinitionError, ShapeError

from ._util import make


def test_input_shapes():
    one = make('type: "Input" top: "data" top: "im_info" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 9 } }')
    assert one.role == "input" and one.bottoms == (0, 0)
    assert one.declared_shapes() == [(1, 3, 8, 9), (1, 3, 8, 9)]
    per_top = make('type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 3 } shape { dim: 4 } }')
    assert per_top.output_shapes([]) == [(2, 3), (4,)]
    none = make('type: "Input" top: "data"')
    assert none.declared_shapes() == [None]
    with pytest.raises(ShapeError, match="--input-shape data=N,C,H,W"):
        none.output_shapes([])
    with pytest.raises(NetDefinitionError, match="2 shapes for 3 tops"):
        make('type: "Input" top: "a" top: "b" top: "c" input_param { shape { dim: 1 } shape { dim: 2 } }')


def test_data_layers():
    data = make('type: "Data" top: "data" top: "label" data_param { batch_size: 64 } '
                'transform_param { crop_size: 227 }')
    assert data.declared_shapes() == [None, (64,)]
    assert data.partial_shapes()[0] == (64, None, 227, 227)
    with pytest.raises(ShapeError, match="top 'data'.*64 x \\? x 227 x 227.*--input-shape data="):
        data.output_shapes([])

    image = make('type: "ImageData" top: "data" top: "label" image_data_param { batch_size: 8 new_height: 32 new_width: 48 }')
    assert image.declared_shapes() == [(8, 3, 32, 48), (8,)]
    gray = make('type: "ImageData" top: "data" top: "label" image_data_param { is_color: false } '
                'transform_param { crop_size: 20 }')
    assert gray.declared_shapes() == [(1, 1, 20, 20), (1,)]
    unsized = make('type: "ImageData" top: "data" top: "label" image_data_param { batch_size: 2 }')
    assert unsized.declared_shapes() == [None, (2,)]
    with pytest.raises(NetDefinitionError, match="together"):
        make('type: "ImageData" top: "data" top: "label" image_data_param { new_height: 3 }')

    mem = make('type: "MemoryData" top: "data" top: "label" memory_data_param { batch_size: 4 channels: 8 height: 5 width: 6 }')
    assert mem.output_shapes([]) == [(4, 8, 5, 6), (4,)]
    with pytest.raises(NetDefinitionError, match="memory_data_param"):
        make('type: "MemoryData" top: "data" top: "label" memory_data_param { batch_size: 4 }')

    window = make('type: "WindowData" top: "data" top: "label" window_data_param { batch_size: 128 } '
                  'transform_param { crop_size: 227 }')
    assert window.declared_shapes() == [(128, 3, 227, 227), (128,)]

    hdf5 = make('type: "HDF5Data" top: "data" top: "label" hdf5_data_param { batch_size: 10 }')
    assert hdf5.declared_shapes() == [None, None]
    with pytest.raises(ShapeError, match="HDF5.*batch size 10"):
        hdf5.output_shapes([])


def test_dummy_data():
    d = make('type: "DummyData" top: "a" top: "b" dummy_data_param { shape { dim: 2 dim: 3 } }')
    assert d.declared_shapes() == [(2, 3), (2, 3)]
    legacy = make('type: "DummyData" top: "a" top: "b" dummy_data_param { num: 5 channels: 3 channels: 1 '
                  'height: 4 width: 6 width: 7 }')
    assert legacy.declared_shapes() == [(5, 3, 4, 6), (5, 1, 4, 7)]
    assert legacy.data_fillers() == [None, None]
    with pytest.raises(NetDefinitionError, match="both"):
        make('type: "DummyData" top: "a" dummy_data_param { num: 1 shape { dim: 1 } }')
    with pytest.raises(NetDefinitionError, match="once per top"):
        make('type: "DummyData" top: "a" top: "b" top: "c" dummy_data_param { shape { dim: 1 } shape { dim: 2 } }')
