"""Predictor(backend="auto") on the CPU: ONNX Runtime on an export cached on disk
(fcnkit.deploy.auto_backend, fcnkit.deploy.onnx.cache), torch where export is impossible;
the TorchScript fast path of export_onnx(exporter="auto")."""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pytest

from fcnkit.deploy.onnx import cache as onnx_cache
from fcnkit.deploy.onnx import export as exporter
from fcnkit.deploy.predictor import Predictor
from fcnkit.errors import ExportError
from tests.deploy.deploy_helpers import rand

#: conv - ReLU - 1x1 score - Softmax, seeded gaussian weights: every layer has a plain ONNX
#: form, so exporter="auto" traces it with TorchScript (a fraction of a second).
SIMPLE = """name: "simple"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 dim: 16 dim: 16 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 }
                            bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "score" type: "Convolution" bottom: "conv1" top: "score"
        convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "prob" type: "Softmax" bottom: "score" top: "prob" }
"""


def write_small_fcn(directory):
    path = directory / "simple.prototxt"
    path.write_text(SIMPLE)
    return path


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """FCNKIT_CACHE_DIR in tmp_path; the number of export_model calls in calls[0]."""
    monkeypatch.setenv(onnx_cache.CACHE_ENV, str(tmp_path / "cache"))
    calls = [0]
    real = exporter.export_model

    def export_model(*args, **kw):
        calls[0] += 1
        return real(*args, **kw)

    monkeypatch.setattr(exporter, "export_model", export_model)
    return calls


def test_auto_runs_onnxruntime_from_the_cache_and_matches_torch(counted, tmp_path, monkeypatch):
    monkeypatch.setenv("FCNKIT_AUTO_PROBE", "0")  # ONNX Runtime whatever is faster (test_deploy_auto_probe)
    proto = write_small_fcn(tmp_path)
    first = Predictor.from_path(proto, device="cpu")
    assert first.backend == "onnxruntime" and counted[0] == 1
    entries = sorted((tmp_path / "cache" / "onnx").iterdir())
    assert [p.suffix for p in entries] == [".json", ".onnx"]
    again = Predictor.from_path(proto, device="cpu")  # a cache hit: no second export
    assert again.backend == "onnxruntime" and counted[0] == 1
    torch_pred = Predictor.from_path(proto, backend="torch", device="cpu")
    x = rand((3, 4, 16, 16), seed=5)
    want = torch_pred.predict(x)
    assert np.abs(again.predict(x) - want).max() <= 1e-4
    assert np.abs(again.predict(x, labels=True).astype(int) - want.argmax(1)).max() == 0
    # another tile size: its own export (cached as well), still equal to torch
    y = rand((2, 4, 24, 20), seed=6)
    assert np.abs(again.predict(y) - torch_pred.predict(y)).max() <= 1e-4
    assert counted[0] == 2 and len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_record"])
def test_a_damaged_entry_is_exported_again(counted, tmp_path, damage):
    proto = write_small_fcn(tmp_path)
    entry = onnx_cache.cached_export(proto)
    assert entry.exported and counted[0] == 1
    data = entry.path.read_bytes()
    if damage == "truncate":
        entry.path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        entry.path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    else:
        entry.path.with_suffix(".json").unlink()
    rebuilt = onnx_cache.cached_export(proto)
    assert rebuilt.exported and counted[0] == 2 and rebuilt.data == data
    record = json.loads(entry.path.with_suffix(".json").read_text())
    assert record["sha256"] == hashlib.sha256(entry.path.read_bytes()).hexdigest()
    assert not onnx_cache.cached_export(proto).exported and counted[0] == 2


def test_the_key_follows_content_not_names(tmp_path):
    proto = write_small_fcn(tmp_path)
    w1, w2, w3 = tmp_path / "a.caffemodel", tmp_path / "b.caffemodel", tmp_path / "c.caffemodel"
    w1.write_bytes(b"\x00" * 64)
    w2.write_bytes(b"\x00" * 63 + b"\x01")  # one byte differs
    w3.write_bytes(b"\x00" * 64)  # same bytes, another name

    def key(weights=w1, **kw):
        opts = {"tile": (16, 16), "batch": "dynamic", "dtype": "fp32", "opset": 18, **kw}
        return onnx_cache.cache_key(proto, weights, **opts)

    assert key() == key(w3) and key() == key(batch=None)
    others = [key(w2), key(None), key(tile=(32, 32)), key(dtype="fp16"), key(opset=17), key(batch=4)]
    assert len({key(), *others}) == 1 + len(others)
    (tmp_path / "a.preprocess.json").write_text('{"stretch": {"method": "none"}}')  # travels along
    assert key() != key(w3)


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(onnx_cache.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert onnx_cache.cache_dir() == tmp_path / "xdg" / "fcnkit" / "onnx"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: absolute paths only
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert onnx_cache.cache_dir() == tmp_path / "home" / ".cache" / "fcnkit" / "onnx"
    monkeypatch.setenv(onnx_cache.CACHE_ENV, str(tmp_path / "mine"))
    assert onnx_cache.cache_dir() == tmp_path / "mine" / "onnx"


def test_auto_falls_back_to_torch_when_export_fails(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv(onnx_cache.CACHE_ENV, str(tmp_path / "cache"))

    def refuse(*args, **kw):
        raise ExportError("layer 'x' has no exact ONNX form")

    monkeypatch.setattr(exporter, "export_model", refuse)
    proto = write_small_fcn(tmp_path)
    with caplog.at_level(logging.DEBUG, logger="fcnkit.deploy.auto_backend"):
        p = Predictor.from_path(proto, device="cpu")
    assert p.backend == "torch"
    assert "ONNX Runtime not used" in caplog.text and "no exact ONNX form" in caplog.text
    assert not list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    # torch where asked, and for options ONNX Runtime is not used for
    assert Predictor.from_path(proto, device="cpu", compile=False, dtype="bf16").backend == "torch"


def test_session_options_use_the_cores_this_process_may_run_on(monkeypatch):
    import onnxruntime as ort

    import fcnkit.runtime
    from fcnkit.deploy.backends import session_options
    from fcnkit.runtime import available_cpus

    so = session_options(ort, ["CPUExecutionProvider"])
    assert so.intra_op_num_threads == available_cpus() >= 1
    # a cgroup CPU quota of one core caps the pool, as it caps torch's
    monkeypatch.setattr(fcnkit.runtime, "_cgroup_quota", lambda: 1.0)
    assert session_options(ort, ["CPUExecutionProvider"]).intra_op_num_threads == 1
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL and so.enable_cpu_mem_arena
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_torchscript_fast_path_and_its_fallback(tmp_path, monkeypatch):
    """exporter="auto" traces with TorchScript where it applies (the result passes the same
    parity run); a trace failure goes to the dynamo exporter."""
    from fcnkit.deploy.model import load_model
    from fcnkit.deploy.onnx import torchscript

    assert torchscript.can_use_torchscript(True, False, {}) is not None
    assert torchscript.can_use_torchscript(False, True, {}) is not None
    assert torchscript.can_use_torchscript(False, False, {"op": "translation"}) is not None
    assert torchscript.can_use_torchscript(False, False, {}) is None
    src = load_model(write_small_fcn(tmp_path))
    traced = []
    real = torchscript.torchscript_export

    def spy(*args, **kw):
        traced.append(kw)
        return real(*args, **kw)

    monkeypatch.setattr(exporter, "torchscript_export", spy)
    result = exporter.export_onnx(src, tmp_path / "ts.onnx", exporter="auto")
    assert len(traced) == 1 and result.opset == 18 and result.ok and result.max_abs <= 1e-5
    assert result.inputs == {"data": ["batch", 4, 16, 16]} and result.outputs == {"prob": ["batch", 3, 16, 16]}

    def broken(*args, **kw):
        raise RuntimeError("trace failed")

    monkeypatch.setattr(exporter, "torchscript_export", broken)
    result = exporter.export_onnx(src, tmp_path / "dyn.onnx", exporter="auto")
    assert result.ok and result.opset == 18 and result.max_abs <= 1e-5
    with pytest.raises(Exception, match="exporter must be one of"):
        exporter.export_onnx(src, tmp_path / "x.onnx", exporter="jit")
