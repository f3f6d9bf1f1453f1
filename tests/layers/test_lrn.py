"""LRN, both regions, against lrn_layer.cpp."""

import numpy as np
import pytest

from fcnkit.errors import NetDefinitionError, ShapeError

from . import caffe_reference as ref
from ._util import make, rand, run


def lrn(params):
    return make(f'type: "LRN" bottom: "x" top: "y" lrn_param {{ {params} }}')


@pytest.mark.parametrize("size,alpha,beta,k", [(5, 1e-4, 0.75, 1.0), (3, 0.5, 0.6, 2.0), (1, 1.0, 1.0, 1.0)])
def test_across_channels(size, alpha, beta, k):
    layer = lrn(f"local_size: {size} alpha: {alpha} beta: {beta} k: {k}")
    x = rand(2, 7, 4, 3, low=-3, high=3)
    np.testing.assert_allclose(run(layer, x), ref.lrn_across(x, size, alpha, beta, k), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size,alpha,beta", [(3, 0.5, 0.75), (5, 2.0, 0.5)])
def test_within_channel(size, alpha, beta):
    layer = lrn(f"local_size: {size} alpha: {alpha} beta: {beta} k: 7 norm_region: WITHIN_CHANNEL")
    x = rand(2, 3, 6, 5, low=-3, high=3)
    want = ref.lrn_within(x, size, alpha, beta)  # k is not used
    np.testing.assert_allclose(run(layer, x), want, rtol=1e-5, atol=1e-6)


def test_lrn_checks():
    with pytest.raises(NetDefinitionError, match="odd"):
        lrn("local_size: 4")
    with pytest.raises(ShapeError, match="4 axes"):
        lrn("local_size: 3").output_shapes([(2, 3)])
