"""The Python API of the ``fcnkit`` package: the main entry points in ``__all__``, imported
lazily (``import fcnkit`` imports no torch), with explicit parameters, each called on a
real file."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import fcnkit
from tests.conftest import DATA

LENET = DATA / "lenet_ahmdtaha"
LENET_PROTO = LENET / "mnist_deploy.prototxt"
LENET_MODEL = LENET / "lenet_iter_10000.caffemodel"
ORACLE = LENET / "opencv_oracle_lenet_ahmdtaha"
FCN8S = DATA / "fcn_berkeleyvision" / "voc-fcn8s" / "deploy.prototxt"
ROOT = Path(__file__).resolve().parents[2]


def test_import_fcnkit_imports_no_heavy_library():
    code = ("import sys, fcnkit; heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'rasterio') "
            "if m in sys.modules]; assert not heavy, heavy; "
            "assert {'load_net', 'compile_net', 'load', 'export_onnx', 'fcn_surgery', 'Predictor', "
            "'analyse', 'offset_table'} <= set(fcnkit.__all__); print(fcnkit.__version__)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == fcnkit.__version__


def test_every_entry_point_resolves_with_explicit_parameters():
    assert fcnkit.__all__[1:] == list(fcnkit._ENTRY_POINTS)
    for name in fcnkit.__all__[1:]:
        obj = getattr(fcnkit, name)
        params = inspect.signature(obj).parameters.values()
        assert all(p.kind is not p.VAR_KEYWORD for p in params), name  # no **kwargs
        assert obj.__doc__, name
    assert "phase" in inspect.signature(fcnkit.load_net).parameters
    assert "stages" in inspect.signature(fcnkit.load_net).parameters
    assert "deploy" in inspect.signature(fcnkit.compile_net).parameters
    assert sorted(dir(fcnkit)) == dir(fcnkit) and "fcn_surgery" in dir(fcnkit)


def test_load_net_analyse_offsets_draw_on_fcn8s(tmp_path):
    net = fcnkit.load_net(FCN8S, phase="TEST")
    analysis = fcnkit.analyse(net, {None: (1, 3, 500, 500)})
    assert analysis.shapes[net.final["score"]] == (1, 21, 500, 500)
    rows = {r.name: r for r in fcnkit.offset_table(net)}
    assert float(rows["upscore8"].cumulative_offset[0]) == 31.0
    assert [(c.layer, c.declared, c.computed) for c in fcnkit.crop_table(net)] == [
        ("score_pool4c", [5, 5], [5, 5]), ("score_pool3c", [9, 9], [9, 9]), ("score", [31, 31], [31, 31])]
    assert "| score | 2 | 31,31 | 31,31 | ok |" in fcnkit.render_offsets(
        fcnkit.offset_table(net), fcnkit.crop_table(net), "markdown")
    text = FCN8S.read_text()
    assert fcnkit.fix_crop_offsets_text(net, text) == text
    assert '"layer:score" -> "blob:score";' in fcnkit.net_to_dot(net)


def test_caffe_io_and_upgrade(tmp_path):
    src = fcnkit.read_prototxt(DATA / "bvlc_caffe/v0_legacy/examples/lenet/lenet.prototxt")
    fcnkit.write_prototxt(tmp_path / "v2.prototxt", src.param)
    assert fcnkit.read_prototxt(tmp_path / "v2.prototxt").param == src.param
    model = fcnkit.read_caffemodel(LENET_MODEL)
    fcnkit.write_caffemodel(tmp_path / "copy.caffemodel", model.net, model.blobs)
    np.testing.assert_array_equal(fcnkit.read_caffemodel(tmp_path / "copy.caffemodel").blobs["conv1"][0],
                                  model.blobs["conv1"][0])
    result = fcnkit.upgrade_file(DATA / "bvlc_caffe/v1_layers_enum/models/bvlc_alexnet/deploy.prototxt",
                                 tmp_path / "alexnet.prototxt")
    assert (result.kind, result.source_format, result.layers) == ("prototxt", "V1", 24)


def test_compile_load_time_surgery_predictor(tmp_path):
    from fcnkit.compile import save_compiled

    x = np.load(ORACLE / "input.npy")
    want = np.load(ORACLE / "output_loss.npy")
    compiled = fcnkit.compile_net(fcnkit.load_net(LENET_PROTO), LENET_MODEL, deploy=True)
    with torch.no_grad():
        np.testing.assert_allclose(compiled(torch.from_numpy(x))["loss"].numpy(), want, atol=1e-5)
    save_compiled(compiled, tmp_path / "lenet")
    loaded = fcnkit.load(tmp_path / "lenet")
    assert isinstance(loaded, fcnkit.CompiledNet)
    with torch.no_grad():
        np.testing.assert_allclose(loaded.module(torch.from_numpy(x))["loss"].numpy(), want, atol=1e-5)
    timing = fcnkit.time_forward(compiled, "torch", iterations=1, warmup=0)
    assert [t.layer for t in timing.layers][1:3] == ["conv1", "pool1"]
    surgery = fcnkit.fcn_surgery(LENET_PROTO, fcnkit.read_caffemodel(LENET_MODEL), head="none")
    assert {lp.type for lp in surgery.param.layer} >= {"Convolution"}
    assert "InnerProduct" not in {lp.type for lp in surgery.param.layer}  # fc -> conv
    predictor = fcnkit.Predictor.from_path(LENET_PROTO, "torch", "cpu", weights=LENET_MODEL,
                                           probabilities=False)
    np.testing.assert_allclose(predictor.predict(x).reshape(want.shape), want, atol=1e-5)
    # export_onnx is the library function itself (its behaviour: tests/deploy)
    from fcnkit.deploy.onnx import export_onnx

    assert fcnkit.export_onnx is export_onnx
