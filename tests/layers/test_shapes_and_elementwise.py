"""Concat, Slice, Split, Silence, Flatten, Reshape, Tile, Eltwise, Scale, Bias and the
element-wise activations: shapes and values against their Caffe formulas."""

import math

import numpy as np
import pytest

from fcnkit.errors import NetDefinitionError, ShapeError
from fcnkit.layers import IDENTITY, NoCoordMap

from ._util import make, rand, run


def test_concat():
    layer = make('type: "Concat" bottom: "a" bottom: "b" top: "c"')
    a, b = rand(2, 3, 4, 4), rand(2, 5, 4, 4, seed=1)
    assert layer.output_shapes([a.shape, b.shape]) == [(2, 8, 4, 4)]
    np.testing.assert_array_equal(run(layer, a, b), np.concatenate([a, b], 1))
    assert layer.coord_map() == IDENTITY
    legacy = make('type: "Concat" bottom: "a" bottom: "b" top: "c" concat_param { concat_dim: 0 }')
    assert legacy.output_shapes([(2, 3), (4, 3)]) == [(6, 3)]
    with pytest.raises(ShapeError, match="'b'"):
        layer.output_shapes([(2, 3, 4, 4), (2, 3, 5, 4)])
    with pytest.raises(NetDefinitionError, match="not both"):
        make('type: "Concat" bottom: "a" top: "c" concat_param { axis: 1 concat_dim: 1 }')
    with pytest.raises(NoCoordMap):
        make('type: "Concat" bottom: "a" bottom: "b" top: "c" concat_param { axis: 3 }').coord_map()


def test_slice():
    x = rand(2, 6, 3)
    layer = make('type: "Slice" bottom: "x" top: "a" top: "b" top: "c" slice_param { slice_point: 1 slice_point: 4 }')
    assert layer.output_shapes([x.shape]) == [(2, 1, 3), (2, 3, 3), (2, 2, 3)]
    for got, want in zip(run(layer, x), np.split(x, [1, 4], axis=1)):
        np.testing.assert_array_equal(got, want)
    equal = make('type: "Slice" bottom: "x" top: "a" top: "b" slice_param { axis: -1 }')
    with pytest.raises(ShapeError, match="evenly"):
        equal.output_shapes([x.shape])
    equal = make('type: "Slice" bottom: "x" top: "a" top: "b" top: "c" slice_param { slice_dim: 1 }')
    assert equal.output_shapes([x.shape]) == [(2, 2, 3)] * 3
    with pytest.raises(NetDefinitionError, match="slice_points"):
        make('type: "Slice" bottom: "x" top: "a" top: "b" slice_param { slice_point: 1 slice_point: 2 }')


def test_split_and_silence():
    x = rand(1, 2, 3)
    split = make('type: "Split" bottom: "x" top: "a" top: "b"')
    assert split.output_shapes([x.shape]) == [x.shape, x.shape]
    a, b = run(split, x)
    np.testing.assert_array_equal(a, x)
    np.testing.assert_array_equal(b, x)
    silence = make('type: "Silence" bottom: "x" bottom: "y"')
    assert silence.output_shapes([x.shape, x.shape]) == []
    assert silence.build_module([x.shape, x.shape])() == ()


@pytest.mark.parametrize("params,shape,want", [
    ("", (2, 3, 4, 5), (2, 60)),
    ("axis: 2", (2, 3, 4, 5), (2, 3, 20)),
    ("axis: 1 end_axis: 2", (2, 3, 4, 5), (2, 12, 5)),
    ("axis: -3 end_axis: -2", (2, 3, 4, 5), (2, 12, 5)),
    ("axis: 1 end_axis: 0", (2, 3), (2, 1, 3)),
])
def test_flatten(params, shape, want):
    layer = make(f'type: "Flatten" bottom: "x" top: "y" flatten_param {{ {params} }}')
    x = rand(*shape)
    assert layer.output_shapes([shape]) == [want]
    np.testing.assert_array_equal(run(layer, x), x.reshape(want))


@pytest.mark.parametrize("params,shape,want", [
    ("shape { dim: 0 dim: -1 }", (2, 3, 4), (2, 12)),
    ("shape { dim: 0 dim: 2 dim: -1 dim: 0 }", (2, 6, 5, 3), (2, 2, 15, 3)),
    ("shape { dim: -1 } axis: 1", (2, 3, 4), (2, 12)),
    ("shape { dim: 2 dim: 2 } axis: 1 num_axes: 1", (3, 4, 5), (3, 2, 2, 5)),
    ("shape { dim: 1 } axis: -1", (3, 4), (3, 4, 1)),
    ("shape { dim: 1 } axis: 0 num_axes: 0", (3, 4), (1, 3, 4)),
])
def test_reshape(params, shape, want):
    layer = make(f'type: "Reshape" bottom: "x" top: "y" reshape_param {{ {params} }}')
    x = rand(*shape)
    assert layer.output_shapes([shape]) == [want]
    np.testing.assert_array_equal(run(layer, x), x.reshape(want))


def test_reshape_errors():
    with pytest.raises(NetDefinitionError, match="more than one -1"):
        make('type: "Reshape" bottom: "x" top: "y" reshape_param { shape { dim: -1 dim: -1 } }')
    with pytest.raises(ShapeError, match="cannot be reshaped"):
        make('type: "Reshape" bottom: "x" top: "y" reshape_param { shape { dim: 5 dim: -1 } }').output_shapes([(2, 3)])
    with pytest.raises(NetDefinitionError, match="in place"):
        make('type: "Reshape" bottom: "x" top: "x" reshape_param { shape { dim: -1 } }')


def test_tile():
    layer = make('type: "Tile" bottom: "x" top: "y" tile_param { axis: 1 tiles: 3 }')
    x = rand(2, 2, 3)
    assert layer.output_shapes([x.shape]) == [(2, 6, 3)]
    # Caffe copies the whole block of axes >= axis, tiles times
    want = np.stack([np.concatenate([x[n]] * 3, 0) for n in range(2)])
    np.testing.assert_array_equal(run(layer, x), want)
    with pytest.raises(NetDefinitionError, match="tiles"):
        make('type: "Tile" bottom: "x" top: "y"')


def test_eltwise():
    a, b, c = rand(2, 3, 4, seed=1), rand(2, 3, 4, seed=2), rand(2, 3, 4, seed=3)
    total = make('type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "y" eltwise_param { coeff: 1 coeff: -2 coeff: 0.5 }')
    np.testing.assert_allclose(run(total, a, b, c), a - 2 * b + 0.5 * c, rtol=1e-6)
    prod = make('type: "Eltwise" bottom: "a" bottom: "b" top: "y" eltwise_param { operation: PROD }')
    np.testing.assert_allclose(run(prod, a, b), a * b, rtol=1e-6)
    mx = make('type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "y" eltwise_param { operation: MAX }')
    np.testing.assert_array_equal(run(mx, a, b, c), np.maximum(np.maximum(a, b), c))
    with pytest.raises(ShapeError, match="equal shapes"):
        prod.output_shapes([(2, 3), (2, 4)])
    with pytest.raises(NetDefinitionError, match="SUM"):
        make('type: "Eltwise" bottom: "a" bottom: "b" top: "y" eltwise_param { operation: MAX coeff: 1 coeff: 1 }')
    with pytest.raises(NetDefinitionError, match="one per bottom"):
        make('type: "Eltwise" bottom: "a" bottom: "b" top: "y" eltwise_param { coeff: 1 }')


@pytest.mark.parametrize("params,shape,blob", [
    ("", (2, 3, 4, 5), (3,)),
    ("axis: 1 num_axes: 2", (2, 3, 4, 5), (3, 4)),
    ("axis: -2 num_axes: -1", (2, 3, 4, 5), (4, 5)),
    ("axis: 0 num_axes: 0", (2, 3, 4, 5), ()),
    ("bias_term: true", (2, 3, 4, 5), (3,)),
])
def test_scale_learned(params, shape, blob):
    layer = make(f'type: "Scale" bottom: "x" top: "y" scale_param {{ {params} }}')
    x = rand(*shape)
    shapes = layer.param_shapes([shape])
    assert shapes[0] == blob
    blobs = [rand(*s, seed=i + 1) for i, s in enumerate(shapes)]
    a = layer.axis if layer.axis >= 0 else layer.axis + len(shape)
    view = blob + (1,) * (len(shape) - a - len(blob)) if blob else ()
    want = x * blobs[0].reshape(view)
    if len(blobs) > 1:
        want = want + blobs[1].reshape(view)
    np.testing.assert_allclose(run(layer, x, blobs=blobs), want, rtol=1e-6)
    f = layer.fillers()[0]
    assert (f.type, f.value) == ("constant", 1.0)


def test_scale_and_bias_two_bottoms():
    x, s = rand(2, 3, 4, 5), rand(2, 3, seed=1)
    scale = make('type: "Scale" bottom: "x" bottom: "s" top: "y" scale_param { axis: 0 bias_term: true }')
    assert scale.param_names() == ["bias"] and scale.param_shapes([x.shape, s.shape]) == [(2, 3)]
    b = rand(2, 3, seed=2)
    np.testing.assert_allclose(run(scale, x, s, blobs=[b]), x * s[..., None, None] + b[..., None, None], rtol=1e-6)
    assert scale.coord_bottoms() == [0]
    with pytest.raises(ShapeError, match="does not match"):
        scale.output_shapes([x.shape, (3, 2)])
    bias = make('type: "Bias" bottom: "x" bottom: "b" top: "y"')
    np.testing.assert_allclose(run(bias, x, rand(3, 4, seed=3)), x + rand(3, 4, seed=3)[..., None], rtol=1e-6)
    learned = make('type: "Bias" bottom: "x" top: "y" bias_param { num_axes: -1 }')
    assert learned.param_shapes([x.shape]) == [(3, 4, 5)] and learned.fillers() == [None]


def _np_sigmoid(x):
    return 1 / (1 + np.exp(-x.astype(np.float64)))


ACTIVATIONS = [
    ('type: "ReLU"', lambda x: np.maximum(x, 0)),
    ('type: "ReLU" relu_param { negative_slope: 0.1 }', lambda x: np.maximum(x, 0) + 0.1 * np.minimum(x, 0)),
    ('type: "ELU" elu_param { alpha: 0.5 }', lambda x: np.where(x > 0, x, 0.5 * (np.exp(x) - 1))),
    ('type: "Sigmoid"', _np_sigmoid),
    ('type: "TanH"', np.tanh),
    ('type: "AbsVal"', np.abs),
    ('type: "BNLL"', lambda x: np.where(x > 0, x + np.log1p(np.exp(-x)), np.log1p(np.exp(x)))),
    ('type: "Power" power_param { power: 2 scale: 0.5 shift: 3 }', lambda x: (3 + 0.5 * x) ** 2),
    ('type: "Power" power_param { power: 0 scale: 2 }', lambda x: np.ones_like(x)),
    ('type: "Power" power_param { power: 2 scale: 0 shift: 3 }', lambda x: np.full_like(x, 9)),
    ('type: "Exp"', np.exp),
    ('type: "Exp" exp_param { base: 2 scale: 0.5 shift: 1 }', lambda x: 2.0 ** (1 + 0.5 * x)),
    ('type: "Log" log_param { shift: 3 }', lambda x: np.log(3 + x)),
    ('type: "Log" log_param { base: 10 scale: 2 shift: 7 }', lambda x: np.log10(7 + 2 * x)),
    ('type: "Threshold" threshold_param { threshold: 0.25 }', lambda x: (x > 0.25).astype(np.float32)),
    ('type: "Clip" clip_param { min: -0.5 max: 0.25 }', lambda x: np.maximum(-0.5, np.minimum(x, 0.25))),
    ('type: "Clip" clip_param { min: 0.5 max: 0.25 }', lambda x: np.maximum(0.5, np.minimum(x, 0.25))),
    ('type: "Swish"', lambda x: x * _np_sigmoid(x)),
    ('type: "Swish" swish_param { beta: 2 }', lambda x: x * _np_sigmoid(2 * x)),
    ('type: "Dropout" dropout_param { dropout_ratio: 0.3 }', lambda x: x),
]


@pytest.mark.parametrize("text,fn", ACTIVATIONS)
def test_activations(text, fn):
    layer = make(text + ' bottom: "x" top: "x"')
    x = rand(2, 3, 4, 5, low=-3, high=3)
    assert layer.output_shapes([x.shape]) == [x.shape]
    assert layer.coord_map() == IDENTITY
    assert layer.flops([x.shape], [x.shape]) == 0
    np.testing.assert_allclose(run(layer, x), fn(x), rtol=1e-5, atol=1e-6)


def test_prelu():
    x = rand(2, 3, 4, 5, low=-3, high=3)
    layer = make('type: "PReLU" bottom: "x" top: "y"')
    assert layer.param_shapes([x.shape]) == [(3,)]
    f = layer.fillers()[0]
    assert (f.type, f.value) == ("constant", pytest.approx(0.25))
    a = rand(3, seed=1)
    np.testing.assert_allclose(run(layer, x, blobs=[a]), np.maximum(x, 0) + a.reshape(3, 1, 1) * np.minimum(x, 0),
                               rtol=1e-6)
    shared = make('type: "PReLU" bottom: "x" top: "y" prelu_param { channel_shared: true }')
    assert shared.param_shapes([x.shape]) == [()]  # Caffe's 0-axis blob
    np.testing.assert_allclose(run(shared, x, blobs=[np.float32(0.3)]), np.where(x > 0, x, 0.3 * x), rtol=1e-6)
    assert shared.torch_to_params({"weight": np.array([0.3], np.float32)}, [x.shape])[0].shape == ()


def test_dropout_train_scales_kept_units():
    import torch

    layer = make('type: "Dropout" bottom: "x" top: "x" dropout_param { dropout_ratio: 0.75 }')
    assert layer.phase_dependent
    mod = layer.build_module([(1000,)])
    mod.train(True)
    torch.manual_seed(0)
    y = mod(torch.ones(1000)).numpy()
    assert set(np.unique(y)) <= {0.0, 4.0}
    assert 0.15 < (y > 0).mean() < 0.35
    with pytest.raises(NetDefinitionError, match="dropout_ratio"):
        make('type: "Dropout" bottom: "x" top: "x" dropout_param { dropout_ratio: 1 }')


def test_bad_activation_parameters():
    with pytest.raises(NetDefinitionError, match="'l' \\(Exp"):
        make('type: "Exp" bottom: "x" top: "y" exp_param { base: -2 }')
    with pytest.raises(NetDefinitionError, match="min and max"):
        make('type: "Clip" bottom: "x" top: "y" clip_param { min: 0 }')
    assert math.isclose(make('type: "Log" bottom: "x" top: "y" log_param { base: 2 }').base_scale, 1 / math.log(2))
