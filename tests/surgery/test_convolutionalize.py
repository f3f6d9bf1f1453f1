"""Acceptance 1 and 2: fc -> conv gives the classifier's outputs, slides over larger inputs,
and reproduces BVLC's own full-convolution CaffeNet."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fcnkit import caffe
from fcnkit.errors import SurgeryError
from fcnkit.graph import load_net
from fcnkit.surgery import convolutionalize
from fcnkit.surgery._net import build
from tests.conftest import DATA
from tests.surgery._nets import (CAFFENET, FULL_CONV, LENET, alexnet_shaped, forward, random_blobs,
                                 rel_err)

LENET_PROTO = LENET / "mnist_deploy.prototxt"
LENET_MODEL = LENET / "lenet_iter_10000.caffemodel"
ORACLE = LENET / "opencv_oracle_lenet_ahmdtaha"


@pytest.fixture(scope="module")
def lenet():
    return caffe.read_prototxt(LENET_PROTO).param, caffe.read_caffemodel(LENET_MODEL)


def test_lenet_real_weights_same_outputs_at_original_size(lenet):
    param, model = lenet
    r = convolutionalize(param, model)
    x = np.random.default_rng(0).uniform(0, 1, (2, 1, 28, 28)).astype(np.float32)
    before = forward(param, model, x)
    after = forward(r.param, r.blobs, x)
    assert after["ip2"].shape == (2, 10, 1, 1)
    err = rel_err(after["ip2"].reshape(2, 10), before["ip2"])
    print(f"LeNet (real weights) logits rel. error at 28x28: {err:.2e}")
    assert err <= 1e-5
    assert rel_err(after["loss"].reshape(2, 10), before["loss"]) <= 1e-5
    assert [n.type for n in load_net(r.param).layers].count("InnerProduct") == 0
    assert r.report.by_status("coerced") == ["ip1", "ip2"]
    assert r.report.by_status("transplanted") == ["conv1", "conv2"]
    # ... and what the independent implementation (OpenCV 4.10, stored) computed for the
    # classifier: its ip2 logits and softmax on its input.
    meta = json.loads((ORACLE / "meta.json").read_text())
    assert (DATA / meta["prototxt"], DATA / meta["caffemodel"]) == (LENET_PROTO, LENET_MODEL)
    x = np.load(ORACLE / "input.npy")
    assert list(x.shape) == meta["input_shape"]
    got = forward(r.param, r.blobs, x)
    layers = np.load(ORACLE / "layer_outputs.npz")
    assert rel_err(got["ip2"].reshape(1, 10), layers["ip2"]) <= 1e-4
    out = meta["outputs"]["loss"]
    assert rel_err(got["loss"].reshape(out["shape"]), np.load(ORACLE / out["file"])) <= 1e-4


def test_lenet_slides_over_a_larger_input(lenet):
    """Output at window (i, j) of a 40x40 input == classifier on the crop at (4i, 4j)
    (total stride S = 4: two 2x2 poolings)."""
    param, model = lenet
    r = convolutionalize(param, model)
    x = np.random.default_rng(1).uniform(0, 1, (1, 1, 40, 40)).astype(np.float32)
    out = forward(r.param, r.blobs, x)["ip2"]
    assert out.shape == (1, 10, 4, 4)
    worst = 0.0
    for i in range(4):
        for j in range(4):
            crop = x[:, :, 4 * i:4 * i + 28, 4 * j:4 * j + 28]
            ref = forward(param, model, crop)["ip2"][0]
            worst = max(worst, rel_err(out[0, :, i, j], ref))
    print(f"LeNet sliding windows (4x4 windows, S=4): worst rel. error {worst:.2e}")
    assert worst <= 1e-5


def test_alexnet_shaped_same_outputs_at_original_size():
    param = alexnet_shaped()
    blobs = random_blobs(param, seed=3)
    r = convolutionalize(param, blobs)
    kernels = {lp.name: (list(lp.convolution_param.kernel_size)) for lp in r.param.layer
               if lp.name in ("fc6", "fc7", "fc8")}
    assert kernels == {"fc6": [6], "fc7": [1], "fc8": [1]}
    x = np.random.default_rng(2).uniform(-1, 1, (1, 3, 227, 227)).astype(np.float32)
    before = forward(param, blobs, x)
    after = forward(r.param, r.blobs, x)
    err = rel_err(after["fc8"].reshape(1, -1), before["fc8"])
    print(f"AlexNet-shaped (random weights) fc8 rel. error at 227x227: {err:.2e}")
    assert err <= 1e-5
    assert rel_err(after["prob"].reshape(1, -1), before["prob"]) <= 1e-5


def test_alexnet_shaped_slides_with_total_stride_32():
    """Sliding-window equivalence is exact only when no zero padding lies inside the
    window, so this AlexNet-shaped net has BVLC's kernels/strides/groups/LRN/pooling but
    pad 0 in conv2..5. 291 = 227 + 2*32 -> 3x3 windows at (32i, 32j)."""
    param = alexnet_shaped(interior_pad=False)
    blobs = random_blobs(param, seed=4)
    r = convolutionalize(param, blobs)
    assert list(build(r.param).net.layer("fc6").layer.kernel) == [2, 2]
    x = np.random.default_rng(5).uniform(-1, 1, (1, 3, 291, 291)).astype(np.float32)
    out = forward(r.param, r.blobs, x)["fc8"]
    assert out.shape == (1, 10, 3, 3)
    worst = 0.0
    for i, j in [(0, 0), (0, 2), (1, 1), (2, 0), (2, 2)]:
        crop = x[:, :, 32 * i:32 * i + 227, 32 * j:32 * j + 227]
        ref = forward(param, blobs, crop)["fc8"][0]
        worst = max(worst, rel_err(out[0, :, i, j], ref))
    print(f"AlexNet-shaped sliding windows (S=32): worst rel. error {worst:.2e}")
    assert worst <= 1e-5


def test_weight_is_reshaped_in_caffe_row_major_order():
    """W_conv[o, c, y, x] == W_fc[o, (c*H + y)*W + x] (Caffe flattens C, H, W row-major)."""
    param = alexnet_shaped()
    blobs = random_blobs(param, seed=6)
    r = convolutionalize(param, blobs)
    w_fc = blobs["fc6"][0]
    w_conv = r.blobs["fc6"][0]
    n, c, h, w = w_conv.shape
    assert (n, c, h, w) == (32, 16, 6, 6)
    rng = np.random.default_rng(0)
    for _ in range(50):
        o, ch, y, xx = (int(rng.integers(0, d)) for d in (n, c, h, w))
        assert w_conv[o, ch, y, xx] == w_fc[o, (ch * h + y) * w + xx]
    np.testing.assert_array_equal(r.blobs["fc6"][1], blobs["fc6"][1])


NONSQUARE = """name: "ns"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 2 dim: 7 dim: 11 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 3 kernel_size: 3 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "conv1" top: "fc"
        inner_product_param { num_output: 5 %s } }
layer { name: "fc2" type: "InnerProduct" bottom: "fc" top: "fc2"
        inner_product_param { num_output: 4 } }
"""


@pytest.mark.parametrize("transpose", [False, True])
def test_non_square_bottom_and_transposed_weights(transpose):
    param = caffe.parse_prototxt(NONSQUARE % ("transpose: true" if transpose else "")).param
    blobs = random_blobs(param, seed=7)
    if transpose:
        assert blobs["fc"][0].shape == (3 * 3 * 5, 5)  # (K, N) as Caffe stores it
    r = convolutionalize(param, blobs)
    cp = [lp for lp in r.param.layer if lp.name == "fc"][0].convolution_param
    assert (cp.kernel_h, cp.kernel_w, len(cp.kernel_size)) == (3, 5, 0)
    x = np.random.default_rng(8).normal(size=(2, 2, 7, 11)).astype(np.float32)
    err = rel_err(forward(r.param, r.blobs, x)["fc2"].reshape(2, 4), forward(param, blobs, x)["fc2"])
    assert err <= 1e-5
    assert "transposed" in " ".join(r.report.layers["fc"].notes) or not transpose


def test_flatten_before_inner_product_is_bypassed():
    text = NONSQUARE.replace('bottom: "conv1" top: "fc"', 'bottom: "flat" top: "fc"').replace(
        "%s", "").replace('layer { name: "fc" ',
                          'layer { name: "flatten" type: "Flatten" bottom: "conv1" top: "flat" }\n'
                          'layer { name: "fc" ', 1)
    param = caffe.parse_prototxt(text).param
    blobs = random_blobs(param, seed=9)
    r = convolutionalize(param, blobs)
    names = [lp.name for lp in r.param.layer]
    assert "flatten" not in names
    assert [d.layer for d in r.report.dropped] == ["flatten"]
    x = np.random.default_rng(10).normal(size=(2, 2, 7, 11)).astype(np.float32)
    assert rel_err(forward(r.param, r.blobs, x)["fc2"].reshape(2, 4),
                   forward(param, blobs, x)["fc2"]) <= 1e-5


def test_axis_other_than_channels_is_refused():
    text = NONSQUARE % "axis: 2"
    param = caffe.parse_prototxt(text.replace(
        'layer { name: "fc2" type: "InnerProduct" bottom: "fc" top: "fc2"\n        inner_product_param { num_output: 4 } }', "")).param
    with pytest.raises(SurgeryError, match=r"flattens its 4-D bottom 2x3x3x5 from axis 2"):
        convolutionalize(param)


def test_bvlc_caffenet_full_conv_structure():
    """Acceptance 2: convolutionalize(CaffeNet deploy, suffix "-conv") == BVLC's
    examples/net_surgery/bvlc_caffenet_full_conv.prototxt (layers, blobs, types, conv
    parameters and parameter shapes; structure only, no 60M weights filled)."""
    r = convolutionalize(CAFFENET, suffix="-conv")
    ours = build(r.param)
    theirs = build(caffe.read_prototxt(FULL_CONV).param)
    assert [n.name for n in ours.net.layers] == [n.name for n in theirs.net.layers]
    for a, b in zip(ours.net.layers, theirs.net.layers):
        assert (a.type, list(a.param.bottom), list(a.param.top)) == \
               (b.type, list(b.param.bottom), list(b.param.top)), a.name
        if a.type == "Convolution":
            for attr in ("num_output", "kernel", "stride", "pad", "group", "bias_term"):
                assert getattr(a.layer, attr) == getattr(b.layer, attr), (a.name, attr)
        assert ours.param_shapes(a.name) == theirs.param_shapes(b.name), a.name
    assert ours.param_shapes("fc6-conv") == [(4096, 256, 6, 6), (4096,)]
    assert ours.param_shapes("fc7-conv") == [(4096, 4096, 1, 1), (4096,)]
    assert ours.param_shapes("fc8-conv") == [(1000, 4096, 1, 1), (1000,)]


def test_suffix_makes_caffe_style_loading_reinitialise(lenet):
    """With "-conv" the classifier caffemodel no longer matches by name (Caffe copies by
    layer name), so the compiler initialises those layers instead of failing on shapes."""
    from fcnkit.compile import compile_net

    param, model = lenet
    r = convolutionalize(param, suffix="-conv")
    assert r.blobs is None and r.renamed == {"ip1": "ip1-conv", "ip2": "ip2-conv"}
    compiled = compile_net(load_net(r.param), model)
    assert set(compiled.weights.initialised) == {"ip1-conv", "ip2-conv"}
    assert set(compiled.weights.unused) == {"ip1", "ip2"}
    # With weights given, convolutionalize carries them to the renamed layers.
    r2 = convolutionalize(param, model, suffix="-conv")
    assert r2.blobs["ip1-conv"][0].shape == (500, 50, 4, 4)
    assert "loss" in [lp.name for lp in r2.param.layer]
    assert [lp.bottom[0] for lp in r2.param.layer if lp.name == "loss"] == ["ip2-conv"]


def test_input_size_that_cannot_be_inferred_is_a_clear_error():
    text = """name: "nodims"
layer { name: "data" type: "Data" top: "data" top: "label" data_param { source: "x" batch_size: 4 } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 10 } }
"""
    param = caffe.parse_prototxt(text).param
    with pytest.raises(SurgeryError) as e:
        convolutionalize(param)
    msg = str(e.value)
    assert "input size of InnerProduct 'ip1' cannot be inferred" in msg
    assert "declares no shape" in msg and "input_shapes" in msg
    assert "fcnkit surgery --input-shape N,C,H,W" in msg  # the CLI's way, too
    # ... and works once the shape is given.
    r = convolutionalize(param, input_shapes={"data": (4, 3, 5, 5)})
    assert list(r.param.layer[1].convolution_param.kernel_size) == [5]
