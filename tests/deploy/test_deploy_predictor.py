"""The Predictor (issue 5, acceptance 4): one contract over torch, ONNX Runtime and
TensorRT. The main model is a small FCN with random weights whose probabilities are not
saturated (deploy_helpers.SMALL_FCN: 4 bands, 3 classes, 16 x 16 tiles), so that equal
labels through two backends mean something."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from fcnkit.deploy.model import load_model
from fcnkit.deploy.onnx import FP32_TOLERANCE, export_model
from fcnkit.deploy.predictor import ModelInfo, Predictor
from fcnkit.errors import BackendUnavailableError, InputError
from tests.conftest import DATA
from tests.deploy.deploy_helpers import BY_KEY, rand, write_small_fcn

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared Caffe data folder {DATA} missing")
HAVE_TRT = importlib.util.find_spec("tensorrt") is not None
HAVE_CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def fcn(tmp_path_factory):
    """(prototxt, ONNX file with the extra output 'score', compiled net)."""
    d = tmp_path_factory.mktemp("predictor")
    proto = write_small_fcn(d)
    onnx_path = d / "small_fcn.onnx"
    result = export_model(proto, onnx_path, extra_outputs=("score",))
    assert result.ok and result.meaningful
    return proto, onnx_path, load_model(proto).compiled


def _torch_prob(compiled, x):
    with torch.no_grad():
        return compiled.module(torch.from_numpy(x))["prob"].numpy()


def test_same_labels_through_torch_and_onnxruntime(fcn):
    proto, onnx_path, compiled = fcn
    x = rand((5, 4, 16, 16), seed=1)
    pt = Predictor.from_path(proto, backend="torch", device="cpu")
    po = Predictor.from_path(onnx_path)  # auto: an .onnx file runs in ONNX Runtime
    assert (pt.backend, po.backend) == ("torch", "onnxruntime") and po.device == "cpu"
    ref = _torch_prob(compiled, x)
    # the reference is not saturated: every class occurs, probabilities spread
    ref_labels = ref.argmax(1)
    assert set(np.unique(ref_labels)) == {0, 1, 2}
    assert ref.std() > 0.1 and (ref.max(1) >= 0.999).mean() < 0.01
    lt, lo = pt.predict(x, labels=True), po.predict(x, labels=True)
    np.testing.assert_array_equal(lt, lo)
    np.testing.assert_array_equal(lt, ref_labels)
    # the top two classes are far enough apart that fp32 noise cannot swap them
    top2 = np.sort(ref, axis=1)[:, -2:]
    assert float((top2[:, 1] - top2[:, 0]).min()) > 1e-4
    np.testing.assert_allclose(pt.predict(x), ref, atol=1e-6)
    np.testing.assert_allclose(po.predict(x), ref, atol=1e-5)


def test_onnxruntime_backend_on_a_caffe_model_exports_on_the_fly(fcn):
    proto, _, compiled = fcn
    x = rand((3, 4, 16, 16), seed=2)
    p = Predictor.from_path(proto, backend="onnxruntime")
    assert p.backend == "onnxruntime" and p.tile == (16, 16) and p.dtype == "fp32"
    np.testing.assert_array_equal(p.predict(x, labels=True), _torch_prob(compiled, x).argmax(1))


def test_labels_are_uint8_and_probabilities_sum_to_one(fcn):
    proto, onnx_path, _ = fcn
    x = rand((4, 4, 16, 16), seed=3)
    for p in (Predictor.from_path(proto, backend="torch", device="cpu"), Predictor.from_path(onnx_path)):
        labels = p.predict(x, labels=True)
        assert labels.dtype == np.uint8 and labels.shape == (4, 16, 16)
        probs = p.predict(x)
        assert probs.dtype == np.float32 and probs.shape == (4, 3, 16, 16)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        assert probs.min() >= 0 and probs.max() <= 1
        np.testing.assert_array_equal(labels, probs.argmax(1))


def test_raw_scores_get_a_softmax_unless_asked_for_raw(fcn):
    """'score' (before the Softmax, an extra output of the ONNX file) through the Predictor:
    softmaxed over the class axis by default, which gives the net's own 'prob'; raw with
    probabilities=False."""
    _, onnx_path, compiled = fcn
    x = rand((2, 4, 16, 16), seed=4)
    values = compiled.run_all(torch.from_numpy(x))
    score = values[compiled.net.final["score"]].numpy()
    p = Predictor.from_path(onnx_path, output="score")
    np.testing.assert_allclose(p.predict(x), _torch_prob(compiled, x), atol=1e-5)
    raw = Predictor.from_path(onnx_path, output="score", probabilities=False)
    np.testing.assert_allclose(raw.predict(x), score, atol=1e-4 * np.abs(score).max())
    assert Predictor.from_path(onnx_path).output == "prob"  # default: the probabilities


def _spy_on_onnxruntime(monkeypatch) -> list[int]:
    """Record the batch size of every ONNX Runtime ``InferenceSession.run`` call (through
    onnxruntime's public class, not the Predictor's internals)."""
    import onnxruntime as ort

    seen: list[int] = []
    original = ort.InferenceSession.run

    def run(self, names, feeds, *args, **kwargs):
        seen.append(next(iter(feeds.values())).shape[0])
        return original(self, names, feeds, *args, **kwargs)

    monkeypatch.setattr(ort.InferenceSession, "run", run)
    return seen


def test_many_tiles_are_cut_into_batches(fcn, monkeypatch):
    proto, onnx_path, compiled = fcn
    x = rand((7, 4, 16, 16), seed=5)
    ref = _torch_prob(compiled, x)
    p = Predictor.from_path(onnx_path, batch_size=3)
    seen = _spy_on_onnxruntime(monkeypatch)
    got = p.predict(x)
    assert seen == [3, 3, 1]
    np.testing.assert_allclose(got, ref, atol=1e-5)
    seen.clear()
    np.testing.assert_array_equal(p.predict(x, labels=True, batch_size=2), ref.argmax(1))
    assert seen == [2, 2, 2, 1]
    # torch: same batching, same values as one batch of 7
    pt = Predictor.from_path(proto, backend="torch", device="cpu", batch_size=3)
    np.testing.assert_allclose(pt.predict(x), pt.predict(x, batch_size=7), atol=1e-6)
    np.testing.assert_allclose(pt.predict(x), ref, atol=1e-6)


def test_torch_backend_takes_other_tile_sizes(fcn):
    """A compiled Caffe net is recompiled for another tile; the result is the net's at that size."""
    proto, _, compiled = fcn
    from fcnkit.deploy.model import reshape

    x = rand((2, 4, 24, 20), seed=6)
    p = Predictor.from_path(proto, backend="torch", device="cpu")
    assert p.tile is None
    with torch.no_grad():
        ref = reshape(compiled, {"data": (2, 4, 24, 20)}).module(torch.from_numpy(x))["prob"].numpy()
    np.testing.assert_allclose(p.predict(x), ref, atol=1e-6)


@needs_data
def test_a_static_batch_onnx_file_pads_the_last_batch(real_export):
    """lenet exported with --batch 3: 7 tiles run as 3 + 3 + 1 (padded to 3, cut back)."""
    src, _, path = real_export("lenet", batch=3)
    x = rand((7, 1, 28, 28), seed=7)
    p = Predictor.from_path(path)
    assert p.batch_size == 3 and p.info.fixed_batch == 3
    with torch.no_grad():
        ref = src.compiled.module(torch.from_numpy(x))["loss"].numpy()
    got = p.predict(x)
    assert got.shape == (7, 10)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    labels = p.predict(x, labels=True)
    assert labels.dtype == np.uint8 and labels.shape == (7,)
    np.testing.assert_array_equal(labels, ref.argmax(1))
    with pytest.raises(InputError, match="batch_size 4 is larger than the onnxruntime model accepts .3."):
        Predictor.from_path(path, batch_size=4)
    with pytest.raises(InputError, match="batch_size must be between 1 and 3, got 5"):
        p.predict(x, batch_size=5)


@needs_data
def test_a_single_channel_output_is_not_softmaxed(real_export):
    """FSRCNN's output is an image (1 channel): a softmax would make it all ones. It comes
    back raw, through torch and ONNX Runtime; labels make no sense for it."""
    src, _, path = real_export("fsrcnn")
    n = BY_KEY["fsrcnn"]
    h, w = src.compiled.input_shapes["data"][2:]
    x = rand((2, 1, h, w), seed=8)
    with torch.no_grad():
        ref = src.compiled.module(torch.from_numpy(x))["deconv"].numpy()
    pt = Predictor.from_path(n.path, backend="torch", device="cpu", weights=n.weights_path)
    po = Predictor.from_path(path)
    for p in (pt, po):
        got = p.predict(x)
        assert got.shape == ref.shape == (2, 1, 3 * h - 2, 3 * w - 2)
        assert np.abs(got - 1).max() > 0.1  # not a softmax over one channel
        assert np.abs(got - ref).max() <= FP32_TOLERANCE * np.abs(ref).max()
        with pytest.raises(InputError, match="labels=True needs an output with a class axis of K >= 2"):
            p.predict(x, labels=True)


# ------------------------------------------------------------------------------------------
# Wrong input: clear errors
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,match", [
    ((2, 3, 16, 16), r"the model takes 4 bands, the input has 3 \(shape \(2, 3, 16, 16\)\)"),
    ((2, 4, 24, 24), "the onnxruntime model is built for 16x16 tiles, the input is 24x24; export it at this tile"),
    ((4, 16, 16), r"input must be N x C x H x W, got shape \(4, 16, 16\) \(one tile\? pass x\[None\]\)"),
    ((0, 4, 16, 16), r"input has no tiles \(N = 0\)")])
def test_wrong_input_is_a_clear_error(fcn, shape, match):
    _, onnx_path, _ = fcn
    p = Predictor.from_path(onnx_path)
    with pytest.raises(InputError, match=match):
        p.predict(np.zeros(shape, np.float32))


def test_wrong_band_count_through_torch(fcn):
    proto, _, _ = fcn
    p = Predictor.from_path(proto, backend="torch", device="cpu")
    with pytest.raises(InputError, match="the model takes 4 bands, the input has 8"):
        p.predict(np.zeros((1, 8, 16, 16), np.float32))


def test_bad_options_are_clear_errors(fcn, tmp_path):
    proto, onnx_path, _ = fcn
    with pytest.raises(InputError, match="backend must be one of auto, torch, onnxruntime, tensorrt, got 'caffe'"):
        Predictor.from_path(proto, backend="caffe")
    with pytest.raises(InputError, match="the torch backend runs Caffe models.*use backend onnxruntime"):
        Predictor.from_path(onnx_path, backend="torch")
    with pytest.raises(InputError, match="batch_size must be a positive integer, got 0"):
        Predictor.from_path(onnx_path, batch_size=0)
    with pytest.raises(InputError, match="output 'nope' is not an output of the model .prob, score."):
        Predictor.from_path(onnx_path, output="nope")
    with pytest.raises(InputError, match="TensorRT runs on CUDA devices only"):
        Predictor.from_path(onnx_path, backend="tensorrt", device="cpu")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"PLAN")
    with pytest.raises(InputError, match="is a TensorRT engine: use backend tensorrt"):
        Predictor.from_path(engine, backend="onnxruntime")


# ------------------------------------------------------------------------------------------
# TensorRT / CUDA missing: the message says what to install
# ------------------------------------------------------------------------------------------

@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed: its absence cannot be tested here")
def test_tensorrt_backend_without_tensorrt_says_what_to_install(fcn, tmp_path):
    _, onnx_path, _ = fcn
    with pytest.raises(BackendUnavailableError,
                       match="the tensorrt backend needs NVIDIA TensorRT, which is not installed.*pip install 'fcnkit.gpu.'"):
        Predictor.from_path(onnx_path, backend="tensorrt")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"PLAN")
    with pytest.raises(BackendUnavailableError, match="running a TensorRT engine needs NVIDIA TensorRT.*pip install"):
        Predictor.from_path(engine)  # auto: an engine file runs in TensorRT


@pytest.mark.skipif(HAVE_CUDA, reason="a CUDA GPU is present: its absence cannot be tested here")
def test_cuda_without_a_gpu_says_so(fcn):
    proto, onnx_path, _ = fcn
    with pytest.raises(BackendUnavailableError, match="the torch backend on CUDA needs a CUDA GPU.*pytorch.org"):
        Predictor.from_path(proto, backend="torch", device="cuda")


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(),
                    reason="onnxruntime-gpu is installed")
def test_onnxruntime_on_cuda_without_onnxruntime_gpu_says_what_to_install(fcn):
    _, onnx_path, _ = fcn
    with pytest.raises(BackendUnavailableError, match="ONNX Runtime on CUDA needs onnxruntime-gpu.*pip install"):
        Predictor.from_path(onnx_path, device="cuda")


# ------------------------------------------------------------------------------------------
# The tile reaches the engine build (no TensorRT needed: the build is recorded)
# ------------------------------------------------------------------------------------------

class _FakeTrtBackend:
    """Stands for _TrtBackend: what an engine of this ONNX file would report."""

    name = "tensorrt"

    def __init__(self, engine_path, device, channels=1, tile=None):
        self.engine_path = Path(engine_path)
        self.runner = type("R", (), {"dtypes": {"data": torch.float32}})()
        self.info = ModelInfo("data", channels, tile, ["out"], max_batch=4)


def _record_builds(monkeypatch, channels):
    import fcnkit.deploy._common as common
    import fcnkit.deploy.predictor as predictor
    import fcnkit.deploy.tensorrt as trt_mod

    calls = []

    def fake_build(onnx_path, engine_path, **kw):
        calls.append((Path(onnx_path), kw))
        shapes = trt_mod.profile_shapes(trt_mod.onnx_engine_inputs(onnx_path), kw.get("batch"), kw.get("tile"))
        calls[-1][1]["profile"] = shapes
        Path(engine_path).write_bytes(b"PLAN")

    monkeypatch.setattr(common, "require_tensorrt", lambda what="": object())
    monkeypatch.setattr(trt_mod, "build_engine", fake_build)
    monkeypatch.setattr(predictor, "_TrtBackend", lambda engine, device: _FakeTrtBackend(engine, device, channels))
    return calls


@needs_data
def test_the_tile_reaches_the_engine_build_of_a_dynamic_hw_onnx_file(real_export, monkeypatch):
    _, _, path = real_export("fsrcnn", dynamic_hw=True)
    calls = _record_builds(monkeypatch, channels=1)
    p = Predictor.from_path(path, backend="tensorrt", tile="40,24", batch_size=4, device="cuda")
    assert p.backend == "tensorrt"
    ((onnx_path, kw),) = calls
    assert onnx_path == path and kw["tile"] == (40, 24) and kw["batch"] == 4 and kw["device"] == "cuda"
    # with these arguments the dynamic-H,W file has a profile (without the tile it has none)
    assert kw["profile"] == {"data": ((1, 1, 40, 24), (4, 1, 40, 24), (4, 1, 40, 24))}


def test_a_caffe_model_on_tensorrt_is_exported_and_built_at_the_tile(fcn, monkeypatch):
    proto, _, _ = fcn
    calls = _record_builds(monkeypatch, channels=4)
    # keep the Predictor: it owns the temporary directory of the on-the-fly export
    p = Predictor.from_path(proto, backend="tensorrt", tile=(16, 16), batch_size=2, device="cuda", dtype="fp32")
    ((onnx_path, kw),) = calls
    assert p.batch_size == 2 and onnx_path.is_file()  # alive as long as the Predictor
    from fcnkit.deploy.onnx import inspect_onnx

    assert inspect_onnx(onnx_path).inputs[0][1] == ["batch", 4, 16, 16]
    assert kw["tile"] == (16, 16) and kw["profile"]["data"][2] == (2, 4, 16, 16)
    import gc

    del p
    gc.collect()
    assert not onnx_path.exists()  # the Predictor owned the temporary export
