"""transplant: copy / coerce / drop / initialise by layer name (fcn.berkeleyvision.org's
surgery.transplant, made strict), on the real LeNet and CIFAR-10 weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fcnkit import caffe
from fcnkit.errors import SurgeryError
from fcnkit.surgery import convolutionalize, transplant
from tests.conftest import DATA
from tests.surgery._nets import LENET, forward, rel_err

LENET_PROTO = LENET / "mnist_deploy.prototxt"
LENET_MODEL = LENET / "lenet_iter_10000.caffemodel"
CIFAR_PROTO = DATA / "bvlc_caffe" / "v2" / "examples" / "cifar10" / "cifar10_quick.prototxt"
CIFAR_MODEL = DATA / "cifar10quick_ikkichung" / "cifar10_quick_iter_5000.caffemodel"


def _dst_text(conv1_outputs: int = 20, suffix: str = "") -> str:
    """LeNet made fully convolutional by hand, ip2 replaced by a new 5-class 'score' and a
    new 'extra' layer (the destination of a surgery, written independently)."""
    s = suffix
    return f"""name: "LeNetFCN"
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 1 dim: 1 dim: 28 dim: 28 }} }} }}
layer {{ name: "conv1{s}" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param {{ num_output: {conv1_outputs} kernel_size: 5 }} }}
layer {{ name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
layer {{ name: "conv2{s}" type: "Convolution" bottom: "pool1" top: "conv2" convolution_param {{ num_output: 50 kernel_size: 5 }} }}
layer {{ name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
layer {{ name: "ip1{s}" type: "Convolution" bottom: "pool2" top: "ip1" convolution_param {{ num_output: 500 kernel_size: 4 }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }}
layer {{ name: "extra" type: "Convolution" bottom: "ip1" top: "extra"
        convolution_param {{ num_output: 7 kernel_size: 1 weight_filler {{ type: "xavier" }} bias_filler {{ type: "constant" value: 0.5 }} }} }}
layer {{ name: "score" type: "Convolution" bottom: "extra" top: "score"
        convolution_param {{ num_output: 5 kernel_size: 1 weight_filler {{ type: "gaussian" std: 0.01 }} }} }}
"""


@pytest.fixture(scope="module")
def lenet_model():
    return caffe.read_caffemodel(LENET_MODEL)


def test_copy_coerce_drop_initialise(lenet_model):
    dst = caffe.parse_prototxt(_dst_text()).param
    r = transplant(LENET_PROTO, lenet_model, dst, seed=3)
    rep = r.report
    assert rep.by_status("transplanted") == ["conv1", "conv2"]
    assert rep.by_status("coerced") == ["ip1"]
    assert rep.by_status("initialised") == ["extra", "score"]
    assert [d.layer for d in rep.dropped] == ["ip2"]
    src = lenet_model.blobs
    np.testing.assert_array_equal(r.blobs["conv1"][0], src["conv1"][0])
    np.testing.assert_array_equal(r.blobs["conv2"][1], src["conv2"][1])
    w = r.blobs["ip1"][0]
    assert w.shape == (500, 50, 4, 4)
    # Caffe flattening order: element (o, c, y, x) is column (c*4 + y)*4 + x of the fc weight.
    assert w[17, 33, 2, 1] == src["ip1"][0][17, (33 * 4 + 2) * 4 + 1]
    assert "coerced from 500x800 to 500x50x4x4" in " ".join(rep.layers["ip1"].notes)
    # xavier: U(-sqrt(3/n), +sqrt(3/n)), n = fan_in = 500 (filler.hpp)
    xw = r.blobs["extra"][0]
    assert xw.shape == (7, 500, 1, 1) and np.abs(xw).max() <= math.sqrt(3 / 500)
    assert np.abs(xw).max() > 0.9 * math.sqrt(3 / 500)
    np.testing.assert_array_equal(r.blobs["extra"][1], np.full(7, 0.5, np.float32))
    g = r.blobs["score"][0]
    # N(0, 0.01) from n draws: the sample std and mean are within 4 standard errors
    # (0.01 / sqrt(2 n) and 0.01 / sqrt(n)) whatever the random stream
    n = g.size
    assert abs(float(g.std()) - 0.01) < 4 * 0.01 / math.sqrt(2 * n)
    assert abs(float(g.mean())) < 4 * 0.01 / math.sqrt(n)
    np.testing.assert_array_equal(r.blobs["score"][1], np.zeros(5, np.float32))
    assert rep.layers["score"].fillers == ["gaussian(mean=0, std=0.01)", "constant 0 (no filler)"]
    # The transplanted net computes what the classifier computes up to ip1.
    x = np.random.default_rng(0).uniform(0, 1, (1, 1, 28, 28)).astype(np.float32)
    a = forward(dst, r.blobs, x)["ip1"]
    b = forward(caffe.read_prototxt(LENET_PROTO).param, lenet_model, x)["ip1"]
    assert rel_err(a.reshape(1, 500), b) <= 1e-5


def test_mismatched_counts_name_both_shapes(lenet_model):
    dst = caffe.parse_prototxt(_dst_text(conv1_outputs=30)).param
    with pytest.raises(SurgeryError) as e:
        transplant(LENET_PROTO, lenet_model, dst)
    msg = str(e.value)
    assert "'conv1'" in msg and "20x1x5x5 (500 values)" in msg and "30x1x5x5 (750 values)" in msg
    assert msg.startswith("transplant: layer 'conv1' (Convolution): blob 0 (weight)")
    assert "--reinit conv1" in msg and "reinit=['conv1']" in msg
    with pytest.raises(SurgeryError) as e:
        transplant(LENET_PROTO, lenet_model, dst, step="")  # no step name: no ": " before
    assert str(e.value).startswith("layer 'conv1' (Convolution): ")
    # conv2 now also mismatches (30 input channels): re-initialise both.
    r = transplant(LENET_PROTO, lenet_model, dst, reinit=["conv1", "conv2"])
    assert set(r.report.by_status("initialised")) >= {"conv1", "conv2"}
    assert r.blobs["conv1"][0].shape == (30, 1, 5, 5)
    assert {"conv1", "conv2", "ip2"} <= {d.layer for d in r.report.dropped}


def test_suffix_maps_source_names(lenet_model):
    """FCN's transplant(new_net, net, suffix): source layer p goes to p + suffix."""
    dst = caffe.parse_prototxt(_dst_text(suffix="-fcn")).param
    r = transplant(LENET_PROTO, lenet_model, dst, suffix="-fcn")
    assert r.report.by_status("transplanted") == ["conv1-fcn", "conv2-fcn"]
    assert r.report.by_status("coerced") == ["ip1-fcn"]
    assert r.report.layers["conv1-fcn"].source == "conv1"


def test_legacy_blob_shapes_compare_right_aligned():
    """A V1 caffemodel stores IP weights as 1x1xNxK and biases as 1x1x1xN: same shape as
    (N, K) / (N,) for Caffe, so 'transplanted', not 'coerced'."""
    model = caffe.read_caffemodel(CIFAR_MODEL)
    assert model.blobs["ip1"][0].shape == (1, 1, 64, 1024)
    r = transplant(None, model, CIFAR_PROTO)
    assert r.report.by_status("coerced") == []
    assert r.blobs["ip1"][0].shape == (64, 1024) and r.blobs["conv1"][1].shape == (32,)
    c = convolutionalize(CIFAR_PROTO, model)
    assert c.blobs["ip1"][0].shape == (64, 64, 4, 4)
    x = np.random.default_rng(1).uniform(0, 255, (1, 3, 32, 32)).astype(np.float32)
    base = caffe.read_prototxt(CIFAR_PROTO).param
    assert rel_err(forward(c.param, c.blobs, x)["ip2"].reshape(1, 10),
                   forward(base, model, x)["ip2"]) <= 1e-5


def test_transposed_inner_product_into_convolution():
    src = caffe.parse_prototxt("""name: "t"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 4 transpose: true } }
""").param
    dst = caffe.parse_prototxt("""name: "t"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 } } }
layer { name: "fc" type: "Convolution" bottom: "data" top: "fc" convolution_param { num_output: 4 kernel_size: 3 } }
""").param
    rng = np.random.default_rng(2)
    w = rng.normal(size=(18, 4)).astype(np.float32)  # (K, N)
    b = rng.normal(size=4).astype(np.float32)
    r = transplant(src, {"fc": [w, b]}, dst)
    x = rng.normal(size=(1, 2, 3, 3)).astype(np.float32)
    expect = x.reshape(1, 18) @ w + b
    got = forward(dst, r.blobs, x)["fc"].reshape(1, 4)
    assert rel_err(got, expect) <= 1e-5
    assert r.report.by_status("coerced") == ["fc"]


def test_unknown_reinit_layer_is_an_error(lenet_model):
    with pytest.raises(SurgeryError, match="reinit names layer"):
        transplant(LENET_PROTO, lenet_model, _dst_lenet(), reinit=["nope"])


def _dst_lenet():
    return caffe.parse_prototxt(_dst_text()).param
