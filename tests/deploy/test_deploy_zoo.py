"""Acceptance 1, zoo half: every zoo model exports to ONNX at a small tile, passes the
checker and matches torch in ONNX Runtime to 1e-4 (relative, fp32); its graph is named
data -> prob (Softmax along the class axis) and carries the zoo's band and class names."""

from __future__ import annotations

import json

import onnx
import pytest

from fcnkit.deploy.onnx import FP32_TOLERANCE

#: The smallest tile every zoo model takes: FCNs pad conv1 by 100; FC-DenseNets pool five
#: times and concatenate skips, so H and W must be multiples of 32.
ZOO_TILE = (32, 32)


def _zoo_export(exports, name):
    from fcnkit.deploy.model import fill_untrained, load_model

    def loader():
        src = load_model(name, tile=ZOO_TILE)
        fill_untrained(src.compiled)  # untrained BatchNorm statistics are 0: give them variance 1
        return src

    return exports.get(f"zoo_{name}", loader)


def _all_zoo_names():
    from fcnkit.deploy.model import zoo_names

    return zoo_names() or ["<zoo not available>"]


@pytest.mark.parametrize("name", _all_zoo_names())
def test_zoo_model_exports_and_matches_torch(exports, zoo_names, name):
    src, result, path = _zoo_export(exports, name)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert result.opset == 18
    assert [i.name for i in model.graph.input] == ["data"]
    assert [o.name for o in model.graph.output] == ["prob"]
    assert result.inputs == {"data": ["batch", 8, *ZOO_TILE]}
    assert result.outputs == {"prob": ["batch", 2, *ZOO_TILE]}
    soft = [n for n in model.graph.node if n.op_type == "Softmax"]
    assert len(soft) == 1 and onnx.helper.get_attribute_value(soft[0].attribute[0]) == 1
    assert result.ok and result.relative <= FP32_TOLERANCE, result.lines()
    meta = {p.key: p.value for p in model.metadata_props}
    from fcnkit import zoo

    info = zoo.info(name)
    assert json.loads(meta["fcnkit.bands"]) == info["band_names"]
    assert json.loads(meta["fcnkit.classes"]) == info["class_names"] == ["background", "road"]
    assert meta["fcnkit.source"] == f"zoo:{name}" and meta["fcnkit.tile"] == "32,32"
