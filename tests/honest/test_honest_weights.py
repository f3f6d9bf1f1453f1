"""Issue 13 item 1: a caffemodel that does not fit the net is never silently a net of zeros.

Truth: the real LeNet / CIFAR-10 / FCN-8s files in ../shared/data/caffe (their layer names
are read from the files by the test), Caffe's filler semantics (no filler = constant 0) and
softmax of all-zero logits (exactly 1/K per class).
"""

from __future__ import annotations

import numpy as np
import pytest

from fcnkit import caffe
from fcnkit.compile import compile_net
from fcnkit.compile.load_report import filler_gives_zeros, weights_load_report
from fcnkit.errors import WeightsError
from fcnkit.graph import load_net
from tests.honest._helpers import (CIFAR_NET, CIFAR_WEIGHTS, LENET_NET, LENET_WEIGHTS,
                                   renamed_lenet, run_cli)

FCN8S = "fcnkit/data/voc-fcn8s-deploy.prototxt"  # bundled copy of fcn.berkeleyvision's deploy net


def test_export_with_the_caffemodel_of_another_net_exits_2_and_writes_nothing(tmp_path, capsys, data_dir):
    out = tmp_path / "fcn8s.onnx"
    code, _, err = run_cli(capsys, ["export", FCN8S, "-w", LENET_WEIGHTS, "-o", out])
    assert code == 2
    assert "no layer of the net loaded" in err
    # the message names the net's layers and the caffemodel's
    for name in ("conv1_1", "conv1", "ip1", "ip2"):
        assert name in err
    assert "--allow-missing-weights" in err
    assert list(tmp_path.iterdir()) == []  # no ONNX file, no temporary sibling


def test_correct_load_reports_every_layer_loaded(tmp_path, capsys, data_dir):
    code, _, err = run_cli(capsys, ["compile", LENET_NET, "-w", LENET_WEIGHTS])
    assert code == 0
    assert "4 of 4 layer(s) with weights loaded (conv1, conv2, ip1, ip2)" in err
    assert "warning" not in err
    model = caffe.read_caffemodel(LENET_WEIGHTS)
    report = compile_net(load_net(LENET_NET), model).load_report
    assert report.loaded == ["conv1", "conv2", "ip1", "ip2"]
    assert (report.filled, report.zeros, report.unused, report.renamed) == ({}, [], [], [])


def test_legacy_v1_caffemodel_loads_every_layer(data_dir):
    report = compile_net(load_net(CIFAR_NET), caffe.read_caffemodel(CIFAR_WEIGHTS)).load_report
    with_params = [n.name for n in load_net(CIFAR_NET).layers if n.layer.param_names()]
    assert report.loaded == with_params and len(with_params) == 5


def test_renamed_layer_is_a_warning_naming_both(tmp_path, capsys, data_dir):
    net = renamed_lenet(tmp_path, keep_filler=True)
    code, _, err = run_cli(capsys, ["compile", net, "-w", LENET_WEIGHTS])
    assert code == 0
    assert "3 of 4 layer(s) with weights loaded (conv1, conv2, ip1); 1 from fillers (ip2_mnist); " \
        "1 caffemodel layer(s) unused (ip2)" in err
    assert "warning: caffemodel layer 'ip2' is unused and net layer 'ip2_mnist' did not load" in err
    report = compile_net(load_net(net), caffe.read_caffemodel(LENET_WEIGHTS)).load_report
    assert report.renamed == [("ip2", "ip2_mnist")]
    assert report.filled == {"ip2_mnist": "xavier"} and report.unused == ["ip2"]


def test_layer_that_would_be_zeros_is_an_error_unless_allowed(tmp_path, capsys, data_dir):
    net = renamed_lenet(tmp_path, keep_filler=False)
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32))
    out = tmp_path / "out.npz"
    code, _, err = run_cli(capsys, ["run", net, "-w", LENET_WEIGHTS, "-i", x, "-o", out])
    assert code == 2
    assert "would be all zeros: ip2_mnist" in err and "'ip2'" in err
    assert not out.exists()
    code, _, err = run_cli(capsys, ["run", net, "-w", LENET_WEIGHTS, "-i", x, "-o", out,
                                    "--allow-missing-weights"])
    assert code == 0
    assert "1 all zeros, no filler (ip2_mnist)" in err
    # ip2_mnist's weights and bias are 0: its logits are 0 and the softmax is 1/10 exactly
    # (the file's final Softmax is named "loss")
    np.testing.assert_allclose(np.load(out)["loss"], np.full((1, 10), 0.1, np.float32), rtol=1e-6)


def test_python_api_raises_with_the_report_attached(tmp_path, data_dir):
    net = load_net(renamed_lenet(tmp_path, keep_filler=False))
    model = caffe.read_caffemodel(LENET_WEIGHTS)
    with pytest.raises(WeightsError) as info:
        compile_net(net, model)
    assert info.value.report.zeros == ["ip2_mnist"]
    assert info.value.report.renamed == [("ip2", "ip2_mnist")]
    compiled = compile_net(net, model, allow_missing_weights=True)
    assert compiled.load_report.loaded == ["conv1", "conv2", "ip1"]
    assert not compiled.module.ip2_mnist.weight.detach().abs().sum()


def test_surgery_refuses_weights_of_another_net(data_dir):
    from fcnkit.surgery import fcn_surgery

    param = caffe.read_prototxt(LENET_NET).param
    foreign = {"conv1_1": [np.zeros((64, 3, 3, 3), np.float32), np.zeros(64, np.float32)]}
    with pytest.raises(WeightsError, match="no layer of the net loaded"):
        fcn_surgery(param, foreign, head="none")
    result = fcn_surgery(param, foreign, head="none", allow_missing_weights=True)
    assert result.weights_report.unused == ["conv1_1"]
    assert result.weights_report.loaded == []


def test_surgery_cli_prints_the_load_report(tmp_path, capsys, data_dir):
    code, _, err = run_cli(capsys, ["surgery", LENET_NET, LENET_WEIGHTS, "-o", tmp_path / "fcn",
                                    "--head", "none"])
    assert code == 0
    assert "4 of 4 layer(s) with weights loaded" in err


def test_fillers_that_can_only_give_zeros():
    from fcnkit.caffe import caffe_pb2

    def filler(**fields):
        f = caffe_pb2.FillerParameter()
        for k, v in fields.items():
            setattr(f, k, v)
        return f

    assert filler_gives_zeros(None)
    assert filler_gives_zeros(filler())  # Caffe's default: constant 0
    assert filler_gives_zeros(filler(type="constant", value=0.0))
    assert not filler_gives_zeros(filler(type="constant", value=0.5))
    assert filler_gives_zeros(filler(type="gaussian", std=0.0))
    assert not filler_gives_zeros(filler(type="gaussian"))  # std defaults to 1
    assert filler_gives_zeros(filler(type="uniform", min=0.0, max=0.0))
    assert not filler_gives_zeros(filler(type="uniform"))  # [0, 1)
    assert not filler_gives_zeros(filler(type="xavier"))


def test_report_without_shapes_looks_for_no_renamed_layer(data_dir):
    net = load_net(LENET_NET)
    blobs = {"ip2_old": [np.zeros((10, 500)), np.zeros(10)]}
    rep = weights_load_report(net.layers, blobs)
    assert rep.renamed == [] and rep.unused == ["ip2_old"]
    # conv1 of this file has no weight_filler (Caffe: constant 0); the others are xavier
    assert rep.zeros == ["conv1"]
    assert rep.filled == {"conv2": "xavier", "ip1": "xavier", "ip2": "xavier"}
    assert rep.problems()  # nothing loads


def test_long_lists_are_cut_for_one_line():
    from fcnkit.compile.load_report import abbreviate

    assert abbreviate("abcdefghij") == "a, b, c, d, e, f, g, h ... and 2 more"
    assert abbreviate(["conv1", "ip1"]) == "conv1, ip1"
