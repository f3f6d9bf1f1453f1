"""`fcnkit export` and `fcnkit engine` end to end through fcnkit.cli.main.main: what they
print, their exit status, the files they write (and do not write)."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fcnkit.cli.main import main
from fcnkit.deploy.onnx import FP32_TOLERANCE, inspect_onnx
from tests.deploy.deploy_helpers import rand, write_small_fcn

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None
PARITY_LINE = re.compile(r"^prob \((\d+),(\d+),(\d+),(\d+)\) at (\d+)x(\d+): max abs (\S+), relative (\S+) "
                         r"\(ok, tolerance 0\.0001\)$", re.M)


def _ort(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, x)))


@pytest.fixture(scope="module")
def small_fcn(tmp_path_factory):
    return write_small_fcn(tmp_path_factory.mktemp("cli"))


def _torch_prob(proto, x, weights=None):
    from fcnkit.deploy.model import load_model

    src = load_model(proto, weights=weights)
    with torch.no_grad():
        return src.compiled.module(torch.from_numpy(x))["prob"].numpy()


def test_export_prints_the_parity_and_writes_a_file_that_matches_torch(small_fcn, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", str(small_fcn), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    m = PARITY_LINE.search(captured.out)
    assert m, captured.out
    assert tuple(map(int, m.groups()[:6])) == (2, 3, 16, 16, 16, 16)
    max_abs, rel = float(m.group(7)), float(m.group(8))
    assert 0 <= rel <= FP32_TOLERANCE and max_abs <= rel  # probabilities: max |torch| <= 1
    assert f"wrote {out} (opset 18, fp32, data(batch,4,16,16) -> prob(batch,3,16,16); ONNX Runtime vs torch: " \
           f"max abs {m.group(7)}, relative {m.group(8)} (tolerance 0.0001)" in captured.out
    assert "warning" not in captured.err
    x = rand((3, 4, 16, 16), seed=1)
    np.testing.assert_allclose(_ort(out, {"data": x})["prob"], _torch_prob(small_fcn, x), atol=1e-5)


def test_export_fails_beyond_the_tolerance_and_writes_nothing(small_fcn, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", str(small_fcn), "-o", str(out), "--tolerance", "1e-12"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "error: parity check failed: output 'prob' differs from torch by max abs" in err
    assert "> tolerance 1e-12 (ONNX Runtime CPU, fp32); no file was written" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_export_opset_option(small_fcn, tmp_path, capsys):
    out = tmp_path / "m17.onnx"
    assert main(["export", str(small_fcn), "-o", str(out), "--opset", "17"]) == 0
    assert f"wrote {out} (opset 17, fp32" in capsys.readouterr().out
    assert next(i.version for i in onnx.load(str(out)).opset_import if i.domain in ("", "ai.onnx")) == 17
    assert main(["export", str(small_fcn), "-o", str(tmp_path / "m12.onnx"), "--opset", "12"]) == 2
    assert "Softmax along one axis needs opset >= 13" in capsys.readouterr().err
    assert not (tmp_path / "m12.onnx").exists()


@pytest.mark.parametrize("args,match", [
    (["--batch", "0"], "--batch must be a positive integer or 'dynamic', got '0'"),
    (["--dtype", "int8"], "--dtype must be one of fp32, fp16, got 'int8'"),
    (["--tile", "a,b"], "--tile must be H,W .pixels., got 'a,b'")])
def test_export_bad_options_exit_2_with_the_reason(small_fcn, tmp_path, capsys, args, match):
    assert main(["export", str(small_fcn), "-o", str(tmp_path / "m.onnx"), *args]) == 2
    assert re.search(match, capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


UNTRAINED = """name: "untrained"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "score" type: "Convolution" bottom: "data" top: "score" convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "prob" type: "Softmax" bottom: "score" top: "prob" }
"""


def test_fill_untrained_makes_the_parity_meaningful(tmp_path, capsys):
    proto = tmp_path / "u.prototxt"
    proto.write_text(UNTRAINED)
    assert main(["export", str(proto), "-o", str(tmp_path / "u.onnx")]) == 0
    assert "warning: parity was NOT meaningful" in capsys.readouterr().err
    assert main(["export", str(proto), "-o", str(tmp_path / "f.onnx"), "--fill-untrained"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err and "NOT MEANINGFUL" not in captured.out
    assert "note: --fill-untrained: 1 untrained tensor(s) got seeded random values" in captured.err
    assert "NOT trained: use it for speed benchmarks only" in captured.err


# ------------------------------------------------------------------------------------------
# Zoo MODEL names
# ------------------------------------------------------------------------------------------

ZOO = "fcn_alexnet_8band"


def test_export_of_an_untrained_zoo_model_warns_that_parity_proved_nothing(zoo_names, tmp_path, capsys):
    """FCN-AlexNet's score_fr has no filler: 0 weights, 0.5 everywhere in torch and ONNX
    Runtime alike. The export succeeds (a file for speed tests is useful) but says, loudly,
    that its "max abs 0" means nothing, and what to do."""
    out = tmp_path / "z.onnx"
    assert main(["export", ZOO, "-o", str(out), "--tile", "32,32"]) == 0
    captured = capsys.readouterr()
    assert "prob (2,2,32,32) at 32x32: max abs 0, relative 0 (ok, tolerance 0.0001, constant reference)" in captured.out
    assert "NOT MEANINGFUL: the torch output does not vary with the input" in captured.out
    err = " ".join(captured.err.split())
    assert "warning: parity was NOT meaningful: the torch output 'prob' (0.5 everywhere)" in err
    assert "--weights X.caffemodel" in err and "--fill-untrained" in err
    meta = inspect_onnx(out).metadata
    assert meta["fcnkit.source"] == f"zoo:{ZOO}" and meta["fcnkit.tile"] == "32,32"


def test_export_of_a_zoo_model_with_weights(zoo_names, tmp_path, capsys):
    """--weights for a zoo name: the caffemodel's blobs are used; with weights that vary the
    output, parity is meaningful and the file computes what torch does with them."""
    from fcnkit import caffe
    from fcnkit.compile import export_blobs
    from tests.deploy.deploy_helpers import calibrate_scores, load_zoo_untrained

    src = load_zoo_untrained(ZOO, (32, 32))
    calibrate_scores(src.compiled)
    weights = tmp_path / "w.caffemodel"
    caffe.write_caffemodel(weights, src.compiled.net.param, export_blobs(src.compiled))
    out = tmp_path / "z.onnx"
    assert main(["export", ZOO, "--weights", str(weights), "-o", str(out), "--tile", "32,32"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err and PARITY_LINE.search(captured.out), captured
    x = rand((2, 8, 32, 32), seed=4)
    with torch.no_grad():
        ref = src.compiled.module(torch.from_numpy(x))["prob"].numpy()
    got = _ort(out, {"data": x})["prob"]
    assert float(np.ptp(ref)) > 0.1  # not the untrained 0.5 everywhere: the weights were used
    assert float(np.abs(got - ref).max()) <= FP32_TOLERANCE


# ------------------------------------------------------------------------------------------
# fcnkit engine
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_onnx(small_fcn, tmp_path_factory):
    from fcnkit.deploy.onnx import export_model

    path = tmp_path_factory.mktemp("cli_onnx") / "m.onnx"
    export_model(small_fcn, path)
    return path


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed: its absence cannot be tested here")
def test_engine_without_tensorrt_says_what_to_install(small_onnx, tmp_path, capsys):
    eng = tmp_path / "m.engine"
    assert main(["engine", str(small_onnx), "-o", str(eng)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: building a TensorRT engine needs NVIDIA TensorRT, which is not installed")
    assert "pip install 'fcnkit[gpu]'" in err and "NVIDIA GPU" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args,match", [
    (["--batch", "0"], "--batch takes positive batch sizes (N, or min,opt,max), got '0'"),
    (["--batch", "8,4,16"], "min <= opt <= max, got '8,4,16'"),
    (["--workspace", "0"], "--workspace must be a positive number of MiB, got 0"),
    (["--opt-level", "7"], "--opt-level must be between 0 and 5, got 7"),
    (["--tile", "32,32"], "static at 16x16 in the ONNX file; --tile 32,32 needs an export at that tile")])
def test_engine_bad_options_are_reported_with_or_without_tensorrt(small_onnx, tmp_path, capsys, args, match):
    assert main(["engine", str(small_onnx), "-o", str(tmp_path / "m.engine"), *args]) == 2
    assert match in " ".join(capsys.readouterr().err.split())
    assert list(tmp_path.iterdir()) == []
