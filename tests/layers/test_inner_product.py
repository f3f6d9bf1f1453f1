"""InnerProduct and Embed: axis, transpose, legacy blob shapes, FLOPs."""

import numpy as np
import pytest

from fcnkit.errors import ShapeError, WeightsError
from fcnkit.layers import NoCoordMap

from . import caffe_reference as ref
from ._util import make, rand, run


def ip(params):
    return make(f'type: "InnerProduct" bottom: "x" top: "y" inner_product_param {{ {params} }}')


@pytest.mark.parametrize("params,axis,transpose", [
    ("num_output: 5", 1, False),
    ("num_output: 5 transpose: true", 1, True),
    ("num_output: 5 axis: 2", 2, False),
    ("num_output: 5 axis: -2 transpose: true", 2, True),
    ("num_output: 5 axis: 3 bias_term: false", 3, False),
])
def test_inner_product_values(params, axis, transpose):
    layer = ip(params)
    x = rand(2, 3, 4, 2)
    k = int(np.prod(x.shape[axis:]))
    shapes = layer.param_shapes([x.shape])
    assert shapes[0] == ((k, 5) if transpose else (5, k))
    blobs = [rand(*s, seed=i + 1) for i, s in enumerate(shapes)]
    b = blobs[1] if len(blobs) > 1 else None
    want = ref.inner_product(x, blobs[0], b, axis, transpose)
    assert layer.output_shapes([x.shape]) == [x.shape[:axis] + (5,)]
    np.testing.assert_allclose(run(layer, x, blobs=blobs), want, rtol=1e-5, atol=1e-5)


def test_legacy_4d_blobs_and_round_trip():
    layer = ip("num_output: 3")
    w, b = rand(3, 8, seed=1), rand(3, seed=2)
    legacy = [w.reshape(1, 1, 3, 8), b.reshape(1, 1, 1, 3)]
    arrays = layer.params_to_torch(legacy, [(2, 2, 2, 2)])
    np.testing.assert_array_equal(arrays["weight"], w)
    np.testing.assert_array_equal(arrays["bias"], b)
    with pytest.raises(WeightsError, match="'l'"):
        layer.params_to_torch([rand(3, 7), b], [(2, 2, 2, 2)])

    t = ip("num_output: 3 transpose: true")
    arrays = t.params_to_torch([w.T.copy(), b], [(2, 8)])
    np.testing.assert_array_equal(arrays["weight"], w)  # torch layout (N, K)
    back = t.torch_to_params(arrays, [(2, 8)])
    np.testing.assert_array_equal(back[0], w.T)
    assert t.param_count([(2, 8)]) == 27


def test_flops_and_no_coord_map():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    for params, shape in [("num_output: 7", (3, 4, 2, 2)), ("num_output: 7 axis: 2", (3, 4, 5))]:
        layer = ip(params)
        mod = layer.build_module([shape])
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            mod(torch.zeros(shape))
        assert layer.flops([shape], layer.output_shapes([shape])) == fc.get_total_flops()
    with pytest.raises(NoCoordMap):
        ip("num_output: 1").coord_map()
    with pytest.raises(ShapeError, match="axis 4"):
        ip("num_output: 1 axis: 4").output_shapes([(1, 2, 3, 4)])


def test_embed():
    layer = make('type: "Embed" bottom: "x" top: "y" embed_param { num_output: 3 input_dim: 5 }')
    x = np.array([[0, 4, 2], [1.7, 3, 0]], np.float32)  # 1.7 truncates to 1
    assert layer.output_shapes([x.shape]) == [(2, 3, 3)]
    w, b = rand(5, 3, seed=1), rand(3, seed=2)
    assert layer.param_shapes([x.shape]) == [(5, 3), (3,)]
    want = w[x.astype(int)] + b
    np.testing.assert_allclose(run(layer, x, blobs=[w, b]), want, rtol=1e-6)
