"""ONNX node and initializer names are the Caffe layer names (issue 13, item 9): a user who
opens the file in Netron finds ``conv4-2`` where Caffe had it. Checked on real nets of
../shared/data/caffe (every real net, through test_deploy_onnx's export test, calls
:func:`check_node_names`) and on MTCNN's P-Net fixture."""

from __future__ import annotations

import re

import onnx
import pytest

from tests.conftest import DATA

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared Caffe data folder {DATA} missing")


def check_node_names(src, path) -> dict[str, list[str]]:
    """Assert the naming rules on the exported file ``path`` of ``src`` (a ModelSource);
    return {layer: its node names}.

    - every Caffe layer that computes something (Dropout at TEST copies its bottom: no
      op) has a node of its name, or is listed in the ``doc_string`` of the one node that
      computes it with others (``Caffe layers conv1, bn_conv1, scale_conv1``: a Scale fused
      into its BatchNorm, a BatchNorm folded into its Convolution by the optimiser);
    - every other node of a layer is named ``layer/N``; node names are unique;
    - no initializer keeps an anonymous exporter name (``val_3``)."""
    compiled = src.compiled
    model = onnx.load(str(path))
    names = [n.name for n in model.graph.node]
    assert len(names) == len(set(names)), "node names are unique"
    copies = {n.name for n in compiled.net.layers if n.type == "Dropout"}
    computing = [layer for layer in compiled.layer_of_module.values() if layer not in copies]
    merged = {}
    for n in model.graph.node:
        if n.doc_string.startswith("Caffe layers "):
            listed = n.doc_string[len("Caffe layers "):].split(", ")
            assert listed[0] == n.name, (n.name, n.doc_string)
            merged.update({layer: n.name for layer in listed[1:]})
        else:
            assert n.doc_string in ("", f"Caffe layer {n.name}"), (n.name, n.doc_string)
    missing = [layer for layer in computing if layer not in names and layer not in merged]
    assert not missing, f"layers without a node of their name: {missing}; nodes: {names}"
    by_layer: dict[str, list[str]] = {}
    for name in names:
        base = name.rsplit("/", 1)[0] if re.fullmatch(r".+/\d+", name) and name not in computing else name
        assert base in computing, f"node '{name}' is named after no layer"
        by_layer.setdefault(base, []).append(name)
    anonymous = [i.name for i in model.graph.initializer if re.fullmatch(r"(val|_val)_\d+", i.name)]
    assert not anonymous, f"initializers with exporter names: {anonymous}"
    return by_layer


@pytest.mark.parametrize("key", ["lenet", "fsrcnn", "resnet50_stem"])
def test_real_nets_nodes_are_named_after_their_layers(real_export, key):
    src, _, path = real_export(key)
    by_layer = check_node_names(src, path)
    model = onnx.load(str(path))
    op_of = {n.name: n.op_type for n in model.graph.node}
    inits = {i.name for i in model.graph.initializer}
    if key == "lenet":
        assert op_of["conv1"] == "Conv" and op_of["relu1"] == "Relu" and op_of["loss"] == "Softmax"
        assert {"conv1/weight", "conv1/bias", "ip2/weight"} <= inits
    if key == "fsrcnn":
        # FSRCNN's PReLU slopes: folded constants that the exporter names val_N
        prelus = [n for n in model.graph.node if n.op_type == "PRelu"]
        assert len(prelus) == 7
        assert all(n.input[1] == f"{n.name}/slope" for n in prelus), [list(n.input) for n in prelus]
        assert op_of["deconv"] == "ConvTranspose"
    if key == "resnet50_stem":
        # BatchNorm + its in-place Scale fused, then folded into the Convolution by the
        # exporter's optimiser: one Conv node, named conv1, that lists all three
        conv = next(n for n in model.graph.node if n.name == "conv1")
        assert conv.op_type == "Conv" and conv.doc_string == "Caffe layers conv1, bn_conv1, scale_conv1"
        assert "bn_conv1" not in op_of and "scale_conv1" not in op_of
        assert op_of["pool1"] == "MaxPool"
        assert all(len(v) == 1 for k, v in by_layer.items() if k != "pool1")
