"""Pooling against Caffe's pooling_layer.cpp loops (shapes, clip rule, AVE divisors)."""

import zlib

import numpy as np
import pytest

from fcnkit.errors import NetDefinitionError
from fcnkit.layers import CoordMap

from . import caffe_reference as ref
from ._util import make, rand, run


def pooling(params: str):
    return make(f'type: "Pooling" bottom: "x" top: "y" pooling_param {{ {params} }}')


# (params, input H x W, kernel, stride, pad, ceil)
CASES = [
    ("kernel_size: 3 stride: 2", (6, 6), (3, 3), (2, 2), (0, 0), True),            # ceil, no pad
    ("kernel_size: 3 stride: 2 pad: 1", (7, 7), (3, 3), (2, 2), (1, 1), True),     # ceil, pad
    ("kernel_size: 2 stride: 2 pad: 1", (5, 5), (2, 2), (2, 2), (1, 1), True),     # clip rule fires
    ("kernel_size: 2 stride: 3", (8, 8), (2, 2), (3, 3), (0, 0), True),            # stride > kernel
    ("kernel_size: 1 stride: 3", (5, 5), (1, 1), (3, 3), (0, 0), True),            # empty last window
    ("kernel_size: 2 stride: 3 pad: 1", (8, 7), (2, 2), (3, 3), (1, 1), True),     # stride > kernel, pad
    ("kernel_size: 3 stride: 1 pad: 2", (5, 6), (3, 3), (1, 1), (2, 2), True),     # pad > kernel/2
    ("kernel_size: 3 stride: 2 pad: 2", (6, 5), (3, 3), (2, 2), (2, 2), True),     # pad > kernel/2, ceil
    ("kernel_size: 3 stride: 2 round_mode: FLOOR", (6, 6), (3, 3), (2, 2), (0, 0), False),
    ("kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR", (8, 8), (3, 3), (2, 2), (1, 1), False),
    ("kernel_size: 3 stride: 2 ceil_mode: false", (6, 6), (3, 3), (2, 2), (0, 0), False),
    ("kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0", (7, 6), (3, 2), (2, 1), (1, 0), True),
]


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("params,hw,k,s,p,ceil", CASES)
def test_pooling_matches_caffe(params, hw, k, s, p, ceil, method):
    layer = pooling(f"pool: {method} {params}")
    x = rand(2, 3, *hw, seed=zlib.crc32(params.encode()))
    want = ref.pool(x, k, s, p, method, ceil)
    assert layer.output_shapes([x.shape]) == [want.shape]
    np.testing.assert_allclose(run(layer, x), want, rtol=1e-5, atol=1e-5)


def test_known_sizes():
    # ResNet-50 pool1: 112 -> 56 with ceil (k3 s2 p0 gives ceil(109/2)+1 = 56)
    assert pooling("kernel_size: 3 stride: 2").output_shapes([(1, 64, 112, 112)]) == [(1, 64, 56, 56)]
    # clip rule: ceil((5 + 2 - 2) / 2) + 1 = 4, but the 4th window would start in the padding
    assert pooling("kernel_size: 2 stride: 2 pad: 1").output_shapes([(1, 1, 5, 5)]) == [(1, 1, 3, 3)]
    # FLOOR
    assert pooling("kernel_size: 3 stride: 2 round_mode: FLOOR").output_shapes([(1, 1, 6, 6)]) == [(1, 1, 2, 2)]
    assert pooling("kernel_size: 3 stride: 2").output_shapes([(1, 1, 6, 6)]) == [(1, 1, 3, 3)]


def test_empty_window_keeps_minus_flt_max():
    x = rand(1, 1, 5, 5)
    y = run(pooling("pool: MAX kernel_size: 1 stride: 3"), x)
    assert y.shape == (1, 1, 3, 3)
    assert y[0, 0, 2, 0] == np.float32(-ref.FLT_MAX)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_global_pooling(method):
    layer = pooling(f"pool: {method} global_pooling: true")
    x = rand(2, 4, 5, 7)
    assert layer.output_shapes([x.shape]) == [(2, 4, 1, 1)]
    np.testing.assert_allclose(run(layer, x), ref.pool(x, None, method=method, global_pooling=True),
                               rtol=1e-5, atol=1e-6)


def test_ave_border_divisors():
    # all ones: each output is (real pixels in window) / (window clipped to [-p, i + p))
    layer = pooling("pool: AVE kernel_size: 3 stride: 2 pad: 1")
    x = np.ones((1, 1, 6, 6), np.float32)
    y = run(layer, x)
    # first window covers rows -1..1: 2 real rows of 3 -> 2/3 per axis
    assert y[0, 0, 0, 0] == pytest.approx(4 / 9)
    assert y[0, 0, 1, 1] == pytest.approx(1.0)
    # last window starts at 5, ends at min(8, 7) = 7: 1 real row of 2 -> 1/2 per axis
    assert y[0, 0, 3, 3] == pytest.approx(1 / 4)
    np.testing.assert_allclose(y, ref.pool(x, (3, 3), (2, 2), (1, 1), "AVE"), rtol=1e-6)


def test_pooling_coord_map():
    assert pooling("kernel_size: 2 stride: 2").coord_map() == CoordMap.make((0.5, 0.5), ("-0.25", "-0.25"))
    m = pooling("kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0").coord_map()
    assert m == CoordMap.make(("0.5", 1), (0, "-0.5"))


def test_bad_pooling_parameters_name_the_layer():
    with pytest.raises(NetDefinitionError, match="layer 'l' \\(Pooling"):
        pooling("stride: 2")
    with pytest.raises(NetDefinitionError, match="pad"):
        pooling("kernel_size: 2 pad: 2")
