"""tools/bench_backends.py is a benchmark, not a test; what it decides is tested here: the
targets section (met / NOT met / not evaluated with the reason), the ``--preset target``
configuration, and the Caffe files it writes for an independent runtime from nets fed by
Data layers or legacy inputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import DATA
from tests.deploy.deploy_helpers import BY_KEY, rand

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    import sys

    spec = importlib.util.spec_from_file_location("bench_backends", ROOT / "tools" / "bench_backends.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)


def _row(bench, backend, dtype, ms=float("nan"), note="", model="fcn8s_8band", tile=(512, 512), gflop=100.0,
         peak=None, batch=8):
    return bench.Row(model, tile, backend, dtype, batch, ms, gflop, peak, note)


def test_targets_are_not_evaluated_without_opencv_or_a_gpu(bench):
    rows = [_row(bench, "torch-cpu", "fp32", 400.0), _row(bench, "onnxruntime-cpu", "fp32", 200.0),
            _row(bench, "opencv-dnn", "fp32", note=f"not evaluated ({bench.OPENCV_INSTALL})"),
            _row(bench, "torch-cuda", "-", note="not evaluated (no CUDA device)"),
            _row(bench, "tensorrt", "-", note="not evaluated (no CUDA device)")]
    text = "\n".join(bench.target_lines(rows))
    assert ("fcn8s_8band 512x512: ONNX Runtime CPU >= 1.5x OpenCV dnn: not evaluated (OpenCV not installed "
            "(pip install 'opencv-python-headless<5'))") in text
    assert "TensorRT fp16 >= 50% of dense fp16 peak: not evaluated (no CUDA device)" in text
    assert "TensorRT fp16 >= 2x torch eager fp16: not evaluated (no CUDA device)" in text
    assert "which this run did not include" not in text  # this is the targets' configuration


def test_targets_met_and_not_met(bench):
    # batch 8 at 512x512, 100 GFLOP per tile. ONNX Runtime 2x as fast as OpenCV: met.
    # TensorRT: 8 tiles in 2 ms = 4000 tiles/s = 400 TFLOP/s, 40.4% of a 989.4 peak: not met;
    # torch eager fp16 8 ms: TensorRT is 4x as fast: met.
    rows = [_row(bench, "onnxruntime-cpu", "fp32", 100.0), _row(bench, "opencv-dnn", "fp32", 200.0),
            _row(bench, "torch-cuda", "fp16", 8.0, peak=989.4), _row(bench, "tensorrt", "fp16", 2.0, peak=989.4)]
    text = "\n".join(bench.target_lines(rows))
    assert "ONNX Runtime CPU / OpenCV dnn = 2.00x (target >= 1.5x: met)" in text
    assert "TensorRT fp16 at 40.4% of dense fp16 peak (target >= 50%: NOT met)" in text
    assert "TensorRT fp16 / torch eager fp16 = 4.00x (target >= 2x: met)" in text


def test_targets_say_when_the_run_was_another_configuration(bench):
    rows = [_row(bench, "onnxruntime-cpu", "fp32", 10.0, model="tiramisu56_8band", tile=(128, 128))]
    text = "\n".join(bench.target_lines(rows))
    assert "tiramisu56_8band 128x128: ONNX Runtime CPU >= 1.5x OpenCV dnn: not evaluated (OpenCV dnn not run" in text
    assert "the GPU targets are stated for fcn8s_8band at 512x512, which this run did not include " \
           "(run with --preset target)" in text
    assert "not evaluated (no model was benchmarked)" in "\n".join(bench.target_lines([]))


def test_the_auto_row_is_compared_with_the_fastest_fixed_path(bench):
    note = "onnxruntime (1 intra-op thread); chosen by auto: onnxruntime-1thread (probe ...)"
    rows = [_row(bench, "torch-cpu", "fp32", 0.80, model="lenet", tile=(28, 28), batch=1),
            _row(bench, "onnxruntime-cpu", "fp32", 0.40, model="lenet", tile=(28, 28), batch=1),
            _row(bench, "auto-cpu", "fp32", 0.30, note=note, model="lenet", tile=(28, 28), batch=1)]
    text = "\n".join(bench.cpu_target_lines(rows))
    assert ("lenet 28x28: backend auto ran onnxruntime (1 intra-op thread): 0.30 ms = 0.75x the fastest fixed "
            "path (onnxruntime-cpu, 0.40 ms)") in text


def test_preset_target_is_the_targets_configuration(bench):
    a = bench.parse_args(["--preset", "target"])
    assert (a.models, a.tile_list, a.batch, a.dtypes) == ("fcn8s_8band", [(512, 512)], 8, ["fp32", "fp16"])
    assert a.backends == ["torch", "onnxruntime", "tensorrt", "opencv", "auto"]
    b = bench.parse_args(["--preset", "target", "--batch", "2", "--tiles", "256x128"])
    assert (b.batch, b.tile_list, b.models) == (2, [(256, 128)], "fcn8s_8band")
    c = bench.parse_args([])
    assert (c.models, c.tile_list, c.batch) == ("fcn8s_8band,tiramisu56_8band", [(256, 256)], 4)
    with pytest.raises(SystemExit):
        bench.parse_args(["--backends", "caffe"])


TRAIN_VAL = """name: "tv"
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
        data_param { source: "train_lmdb" batch_size: 4 backend: LMDB } }
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST }
        data_param { source: "val_lmdb" batch_size: 2 backend: LMDB } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "ip" type: "InnerProduct" bottom: "conv1" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def _round_trip(bench, src, tmp_path):
    """_write_caffe, then the written deploy prototxt + caffemodel loaded again: the same
    outputs as the compiled net (compiled at batch 2) on the same input."""
    from fcnkit.compile import compile_net
    from fcnkit.graph import load_net

    c = src.compiled
    shape = (2,) + tuple(c.input_shapes[c.inputs[0]][1:])
    proto, weights = bench._write_caffe(c, shape, tmp_path / "net")
    text = proto.read_text()
    again = compile_net(load_net(proto), weights, deploy=True)
    assert again.inputs == c.inputs and again.input_shapes[c.inputs[0]] == shape
    x = torch.from_numpy(rand(shape, seed=1))
    with torch.no_grad():
        want, got = c.module(x), again.module(x)
    return text, got, want


def test_write_caffe_turns_data_layers_into_one_input_layer(bench, tmp_path):
    from fcnkit.deploy.model import load_model

    proto = tmp_path / "tv.prototxt"
    proto.write_text(TRAIN_VAL)
    src = load_model(proto, input_shapes={"data": (2, 3, 6, 6)})
    text, got, want = _round_trip(bench, src, tmp_path)
    assert text.count('type: "Input"') == 1 and 'type: "Data"' not in text
    assert "Accuracy" not in text and "SoftmaxWithLoss" not in text and "label" not in text
    assert "include" not in text and "phase" not in text
    assert list(got) == ["ip"]
    np.testing.assert_allclose(got["ip"].numpy(), want["ip"].numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(not DATA.is_dir(), reason=f"shared Caffe data folder {DATA} missing")
def test_write_caffe_of_a_net_with_legacy_inputs(bench, tmp_path):
    """lenet.prototxt (V0) declares its input with input: / input_dim: fields."""
    from fcnkit.deploy.model import fill_untrained, load_model

    assert "input_dim" in BY_KEY["lenet_v0"].path.read_text()
    src = load_model(BY_KEY["lenet_v0"].path, batch=2)
    fill_untrained(src.compiled)
    text, got, want = _round_trip(bench, src, tmp_path)
    assert text.count('type: "Input"') == 1 and "input_dim" not in text
    np.testing.assert_allclose(got["prob"].numpy(), want["prob"].numpy(), rtol=1e-6, atol=1e-7)


def test_cpu_targets(bench):
    # FCN-8s: 136.6 GFLOP per tile in 400 ms = 341.5 GFLOP/s, 85.4% of a 400 GFLOP/s ceiling: met;
    # OpenCV 800 ms / ONNX Runtime 400 ms = 2.00x >= 1.8x: met; torch 480 / 400 = 1.20x > 1.15x: NOT met.
    def row(backend, ms, model="fcn8s_8band", tile=(512, 512), gflop=136.6):
        return bench.Row(model, tile, backend, "fp32", 1, ms, gflop, None, "", (ms - 1, ms + 1), 400.0)

    rows = [row("torch-cpu", 480.0), row("onnxruntime-cpu", 400.0), row("opencv-dnn", 800.0),
            row("onnxruntime-cpu", 2.0, "lenet", (28, 28), 0.0046), row("opencv-dnn", 1.0, "lenet", (28, 28), 0.0046)]
    text = "\n".join(bench.cpu_target_lines(rows))
    assert "fcn8s_8band 512x512: fastest fcnkit CPU path (onnxruntime-cpu) at 85.4% of the conv ceiling " \
           "(target >= 80%: met)" in text
    assert "fcn8s_8band 512x512: OpenCV dnn / fastest fcnkit (onnxruntime-cpu) = 2.00x (target >= 1.8x: met)" in text
    assert "fcn8s_8band 512x512: torch / ONNX Runtime = 1.20x (target <= 1.15x: NOT met)" in text
    assert "lenet 28x28: OpenCV dnn / fastest fcnkit (onnxruntime-cpu) = 0.50x (target >= 1x: NOT met)" in text
    assert "lenet 28x28: torch / ONNX Runtime" not in text and "lenet 28x28: fastest" not in text
    # ONNX Runtime with one thread is one of the paths auto chooses from: it counts as fcnkit's
    rows.append(row("onnxruntime-1t-cpu", 0.8, "lenet", (28, 28), 0.0046))
    text = "\n".join(bench.cpu_target_lines(rows))
    assert "lenet 28x28: OpenCV dnn / fastest fcnkit (onnxruntime-1t-cpu) = 1.25x (target >= 1x: met)" in text
    assert "not evaluated (no CPU row was measured)" in "\n".join(bench.cpu_target_lines([]))
    c = bench.parse_args(["--preset", "cpu"])
    assert (c.models, c.tile_list, c.batch) == ("fcn8s_8band,fcn_alexnet_8band,tiramisu56_8band,real", [(512, 512)], 1)


def test_benchlib_interleaves_in_random_order_and_keeps_spreads():
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import benchlib
    finally:
        sys.path.remove(str(ROOT / "tools"))
    order = []
    fns = {name: (lambda name=name: order.append(name) or 0.001 * (ord(name) - 96)) for name in "abc"}
    stats = benchlib.interleaved(fns, rounds=8, warmup=1, gap_s=0.0, seed=3)
    assert order[:3] == ["a", "b", "c"] and len(order) == 3 + 24  # warm-up in order, then 8 rounds
    rounds = [tuple(order[3 + 3 * i: 6 + 3 * i]) for i in range(8)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds) and len(set(rounds)) > 1
    # self-timed calls (a float of seconds) are recorded as they report: 1, 2, 3 ms
    assert [round(stats[k].median, 6) for k in "abc"] == [1.0, 2.0, 3.0] and stats["a"].iqr == 0
    s = benchlib.Stats([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (s.median, s.q1, s.q3, s.n) == (3.0, 2.0, 4.0, 5)  # quartiles by statistics.quantiles, inclusive
