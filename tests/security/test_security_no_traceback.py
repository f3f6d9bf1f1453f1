"""Issue 15, acceptance 3: every case the fuzz found gives exit status 2 and a message that
names the file and the problem, never a traceback; an internal error exits 70."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fcnkit.cli.main import EX_SOFTWARE, main
from tests.security._cli import run_cli

TINY = """name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "gaussian" } } }
"""


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("layer,rank", [
    ("Pooling", 0), ("Pooling", 1), ("ArgMax", 0), ("ArgMax", 1), ("BatchNorm", 0),
    ("EuclideanLoss", 0), ("SigmoidCrossEntropyLoss", 0)])
def test_low_rank_bottoms_are_shape_errors(tmp_path, capsys, layer, rank):
    dims = " ".join(f"dim: {d}" for d in (4, 3)[:rank])
    two = layer in ("EuclideanLoss", "SigmoidCrossEntropyLoss")
    extra = "pooling_param { kernel_size: 1 }" if layer == "Pooling" else ""
    net = _write(tmp_path / "rank.prototxt", f"""name: "r"
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ {dims} }} }} }}
layer {{ name: "l" type: "{layer}" bottom: "data" {'bottom: "data"' if two else ''} top: "out" {extra} }}
""")
    code, out = run_cli(capsys, ["compile", str(net)])
    assert code == 2
    assert f"{net}: layer 'l' ({layer}, line 3): needs bottoms with at least" in out


def test_offsets_fix_above_uint32(tmp_path, capsys):
    conv = "convolution_param { num_output: 1 kernel_size: 1 pad_h: 0 pad_w: 4000000000 }"
    net = _write(tmp_path / "off.prototxt", f"""name: "o"
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 1 dim: 1 dim: 1 dim: 4 }} }} }}
layer {{ name: "c1" type: "Convolution" bottom: "data" top: "c1" {conv} }}
layer {{ name: "c2" type: "Convolution" bottom: "c1" top: "c2" {conv} }}
layer {{ name: "crop" type: "Crop" bottom: "c2" bottom: "data" top: "crop" crop_param {{ axis: 2 }} }}
""")
    code, out = run_cli(capsys, ["offsets", str(net), "--fix", "-o", str(tmp_path / "fixed.prototxt")])
    assert code == 2
    assert f"{net}: layer 'crop' (Crop, line 5): computed offsets [0, 8000000000] exceed" in out
    assert not (tmp_path / "fixed.prototxt").exists()


@pytest.fixture()
def compiled_dir(tmp_path, capsys):
    net = _write(tmp_path / "tiny.prototxt", TINY)
    out = tmp_path / "c"
    assert main(["compile", str(net), "-o", str(out)]) == 0
    capsys.readouterr()
    return out


@pytest.mark.parametrize("field,value,message", [
    ("phase", ["TEST"], "'phase' must be"),
    ("level", float("nan"), "'level' must be an integer"),
    ("stages", "abc", "'stages' must be a list"),
    ("input_shapes", [[1, 1, 4, 4]], "'input_shapes' must be"),
    ("input_shapes", {"data": []}, "'input_shapes' must be"),
    ("input_shapes", {"data": [1, 1, 4, 2**40]}, "'input_shapes' must be"),
    ("deploy", "yes", "'deploy' must be true or false"),
    ("modules", {"conv": "other"}, "'modules' table does not match"),
])
def test_damaged_fcnkit_json(compiled_dir, capsys, field, value, message):
    import fcnkit
    from fcnkit.errors import InputError

    meta = json.loads((compiled_dir / "fcnkit.json").read_text())
    meta[field] = value
    (compiled_dir / "fcnkit.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=message) as e:
        fcnkit.load(compiled_dir)
    assert str(compiled_dir / "fcnkit.json") in str(e.value)


def test_deeply_nested_fcnkit_json_and_non_string_source(compiled_dir, capsys, tmp_path):
    import fcnkit
    from fcnkit.errors import InputError

    meta_path = compiled_dir / "fcnkit.json"
    good = meta_path.read_text()
    meta_path.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(InputError, match="fcnkit.json: damaged"):
        fcnkit.load(compiled_dir)
    meta = json.loads(good)
    meta["source"] = {"not": "a path"}
    meta_path.write_text(json.dumps(meta))
    from fcnkit.deploy.model import load_model  # what export/engine/predict open a DIR with

    assert load_model(compiled_dir).source == compiled_dir.name  # not the dict


def test_net_prototxt_that_no_longer_fits_the_weights(compiled_dir, capsys, tmp_path):
    p = compiled_dir / "net.prototxt"
    p.write_text(p.read_text().replace("num_output: 2", "num_output: 3"))
    code, out = run_cli(capsys, ["export", str(compiled_dir), "-o", str(tmp_path / "m.onnx")])
    assert code == 2
    assert f"{compiled_dir / 'weights.safetensors'}: does not fit net.prototxt" in out


def test_load_runs_no_filler_that_the_weights_replace(tmp_path, capsys):
    """A filler the weights replace may be one fcnkit cannot run: compile -w accepts the
    net, so fcnkit.load of what it wrote must too (it used to re-run every filler)."""
    import fcnkit
    import torch
    from fcnkit import caffe

    text = TINY.replace('type: "gaussian"', 'type: "no_such_filler"')
    net = _write(tmp_path / "bad_filler.prototxt", text)
    w = np.arange(18, dtype=np.float32).reshape(2, 1, 3, 3)
    b = np.array([0.5, -0.5], np.float32)
    caffe.write_caffemodel(tmp_path / "w.caffemodel", caffe.parse_prototxt(text).param, {"conv": [w, b]})
    assert main(["compile", str(net), "-w", str(tmp_path / "w.caffemodel"), "-o", str(tmp_path / "c")]) == 0
    loaded = fcnkit.load(tmp_path / "c")
    np.testing.assert_array_equal(loaded.module.conv.weight.detach().numpy(), w)
    x = torch.ones(1, 1, 4, 4)
    np.testing.assert_allclose(loaded.module(x)["conv"][0, :, 0, 0].detach().numpy(), w.sum(axis=(1, 2, 3)) + b)


@pytest.mark.parametrize("kind", ["string", "structured", "object", "huge", "truncated"])
def test_run_input_arrays_are_checked_by_header(tmp_path, capsys, kind):
    net = _write(tmp_path / "tiny.prototxt", TINY)
    x = tmp_path / "x.npy"
    if kind == "string":
        np.save(x, np.array(["ab", "cd"]))
    elif kind == "structured":
        np.save(x, np.zeros(4, dtype=[("a", "f4"), ("b", "i4")]))
    elif kind == "object":
        np.save(x, np.array([1, None], dtype=object), allow_pickle=True)
    elif kind == "huge":
        with open(x, "wb") as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "<f4", "fortran_order": False, "shape": (100000, 100000, 1000)})
    else:
        np.save(x, np.ones((1, 1, 4, 4), np.float32))
        x.write_bytes(x.read_bytes()[:-10])
    code, out = run_cli(capsys, ["run", str(net), "--input", str(x), "-o", str(tmp_path / "o.npz")])
    assert code == 2 and f"error: {x}: " in out
    expected = {"string": "holds <U2 data", "structured": "holds [('a', '<f4'), ('b', '<i4')] data",
                "object": "holds object data", "huge": "would need 72.8 TiB",
                "truncated": "damaged .npy file"}[kind]
    assert expected in out
    assert not (tmp_path / "o.npz").exists()


def test_verify_reference_not_a_zip_or_with_objects(tmp_path, capsys):
    import io
    import zipfile

    net = _write(tmp_path / "tiny.prototxt", TINY)
    np.save(tmp_path / "x.npy", np.ones((1, 1, 4, 4), np.float32))
    ref = tmp_path / "ref.npz"
    ref.write_bytes(b"PK\x03\x04 this is not a zip")
    args = ["verify", str(net), "--input", str(tmp_path / "x.npy"), "--reference", str(ref)]
    code, out = run_cli(capsys, args)
    assert code == 2 and f"error: {ref}: not an .npz file" in out
    with zipfile.ZipFile(ref, "w") as z:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.array([1, None], dtype=object), allow_pickle=True)
        z.writestr("conv.npy", buf.getvalue())
    code, out = run_cli(capsys, args)
    assert code == 2 and f"error: {ref} (member conv.npy): holds object data" in out


def test_internal_error_exits_70_and_asks_for_a_report(tmp_path, capsys, monkeypatch):
    import fcnkit.compile

    def broken(*a, **k):
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(fcnkit.compile, "compile_net", broken)
    code, out = run_cli(capsys, ["compile", str(_write(tmp_path / "tiny.prototxt", TINY))])
    assert code == EX_SOFTWARE == 70
    assert "internal error: ZeroDivisionError" in out and "simulated bug" in out
    assert "bug in fcnkit" in out and "report" in out
