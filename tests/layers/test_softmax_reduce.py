"""Softmax, MVN, Reduction, ArgMax against Caffe's loops."""

import numpy as np
import pytest

from fcnkit.errors import ShapeError
from fcnkit.layers import IDENTITY, NoCoordMap

from . import caffe_reference as ref
from ._util import make, rand, run


@pytest.mark.parametrize("axis", [1, -1, 2, 0])
def test_softmax(axis):
    layer = make(f'type: "Softmax" bottom: "x" top: "y" softmax_param {{ axis: {axis} }}')
    x = rand(2, 5, 3, 4, low=-5, high=5)
    np.testing.assert_allclose(run(layer, x), ref.softmax(x, axis), rtol=1e-5, atol=1e-7)


def test_softmax_default_axis_is_channels():
    layer = make('type: "Softmax" bottom: "x" top: "y"')
    x = rand(2, 5, 3, 4, low=-5, high=5)
    y = run(layer, x)
    np.testing.assert_allclose(y.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(y, ref.softmax(x, 1), rtol=1e-5, atol=1e-7)
    assert layer.coord_map() == IDENTITY
    with pytest.raises(NoCoordMap):
        make('type: "Softmax" bottom: "x" top: "y" softmax_param { axis: 2 }').coord_map()


@pytest.mark.parametrize("params,kw", [
    ("", {}),
    ("across_channels: true", {"across_channels": True}),
    ("normalize_variance: false", {"normalize_variance": False}),
    ("eps: 0.5", {"eps": 0.5}),
])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 4)])
def test_mvn(params, kw, shape):
    layer = make(f'type: "MVN" bottom: "x" top: "y" mvn_param {{ {params} }}')
    x = rand(*shape, low=-2, high=3)
    np.testing.assert_allclose(run(layer, x), ref.mvn(x, **kw), rtol=1e-5, atol=1e-5)


def test_mvn_eps_after_sqrt():
    # a constant map: variance 0, so y = 0 / (0 + eps) = 0, not NaN; a two-valued map
    # [-1, 1] has std 1: y = x / (1 + eps)
    layer = make('type: "MVN" bottom: "x" top: "y" mvn_param { eps: 0.25 }')
    x = np.array([[[[-1.0, 1.0]], [[3.0, 3.0]]]], np.float32)
    np.testing.assert_allclose(run(layer, x), [[[[-0.8, 0.8]], [[0.0, 0.0]]]], rtol=1e-6)


@pytest.mark.parametrize("op", ["SUM", "ASUM", "SUMSQ", "MEAN"])
@pytest.mark.parametrize("axis,coeff", [(0, 1.0), (1, 2.0), (-1, 0.5), (2, -1.0)])
def test_reduction(op, axis, coeff):
    layer = make(f'type: "Reduction" bottom: "x" top: "y" reduction_param {{ operation: {op} axis: {axis} coeff: {coeff} }}')
    x = rand(2, 3, 4, 2)
    want = ref.reduction(x, op, axis, coeff)
    assert layer.output_shapes([x.shape]) == [want.shape]
    np.testing.assert_allclose(run(layer, x), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("params,kw", [
    ("", {}),
    ("top_k: 3", {"top_k": 3}),
    ("out_max_val: true top_k: 2", {"out_max_val": True, "top_k": 2}),
    ("axis: 1", {"axis": 1}),
    ("axis: 1 top_k: 2 out_max_val: true", {"axis": 1, "top_k": 2, "out_max_val": True}),
    ("axis: -1 top_k: 2", {"axis": -1, "top_k": 2}),
])
@pytest.mark.parametrize("shape", [(2, 4, 3, 2), (3, 5)])
def test_argmax(params, kw, shape):
    layer = make(f'type: "ArgMax" bottom: "x" top: "y" argmax_param {{ {params} }}')
    x = rand(*shape)
    x[0].flat[:3] = 0.5  # ties: Caffe ranks the larger index first
    want = ref.argmax(x, **kw)
    assert layer.output_shapes([x.shape]) == [want.shape]
    np.testing.assert_array_equal(run(layer, x), want.astype(np.float32))


def test_argmax_shapes_and_errors():
    layer = make('type: "ArgMax" bottom: "x" top: "y" argmax_param { top_k: 2 out_max_val: true }')
    assert layer.output_shapes([(4, 10)]) == [(4, 2, 2)]
    assert layer.output_shapes([(4, 3, 5, 5)]) == [(4, 2, 2, 1)]
    with pytest.raises(ShapeError, match="top_k"):
        make('type: "ArgMax" bottom: "x" top: "y" argmax_param { axis: 1 top_k: 4 }').output_shapes([(1, 3)])
