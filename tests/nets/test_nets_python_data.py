"""Python data layers (issue 13, item 5) and duplicate layer names across phases (item 7).

Truth for fcn.berkeleyvision.org's val/train nets: their deploy.prototxt (same repository
and commit), which replaces the Python data layer by an Input of 1x3x500x500: with
--input-shape data=1,3,500,500 and --deploy the val net is that net, blob for blob.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fcnkit.analysis import analyse, analyse_coord_maps, offset_table
from fcnkit.cli.main import main
from fcnkit.errors import NetDefinitionError, ShapeError, UnsupportedLayerError
from fcnkit.graph import NetState, load_net
from tests.conftest import DATA

HERE = Path(__file__).parent / "data"
FCN8S = DATA / "fcn_berkeleyvision" / "voc-fcn8s"
AUTOENC = HERE / "mnist_autoencoder.prototxt"


def _flat(capsys) -> str:
    cap = capsys.readouterr()
    return " ".join((cap.err + cap.out).split())


def _shapes_by_blob(net, shapes):
    return {net.blob_name[b]: s for b, s in shapes.items() if b == net.final[net.blob_name[b]]}


def test_val_net_with_deploy_is_the_deploy_net():
    net = load_net(FCN8S / "val.prototxt", deploy=True, input_shapes={"data": (1, 3, 500, 500)})
    ref = load_net(FCN8S / "deploy.prototxt")
    got = _shapes_by_blob(net, analyse(net, {"data": (1, 3, 500, 500)}).shapes)
    want = _shapes_by_blob(ref, analyse(ref).shapes)
    assert got == want and got["score"] == (1, 21, 500, 500)
    assert net.prepared.dropped == ["loss"] and net.prepared.dropped_tops == ["label"]
    assert net.layer("data").role == "input" and net.layer("data").type == "Python"


def test_label_kept_when_given_a_shape():
    net = load_net(FCN8S / "train.prototxt", NetState.make("TRAIN"))
    shapes = analyse(net, {"data": (1, 3, 64, 64), "label": (1, 1, 64, 64)}).shapes
    assert [net.blob_name[b] for b in net.inputs] == ["data", "label"]
    assert shapes[net.final["loss"]] == ()  # SoftmaxWithLoss: a scalar


def test_label_without_shape_names_both_ways_out():
    net = load_net(FCN8S / "val.prototxt")
    with pytest.raises(ShapeError, match=r"top 'label' is not declared.*--input-shape label=N,C,H,W"
                                         r" \(or --deploy"):
        analyse(net, {"data": (1, 3, 64, 64)})


def test_offsets_treat_the_python_layer_as_a_data_source():
    net = load_net(FCN8S / "val.prototxt", allow_unsupported=True)
    rows = {r.name: r for r in offset_table(net, analyse_coord_maps(net))}
    ref = load_net(FCN8S / "deploy.prototxt")
    ref_rows = {r.name: r for r in offset_table(ref, analyse_coord_maps(ref))}
    assert rows["score"] == ref_rows["score"] and rows["upscore8"] == ref_rows["upscore8"]


PY_MIDDLE = """name: "mid"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 3 } }
layer { name: "rpn" type: "Python" bottom: "conv" top: "rois"
        python_param { module: "rpn.proposal_layer" layer: "ProposalLayer" } }
"""


def test_python_layer_inside_the_net_names_module_and_class(tmp_path, capsys):
    p = tmp_path / "mid.prototxt"
    p.write_text(PY_MIDDLE)
    with pytest.raises(UnsupportedLayerError) as e:
        load_net(p)
    msg = " ".join(str(e.value).split())
    assert "layer 'rpn' of type 'Python' (line 5)" in msg
    assert "module 'rpn.proposal_layer', class 'ProposalLayer'" in msg
    # offsets still run: the Python layer has no coordinate map
    net = load_net(p, allow_unsupported=True)
    assert net.unsupported == ["rpn"]
    assert main(["compile", str(p)]) == 2
    assert "class 'ProposalLayer'" in _flat(capsys)


def test_cli_compiles_fcn_val_net(capsys):
    assert main(["compile", str(FCN8S / "val.prototxt"), "--deploy", "--input-shape",
                 "data=1,3,64,80", "--format", "markdown"]) == 0
    out = _flat(capsys)
    assert "| score | Crop | 1x21x64x80 |" in out
    assert "inputs: data (1, 3, 64, 80); outputs: score" in out


# ---------------------------------------------------------------- item 7: duplicate names

@pytest.mark.parametrize("phase,stages", [("TRAIN", ()), ("TEST", ("test-on-train",)),
                                          ("TEST", ("test-on-test",))])
def test_autoencoder_duplicates_across_phases_are_filtered(phase, stages):
    """Three Data layers named 'data' (one per phase/stage) leave one; the two 'loss'
    layers of every phase go with --deploy, and the net compiles."""
    net = load_net(AUTOENC, NetState.make(phase, 0, stages), deploy=True,
                   input_shapes={"data": (2, 1, 28, 28)})
    assert [n.name for n in net.layers if n.name == "data"] == ["data"]
    assert net.prepared.dropped == ["loss", "loss"]
    shapes = analyse(net, {"data": (2, 1, 28, 28)}).shapes
    assert shapes[net.final["decode1neuron"]] == (2, 784)
    assert shapes[net.final["flatdata"]] == (2, 784)


def test_duplicates_inside_the_filtered_net_name_both_lines():
    with pytest.raises(NetDefinitionError) as e:
        load_net(AUTOENC, NetState.make("TRAIN"))
    msg = str(e.value)
    # the SigmoidCrossEntropyLoss 'loss' and the EuclideanLoss 'loss' of the fixture
    assert "layer name 'loss', line 133 is used twice in phase TRAIN (first at line 119)" in msg
    assert "--deploy removes them" in msg


def test_duplicate_compute_layers_get_no_deploy_hint(tmp_path):
    p = tmp_path / "dup.prototxt"
    p.write_text(PY_MIDDLE.replace('name: "rpn" type: "Python" bottom: "conv" top: "rois"\n'
                                   '        python_param { module: "rpn.proposal_layer" layer: "ProposalLayer" }',
                                   'name: "conv" type: "ReLU" bottom: "conv" top: "conv"'))
    with pytest.raises(NetDefinitionError, match=r"'conv', line 5 is used twice .*first at line 3") as e:
        load_net(p)
    assert "--deploy" not in str(e.value)


def test_cli_autoencoder_without_stage_creates_the_input(capsys):
    """In TEST without a stage no Data layer is included: --input-shape creates 'data'."""
    assert main(["compile", str(AUTOENC), "--deploy", "--input-shape", "data=1,1,28,28",
                 "--format", "markdown"]) == 0
    out = _flat(capsys)
    assert "input 'data' created" in out and "| decode1 | InnerProduct | 1x784 |" in out
