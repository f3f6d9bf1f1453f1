"""Acceptance 5: bad input gives the promised message and a non-zero exit, no traceback."""

from __future__ import annotations

import pytest

from fcnkit.cli.main import main
from tests.conftest import DATA

GOOD = """name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 } }
"""


def _run(capsys, args):
    code = main(args)
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err + cap.out
    return code, cap.err + cap.out


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text) if isinstance(text, str) else p.write_bytes(text)
    return p


def test_syntax_error_names_file_line_and_column(tmp_path, capsys):
    p = _write(tmp_path, "bad.prototxt", GOOD.replace('top: "conv1"', 'top: "conv1" }}'))
    code, out = _run(capsys, ["compile", str(p)])
    assert code == 2
    assert f"{p}:3:72:" in out


def test_unknown_layer_type_lists_every_one(tmp_path, capsys):
    text = GOOD + """layer { name: "up" type: "Upsample" bottom: "conv1" top: "up" }
layer { name: "py" type: "Python" bottom: "up" top: "py" }
"""
    p = _write(tmp_path, "unknown.prototxt", text)
    code, out = _run(capsys, ["compile", str(p)])
    assert code == 2
    flat = " ".join(out.split())
    assert "'up' of type 'Upsample' (line 5)" in flat
    assert "'py' of type 'Python' (line 6)" in flat
    assert "register" in flat


def test_cycle_is_named(tmp_path, capsys):
    text = GOOD + """layer { name: "a" type: "ReLU" bottom: "b" top: "a" }
layer { name: "b" type: "ReLU" bottom: "a" top: "b" }
"""
    p = _write(tmp_path, "cycle.prototxt", text)
    code, out = _run(capsys, ["compile", str(p)])
    assert code == 2
    flat = " ".join(out.split())
    assert "cycle" in flat and "'a'" in flat and "'b'" in flat


def test_missing_bottom_is_named(tmp_path, capsys):
    text = GOOD + """layer { name: "relu" type: "ReLU" bottom: "conv9" top: "relu" }
"""
    p = _write(tmp_path, "missing.prototxt", text)
    code, out = _run(capsys, ["compile", str(p)])
    assert code == 2
    flat = " ".join(out.split())
    assert "layer 'relu' (ReLU, line 5)" in flat and "bottom 'conv9'" in flat


def test_duplicate_top_is_refused(tmp_path, capsys):
    text = GOOD + """layer { name: "conv2" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 } }
"""
    p = _write(tmp_path, "dup.prototxt", text)
    code, out = _run(capsys, ["compile", str(p)])
    assert code == 2
    assert "already produced by layer 'conv1'" in " ".join(out.split())


def test_mixed_layer_and_layers_is_refused(tmp_path, capsys):
    text = GOOD + """layers { name: "relu" type: RELU bottom: "conv1" top: "conv1" }
"""
    p = _write(tmp_path, "mixed.prototxt", text)
    code, out = _run(capsys, ["compile", str(p)])
    assert code == 2
    assert "layers" in out and "layer" in out


def test_truncated_caffemodel(tmp_path, capsys):
    blob = (DATA / "lenet_ahmdtaha/lenet_iter_10000.caffemodel").read_bytes()
    p = _write(tmp_path, "trunc.caffemodel", blob[: len(blob) // 2])
    code, out = _run(capsys, ["compile", str(DATA / "lenet_ahmdtaha/mnist_deploy.prototxt"),
                              "--weights", str(p)])
    assert code == 2
    assert "truncated" in out.lower()


def test_html_file_named_caffemodel(tmp_path, capsys):
    p = _write(tmp_path, "model.caffemodel",
               "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>\n")
    code, out = _run(capsys, ["compile", str(DATA / "lenet_ahmdtaha/mnist_deploy.prototxt"),
                              "--weights", str(p)])
    assert code == 2
    assert "HTML" in out


def test_absurd_shape(tmp_path, capsys):
    p = _write(tmp_path, "huge.prototxt", GOOD.replace("dim: 8 dim: 8", "dim: 100000000 dim: 100000000"))
    code, out = _run(capsys, ["compile", str(p)])
    assert code == 2
    assert "absurdly large" in " ".join(out.split())


def test_missing_file(tmp_path, capsys):
    code, out = _run(capsys, ["compile", str(tmp_path / "nope.prototxt")])
    assert code == 2
    assert "nope.prototxt" in out


def test_weights_that_do_not_fit(tmp_path, capsys):
    # LeNet weights on the cifar10 net: layer names differ except none -> all initialised;
    # on a LeNet with a different num_output the counts differ -> clear error.
    text = (DATA / "lenet_ahmdtaha/mnist_deploy.prototxt").read_text().replace("num_output: 500", "num_output: 400")
    p = _write(tmp_path, "lenet400.prototxt", text)
    code, out = _run(capsys, ["compile", str(p), "--weights",
                              str(DATA / "lenet_ahmdtaha/lenet_iter_10000.caffemodel")])
    assert code == 2
    flat = " ".join(out.split())
    assert "layer 'ip1'" in flat and "(500, 800)" in flat
