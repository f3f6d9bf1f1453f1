"""Acceptance 4: the bilinear fillers against their closed form, and an upscore with
bilinear weights plus its computed crop reproducing bilinear interpolation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fcnkit import caffe
from fcnkit.fillers import bilinear_kernel, fill
from fcnkit.surgery import add_fcn_head, upsampling_kernels
from fcnkit.surgery._net import filler
from tests.surgery._nets import forward, rel_err


def test_k4_is_outer_product_of_quarter_three_quarters():
    k = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_array_equal(bilinear_kernel(4), np.outer(k, k).astype(np.float32))


@pytest.mark.parametrize("size", [3, 4, 5, 7, 8, 16, 63, 64])
def test_kernel_is_linear_interpolation_for_its_stride(size):
    """Closed form of the 1-D tent for upsampling by f = ceil(K/2): centre (K-1)/2, half
    width f: w(x) = 1 - |x - (K-1)/2| / f. Interpolation property: taps f apart sum to 1."""
    f = (size + 1) // 2
    x = np.arange(size)
    tent = 1 - np.abs(x - (size - 1) / 2) / f
    np.testing.assert_allclose(bilinear_kernel(size), np.outer(tent, tent), rtol=0, atol=1e-7)
    for phase in range(f):
        assert tent[phase::f].sum() == pytest.approx(1.0)


def test_caffe_and_fcn_conventions():
    k = bilinear_kernel(4)
    caffe_style = fill(filler("bilinear"), (3, 1, 4, 4))      # group = 3 channels
    for c in range(3):
        np.testing.assert_array_equal(caffe_style[c, 0], k)
    full = fill(filler("bilinear"), (3, 3, 4, 4))              # Caffe: every (out, in) slice
    assert all(np.array_equal(full[i, j], k) for i in range(3) for j in range(3))
    interp = fill(filler("bilinear_interp"), (3, 3, 4, 4))     # FCN surgery.interp: diagonal
    for i in range(3):
        for j in range(3):
            np.testing.assert_array_equal(interp[i, j], k if i == j else np.zeros((4, 4)))


def _toy(down: str, size: int = 64):
    return caffe.parse_prototxt(f"""name: "toy"
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 1 dim: 2 dim: {size} dim: {size} }} }} }}
{down}
layer {{ name: "cls" type: "Convolution" bottom: "down" top: "cls" convolution_param {{ num_output: 2 kernel_size: 1 }} }}
layer {{ name: "prob" type: "Softmax" bottom: "cls" top: "prob" }}
""").param


def _identity(*shape):
    return np.eye(2, dtype=np.float32).reshape(2, 2, 1, 1)


def _ramp(size=64):
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    return np.stack([0.3 * y - 0.7 * x + 2.0, -0.2 * y + 0.1 * x])[None]


@pytest.mark.parametrize("group", ["classes", 1])
@pytest.mark.parametrize("f", [2, 4])
def test_upscore_reproduces_bilinear_upsampling_after_average_pooling(f, group):
    """AVE pooling k=f s=f puts sample i at f*i + (f-1)/2; the head picks FCN's even kernel
    2f and a crop of f/2 (both computed) and must reproduce (a) a smooth ramp exactly in the
    interior and (b) torch's bilinear interpolation (align_corners=False) of any map."""
    param = _toy(f'layer {{ name: "down" type: "Pooling" bottom: "data" top: "down" '
                 f'pooling_param {{ pool: AVE kernel_size: {f} stride: {f} }} }}')
    w = {"cls": [_identity(), np.zeros(2, np.float32)]}
    r = add_fcn_head(param, 2, "fcn32s", pad=None, weights=w, keep_classes=True, group=group)
    assert r.report.upsampling["upscore"]["kernel"] == 2 * f
    assert r.report.crop_offsets["score"] == (f // 2, f // 2)
    img = _ramp()
    out = forward(r.param, r.blobs, img)
    assert out["score"].shape == img.shape
    b = f
    err = rel_err(out["score"][..., b:-b, b:-b], img[..., b:-b, b:-b])
    print(f"ramp, AVE pool f={f}, group={group}: rel. error {err:.2e}")
    assert err <= 1e-5
    rnd = np.random.default_rng(0).normal(size=img.shape).astype(np.float32)
    out = forward(r.param, r.blobs, rnd)
    ref = F.interpolate(torch.from_numpy(out["down"]), scale_factor=f, mode="bilinear",
                        align_corners=False).numpy()
    assert rel_err(out["score"][..., b:-b, b:-b], ref[..., b:-b, b:-b]) <= 1e-5


@pytest.mark.parametrize("f", [2, 4])
def test_odd_kernel_when_the_even_one_leaves_half_a_pixel(f):
    """Subsampling (1x1 conv, stride f) puts sample i at f*i: the even kernel 2f would give
    a crop offset of f - 1/2, so the head takes 2f - 1 and crops f - 1 (computed); the
    result is align_corners=True bilinear interpolation on [0, f(n-1)]."""
    param = _toy(f'layer {{ name: "down" type: "Convolution" bottom: "data" top: "down" '
                 f'convolution_param {{ num_output: 2 kernel_size: 1 stride: {f} bias_term: false }} }}')
    w = {"cls": [_identity(), np.zeros(2, np.float32)], "down": [_identity()]}
    r = add_fcn_head(param, 2, "fcn32s", pad=None, weights=w, keep_classes=True)
    assert r.report.upsampling["upscore"]["kernel"] == 2 * f - 1 == upsampling_kernels(f)[-1]
    assert r.report.crop_offsets["score"] == (f - 1, f - 1)
    img = _ramp()
    out = forward(r.param, r.blobs, img)
    n = out["down"].shape[-1]
    m = f * (n - 1) + 1
    assert rel_err(out["score"][..., :m, :m], img[..., :m, :m]) <= 1e-5
    rnd = np.random.default_rng(1).normal(size=img.shape).astype(np.float32)
    out = forward(r.param, r.blobs, rnd)
    ref = F.interpolate(torch.from_numpy(out["down"]), size=(m, m), mode="bilinear",
                        align_corners=True).numpy()
    assert rel_err(out["score"][..., :m, :m], ref) <= 1e-5


def test_upsampling_kernel_rule():
    assert upsampling_kernels(32) == [64, 63]
    assert upsampling_kernels(2) == [4, 3]
    assert upsampling_kernels(8) == [16, 15]
    assert upsampling_kernels(3) == [5]


def test_other_caffe_fillers_follow_filler_hpp():
    """The fillers surgery uses for new layers (include/caffe/filler.hpp): xavier
    U(+-sqrt(3/n)), msra N(0, sqrt(2/n)), n = fan_in = count/shape[0], fan_out =
    count/shape[1], or their average; constant; uniform; positive_unitball rows sum to 1;
    gaussian with `sparse` keeps a fraction sparse/shape[0]."""
    rng = np.random.default_rng(0)
    shape = (64, 32, 3, 3)
    fan_in, fan_out = 32 * 9, 64 * 9
    for norm, n in ((0, fan_in), (1, fan_out), (2, (fan_in + fan_out) / 2)):
        x = fill(filler("xavier", variance_norm=norm), shape, rng)
        assert np.abs(x).max() <= np.sqrt(3 / n) and np.abs(x).max() > 0.98 * np.sqrt(3 / n)
        m = fill(filler("msra", variance_norm=norm), shape, rng)
        assert m.std() == pytest.approx(np.sqrt(2 / n), rel=0.03)
    np.testing.assert_array_equal(fill(filler("constant", 0.25), (3, 2), rng), np.full((3, 2), 0.25))
    np.testing.assert_array_equal(fill(None, (2, 2), rng), np.zeros((2, 2)))
    u = fill(filler("uniform", min=-0.5, max=2.0), (1000,), rng)
    assert u.min() >= -0.5 and u.max() <= 2.0 and u.mean() == pytest.approx(0.75, abs=0.1)
    p = fill(filler("positive_unitball"), (5, 4, 2, 2), rng)
    np.testing.assert_allclose(p.reshape(5, -1).sum(axis=1), 1, rtol=1e-5)
    assert (p >= 0).all()
    g = fill(filler("gaussian", std=1.0, sparse=16), (64, 500), rng)
    assert (g != 0).mean() == pytest.approx(16 / 64, abs=0.02)
