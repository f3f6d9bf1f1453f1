"""Issue 13 item 3: a wrong --format, a solver where a net is expected, prototxt text given
to load_net, ``run -o out.npy``, and output permissions that follow the umask."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from fcnkit.errors import CaffeFormatError
from fcnkit.graph import load_net
from fcnkit.graph.net import is_prototxt_text
from tests.honest._helpers import LENET_NET, LENET_WEIGHTS, run_cli


@pytest.mark.parametrize("command, formats", [
    ("compile", "table, markdown, csv, html, json"),
    ("offsets", "table, markdown, csv, html, json"),
])
def test_wrong_format_lists_the_valid_ones(capsys, data_dir, command, formats):
    code, out, err = run_cli(capsys, [command, LENET_NET, "--format", "yaml"])
    assert code == 2
    assert f"--format must be one of {formats}, got 'yaml'" in err
    assert out == ""  # refused before any work


@pytest.mark.parametrize("text, needle", [
    ('net: "models/train_val.prototxt"\nbase_lr: 0.01\nmax_iter: 10\n',
     "its net is 'models/train_val.prototxt'"),
    ('# solver\ntrain_net: "a.prototxt"\ntest_net: "b.prototxt"\nbase_lr: 0.1\n',
     "its nets are 'a.prototxt' (train_net), 'b.prototxt' (test_net)"),
    ('base_lr: 0.1\nnet_param { name: "x" }\n', "its net is written inside it (net_param)"),
])
def test_solver_given_as_a_net_names_its_net(tmp_path, capsys, text, needle):
    solver = tmp_path / "solver.prototxt"
    solver.write_text(text)
    code, _, err = run_cli(capsys, ["compile", solver])
    assert code == 2 and f"{solver}: this is a solver prototxt, not a net; {needle}" in err


def test_net_with_a_typo_is_still_a_syntax_error(tmp_path, capsys):
    bad = tmp_path / "bad.prototxt"
    bad.write_text('name: "x"\nlayr { name: "a" }\n')
    code, _, err = run_cli(capsys, ["compile", bad])
    assert code == 2 and "solver" not in err and f"{bad}:2:1" in err


def test_load_net_accepts_prototxt_text(data_dir):
    text = LENET_NET.read_text()
    from_text, from_file = load_net(text), load_net(str(LENET_NET))
    assert [n.name for n in from_text.layers] == [n.name for n in from_file.layers]
    assert from_text.path is None and from_file.path == str(LENET_NET)


def test_load_net_of_a_missing_file_says_file_not_found():
    with pytest.raises(CaffeFormatError, match="missing.prototxt: file not found"):
        load_net("missing.prototxt")


@pytest.mark.parametrize("source, is_text", [
    ('name: "x"', True), ("layer { name: 'a' }", True), ("input: 'data'\ninput_dim: 1", True),
    ("net.prototxt", False), ("C:\\nets\\x.prototxt", False), ("models/deploy.prototxt", False),
    ("x" * 5000 + "{", True),  # too long for a file name
])
def test_text_or_path(source, is_text):
    assert is_prototxt_text(source) is is_text


def test_existing_file_is_a_path_even_if_it_looks_like_text(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    odd = tmp_path / "a{b}.prototxt"
    odd.write_text(LENET_NET.read_text())
    assert not is_prototxt_text("a{b}.prototxt")
    assert load_net("a{b}.prototxt").path == "a{b}.prototxt"


def test_run_writes_npy_for_one_output_and_refuses_several(tmp_path, capsys, data_dir):
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32))
    args = ["run", LENET_NET, "-w", LENET_WEIGHTS, "-i", x]
    assert run_cli(capsys, [*args, "-o", tmp_path / "o.npz"])[0] == 0
    assert run_cli(capsys, [*args, "-o", tmp_path / "o.npy"])[0] == 0
    one = np.load(tmp_path / "o.npy")  # a plain array, not an npz archive
    np.testing.assert_array_equal(one, np.load(tmp_path / "o.npz")["loss"])
    code, _, err = run_cli(capsys, [*args, "-o", tmp_path / "all.npy", "--all-blobs"])
    assert code == 2 and "a .npy file holds one array" in err and "give an .npz file name" in err
    assert not (tmp_path / "all.npy").exists()


def test_outputs_follow_the_umask(tmp_path, capsys, data_dir):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 1, 28, 28), np.float32))
    old = os.umask(0o027)
    try:
        assert run_cli(capsys, ["run", LENET_NET, "-i", x, "-o", tmp_path / "r" / "o.npz",
                                "-w", LENET_WEIGHTS])[0] == 0
        assert run_cli(capsys, ["compile", LENET_NET, "-w", LENET_WEIGHTS, "-o", tmp_path / "c"])[0] == 0
    finally:
        os.umask(old)

    def mode(p):
        return stat.S_IMODE(p.stat().st_mode)

    assert mode(tmp_path / "r" / "o.npz") == 0o640
    assert mode(tmp_path / "c") == 0o750
    files = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert "weights.safetensors" in files  # written 0600 by safetensors itself
    assert {p.name: mode(p) for p in (tmp_path / "c").iterdir()} == {f: 0o640 for f in files}
