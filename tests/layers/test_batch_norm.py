"""BatchNorm with Caffe's scale factor, both phases, and the moving-average update."""

import numpy as np
import pytest

from fcnkit.errors import NetDefinitionError

from . import caffe_reference as ref
from ._util import make, rand


def bn(params=""):
    return make(f'type: "BatchNorm" bottom: "x" top: "x" batch_norm_param {{ {params} }}')


def build(layer, x, blobs):
    import torch

    mod = layer.build_module([x.shape])
    arrays = layer.params_to_torch([np.asarray(b, np.float32) for b in blobs], [x.shape])
    with torch.no_grad():
        for k, v in arrays.items():
            getattr(mod, k).copy_(torch.from_numpy(v))
    return mod


def forward(mod, x, train):
    import torch

    mod.train(train)
    with torch.no_grad():
        return mod(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("s", [1.0, 999.0 / 1000 * 7.3, 0.0])
def test_global_stats_scale_factor(s):
    layer = bn()
    x = rand(2, 3, 4, 5, low=-2, high=3)
    mean, var = np.array([0.5, -1, 2], np.float32), np.array([1.5, 0.25, 4], np.float32)
    blobs = [mean * s, var * s, np.array([s], np.float32)]
    y = forward(build(layer, x, blobs), x, train=False)
    want, _ = ref.batch_norm(x, blobs, use_global_stats=True)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    if s == 0:  # mean = var = 0
        np.testing.assert_allclose(y, x / np.sqrt(1e-5), rtol=1e-5)


def test_blob_layout_round_trip():
    layer = bn()
    blobs = [np.array([2.0, 4.0], np.float32), np.array([6.0, 8.0], np.float32), np.array([2.0], np.float32)]
    arrays = layer.params_to_torch(blobs, [(1, 2, 3, 3)])
    np.testing.assert_allclose(arrays["running_mean"], [1, 2])
    np.testing.assert_allclose(arrays["running_var"], [3, 4])
    back = layer.torch_to_params(arrays, [(1, 2, 3, 3)])
    for a, b in zip(back, blobs):
        np.testing.assert_allclose(a, b)
    assert layer.learnable() == [False, False, False]
    assert layer.param_count([(1, 2, 3, 3)]) == 0
    assert layer.param_shapes([(1, 2, 3, 3)]) == [(2,), (2,), (1,)]


def test_train_mode_moving_average_two_steps():
    layer = bn("moving_average_fraction: 0.9 eps: 1e-4")
    assert layer.phase_dependent
    blobs = [np.array([0.3, -0.2, 0.1], np.float32) * 2.5, np.array([1.0, 2.0, 0.5], np.float32) * 2.5,
             np.array([2.5], np.float32)]
    x1, x2 = rand(4, 3, 3, 2, seed=1, low=-1, high=2), rand(4, 3, 3, 2, seed=2, low=-3, high=1)
    mod = build(layer, x1, blobs)
    state = blobs
    for x in (x1, x2):
        y = forward(mod, x, train=True)
        want, state = ref.batch_norm(x, state, use_global_stats=False, maf=0.9, eps=1e-4)
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
        got = layer.torch_to_params({k: getattr(mod, k).numpy() for k in layer.param_names()}, [x.shape])
        for g, w in zip(got, state):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    # eval now uses the accumulated statistics
    want, _ = ref.batch_norm(x1, state, use_global_stats=True, eps=1e-4)
    np.testing.assert_allclose(forward(mod, x1, train=False), want, rtol=1e-5, atol=1e-5)


def test_use_global_stats_overrides_the_phase():
    x = rand(2, 3, 2, 2)
    blobs = [np.array([1, 2, 3], np.float32), np.array([1, 1, 1], np.float32), np.array([1], np.float32)]
    on = bn("use_global_stats: true")
    assert not on.phase_dependent
    want, _ = ref.batch_norm(x, blobs, use_global_stats=True)
    np.testing.assert_allclose(forward(build(on, x, blobs), x, train=True), want, rtol=1e-5, atol=1e-5)
    off = bn("use_global_stats: false")  # Caffe: batch statistics even in TEST
    want, _ = ref.batch_norm(x, blobs, use_global_stats=False)
    np.testing.assert_allclose(forward(build(off, x, blobs), x, train=False), want, rtol=1e-5, atol=1e-5)


def test_bad_eps():
    with pytest.raises(NetDefinitionError, match="'l' \\(BatchNorm"):
        bn("eps: 0")
