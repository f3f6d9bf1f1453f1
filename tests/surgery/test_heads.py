"""Acceptance 3: FCN heads with computed offsets reproduce DIGITS' FCN-AlexNet and
fcn.berkeleyvision.org's VGG16 FCN-32s/16s/8s (structure only: no 100M-parameter fills)."""

from __future__ import annotations

import numpy as np
import pytest

from fcnkit import caffe
from fcnkit.errors import SurgeryError
from fcnkit.surgery import add_fcn_head, convolutionalize, fcn_surgery, set_input_shape
from fcnkit.surgery._net import build
from tests.surgery._nets import (ALEXNET, CAFFENET, DIGITS_FCN, FCN8S, FCN16S, FCN32S, alexnet_shaped,
                                 forward, random_blobs, rel_err, vgg16_classifier)


def _declared(path):
    """{Crop: offsets} and {Deconvolution: (kernel, stride, group)} as written in a prototxt."""
    param = caffe.read_prototxt(path).param
    crops = {lp.name: list(lp.crop_param.offset) for lp in param.layer if lp.type == "Crop"}
    ups = {lp.name: (lp.convolution_param.kernel_size[0], lp.convolution_param.stride[0],
                     lp.convolution_param.group) for lp in param.layer if lp.type == "Deconvolution"}
    return crops, ups


def _ours(report):
    crops = {k: [v[0]] for k, v in report.crop_offsets.items() if v[0] == v[1]}
    ups = {k: (v["kernel"], v["stride"], v["group"]) for k, v in report.upsampling.items()}
    return crops, ups


def _compare_structure(ours, theirs, skip=(), rename_blobs=None):
    """Same layers (names, types, bottoms, tops), conv/crop parameters and blob shapes."""
    rename_blobs = rename_blobs or {}
    a_layers = [n for n in ours.net.layers if n.role != "input"]
    b_layers = [n for n in theirs.net.layers if n.role != "input" and n.name not in skip]
    assert [n.name for n in a_layers] == [n.name for n in b_layers]
    for a, b in zip(a_layers, b_layers):
        assert a.type == b.type, a.name
        assert list(a.param.bottom) == [rename_blobs.get(x, x) for x in b.param.bottom], a.name
        assert list(a.param.top) == list(b.param.top), a.name
        if a.type in ("Convolution", "Deconvolution", "Pooling"):
            for attr in ("num_output", "kernel", "stride", "pad", "group", "bias_term", "pool"):
                if hasattr(b.layer, attr):
                    assert getattr(a.layer, attr) == getattr(b.layer, attr), (a.name, attr)
        if a.type == "Crop":
            assert (a.layer.axis, a.layer.offset) == (b.layer.axis, b.layer.offset), a.name
        assert ours.param_shapes(a.name) == theirs.param_shapes(b.name), a.name
        if a.type == "Deconvolution":
            assert [p.lr_mult for p in a.param.param] == [p.lr_mult for p in b.param.param] == [0]


DIGITS_NAMES = {"score_fr": "score_fr_21classes", "upscore": "upscore_21classes"}


def _digits_head(classifier):
    conv = convolutionalize(classifier)
    net = set_input_shape(conv.param, (500, 356))
    return add_fcn_head(net, 21, "fcn32s", pad=100, names=DIGITS_NAMES)


def test_digits_fcn_alexnet_from_caffenet_exactly():
    """DIGITS' fcn_alexnet.deploy.prototxt has CaffeNet's layer order (pool before LRN), so
    bvlc_reference_caffenet/deploy -> 21-class FCN-32s head gives it layer for layer:
    group-21 bilinear deconvolution, kernel 63 (computed), stride 32, pad 100, crop 18
    (computed)."""
    r = _digits_head(CAFFENET)
    assert r.report.crop_offsets == {"score": (18, 18)}
    assert r.report.upsampling["upscore_21classes"] == {"stride": 32, "kernel": 63, "group": 21,
                                                        "convention": "bilinear"}
    ours = build(r.param)
    theirs = build(caffe.read_prototxt(DIGITS_FCN).param)
    _compare_structure(ours, theirs, skip=("shift",), rename_blobs={"data_preprocessed": "data"})
    up = [lp for lp in r.param.layer if lp.name == "upscore_21classes"][0]
    assert up.convolution_param.weight_filler.type == "bilinear"
    assert ours.shape_of("score")[1:] == (21, 500, 356)
    assert [d.layer for d in r.report.dropped] == ["fc8", "prob"]


def test_digits_fcn_alexnet_from_alexnet():
    """From bvlc_alexnet/deploy (LRN before pool): the same layers, parameters, parameter
    shapes, kernel 63 and crop offset 18; only the pool/LRN order differs from DIGITS'."""
    r = _digits_head(ALEXNET)
    assert r.report.crop_offsets == {"score": (18, 18)}
    assert r.report.upsampling["upscore_21classes"]["kernel"] == 63
    ours, theirs = build(r.param), build(caffe.read_prototxt(DIGITS_FCN).param)
    a = {n.name: n for n in ours.net.layers if n.role != "input"}
    b = {n.name: n for n in theirs.net.layers if n.role != "input" and n.name != "shift"}
    assert set(a) == set(b)
    for name in a:
        assert a[name].type == b[name].type and list(a[name].param.top) == list(b[name].param.top)
        assert ours.param_shapes(name) == theirs.param_shapes(name), name
        for attr in ("num_output", "kernel", "stride", "pad", "group", "offset"):
            if hasattr(b[name].layer, attr):
                assert getattr(a[name].layer, attr) == getattr(b[name].layer, attr), (name, attr)
    order = lambda built: [n.name for n in built.net.layers if n.type in
                           ("Convolution", "Deconvolution", "Crop")]
    assert order(ours) == order(theirs)


@pytest.fixture(scope="module")
def vgg_conv():
    r = convolutionalize(vgg16_classifier())
    assert build(r.param).param_shapes("fc6") == [(4096, 512, 7, 7), (4096,)]
    return set_input_shape(r.param, (500, 500))


def test_vgg16_fcn8s_matches_voc_fcn8s(vgg_conv):
    r = add_fcn_head(vgg_conv, 21, "fcn8s", group=1)
    crops, ups = _ours(r.report)
    assert crops == {"score_pool4c": [5], "score_pool3c": [9], "score": [31]}
    assert (crops, ups) == _declared(FCN8S)
    _compare_structure(build(r.param), build(caffe.read_prototxt(FCN8S).param))
    up = [lp for lp in r.param.layer if lp.name == "upscore8"][0]
    assert not up.convolution_param.HasField("weight_filler")  # Caffe has no interp filler


@pytest.mark.parametrize("kind,path", [("fcn16s", FCN16S), ("fcn32s", FCN32S)])
def test_vgg16_fcn16s_fcn32s_offsets_match_voc(vgg_conv, kind, path):
    r = add_fcn_head(vgg_conv, 21, kind, group=1)
    assert _ours(r.report) == _declared(path)
    if kind == "fcn16s":
        assert r.report.crop_offsets == {"score_pool4c": (5, 5), "score": (27, 27)}
    else:
        assert r.report.crop_offsets == {"score": (19, 19)}


def test_missing_pooling_layers_is_a_clear_error():
    conv = convolutionalize(ALEXNET)
    with pytest.raises(SurgeryError) as e:
        add_fcn_head(conv.param, 21, "fcn16s")
    msg = str(e.value)
    assert "no layer or blob named 'pool4'" in msg
    assert "pool1 (stride 8), pool2 (stride 16), pool5 (stride 32)" in msg
    assert "pools=" in msg


def test_alexnet_shaped_fcn8s_with_chosen_pools_aligns_with_fcn32s():
    """Any convolutionalised classifier with user-selected skip pools: AlexNet's pool2
    (stride 16) and pool1 (stride 8). The skip score layers start at zero, so FCN-8s
    computes x2, x2, x8 bilinear upsamplings of score_fr where FCN-32s does one x32. Here
    every kernel is odd (computed: 3, 3, 15 and 63; the even ones would leave half-pixel
    offsets), so the samples stay on the interpolation knots and composing linear
    interpolations is exact: the two outputs must agree everywhere, which they do only if
    every computed crop offset aligns its branches."""
    param = alexnet_shaped()
    blobs = random_blobs(param, seed=11)
    r8 = fcn_surgery(param, blobs, head="fcn8s", pools=["pool2", "pool1"], input_shape=(160, 200))
    r32 = fcn_surgery(param, blobs, head="fcn32s", input_shape=(160, 200))
    assert r8.report.crop_offsets == {"score_pool2c": (5, 5), "score_pool1c": (10, 10),
                                      "score": (18, 18)}
    assert {k: v["kernel"] for k, v in r8.report.upsampling.items()} == \
        {"upscore2": 3, "upscore_pool2": 3, "upscore8": 15}
    assert r8.report.layers["score_pool2"].status == "initialised"
    np.testing.assert_array_equal(r8.blobs["score_pool2"][0], 0)
    x = np.random.default_rng(3).normal(size=(1, 3, 160, 200)).astype(np.float32)
    s8 = forward(r8.param, r8.blobs, x)["score"]
    s32 = forward(r32.param, r32.blobs, x)["score"]
    assert s8.shape == s32.shape == (1, 10, 160, 200)
    err = rel_err(s8, s32)
    print(f"AlexNet-shaped FCN-8s (zero skips) vs FCN-32s: rel. error {err:.2e}")
    assert err <= 1e-5 and np.abs(s32).max() > 0.05


def test_head_transplant_errors_name_the_step():
    from tests.surgery._nets import LENET

    param = caffe.read_prototxt(LENET / "mnist_deploy.prototxt").param
    model = dict(caffe.read_caffemodel(LENET / "lenet_iter_10000.caffemodel").blobs)
    model["conv2"] = [model["conv2"][0][:, :10], model["conv2"][1]]
    conv = convolutionalize(param, model)
    with pytest.raises(SurgeryError) as e:
        add_fcn_head(conv.param, 10, weights=conv.blobs)
    assert str(e.value).startswith("add_fcn_head(fcn32s): layer 'conv2' (Convolution): blob 0")
