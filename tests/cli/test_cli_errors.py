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
    # ShuffleChannel (ShuffleNet's fork) is a type fcnkit does not know; Upsample now is one
    text = GOOD + """layer { name: "up" type: "ShuffleChannel" bottom: "conv1" top: "up" }
layer { name: "py" type: "Python" bottom: "up" top: "py" }
"""
    p = _write(tmp_path, "unknown.prototxt", text)
    code, out = _run(capsys, ["compile", str(p)])
    assert code == 2
    flat = " ".join(out.split())
    assert "'up' of type 'ShuffleChannel' (line 5)" in flat
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
    assert f"error: {p}: " in flat  # the file is named


def test_missing_bottom_is_named(tmp_path, capsys):
    text = GOOD + """layer { name: "relu" type: "ReLU" bottom: "conv9" top: "relu" }
"""
    p = _write(tmp_path, "missing.prototxt", text)
    code, out = _run(capsys, ["compile", str(p)])
    assert code == 2
    flat = " ".join(out.split())
    assert f"{p}: layer 'relu' (ReLU, line 5)" in flat and "bottom 'conv9'" in flat


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
    # both files are named: the weights file and the prototxt (with the layer's line)
    assert f"weights {DATA / 'lenet_ahmdtaha/lenet_iter_10000.caffemodel'}: {p}: layer 'ip1'" in flat


@pytest.mark.parametrize("args, says", [
    (["compile", "--bogus"], "No such option: --bogus"),
    (["nosuchcmd"], "No such command 'nosuchcmd'"),
    (["compile", "x.prototxt", "--level", "x"], "Invalid value for '--level'"),
    (["run", "x.prototxt"], "Missing option '--input'"),
])
def test_usage_errors_exit_2_without_traceback(args, says, capsys):
    code, out = _run(capsys, args)
    assert code == 2 and says in out and "Usage: fcnkit" in out


def test_output_that_cannot_be_written_names_the_path(tmp_path, capsys):
    blocker = _write(tmp_path, "plainfile", "x")
    target = blocker / "sub" / "model"
    net = _write(tmp_path, "good.prototxt", GOOD)
    code, out = _run(capsys, ["compile", str(net), "-o", str(target)])
    assert code == 2
    flat = " ".join(out.split())
    assert f"error: {target}: cannot write it" in flat and ".tmp" not in flat
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.prototxt", "plainfile"]


def test_compile_output_directory_is_never_someone_elses(tmp_path, capsys):
    """-o DIR replaces an earlier compiled model, never a directory of other files or a
    file (checked before compiling); --force replaces a directory."""
    net = _write(tmp_path, "good.prototxt", GOOD)
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    code, out = _run(capsys, ["compile", str(net), "-o", str(mine)])
    assert code == 2 and "is not an fcnkit output directory (no fcnkit.json)" in " ".join(out.split())
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    code, out = _run(capsys, ["compile", str(net), "-o", str(net)])
    assert code == 2 and "exists and is a file" in out and net.read_text() == GOOD
    compiled = tmp_path / "compiled"
    for _ in range(2):  # the second run replaces the first's output
        assert _run(capsys, ["compile", str(net), "-o", str(compiled)])[0] == 0
    assert sorted(p.name for p in compiled.iterdir()) == [
        "fcnkit.json", "model.py", "net.prototxt", "weights.safetensors"]
    assert _run(capsys, ["compile", str(net), "-o", str(mine), "--force"])[0] == 0
    assert not (mine / "thesis.tex").exists() and (mine / "fcnkit.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compiled", "good.prototxt", "results"]


TWO_INPUTS = """name: "two"
layer { name: "a" type: "Input" top: "a" input_param { shape { dim: 1 dim: 1 dim: 2 dim: 2 } } }
layer { name: "b" type: "Input" top: "b" input_param { shape { dim: 1 dim: 1 dim: 2 dim: 2 } } }
layer { name: "d" type: "Eltwise" bottom: "a" bottom: "b" top: "d" eltwise_param { coeff: 2 coeff: -1 } }
"""


def test_run_with_an_input_left_out(tmp_path, capsys):
    import numpy as np

    net = _write(tmp_path, "two.prototxt", TWO_INPUTS)
    np.save(tmp_path / "a.npy", np.ones((1, 1, 2, 2), np.float32))
    np.save(tmp_path / "b.npy", np.full((1, 1, 2, 2), 3, np.float32))
    out = tmp_path / "o.npz"
    code, text = _run(capsys, ["run", str(net), "--input", f"a={tmp_path / 'a.npy'}", "-o", str(out)])
    assert code == 2 and "no array was given for ['b']" in " ".join(text.split())
    assert not out.exists()
    code, _ = _run(capsys, ["run", str(net), "--input", f"a={tmp_path / 'a.npy'}",
                            "--input", f"b={tmp_path / 'b.npy'}", "-o", str(out)])
    assert code == 0
    # Caffe's Eltwise SUM with coeff: 2 a - b
    np.testing.assert_array_equal(np.load(out)["d"], np.full((1, 1, 2, 2), -1, np.float32))


@pytest.mark.parametrize("name", ["class", "None", "def", "double", "train", "forward", "code"])
def test_layer_named_like_a_python_keyword_compiles(name):
    """Python keywords and torch module attributes get a trailing underscore."""
    import torch

    from fcnkit import caffe
    from fcnkit.compile import compile_net
    from fcnkit.graph import load_net

    text = GOOD.replace('name: "conv1"', f'name: "{name}"')
    c = compile_net(load_net(caffe.parse_prototxt(text)))
    assert f"{name}_.weight" in c.module.state_dict()
    assert c.module(torch.zeros(1, 3, 8, 8))["conv1"].shape == (1, 4, 6, 6)


def test_layers_whose_module_names_collide_are_refused(tmp_path, capsys):
    text = GOOD.replace('name: "conv1"', 'name: "a.b"') + """layer { name: "a_b" type: "ReLU" bottom: "conv1" top: "r" }
"""
    p = _write(tmp_path, "collide.prototxt", text)
    code, out = _run(capsys, ["compile", str(p)])
    assert code == 2
    assert "layer 'a_b' (ReLU, line 5): its submodule name 'a_b' is also that of layer 'a.b'" in " ".join(out.split())


def test_empty_prototxt_is_an_error(tmp_path, capsys):
    p = _write(tmp_path, "empty.prototxt", "# nothing here\n")
    code, out = _run(capsys, ["compile", str(p)])
    assert code == 2 and f"{p}: the net has no layers in phase TEST" in " ".join(out.split())


def test_reference_that_is_a_single_npy_is_explained(tmp_path, capsys):
    import numpy as np

    lenet = DATA / "lenet_ahmdtaha"
    oracle = lenet / "opencv_oracle_lenet_ahmdtaha"
    code, out = _run(capsys, ["verify", str(lenet / "mnist_deploy.prototxt"), "--input",
                              str(oracle / "input.npy"), "--reference", str(oracle / "input.npy")])
    assert code == 2 and "is one array (.npy), not an .npz" in " ".join(out.split())


def test_damaged_compiled_directory(tmp_path, capsys):
    import fcnkit
    from fcnkit.errors import InputError, WeightsError

    net = _write(tmp_path, "good.prototxt", GOOD)
    out = tmp_path / "compiled"
    assert _run(capsys, ["compile", str(net), "-o", str(out)])[0] == 0
    (out / "weights.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(WeightsError, match="cannot be read as safetensors"):
        fcnkit.load(out)
    (out / "fcnkit.json").write_text("{broken")
    with pytest.raises(InputError, match="fcnkit.json: damaged"):
        fcnkit.load(out)
