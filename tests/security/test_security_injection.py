"""Issue 15, acceptance 1: names read from a prototxt never run as code.

Each hostile name (the issue's payload and its variants: quotes, backslashes, newlines, NUL,
unicode, torch attribute names) is used as a layer name, a blob name, an input name and the
net name; every command that builds or runs a module is run on the net, and the test fails
if the marker file that the payload would create appears. The outputs are checked too
(ReLU of a known input), so that "nothing ran" is not "nothing was computed".
"""

from __future__ import annotations

import ast

import numpy as np
import pytest

from fcnkit.cli.main import main


def _payloads(marker) -> list[str]:
    m = str(marker)
    return [
        f'zz", getattr(__import__("os"), "system")("touch {m}")) or getattr(self, "zz',
        f"yy', getattr(__import__('os'), 'system')('touch {m}')) or getattr(self, 'yy",
        f'zz\\", __import__("os").system("touch {m}"), "\\',
        f'zz")\n__import__("os").system("touch {m}")\n#',
        'trailing\\',
        'nul\x00byte',
        f'卷积", __import__("os").system("touch {m}"), "',
        "__class__", "training", "_modules", "self", "torch", "forward",
    ]


def _net(marker) -> str:
    """A prototxt whose net, input, every layer and every blob carry hostile names."""
    from fcnkit import caffe

    names = _payloads(marker)
    param = caffe.caffe_pb2.NetParameter()
    param.name = names[0]
    inp = param.layer.add(name=names[1] + "/input", type="Input")
    inp.top.append(names[2])
    inp.input_param.shape.add().dim.extend([1, 2, 3, 3])
    bottom = names[2]
    for i, name in enumerate(names):
        layer = param.layer.add(name=name, type="ReLU")
        layer.bottom.append(bottom)
        top = names[(i + 3) % len(names)] + f"#{i}"
        layer.top.append(top)
        bottom = top
    return caffe.format_prototxt(param), names, bottom


@pytest.fixture()
def hostile(tmp_path):
    marker = tmp_path / "PWNED"
    text, names, out_blob = _net(marker)
    net = tmp_path / "hostile.prototxt"
    net.write_text(text, encoding="utf-8")
    x = np.linspace(-1, 1, 18, dtype=np.float32).reshape(1, 2, 3, 3)
    np.save(tmp_path / "x.npy", x)
    return tmp_path, marker, net, names, out_blob, x


def _strings(tree) -> set[str]:
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _ok(capsys, args, marker):
    code = main(args)
    cap = capsys.readouterr()
    assert not marker.exists(), f"{args[0]}: the payload ran"
    assert "Traceback" not in cap.out + cap.err
    return code, cap.out + cap.err


def test_module_names_are_plain_identifiers(hostile):
    from fcnkit.compile import compile_net, module_name
    from fcnkit.graph import load_net

    tmp, marker, net, names, out_blob, x = hostile
    for name in names:
        assert module_name(name).isascii() and module_name(name).isidentifier()
    c = compile_net(load_net(net))
    assert _strings(ast.parse(c.module.code)) == {out_blob}  # the output key, as a repr'd literal, and nothing else
    assert sorted(c.layer_of_module.values()) == sorted(names)
    import torch

    out = c.module(torch.from_numpy(x))
    np.testing.assert_array_equal(out[out_blob].numpy(), np.maximum(x, 0))
    assert not marker.exists()


def test_every_command_leaves_no_marker(hostile, capsys):
    import fcnkit
    import torch

    tmp, marker, net, names, out_blob, x = hostile
    code, out = _ok(capsys, ["compile", str(net), "-o", str(tmp / "c"), "--onnx", str(tmp / "c.onnx")], marker)
    assert code == 0, out
    model_py = (tmp / "c" / "model.py").read_text()
    # the header comment did not end early (the file is still Python), and the only string
    # in it is the output key
    assert _strings(ast.parse(model_py)) == {out_blob}

    code, out = _ok(capsys, ["run", str(net), "--input", str(tmp / "x.npy"), "-o", str(tmp / "o.npz")], marker)
    assert code == 0, out
    np.testing.assert_array_equal(np.load(tmp / "o.npz")[out_blob], np.maximum(x, 0))

    ref = {name: np.maximum(x, 0) for name in names}
    np.savez(tmp / "ref.npz", **{k.replace("\x00", ""): v for k, v in ref.items()})
    code, out = _ok(capsys, ["verify", str(net), "--input", str(tmp / "x.npy"),
                             "--reference", str(tmp / "ref.npz")], marker)
    assert code in (0, 1), out

    code, out = _ok(capsys, ["export", str(net), "-o", str(tmp / "e.onnx")], marker)
    assert code == 0, out

    loaded = fcnkit.load(tmp / "c")
    res = loaded.module(torch.from_numpy(x))
    np.testing.assert_array_equal(res[out_blob].numpy(), np.maximum(x, 0))
    assert not marker.exists()


@pytest.mark.parametrize("which", [0, 1, 2, 3, 6])
def test_each_payload_alone_through_run(tmp_path, capsys, which):
    """One payload as the only layer name (as the issue reported it): ``run`` executes the
    generated forward, where the unescaped name used to run."""
    from fcnkit import caffe

    marker = tmp_path / "PWNED"
    name = _payloads(marker)[which]
    param = caffe.caffe_pb2.NetParameter(name="n")
    inp = param.layer.add(name="data", type="Input", top=["data"])
    inp.input_param.shape.add().dim.extend([1, 1, 2, 2])
    param.layer.add(name=name, type="ReLU", bottom=["data"], top=["out"])
    net = tmp_path / "one.prototxt"
    net.write_text(caffe.format_prototxt(param), encoding="utf-8")
    x = np.array([[[[-1.0, 2.0], [3.0, -4.0]]]], dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    code, out = _ok(capsys, ["run", str(net), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "o.npz")], marker)
    assert code == 0, out
    np.testing.assert_array_equal(np.load(tmp_path / "o.npz")["out"], np.maximum(x, 0))
