"""Acceptance 1 of the core compiler: every real prototxt loads in its phases; every one
that uses only BVLC layers compiles; blob shapes equal Caffe's."""

from __future__ import annotations

import pytest
import torch

from fcnkit import caffe
from fcnkit.analysis import analyse
from fcnkit.compile import compile_net
from fcnkit.errors import ShapeError
from fcnkit.graph import NetState, load_net
from tests.conftest import DATA

PROTOTXTS = sorted(p.relative_to(DATA).as_posix() for p in DATA.rglob("*.prototxt"))

# Nets whose data come from a Python layer (fcn.berkeleyvision.org's voc_layers): they load,
# and compile only with --input-shape for the Python layer's tops.
PYTHON_LAYER_NETS = {p for p in PROTOTXTS if "fcn_berkeleyvision" in p and not p.endswith("deploy.prototxt")}
# Data-layer nets need an explicit input shape (Caffe reads it from the LMDB).
NEEDS_SHAPE = {
    "bvlc_caffe/v2/models/bvlc_alexnet/train_val.prototxt": {"data": (2, 3, 227, 227)},
    "bvlc_caffe/v2/models/bvlc_reference_caffenet/train_val.prototxt": {"data": (2, 3, 227, 227)},
    "digits_nvidia/examples/semantic-segmentation/fcn_alexnet.prototxt":
        {"data": (1, 3, 64, 80), "label": (1, 1, 64, 80)},
    "cifar10quick_ikkichung/prediction_example.prototxt": {"data": (2, 3, 32, 32)},
}


@pytest.mark.parametrize("rel", PROTOTXTS)
@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
def test_every_prototxt_loads_in_each_phase(rel, phase):
    src = caffe.read_prototxt(DATA / rel)
    net = load_net(src, NetState.make(phase), allow_unsupported=True)
    assert net.layers, f"{rel} has no layer in phase {phase}"
    assert net.outputs


@pytest.mark.parametrize("rel", [p for p in PROTOTXTS if p not in PYTHON_LAYER_NETS])
def test_bvlc_only_nets_compile_and_run(rel):
    net = load_net(DATA / rel)
    shapes = NEEDS_SHAPE.get(rel)
    if shapes is None and any(n.type == "Input" and n.param.input_param.shape and
                              n.param.input_param.shape[0].dim[-1] >= 227 for n in net.layers):
        # Full-size ImageNet/FCN inputs: shrink the spatial size to keep the suite fast.
        first = net.blob_name[net.inputs[0]]
        shapes = {first: (1, 3, 227, 227) if "fcn" not in rel else (1, 3, 64, 64)}
    compiled = compile_net(net, None, shapes)
    inputs = [torch.rand(compiled.analysis.shapes[net.final[name]]) for name in compiled.inputs]
    if "label" in compiled.inputs:
        i = compiled.inputs.index("label")
        inputs[i] = torch.zeros_like(inputs[i])
    with torch.no_grad():
        out = compiled.module(*inputs)
    assert set(out) == set(compiled.outputs)
    for name, t in out.items():
        assert tuple(t.shape) == compiled.analysis.shapes[net.final[name]], name
        assert torch.isfinite(t).all(), name


def test_python_data_layer_nets_ask_for_the_input_shape():
    """A Python layer without bottoms is a data source (issue 13 item 5): the net loads;
    its shapes come from --input-shape (tests/nets/test_nets_python_data.py compiles them)."""
    rel = "fcn_berkeleyvision/voc-fcn8s/train.prototxt"
    net = load_net(DATA / rel, NetState.make("TRAIN"))
    with pytest.raises(ShapeError) as e:
        analyse(net)
    msg = str(e.value)
    assert "layer 'data' (Python, line 1)" in msg and "--input-shape data=N,C,H,W" in msg
    assert "module 'voc_layers', class 'SBDDSegDataLayer'" in msg


def test_fcn8s_deploy_shapes_equal_caffe():
    """voc-fcn8s deploy at 500x500: the blob shapes Caffe computes (pad 100, ceil pooling)."""
    net = load_net(DATA / "fcn_berkeleyvision/voc-fcn8s/deploy.prototxt")
    a = analyse(net)
    hw = {name: a.shapes[net.final[name]][2:] for name in net.final}
    assert [hw[f"pool{i}"][0] for i in range(1, 6)] == [349, 175, 88, 44, 22]
    assert hw["fc6"] == (16, 16)
    assert hw["upscore2"] == (34, 34)
    assert hw["upscore_pool4"] == (70, 70)
    assert hw["upscore8"] == (568, 568)
    assert a.shapes[net.final["score"]] == (1, 21, 500, 500)


def test_alexnet_v1_and_v2_give_the_same_shapes():
    v1 = analyse(load_net(DATA / "bvlc_caffe/v1_layers_enum/models/bvlc_alexnet/deploy.prototxt"))
    v2 = analyse(load_net(DATA / "bvlc_caffe/v2/models/bvlc_alexnet/deploy.prototxt"))
    s1 = {v1.net.blob_name[b]: s for b, s in v1.shapes.items()}
    s2 = {v2.net.blob_name[b]: s for b, s in v2.shapes.items()}
    assert s1["pool5"] == s2["pool5"] == (10, 256, 6, 6)
    assert s1["prob"] == s2["prob"] == (10, 1000)
    # fc6 of AlexNet: 9216 x 4096 weights + 4096 biases
    assert v2.costs["fc6"].params == 9216 * 4096 + 4096
    assert v2.total_params == 60_965_224  # the published AlexNet (two-GPU grouping) count


def test_phase_filtering_train_val():
    rel = "bvlc_caffe/v2/models/bvlc_alexnet/train_val.prototxt"
    train = load_net(DATA / rel, NetState.make("TRAIN"))
    test = load_net(DATA / rel, NetState.make("TEST"))
    assert "accuracy" in [n.name for n in test.layers]
    assert "accuracy" not in [n.name for n in train.layers]
    # both phases have a layer named 'data', each the one of its phase
    assert train.layer("data").param.data_param.batch_size == 256
    assert test.layer("data").param.data_param.batch_size == 50
