"""TensorRT (issue 5, acceptance 5): the argument and profile logic, tested without
TensorRT; the clear message when TensorRT or a GPU is missing; and engine build + run
tests that run where TensorRT and a CUDA GPU are (they skip with the reason elsewhere).

The profile tests read the inputs of real exports (the session cache of test_deploy_onnx):
a dynamic batch axis, a static batch, and dynamic H and W."""

from __future__ import annotations

import enum
import importlib.util
import json
import types

import numpy as np
import onnx
import pytest
import torch

from fcnkit.deploy.tensorrt import (DEFAULT_BATCH, ENGINE_TOLERANCE, BatchProfile, EngineInput,
                                    build_engine, check_build_options, network_flags,
                                    onnx_engine_inputs, parser_errors, profile_shapes, read_sidecar,
                                    sidecar_path, torch_dtype_of, write_engine_files)
from fcnkit.errors import BackendUnavailableError, ExportError, InputError, OutputError
from tests.conftest import DATA
from tests.deploy.deploy_helpers import rand

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None
HAVE_CUDA = torch.cuda.is_available()
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared Caffe data folder {DATA} missing")


# ------------------------------------------------------------------------------------------
# --batch
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value,want", [("1,8,16", (1, 8, 16)), ("8", (1, 8, 8)), (8, (1, 8, 8)),
                                        (" 2, 4 ,6", (2, 4, 6)), ([2, 4, 6], (2, 4, 6)),
                                        ("4,4,4", (4, 4, 4))])
def test_batch_profile_parse(value, want):
    p = BatchProfile.parse(value)
    assert (p.min, p.opt, p.max) == want and str(p) == ",".join(map(str, want))


@pytest.mark.parametrize("value,match", [
    ("0", "--batch takes positive batch sizes .N, or min,opt,max., got '0'"),
    ("0,1,2", "got '0,1,2'"), ("-3", "got '-3'"),
    ("4,2,8", "min <= opt <= max, got '4,2,8'"), ("1,9,8", "got '1,9,8'"),
    ("1,2", "one or three positive integers\\), got '1,2'"), ("a", "got 'a'"),
    (True, "got 'True'"), (2.5, "got '2.5'")])
def test_batch_profile_errors_name_what_was_typed(value, match):
    with pytest.raises(InputError, match=match):
        BatchProfile.parse(value)


def test_batch_profile_none_and_passthrough():
    p = BatchProfile(1, 2, 3)
    assert BatchProfile.parse(None) is None and BatchProfile.parse(p) is p
    with pytest.raises(InputError, match="min <= opt <= max"):
        BatchProfile(3, 2, 1)


# ------------------------------------------------------------------------------------------
# ONNX inputs and profile shapes
# ------------------------------------------------------------------------------------------

@needs_data
def test_profile_of_a_dynamic_batch_export(real_export):
    _, _, path = real_export("cifar10_quick")
    inputs = onnx_engine_inputs(path)
    assert inputs == [EngineInput("data", (-1, 3, 32, 32), "float32")]
    assert inputs[0].dynamic_axes == [0]
    d = DEFAULT_BATCH
    assert profile_shapes(inputs) == {"data": ((d.min, 3, 32, 32), (d.opt, 3, 32, 32), (d.max, 3, 32, 32))}
    assert profile_shapes(inputs, "2,4,8") == {"data": ((2, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32))}
    assert profile_shapes(inputs, 5) == {"data": ((1, 3, 32, 32), (5, 3, 32, 32), (5, 3, 32, 32))}
    # a tile equal to the static H, W is accepted; another one is not
    assert profile_shapes(inputs, "1,1,1", "32,32")["data"][1] == (1, 3, 32, 32)
    with pytest.raises(InputError, match="static at 32x32 .* --tile 64,64 needs an export at that tile"):
        profile_shapes(inputs, None, (64, 64))


@needs_data
def test_profile_of_a_static_batch_export(real_export):
    _, _, path = real_export("lenet", batch=3)
    inputs = onnx_engine_inputs(path)
    assert inputs == [EngineInput("data", (3, 1, 28, 28), "float32")]
    assert profile_shapes(inputs) == {"data": ((3, 1, 28, 28),) * 3}
    assert profile_shapes(inputs, "3,3,3") == {"data": ((3, 1, 28, 28),) * 3}
    with pytest.raises(InputError, match="static batch of 3 .* --batch 1,8,16 cannot be honoured.*--batch 3,3,3"):
        profile_shapes(inputs, "1,8,16")


@needs_data
def test_profile_of_a_dynamic_hw_export_needs_the_tile(real_export):
    _, result, path = real_export("fsrcnn", dynamic_hw=True)
    assert result.dynamic_hw
    inputs = onnx_engine_inputs(path)
    assert inputs == [EngineInput("data", (-1, 1, -1, -1), "float32")]
    with pytest.raises(InputError, match="dynamic H and W .* --tile H,W"):
        profile_shapes(inputs, "1,2,4")
    assert profile_shapes(inputs, "1,2,4", "40,24") == {
        "data": ((1, 1, 40, 24), (2, 1, 40, 24), (4, 1, 40, 24))}


def test_profile_refuses_other_dynamic_axes():
    inp = EngineInput("x", (-1, -1, 8, 8), "float32")
    with pytest.raises(InputError, match="dynamic axis 1"):
        profile_shapes([inp], "1,2,4")
    # a 0-D input keeps its (empty) shape
    assert profile_shapes([EngineInput("s", (), "float32")]) == {"s": ((), (), ())}


def test_onnx_engine_inputs_leave_initializers_out(tmp_path):
    """Old exporters list initializers among the graph inputs: they are weights, not inputs
    the engine is fed."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 4, 4])
    wi = helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 3, 1, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2, 4, 4])
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "g", [x, wi], [y], [w])
    path = tmp_path / "old.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    assert onnx_engine_inputs(path) == [EngineInput("x", (-1, 3, 4, 4), "float32")]
    # a graph without real inputs, an unreadable file, a missing one
    g2 = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [wi], [y], [w])
    onnx.save(helper.make_model(g2, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "none.onnx"))
    with pytest.raises(InputError, match="has no inputs"):
        onnx_engine_inputs(tmp_path / "none.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"\x00 not a protobuf \xff" * 3)
    with pytest.raises(InputError, match="not a readable ONNX file"):
        onnx_engine_inputs(tmp_path / "bad.onnx")
    with pytest.raises(InputError, match="no such ONNX file"):
        onnx_engine_inputs(tmp_path / "missing.onnx")


# ------------------------------------------------------------------------------------------
# Build options, network flags, dtypes, parser errors
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,match", [
    (dict(workspace_mib=0), "--workspace must be a positive number of MiB, got 0"),
    (dict(workspace_mib=-5), "got -5"), (dict(workspace_mib=True), "got True"),
    (dict(opt_level=6), "--opt-level must be between 0 and 5, got 6"), (dict(opt_level=-1), "got -1"),
    (dict(fp16=True, trt_major=11), "TensorRT 11 builds strongly typed networks only.*--dtype fp16")])
def test_check_build_options_refuses(kw, match):
    with pytest.raises(InputError, match=match):
        check_build_options(**kw)


@pytest.mark.parametrize("kw", [dict(), dict(workspace_mib=1), dict(opt_level=0), dict(opt_level=5),
                                dict(fp16=True, trt_major=10), dict(fp16=True, trt_major=None),
                                dict(workspace_mib=None, opt_level=None)])
def test_check_build_options_accepts(kw):
    assert check_build_options(**kw) is None


def _fake_trt(with_flag=True):
    class Flag(enum.IntEnum):
        STRONGLY_TYPED = 0

    ns = types.SimpleNamespace()
    if with_flag:
        ns.NetworkDefinitionCreationFlag = Flag
    else:
        ns.NetworkDefinitionCreationFlag = types.SimpleNamespace()
    return ns


def test_network_flags_follow_the_tensorrt_version():
    """TensorRT 10: STRONGLY_TYPED (bit 0), unless --fp16 asks for weak typing; TensorRT 11:
    every network is strongly typed and the flag is deprecated/ignored, so none is passed."""
    trt = _fake_trt()
    assert network_flags(trt, 10) == 1
    assert network_flags(trt, 10, fp16=True) == 0
    assert network_flags(trt, 11) == 0 and network_flags(trt, 12) == 0
    assert network_flags(_fake_trt(with_flag=False), 10) == 0  # a TensorRT without the flag


@pytest.mark.parametrize("name,want", [("FLOAT", torch.float32), ("HALF", torch.float16),
                                       ("BF16", torch.bfloat16), ("INT8", torch.int8),
                                       ("INT32", torch.int32), ("INT64", torch.int64),
                                       ("BOOL", torch.bool), ("UINT8", torch.uint8),
                                       ("DataType.HALF", torch.float16), ("half", torch.float16)])
def test_torch_dtype_of_names(name, want):
    assert torch_dtype_of(name) is want


def test_torch_dtype_of_enum_members():
    """A tensorrt.DataType member is read by its .name."""
    class DataType(enum.Enum):
        FLOAT = 0
        HALF = 1
        INT4 = 9

    assert torch_dtype_of(DataType.FLOAT) is torch.float32 and torch_dtype_of(DataType.HALF) is torch.float16
    with pytest.raises(ExportError, match="TensorRT data type INT4 has no torch equivalent"):
        torch_dtype_of(DataType.INT4)


class _Err:
    def __init__(self, desc, node=-1, name=None, op=None, broken=False):
        self._desc, self._node, self._name, self._op, self._broken = desc, node, name, op, broken

    def desc(self):
        return self._desc

    def node(self):
        if self._broken:
            raise RuntimeError("accessor not available")
        return self._node

    def node_name(self):
        return self._name

    def node_operator(self):
        return self._op


class _Parser:
    def __init__(self, errors):
        self.errors = errors
        self.num_errors = len(errors)

    def get_error(self, i):
        return self.errors[i]


def test_parser_errors_lists_every_error_with_its_node():
    p = _Parser([_Err("Unsupported operator Foo", 3, "node_Foo_3", "Foo"),
                 _Err("Invalid weights", -1),
                 _Err("shape mismatch", broken=True, name="conv1")])
    assert parser_errors(p) == ["node 3 node_Foo_3 Foo: Unsupported operator Foo",
                                "Invalid weights",
                                "conv1: shape mismatch"]
    assert parser_errors(_Parser([])) == []


# ------------------------------------------------------------------------------------------
# Sidecar and the atomic pair
# ------------------------------------------------------------------------------------------

def test_sidecar_path_and_reading(tmp_path):
    eng = tmp_path / "m.engine"
    assert sidecar_path(eng) == tmp_path / "m.engine.json"
    assert read_sidecar(eng) == {}
    sidecar_path(eng).write_text(json.dumps({"softmax_outputs": ["prob"], "profile": {"data": [[1], [2], [3]]}}))
    assert read_sidecar(eng) == {"softmax_outputs": ["prob"], "profile": {"data": [[1], [2], [3]]}}
    sidecar_path(eng).write_text("{not json")
    with pytest.raises(InputError, match="m.engine.json: not valid JSON"):
        read_sidecar(eng)


def test_engine_and_sidecar_are_written_as_a_pair(tmp_path):
    eng = tmp_path / "m.engine"
    side = write_engine_files(eng, b"PLAN", {"engine": "m.engine", "softmax_outputs": ["prob"]})
    assert side == sidecar_path(eng) and eng.read_bytes() == b"PLAN"
    assert read_sidecar(eng) == {"engine": "m.engine", "softmax_outputs": ["prob"]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.engine", "m.engine.json"]


def test_a_failed_engine_write_leaves_neither_new_file(tmp_path, monkeypatch):
    import fcnkit.deploy._common as common

    real = common.write_public

    def failing(path, data):
        if str(path).endswith(".engine"):
            raise OutputError(f"{path}: cannot write it (No space left on device)")
        return real(path, data)

    monkeypatch.setattr(common, "write_public", failing)
    eng = tmp_path / "new.engine"
    with pytest.raises(OutputError, match="No space left"):
        write_engine_files(eng, b"PLAN", {"v": 2})
    assert list(tmp_path.iterdir()) == []
    # over an earlier pair: both stay as they were
    old = tmp_path / "old.engine"
    monkeypatch.setattr(common, "write_public", real)
    write_engine_files(old, b"OLD", {"v": 1})
    monkeypatch.setattr(common, "write_public", failing)
    with pytest.raises(OutputError):
        write_engine_files(old, b"NEW", {"v": 2})
    assert old.read_bytes() == b"OLD" and read_sidecar(old) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.engine", "old.engine.json"]


# ------------------------------------------------------------------------------------------
# Without TensorRT or a GPU: clear messages, options checked first
# ------------------------------------------------------------------------------------------

@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed: its absence cannot be tested here")
@needs_data
def test_build_engine_without_tensorrt_says_what_to_install(real_export, tmp_path):
    _, _, path = real_export("cifar10_quick")
    with pytest.raises(BackendUnavailableError) as e:
        build_engine(path, tmp_path / "c.engine")
    msg = str(e.value)
    assert "building a TensorRT engine needs NVIDIA TensorRT, which is not installed" in msg
    assert "pip install 'fcnkit[gpu]'" in msg and "pip install tensorrt" in msg and "NVIDIA GPU" in msg
    assert list(tmp_path.iterdir()) == []


@needs_data
def test_build_engine_checks_options_before_tensorrt(real_export, tmp_path):
    """Bad options are reported as such (InputError) with or without TensorRT."""
    _, _, path = real_export("cifar10_quick")
    for kw, match in [(dict(batch="0"), "got '0'"), (dict(workspace_mib=0), "--workspace"),
                      (dict(opt_level=9), "--opt-level"), (dict(tile=(64, 64)), "static at 32x32")]:
        with pytest.raises(InputError, match=match):
            build_engine(path, tmp_path / "c.engine", **kw)
    with pytest.raises(InputError, match="no such ONNX file"):
        build_engine(tmp_path / "missing.onnx", tmp_path / "c.engine")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed: its absence cannot be tested here")
def test_trt_runner_without_tensorrt_says_what_to_install(tmp_path):
    from fcnkit.deploy.tensorrt import TrtRunner

    (tmp_path / "m.engine").write_bytes(b"PLAN")
    with pytest.raises(BackendUnavailableError, match="running a TensorRT engine needs NVIDIA TensorRT.*pip install"):
        TrtRunner(tmp_path / "m.engine")


@pytest.mark.skipif(HAVE_CUDA, reason="a CUDA GPU is present: its absence cannot be tested here")
@needs_data
def test_build_engine_with_tensorrt_but_no_gpu_says_so(real_export, tmp_path, monkeypatch):
    """TensorRT installed on a machine without a usable GPU (a stand-in module: the real one
    is not needed to reach the CUDA check): the message names the missing GPU."""
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.9.0"))
    _, _, path = real_export("cifar10_quick")
    with pytest.raises(BackendUnavailableError, match="needs a CUDA GPU.*CPU-only build of PyTorch|needs a CUDA GPU.*no visible GPU"):
        build_engine(path, tmp_path / "c.engine")
    with pytest.raises(InputError, match="TensorRT 11 builds strongly typed networks only"):
        monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="11.1.0"))
        build_engine(path, tmp_path / "c.engine", fp16=True)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------
# On a GPU with TensorRT: build, run, compare with ONNX Runtime
# ------------------------------------------------------------------------------------------

needs_gpu = pytest.mark.skipif(
    not (HAVE_TRT and HAVE_CUDA),
    reason=("TensorRT engine tests need the tensorrt package and a CUDA GPU: "
            + ("tensorrt is not installed (pip install 'fcnkit[gpu]')" if not HAVE_TRT else "")
            + ("; " if not HAVE_TRT and not HAVE_CUDA else "")
            + ("no CUDA GPU is visible to torch" if not HAVE_CUDA else "")))


def _ort_run(path, feeds):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def _rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@needs_gpu
@needs_data
def test_engine_builds_runs_and_matches_onnxruntime(real_export, tmp_path):
    from fcnkit.deploy.tensorrt import TrtRunner

    _, _, onnx_path = real_export("cifar10_quick")
    eng, cache = tmp_path / "c.engine", tmp_path / "timing.cache"
    result = build_engine(onnx_path, eng, batch="1,2,4", timing_cache=cache, workspace_mib=512)
    assert eng.is_file() and cache.is_file() and result.sidecar == sidecar_path(eng)
    assert result.profile == {"data": ((1, 3, 32, 32), (2, 3, 32, 32), (4, 3, 32, 32))}
    assert result.parity is not None and result.parity[1] <= ENGINE_TOLERANCE
    side = read_sidecar(eng)
    assert side["softmax_outputs"] == ["prob"] and side["profile"]["data"][2] == [4, 3, 32, 32]
    assert side["onnx_metadata"]["fcnkit.output_kinds"] == {"prob": "probabilities"}
    runner = TrtRunner(eng)
    assert runner.inputs == ["data"] and runner.outputs == ["prob"] and runner.max_batch == 4
    x = rand((3, 3, 32, 32), seed=21)
    out = runner.infer({"data": torch.from_numpy(x).to(runner.device)})
    runner.stream.synchronize()
    got = out["prob"].float().cpu().numpy()
    ref = _ort_run(onnx_path, {"data": x})["prob"]
    assert got.shape == (3, 10) and _rel(got, ref) <= ENGINE_TOLERANCE
    with pytest.raises(InputError, match="outside the engine's profile"):
        runner.infer({"data": torch.zeros((5, 3, 32, 32), device=runner.device)})
    # a second build reads the timing cache it wrote
    again = build_engine(onnx_path, tmp_path / "d.engine", batch="1,2,4", timing_cache=cache)
    assert again.timing_cache == cache


@needs_gpu
@needs_data
def test_fp16_engine_from_an_fp16_export(real_export, tmp_path):
    from fcnkit.deploy.tensorrt import TrtRunner

    _, _, p16 = real_export("resnet50_stem", dtype="fp16")
    result = build_engine(p16, tmp_path / "h.engine", batch="1,2,2")
    assert result.precision.startswith("fp16") and result.parity[1] <= ENGINE_TOLERANCE
    runner = TrtRunner(tmp_path / "h.engine")
    assert runner.dtypes["data"] == torch.float16
    x = rand((2, 3, 224, 224), seed=5).astype(np.float16)
    out = runner.infer({"data": torch.from_numpy(x).to(runner.device)})
    runner.stream.synchronize()
    ref = _ort_run(p16, {"data": x})["pool1"].astype(np.float32)
    assert _rel(out["pool1"].float().cpu().numpy(), ref) <= ENGINE_TOLERANCE


@needs_gpu
@needs_data
def test_predictor_on_an_engine_built_from_a_dynamic_hw_export(real_export):
    """Predictor.from_path(onnx, backend="tensorrt", tile=...) builds the engine for that tile."""
    from fcnkit.deploy.predictor import Predictor

    src, _, path = real_export("fsrcnn", dynamic_hw=True)
    pred = Predictor.from_path(path, backend="tensorrt", tile=(24, 20), batch_size=2)
    assert pred.tile == (24, 20) and pred.dtype == "fp32"
    x = rand((3, 1, 24, 20), seed=8)
    got = pred.predict(x)
    ref = _ort_run(path, {"data": x})["deconv"]
    assert got.shape == (3, 1, 70, 58) and _rel(got, ref) <= ENGINE_TOLERANCE
