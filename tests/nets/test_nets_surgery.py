"""Surgery whose advice leads somewhere (issue 13, item 14): --classifier, global pooling
before the classifier, MemoryData/ImageData inputs with --input-shape, the name=N,C,H,W
form, and filler weights (not zeros) without a caffemodel.

Truth: the classifier itself. A convolutionalised net computes, at the classifier's input
size, exactly the classifier's scores with the same weights (Long et al. 2015, section
3.1); the classifier is compiled here from its own prototxt with the surgery's weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fcnkit import caffe
from fcnkit.cli.main import main
from fcnkit.compile import compile_net
from fcnkit.errors import SurgeryError
from fcnkit.graph import load_net
from fcnkit.surgery import fcn_surgery, localise_global_pooling
from tests.conftest import DATA

HERE = Path(__file__).parent / "data"
CIFAR = DATA / "bvlc_caffe" / "v2" / "examples" / "cifar10" / "cifar10_quick.prototxt"


def _run(capsys, args):
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    out = " ".join((cap.err + cap.out).split())
    assert "Traceback" not in out
    return code, out


def _scores(param, blobs, shape, output, deploy=True):
    """``output`` of ``param`` with ``blobs`` on a seeded uniform input of ``shape``."""
    net = load_net(param, deploy=deploy, input_shapes={"data": shape} if deploy else None)
    compiled = compile_net(net, blobs, {"data": shape}, deploy=deploy)
    x = torch.from_numpy(np.random.default_rng(5).uniform(0, 1, shape).astype(np.float32))
    with torch.no_grad():
        return compiled.module(x)[output].numpy()


def _head_line(out: str) -> str:
    return out[out.index("add_fcn_head"):].split(" - ")[0]


# ---------------------------------------------------------------- --classifier

def _two_heads(tmp_path) -> Path:
    """cifar10_quick with an auxiliary InnerProduct output: two scoring layers."""
    text = CIFAR.read_text() + """layer {
  name: "aux"
  type: "InnerProduct"
  bottom: "pool3"
  top: "aux"
  inner_product_param { num_output: 4 }
}
"""
    p = tmp_path / "two_heads.prototxt"
    p.write_text(text)
    return p


def test_classifier_option_picks_the_scoring_layer(tmp_path, capsys):
    p = _two_heads(tmp_path)
    code, out = _run(capsys, ["surgery", p, "-o", tmp_path / "auto"])
    assert code == 2 and "several scoring layers" in out and "--classifier LAYER" in out
    code, out = _run(capsys, ["surgery", p, "-o", tmp_path / "fcn", "--classifier", "ip2"])
    assert code == 0, out
    assert "fcn32s, 10 classes on 'ip1' (replacing 'ip2')" in out
    net = load_net(tmp_path / "fcn" / "net.prototxt")
    assert not net.has_layer("ip2") and net.has_layer("score_fr") and net.has_layer("aux")


def test_classifier_option_unknown_layer_lists_the_candidates(tmp_path, capsys):
    code, out = _run(capsys, ["surgery", CIFAR, "-o", tmp_path / "x", "--classifier", "fc8"])
    assert code == 2
    assert "--classifier names 'fc8', which is no layer of the net" in out
    assert "conv1, conv2, conv3, ip1, ip2" in out
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- name=N,C,H,W

def test_input_shape_takes_the_name_form(tmp_path, capsys):
    code, out = _run(capsys, ["surgery", CIFAR, "-o", tmp_path / "a", "--head", "none",
                              "--input-shape", "data=1,3,64,48"])
    assert code == 0, out
    assert "declared input shape set to [1, 3, 64, 48]" in out
    net = load_net(tmp_path / "a" / "net.prototxt")
    assert tuple(net.layer("data").param.input_param.shape[0].dim) == (1, 3, 64, 48)
    code, out = _run(capsys, ["surgery", CIFAR, "-o", tmp_path / "b", "--input-shape",
                              "label=1,3,64,48"])
    assert code == 2 and "--input-shape names 'label', but the classifier's input is 'data'" in out


# ---------------------------------------------------------------- MemoryData / ImageData

@pytest.mark.parametrize("fixture", ["memorydata_classifier", "imagedata_classifier"])
def test_data_layer_inputs_take_the_input_shape(fixture):
    src = caffe.read_prototxt(HERE / f"{fixture}.prototxt").param
    res = fcn_surgery(src, head="none", input_shape=(1, 3, 32, 32))
    assert res.input_shapes == {"data": (1, 3, 32, 32)}
    assert any("used by every step" in s for s in res.report.steps)
    # the written net keeps its data layer; fc1 became a 14x14 convolution
    assert [lp.type for lp in res.param.layer][:2] == [src.layer[0].type, "Convolution"]
    fcn = _scores(res.param, res.blobs, (1, 3, 32, 32), "fc2")
    ref = _scores(src, res.blobs, (1, 3, 32, 32), "fc2")  # the classifier, same weights
    assert fcn.shape == (1, 5, 1, 1) and ref.shape == (1, 5)
    np.testing.assert_allclose(fcn[:, :, 0, 0], ref, rtol=1e-5, atol=1e-6)
    assert np.abs(ref).max() > 1e-3  # filler weights, not zeros


# ---------------------------------------------------------------- global pooling

def test_global_pooling_becomes_the_training_kernel():
    src = caffe.read_prototxt(HERE / "global_pool_classifier.prototxt").param
    step = localise_global_pooling(src)
    pp = next(lp for lp in step.param.layer if lp.name == "pool5").pooling_param
    # conv1, conv2 (stride 2, pad 1, k3) take 32 -> 16 -> 8: the global kernel was 8x8
    assert (pp.global_pooling, pp.kernel_size, pp.stride, pp.pad) == (False, 8, 1, 0)
    assert step.report.steps == ["localise global pooling: pool5 -> 8x8 stride 1"]

    res = fcn_surgery(src, head="none")
    at32 = _scores(res.param, res.blobs, (1, 3, 32, 32), "prob")
    ref = _scores(src, res.blobs, (1, 3, 32, 32), "prob")
    np.testing.assert_allclose(at32[:, :, 0, 0], ref, rtol=1e-5, atol=1e-7)
    # fully convolutional: at 64x64 the 16x16 map pooled 8x8 with stride 1 -> 9x9 scores,
    # the top-left one the mean of the first 8x8 window (a NumPy transcription of AVE)
    net = load_net(res.param, input_shapes={"data": (1, 3, 64, 64)})
    compiled = compile_net(net, res.blobs, {"data": (1, 3, 64, 64)})
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    values = compiled.run_all(x)
    conv2 = values[net.final["conv2"]].numpy()
    pool5 = values[net.final["pool5"]].numpy()
    assert pool5.shape == (1, 16, 9, 9)
    np.testing.assert_allclose(pool5[0, :, 3, 4], conv2[0, :, 3:11, 4:12].mean(axis=(1, 2)), rtol=1e-5)


def test_global_pooling_not_on_the_classifier_path_is_kept(tmp_path):
    """A squeeze-and-excitation style pooling (its vector scales the map) is not touched."""
    text = (HERE / "global_pool_classifier.prototxt").read_text().replace(
        'layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }',
        'layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }\n'
        'layer { name: "se_pool" type: "Pooling" bottom: "conv2" top: "se" '
        'pooling_param { pool: AVE global_pooling: true } }\n'
        'layer { name: "se_flat" type: "Flatten" bottom: "se" top: "sef" }\n'
        'layer { name: "se_scale" type: "Scale" bottom: "conv2" bottom: "sef" top: "conv2s" '
        'scale_param { axis: 0 } }').replace('bottom: "conv2"\n  top: "pool5"', 'bottom: "conv2s"\n  top: "pool5"')
    p = tmp_path / "se.prototxt"
    p.write_text(text)
    step = localise_global_pooling(caffe.read_prototxt(p).param)
    kinds = {lp.name: lp.pooling_param.global_pooling for lp in step.param.layer if lp.type == "Pooling"}
    assert kinds == {"se_pool": True, "pool5": False}


# ---------------------------------------------------------------- no caffemodel

def test_without_caffemodel_fillers_not_zeros(tmp_path, capsys):
    code, out = _run(capsys, ["surgery", CIFAR, "-o", tmp_path / "f", "--head", "none"])
    assert code == 0, out
    assert "note: no caffemodel: the weights are untrained" in out
    assert "5 layer(s) without a weight_filler (Caffe's default: all zeros) got msra" in out
    model = caffe.read_caffemodel(tmp_path / "f" / "net.caffemodel")
    w = np.asarray(model.blobs["conv1"][0])
    assert w.shape == (32, 3, 5, 5) and not np.any(np.asarray(model.blobs["conv1"][1]))
    # Caffe's MSRAFiller: N(0, 2 / fan_in), fan_in = 3 * 5 * 5
    assert abs(float(w.std()) / np.sqrt(2 / 75) - 1) < 0.06 and abs(float(w.mean())) < 0.02
    for name in ("conv2", "conv3", "ip1", "ip2"):
        assert np.any(np.asarray(model.blobs[name][0])), name


def test_prototxt_fillers_are_kept():
    src = caffe.read_prototxt(HERE / "global_pool_classifier.prototxt").param
    res = fcn_surgery(src, head="fcn32s")
    note = res.report.notes[-1]
    # conv1, conv2 and fc1000 name msra fillers; only the new score_fr has none
    assert note.endswith("got msra (std sqrt(2 / fan_in)): score_fr")
    assert res.report.layers["conv1"].fillers[0] == "msra"


def test_with_caffemodel_nothing_is_refilled():
    lenet = DATA / "lenet_ahmdtaha"
    src = caffe.read_prototxt(lenet / "mnist_deploy.prototxt").param
    res = fcn_surgery(src, caffe.read_caffemodel(lenet / "lenet_iter_10000.caffemodel"), head="none")
    assert not any("no caffemodel" in n for n in res.report.notes)


def test_global_pool_without_shape_is_explained(tmp_path):
    text = (HERE / "global_pool_classifier.prototxt").read_text().replace(
        "input_param { shape { dim: 1 dim: 3 dim: 32 dim: 32 } }", "")
    p = tmp_path / "noshape.prototxt"
    p.write_text(text)
    with pytest.raises(SurgeryError, match=r"global pooling 'pool5' before the classifier.*"
                                           r"--input-shape N,C,H,W"):
        localise_global_pooling(caffe.read_prototxt(p).param)
