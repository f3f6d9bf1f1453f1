"""`fcnkit compile`, `run`, `verify` and `fcnkit.load` end to end on real files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import fcnkit
from fcnkit.cli.main import main
from tests.conftest import DATA

LENET = DATA / "lenet_ahmdtaha"
ORACLE = LENET / "opencv_oracle_lenet_ahmdtaha"


def test_default_compile_prints_fcn8s_table(capsys):
    assert main(["compile"]) == 0
    out = capsys.readouterr().out
    assert "upscore8" in out and "score_pool4c" in out
    assert "crop score: declared [31, 31], computed [31, 31] -> ok" in " ".join(out.split())


def test_compile_writes_directory_that_loads(tmp_path, capsys):
    out_dir = tmp_path / "lenet"
    assert main(["compile", str(LENET / "mnist_deploy.prototxt"), "--weights",
                 str(LENET / "lenet_iter_10000.caffemodel"), "-o", str(out_dir)]) == 0
    assert {p.name for p in out_dir.iterdir()} == {"model.py", "weights.safetensors",
                                                   "net.prototxt", "fcnkit.json"}
    code = (out_dir / "model.py").read_text()
    assert "self.conv1(" in code and "self.ip2(" in code
    model = fcnkit.load(out_dir)
    x = torch.from_numpy(np.load(ORACLE / "input.npy"))
    with torch.no_grad():
        got = model.module(x)["loss"].numpy()
    np.testing.assert_allclose(got, np.load(ORACLE / "output_loss.npy"), atol=1e-5)
    assert "conv1.weight" in model.module.state_dict()


def test_run_and_verify(tmp_path, capsys):
    out = tmp_path / "out.npz"
    args = [str(LENET / "mnist_deploy.prototxt"), "--weights", str(LENET / "lenet_iter_10000.caffemodel"),
            "--input", str(ORACLE / "input.npy")]
    assert main(["run", *args, "-o", str(out)]) == 0
    saved = np.load(out)
    assert list(saved) == ["loss"]
    np.testing.assert_allclose(saved["loss"], np.load(ORACLE / "output_loss.npy"), atol=1e-5)
    assert main(["run", *args, "-o", str(out), "--all-blobs"]) == 0
    assert {"conv1", "pool1", "ip1", "ip2", "loss"} <= set(np.load(out))
    assert main(["verify", *args, "--reference", str(ORACLE / "layer_outputs.npz")]) == 0
    assert "ok: compared 8 of 8 layers" in capsys.readouterr().out


def test_verify_fails_beyond_tolerance(tmp_path, capsys):
    ref = dict(np.load(ORACLE / "layer_outputs.npz"))
    ref["ip2"] = ref["ip2"] + 1.0
    bad = tmp_path / "bad.npz"
    np.savez(bad, **ref)
    code = main(["verify", str(LENET / "mnist_deploy.prototxt"), "--weights",
                 str(LENET / "lenet_iter_10000.caffemodel"), "--input", str(ORACLE / "input.npy"),
                 "--reference", str(bad)])
    assert code == 1
    assert "FAIL" in capsys.readouterr().out


def test_compile_json_flops_and_params(capsys):
    assert main(["compile", str(LENET / "mnist_deploy.prototxt"), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    layers = {l["name"]: l for l in doc["layers"]}
    # conv1: 20 x 1 x 5 x 5 weights + 20 biases; 24x24 outputs, 25 MACs each
    assert layers["conv1"]["params"] == 520
    assert layers["conv1"]["flops"] == 2 * 20 * 24 * 24 * 25
    assert layers["ip1"]["params"] == 800 * 500 + 500
    assert layers["ip1"]["flops"] == 2 * 800 * 500
    assert doc["total_params"] == 431_080  # Caffe's LeNet: 520 + 25,050 + 400,500 + 5,010


def test_pickle_npy_is_refused(tmp_path, capsys):
    p = tmp_path / "x.npy"
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code = main(["run", str(LENET / "mnist_deploy.prototxt"), "--input", str(p), "-o",
                 str(tmp_path / "o.npz")])
    assert code == 2
    assert "never unpickles" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "o.npz").exists()
