"""DIGITS templates (issue 13, item 4): the deploy stage's missing input created from
--input-shape, --classes for an unset num_output, --deploy dropping labels and losses.

Independent truths: NVIDIA's own deploy prototxt of FCN-AlexNet (written by DIGITS from the
train/val file) and BVLC's LeNet deploy net with a trained caffemodel (the DIGITS template
is the same LeNet behind a Power layer of scale 0.0125: output(x) = lenet(0.0125 x)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fcnkit.analysis import analyse
from fcnkit.cli.main import main
from fcnkit.compile import compile_net
from fcnkit.errors import InputError, NetDefinitionError
from fcnkit.graph import NetState, load_net
from tests.conftest import DATA

HERE = Path(__file__).parent / "data"
LENET_T = HERE / "digits_lenet.prototxt"
FCN_DIR = DATA / "digits_nvidia" / "examples" / "semantic-segmentation"
LENET = DATA / "lenet_ahmdtaha"


def _flat(capsys) -> str:
    cap = capsys.readouterr()
    return " ".join((cap.err + cap.out).split())


def test_deploy_stage_creates_the_input_and_fills_classes():
    net = load_net(LENET_T, NetState.make("TEST", 0, ["deploy"]), classes=10,
                   input_shapes={"data": (2, 1, 28, 28)})
    assert net.prepared.injected == ["data"] and net.prepared.classes_filled == "ip2"
    assert [n.name for n in net.layers][:2] == ["data", "scale"]
    shapes = analyse(net).shapes
    # LeNet arithmetic: 28 -5+1-> 24 /2-> 12 -5+1-> 8 /2-> 4; ip2 = the class count
    assert shapes[net.final["pool2"]] == (2, 50, 4, 4)
    assert shapes[net.final["softmax"]] == (2, 10)
    assert net.outputs == [net.final["softmax"]]


def test_template_matches_bvlc_lenet_with_the_trained_weights():
    """The template (deploy stage, --classes 10) with lenet_iter_10000.caffemodel computes
    what BVLC's mnist_deploy net computes on the input scaled by 0.0125 (the Power layer)."""
    weights = LENET / "lenet_iter_10000.caffemodel"
    tnet = load_net(LENET_T, NetState.make("TEST", 0, ["deploy"]), classes=10,
                    input_shapes={"data": (1, 1, 28, 28)})
    t = compile_net(tnet, weights)
    ref = compile_net(load_net(LENET / "mnist_deploy.prototxt"), weights)
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (1, 1, 28, 28)).astype(np.float32))
    with torch.no_grad():
        got = t.module(x)["softmax"]
        want = ref.module(x * 0.0125)["loss"]  # mnist_deploy names its Softmax "loss"
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    assert float(want.max()) > 0.5  # a trained net: a confident class, not a flat output


def test_unset_num_output_without_classes_names_the_layer_and_option():
    with pytest.raises(NetDefinitionError, match=r"'ip2' \(InnerProduct, line \d+\).*--classes N"):
        load_net(LENET_T, NetState.make("TEST", 0, ["deploy"]), input_shapes={"data": (1, 1, 28, 28)})


def test_classes_never_overwrite_a_set_num_output():
    with pytest.raises(InputError, match="already has num_output 10"):
        load_net(LENET / "mnist_deploy.prototxt", classes=5)
    assert load_net(LENET / "mnist_deploy.prototxt", classes=10).prepared.classes_filled is None


def test_missing_input_without_shape_says_which_option():
    with pytest.raises(NetDefinitionError, match=r"--input-shape data=N,C,H,W"):
        load_net(LENET_T, NetState.make("TEST", 0, ["deploy"]), classes=10)


def test_val_stage_keeps_label_and_accuracy_deploy_drops_them():
    state = NetState.make("TEST", 0, ["val"])
    net = load_net(LENET_T, state, classes=10)
    assert {"accuracy", "loss"} <= {n.name for n in net.layers}
    net = load_net(LENET_T, state, classes=10, deploy=True,
                   input_shapes={"scaled": (4, 1, 28, 28)})
    names = [n.name for n in net.layers]
    assert "accuracy" not in names and "loss" not in names
    assert [net.blob_name[b] for b in net.inputs] == ["scaled"]
    assert list(net.layer("val-data").param.top) == ["scaled"]
    assert net.prepared.dropped == ["accuracy", "loss"] and net.prepared.dropped_tops == ["label"]


def _layer_rows(net, shapes):
    """(type, top shapes) per layer; any input layer (Data here, Input there) as "input"."""
    return [(n.role if n.role == "input" else n.param.type, tuple(shapes[t] for t in n.tops))
            for n in net.layers]


def test_fcn_alexnet_deploy_equals_digits_own_deploy_net():
    """fcn_alexnet.prototxt (train/val, Data layers for data and label) with --deploy and
    the input shape compiles to the net NVIDIA's fcn_alexnet.deploy.prototxt describes: the
    same layer types and blob shapes in the same order, and the same crop offset."""
    shape = (1, 3, 500, 356)  # the deploy file's declared input
    for stages in ((), ("deploy",)):
        net = load_net(FCN_DIR / "fcn_alexnet.prototxt", NetState.make("TEST", 0, stages),
                       deploy=True, input_shapes={"data": shape})
        ref = load_net(FCN_DIR / "fcn_alexnet.deploy.prototxt")
        a, b = analyse(net, {"data": shape}), analyse(ref)
        assert _layer_rows(net, a.shapes) == _layer_rows(ref, b.shapes)
        assert a.total_params == b.total_params
        assert [n.name for n in net.layers if n.role in ("loss", "metric")] == []
        assert [net.blob_name[i] for i in net.inputs] == ["data"]


def test_cli_compile_digits_nets(capsys):
    assert main(["compile", str(FCN_DIR / "fcn_alexnet.prototxt"), "--deploy", "--stage", "deploy",
                 "--input-shape", "data=1,3,500,356", "--format", "markdown"]) == 0
    out = _flat(capsys)
    assert "deploy: removed input 'label'" in out
    assert "| score | Crop | 1x21x500x356 |" in out
    assert "crop score: declared [18, 18], computed [18, 18] -> ok" in out
    assert main(["compile", str(LENET_T), "--stage", "deploy", "--input-shape", "data=1,1,28,28",
                 "--classes", "7", "--format", "markdown"]) == 0
    out = _flat(capsys)
    assert "input 'data' created (Input layer)" in out and "num_output of 'ip2' set" in out
    assert "| ip2 | InnerProduct | 1x7 |" in out


def test_cli_compile_without_deploy_explains_the_label(capsys):
    code = main(["compile", str(FCN_DIR / "fcn_alexnet.prototxt"), "--input-shape", "data=1,3,64,64"])
    assert code == 2
    out = _flat(capsys)
    assert "top 'label' is not declared" in out and "--deploy" in out


def test_cli_run_creates_the_input_from_the_array(tmp_path, capsys):
    x = np.random.default_rng(1).uniform(0, 255, (1, 1, 28, 28)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    assert main(["run", str(LENET_T), "--stage", "deploy", "--classes", "10", "-w",
                 str(LENET / "lenet_iter_10000.caffemodel"), "-i", str(tmp_path / "x.npy"),
                 "-o", str(out)]) == 0
    got = np.load(out)["softmax"]
    ref = compile_net(load_net(LENET / "mnist_deploy.prototxt"), LENET / "lenet_iter_10000.caffemodel")
    with torch.no_grad():
        want = ref.module(torch.from_numpy(x) * 0.0125)["loss"].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_export_library_takes_stage_and_classes(tmp_path):
    from fcnkit.deploy.model import load_model

    src = load_model(LENET_T, stages=("deploy",), classes=3, input_shapes={"data": (1, 1, 28, 28)})
    assert src.compiled.inputs == ["data"] and src.compiled.outputs == ["softmax"]
    assert src.compiled.analysis.shapes[src.compiled.net.final["ip2"]] == (1, 3)


@pytest.mark.parametrize("model", ["bvlc_alexnet", "bvlc_reference_caffenet"])
def test_bvlc_train_val_deploy_equals_bvlc_deploy_net(model):
    """--deploy on BVLC's train_val (Data layer with data and label; Accuracy in TEST,
    SoftmaxWithLoss) leaves the net of BVLC's deploy.prototxt up to fc8: the same layer
    types and shapes (deploy.prototxt adds a Softmax 'prob' where the loss was)."""
    root = DATA / "bvlc_caffe" / "v2" / "models" / model
    shape = (10, 3, 227, 227)  # deploy.prototxt's declared input
    net = load_net(root / "train_val.prototxt", deploy=True, input_shapes={"data": shape})
    ref = load_net(root / "deploy.prototxt")
    assert net.prepared.dropped == ["accuracy", "loss"] and net.prepared.dropped_tops == ["label"]
    got = _layer_rows(net, analyse(net, {"data": shape}).shapes)
    want = _layer_rows(ref, analyse(ref).shapes)
    assert want[-1][0] == "Softmax" and got == want[:-1]
    assert [net.blob_name[b] for b in net.outputs] == ["fc8"]


def test_cli_offsets_on_the_template(capsys):
    """The deploy stage's offsets: the created input feeds the Power layer, conv1 (k5) sits
    at offset -2 and pool1 (k2 s2) halves the scale (coord_map.py's rules)."""
    assert main(["offsets", str(LENET_T), "--stage", "deploy", "--input-shape", "data=1,1,28,28",
                 "--classes", "10", "--format", "csv"]) == 0
    rows = {r.split(",")[0]: r.split(",") for r in capsys.readouterr().out.splitlines()}
    assert rows["conv1"][1:] == ["Convolution", "5", "1", "0", "1", "1", "-2", "-2"]
    assert rows["pool1"][-4:] == ["0.5", "0.5", "-0.25", "-1.25"]
