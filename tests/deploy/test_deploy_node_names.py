"""ONNX node and initializer names are the Caffe layer names (issue 13, item 9): a user who
opens the file in Netron finds ``conv4-2`` where Caffe had it. Checked on real nets of
../shared/data/caffe (every real net, through test_deploy_onnx's export test, calls
:func:`check_node_names`) and on MTCNN's P-Net fixture."""

from __future__ import annotations

import re

import onnx
import pytest

from fcnkit.deploy.onnx import fused_pairs
from tests.conftest import DATA

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared Caffe data folder {DATA} missing")


def check_node_names(src, path) -> dict[str, list[str]]:
    """Assert the naming rules on the exported file ``path`` of ``src`` (a ModelSource);
    return {layer: its node names}.

    - every Caffe layer that computes something has a node of its name, except a Scale
      fused into its BatchNorm (one BatchNormalization node, named after the BatchNorm);
    - every other node of a layer is named ``layer/N``; node names are unique;
    - no initializer keeps an anonymous exporter name (``val_3``)."""
    compiled = src.compiled
    model = onnx.load(str(path))
    names = [n.name for n in model.graph.node]
    assert len(names) == len(set(names)), "node names are unique"
    fused_away = {compiled.layer_of_module[s.target]
                  for _, s, _ in fused_pairs(compiled, compiled.module.graph)}
    computing = [layer for layer in compiled.layer_of_module.values() if layer not in fused_away]
    missing = [layer for layer in computing if layer not in names]
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
        # BatchNorm + its in-place Scale: one node, named after the BatchNorm layer
        assert op_of["bn_conv1"] == "BatchNormalization" and "scale_conv1" not in op_of
        assert op_of["pool1"] == "MaxPool"
        assert all(len(v) == 1 for k, v in by_layer.items() if k != "pool1")
