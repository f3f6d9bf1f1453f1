"""`fcnkit time`: per-layer forward times and the total, like `caffe time`, on both backends;
the ONNX Runtime profile grouping checked on a hand-made profile with known durations."""

from __future__ import annotations

import numpy as np
import pytest

from fcnkit.cli.main import main
from fcnkit.compile import compile_net
from fcnkit.deploy.timing import onnx_node_layers, profile_onnx, profile_per_layer, time_forward
from fcnkit.graph import load_net
from tests.conftest import DATA

LENET = DATA / "lenet_ahmdtaha" / "mnist_deploy.prototxt"
LENET_LAYERS = ["data", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "loss"]


def test_time_cli_prints_every_layer_and_total(capsys):
    assert main(["time", str(LENET), "-n", "2", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line.split("|")[1].strip() for line in out.splitlines()
            if line.startswith("| ") and not line.startswith("| layer")]
    assert rows == LENET_LAYERS
    assert "total forward: median" in out and "over 2 passes (1 warm-up passes not counted)" in out


def test_time_torch_result():
    compiled = compile_net(load_net(LENET), None, deploy=True)
    r = time_forward(compiled, "torch", iterations=3, warmup=1)
    assert [t.layer for t in r.layers] == LENET_LAYERS
    assert [t.type for t in r.layers][:3] == ["Input", "Convolution", "Pooling"]
    assert all(t.median_ms > 0 and t.mean_ms > 0 for t in r.layers)
    assert r.total_median_ms > 0 and r.input_shapes == {"data": (1, 1, 28, 28)}


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_time_torch_on_cuda():
    compiled = compile_net(load_net(LENET), None, deploy=True)
    r = time_forward(compiled, "torch", iterations=3, warmup=1, device="cuda")
    assert [t.layer for t in r.layers] == LENET_LAYERS and r.total_median_ms > 0


def _two_conv_onnx(path):
    """conv1 (a node named after its layer) -> node_Conv_7 (named by the exporter, its
    layer only in the ``pkg.torch.onnx.name_scopes`` metadata, as torch writes it)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w1")
    w2 = numpy_helper.from_array(np.ones((2, 2, 3, 3), np.float32), "w2")
    n1 = helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1])
    n2 = helper.make_node("Conv", ["c1", "w2"], ["y"], name="node_Conv_7")
    n2.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'conv2', 'conv2d']")
    graph = helper.make_graph([n1, n2], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 6, 6])], [w, w2])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_onnxruntime_profile_names_the_caffe_layers(tmp_path):
    pytest.importorskip("onnxruntime")
    path = tmp_path / "two.onnx"
    _two_conv_onnx(path)
    assert onnx_node_layers(path, {"conv1": "conv1", "conv2": "conv2"}) == {"conv1": "conv1",
                                                                           "node_Conv_7": "conv2"}
    per_layer, totals = profile_onnx(path, {"x": np.ones((1, 1, 8, 8), np.float32)}, 3, 2,
                                     {"conv1": "conv1", "conv2": "conv2"})
    assert set(per_layer) == {"conv1", "conv2"}
    assert all(len(v) == 3 and min(v) > 0 for v in per_layer.values())
    assert len(totals) == 3
    # a pass takes at least as long as the kernels run in it
    assert all(t >= a + b for t, a, b in zip(totals, per_layer["conv1"], per_layer["conv2"]))


def _event(cat, name, ts, dur):
    return {"cat": cat, "name": name, "ts": ts, "dur": dur, "args": {}}


def test_profile_grouping_skips_warmup_and_sums_per_layer():
    events = [
        _event("Session", "model_run", 0, 100),           # warm-up pass
        _event("Node", "n_conv_kernel_time", 10, 50),
        _event("Session", "model_run", 200, 100),         # timed pass 1
        _event("Node", "n_conv_kernel_time", 210, 30),
        _event("Node", "n_bias_kernel_time", 245, 5),     # a second node of the same layer
        _event("Node", "fused n_ip_kernel_time", 260, 20),
        _event("Node", "ReorderOutput_kernel_time", 285, 2),
        _event("Node", "n_conv_fence_before", 209, 1),    # not a kernel time
        _event("Session", "model_run", 400, 90),          # timed pass 2
        _event("Node", "n_conv_kernel_time", 410, 40),
        _event("Node", "fused n_ip_kernel_time", 460, 10),
    ]
    per_layer, totals = profile_per_layer(events, 1, {"n_conv": "conv1", "n_bias": "conv1", "n_ip": "ip1"})
    assert per_layer["conv1"] == pytest.approx([35e-6, 40e-6])
    assert per_layer["ip1"] == pytest.approx([20e-6, 10e-6])
    assert per_layer["ReorderOutput"] == pytest.approx([2e-6])
    assert totals == pytest.approx([100e-6, 90e-6])


def test_time_errors(capsys):
    assert main(["time", str(LENET), "--backend", "caffe"]) == 2
    assert "--backend must be one of torch, onnxruntime" in capsys.readouterr().err
    assert main(["time", str(LENET), "-n", "0"]) == 2
