"""set_num_classes: resize score layers, keeping the first classes (fcn's expand_score)."""

from __future__ import annotations

import numpy as np
import pytest

from fcnkit import caffe
from fcnkit.errors import SurgeryError
from fcnkit.surgery import convolutionalize, find_score_layers, set_num_classes
from fcnkit.surgery._net import build
from tests.surgery._nets import FCN8S, LENET, forward, rel_err

LENET_PROTO = LENET / "mnist_deploy.prototxt"
LENET_MODEL = LENET / "lenet_iter_10000.caffemodel"


@pytest.fixture(scope="module")
def lenet():
    return caffe.read_prototxt(LENET_PROTO).param, caffe.read_caffemodel(LENET_MODEL)


def test_fewer_classes_keep_the_first_logits(lenet):
    param, model = lenet
    r = set_num_classes(param, 4, weights=model, keep=True)
    assert find_score_layers(build(param))[0] == ["ip2"]
    x = np.random.default_rng(0).uniform(0, 1, (3, 1, 28, 28)).astype(np.float32)
    new = forward(r.param, r.blobs, x)["ip2"]
    old = forward(param, model, x)["ip2"]
    assert new.shape == (3, 4)
    assert rel_err(new, old[:, :4]) <= 1e-5
    assert r.report.layers["ip2"].status == "adapted"


def test_more_classes_keep_old_and_fill_new(lenet):
    param, model = lenet
    conv = convolutionalize(param, model)
    r = set_num_classes(conv.param, 13, weights=conv.blobs, keep=True, seed=1)
    w, b = r.blobs["ip2"]
    assert w.shape == (13, 500, 1, 1)
    np.testing.assert_array_equal(w[:10].reshape(10, 500), model.blobs["ip2"][0])
    np.testing.assert_array_equal(b[:10], model.blobs["ip2"][1])
    lim = np.sqrt(3 / 500)  # LeNet's ip2 filler is xavier; bias filler constant 0
    assert np.abs(w[10:]).max() <= lim and np.abs(w[10:]).max() > 0
    np.testing.assert_array_equal(b[10:], 0)
    e = r.report.layers["ip2"]
    assert (e.status, e.source) == ("adapted", "ip2")
    # the fillers named are those of the prototxt, for the new classes only
    assert e.fillers == ["xavier (classes 10..12)", "constant 0 (classes 10..12)"]
    assert e.notes[-1] == ("first 10 of 10 classes from 'ip2'; classes 10..12 initialised by "
                           "xavier, constant 0")


def test_without_keep_the_scorer_is_reinitialised(lenet):
    param, model = lenet
    r = set_num_classes(param, 10, weights=model)
    assert r.report.layers["ip2"].status == "initialised"
    assert not np.array_equal(r.blobs["ip2"][0], model.blobs["ip2"][0])
    np.testing.assert_array_equal(r.blobs["conv1"][0], model.blobs["conv1"][0])


def test_fcn8s_score_and_upsampling_layers_are_all_resized():
    param = caffe.read_prototxt(FCN8S).param
    layers, k_old = find_score_layers(build(param))
    assert k_old == 21
    assert layers == ["score_fr", "upscore2", "score_pool4", "upscore_pool4", "score_pool3",
                      "upscore8"]
    r = set_num_classes(param, 2)
    b = build(r.param)
    assert b.shape_of("score")[1] == 2
    assert b.param_shapes("upscore8") == [(2, 2, 16, 16)]  # FCN's full (group 1) deconvolution
    assert b.param_shapes("score_pool3") == [(2, 256, 1, 1), (2,)]


def test_grouped_bilinear_upsampling_is_refilled():
    from fcnkit.surgery import add_fcn_head
    from tests.surgery._nets import alexnet_shaped, random_blobs

    param = alexnet_shaped()
    conv = convolutionalize(param, random_blobs(param, seed=2))
    head = add_fcn_head(conv.param, 5, weights=conv.blobs)
    r = set_num_classes(head.param, 3, weights=head.blobs)
    up = [lp for lp in r.param.layer if lp.name == "upscore"][0]
    assert (up.convolution_param.num_output, up.convolution_param.group) == (3, 3)
    w = r.blobs["upscore"][0]
    assert w.shape == (3, 1, 63, 63)
    # CAFFE_FACTS.md: f = ceil(K/2), c = (K-1)/(2f), w(x, y) = (1 - |x/f - c|)(1 - |y/f - c|),
    # the same kernel in every slice of the group = classes deconvolution.
    K = 63
    f = -(-K // 2)
    c = (K - 1) / (2 * f)
    tent = np.array([1 - abs(x / f - c) for x in range(K)])
    for ch in range(3):
        np.testing.assert_allclose(w[ch, 0], np.outer(tent, tent), rtol=0, atol=1e-7)


def test_bad_class_count():
    with pytest.raises(SurgeryError, match="num_classes must be >= 1"):
        set_num_classes(LENET_PROTO, 0)
