"""Acceptance 5 and 7: `fcnkit surgery` writes a directory whose caffemodel reads back
with identical blobs and whose net compiles to the in-memory result; errors are clear and
leave no partial OUTDIR."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fcnkit import caffe
from fcnkit.cli.main import main
from fcnkit.compile import compile_net, load
from fcnkit.graph import load_net
from fcnkit.surgery import fcn_surgery, write_outdir
from tests.surgery._nets import LENET, alexnet_shaped, forward, random_blobs, rel_err

LENET_PROTO = LENET / "mnist_deploy.prototxt"
LENET_MODEL = LENET / "lenet_iter_10000.caffemodel"


def _run(capsys, args):
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.out + cap.err
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    d = tmp_path_factory.mktemp("alexnet_shaped")
    param = alexnet_shaped()
    blobs = random_blobs(param, seed=31)
    caffe.write_prototxt(d / "deploy.prototxt", param)
    caffe.write_caffemodel(d / "weights.caffemodel", param, blobs)
    return d / "deploy.prototxt", d / "weights.caffemodel", param, blobs


ARGS = ["--classes", "5", "--keep-classes", "--head", "fcn8s", "--pools", "pool2,pool1",
        "--bands", "8", "--input-shape", "160,200"]


def test_written_files_round_trip(classifier, tmp_path, capsys):
    proto, model, param, blobs = classifier
    out = tmp_path / "fcn"
    code, stdout, err = _run(capsys, ["surgery", proto, model, *ARGS, "-o", out])
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {"net.prototxt", "net.caffemodel", "weights.safetensors",
                                               "report.md", "report.json", "fcnkit.json"}
    assert "crop score: offset 18 (computed)" in stdout
    assert "crop score_pool2c: offset 5 (computed)" in stdout

    mem = fcn_surgery(param, blobs, classes=5, keep_classes=True, head="fcn8s",
                      pools=["pool2", "pool1"], bands=8, input_shape=(160, 200))
    # 1. the caffemodel reads back with identical blobs
    back = caffe.read_caffemodel(out / "net.caffemodel")
    assert set(back.blobs) == set(mem.blobs)
    for name, arrays in mem.blobs.items():
        assert len(back.blobs[name]) == len(arrays)
        for a, b in zip(arrays, back.blobs[name]):
            assert a.shape == b.shape and np.array_equal(a, b), name
    # 2. the written net compiles and gives the in-memory result's outputs
    x = np.random.default_rng(0).uniform(-1, 1, (1, 8, 160, 200)).astype(np.float32)
    expect = forward(mem.param, mem.blobs, x)["score"]
    written = compile_net(load_net(out / "net.prototxt"), out / "net.caffemodel")
    got = written(torch.from_numpy(x))["score"].detach().numpy()
    assert got.shape == (1, 5, 160, 200) and np.abs(expect).max() > 0
    assert rel_err(got, expect) <= 1e-6
    # 3. the directory also loads as a compiled fcnkit model (weights from safetensors)
    loaded = load(out)
    assert set(loaded.module.state_dict()) == set(written.module.state_dict())
    got2 = loaded(torch.from_numpy(x))["score"].detach().numpy()
    assert rel_err(got2, expect) <= 1e-6
    # 4. the report: every layer's fate, the computed crops, the band rule
    rep = json.loads((out / "report.json").read_text())
    status = {e["layer"]: e["status"] for e in rep["layers"]}
    assert status["conv1"] == "adapted" and status["conv2"] == "transplanted"
    assert status["fc6"] == "coerced" and status["fc7"] == "coerced"
    assert status["score_fr"] == "adapted"                # first 5 of fc8's 10 classes
    assert status["score_pool2"] == status["upscore8"] == "initialised"
    assert rep["crop_offsets"] == {"score_pool2c": [5, 5], "score_pool1c": [10, 10], "score": [18, 18]}
    assert rep["bands"]["scale"] == pytest.approx(0.375)
    assert {d["layer"] for d in rep["dropped"]} >= {"fc8", "prob"}
    md = (out / "report.md").read_text()
    assert "## Crop offsets (computed)" in md and "| score | 18 | 18 |" in md


def test_compiled_directory_as_input(tmp_path, capsys):
    cdir = tmp_path / "lenet_compiled"
    code, _, err = _run(capsys, ["compile", LENET_PROTO, "--weights", LENET_MODEL, "-o", cdir])
    assert code == 0, err
    out = tmp_path / "lenet_fcn"
    code, stdout, err = _run(capsys, ["surgery", cdir, "--head", "none", "-o", out])
    assert code == 0, err
    back = caffe.read_caffemodel(out / "net.caffemodel")
    assert back.blobs["ip1"][0].shape == (500, 50, 4, 4)
    x = np.random.default_rng(1).uniform(0, 1, (1, 1, 28, 28)).astype(np.float32)
    ref = forward(caffe.read_prototxt(LENET_PROTO).param, caffe.read_caffemodel(LENET_MODEL), x)
    got = compile_net(load_net(out / "net.prototxt"), back)(torch.from_numpy(x))["loss"]
    assert rel_err(got.detach().numpy().reshape(1, 10), ref["loss"]) <= 1e-5


def _assert_nothing_written(parent, out, before):
    assert not out.exists()
    assert sorted(p.name for p in parent.iterdir()) == before  # no temporary leftovers


def test_error_input_size_not_inferable(tmp_path, capsys):
    proto = tmp_path / "data_layer.prototxt"
    proto.write_text("""name: "nodims"
layer { name: "data" type: "Data" top: "data" top: "label" data_param { source: "x" batch_size: 4 } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 10 } }
""")
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "out"
    code, _, err = _run(capsys, ["surgery", proto, "-o", out])
    assert code == 2
    assert "input size of InnerProduct 'ip1' cannot be inferred" in err
    _assert_nothing_written(tmp_path, out, before)


def test_error_mismatched_counts(classifier, tmp_path, capsys):
    proto, _, param, blobs = classifier
    bad = dict(blobs)
    bad["conv3"] = [np.zeros((24, 8, 3, 3), np.float32), blobs["conv3"][1]]
    model = tmp_path / "bad.caffemodel"
    caffe.write_caffemodel(model, param, bad)
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "out"
    code, _, err = _run(capsys, ["surgery", proto, model, "-o", out])
    assert code == 2
    msg = " ".join(err.split())
    assert "'conv3'" in msg and "24x8x3x3 (1728 values)" in msg and "24x16x3x3 (3456 values)" in msg
    _assert_nothing_written(tmp_path, out, before)


def test_error_head_without_named_pools_keeps_existing_outdir(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "fcnkit.json").write_text("{}")  # an earlier fcnkit output, which may be replaced
    (out / "keep.txt").write_text("previous result")
    code, _, err = _run(capsys, ["surgery", LENET_PROTO, LENET_MODEL, "--head", "fcn16s", "-o", out])
    assert code == 2
    msg = " ".join(err.split())
    assert "no layer or blob named 'pool4'" in msg
    assert "pool1 (stride 2), pool2 (stride 4)" in msg
    assert sorted(p.name for p in out.iterdir()) == ["fcnkit.json", "keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_outdir_that_is_not_an_fcnkit_output_is_refused(tmp_path, capsys):
    """A directory of something else, or a file, is never replaced (before any work is
    done); --force replaces a directory."""
    out = tmp_path / "results"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    code, _, err = _run(capsys, ["surgery", LENET_PROTO, LENET_MODEL, "--head", "none", "-o", out])
    assert code == 2 and "is not an fcnkit output directory (no fcnkit.json)" in " ".join(err.split())
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]
    afile = tmp_path / "afile.txt"
    afile.write_text("precious")
    code, _, err = _run(capsys, ["surgery", LENET_PROTO, LENET_MODEL, "--head", "none", "-o", afile])
    assert code == 2 and "exists and is a file" in " ".join(err.split())
    assert afile.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile.txt", "results"]
    code, _, _ = _run(capsys, ["surgery", LENET_PROTO, LENET_MODEL, "--head", "none", "-o", out,
                               "--force"])
    assert code == 0 and (out / "net.caffemodel").is_file() and not (out / "thesis.tex").exists()
    # an earlier output is replaced without --force
    code, _, _ = _run(capsys, ["surgery", LENET_PROTO, LENET_MODEL, "--head", "none", "-o", out])
    assert code == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["afile.txt", "results"]


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    r = fcn_surgery(LENET_PROTO, caffe.read_caffemodel(LENET_MODEL), head="none")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(caffe, "write_caffemodel", boom)
    with pytest.raises(OSError, match="disk full"):
        write_outdir(r, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
