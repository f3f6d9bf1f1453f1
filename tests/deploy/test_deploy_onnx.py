"""ONNX export (issue 5, acceptance 1-3): every real net that compiles exports, passes the
checker and matches torch in ONNX Runtime; the file's opset is the requested one; fp16
exports stay within the documented tolerance; graph conventions (names, Softmax axis, one
LRN node, Crop as Slice, exact ceil-mode pooling, dynamic axes, metadata)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fcnkit.deploy.onnx import (FP16_TOLERANCE, FP32_TOLERANCE, dynamic_hw_blockers, export_model,
                                export_onnx, inspect_onnx)
from fcnkit.errors import ExportError, InputError
from tests.conftest import DATA
from tests.deploy.deploy_helpers import BY_KEY, REAL_NETS, load_real, rand

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared Caffe data folder {DATA} missing")


def _ort(path, x: dict):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, x)))


def _torch(src, x: dict):
    with torch.no_grad():
        out = src.compiled.module(*[torch.from_numpy(x[n]) for n in src.compiled.inputs])
    return {k: v.numpy() for k, v in out.items()}


def _rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def _opset(model) -> int:
    return next(i.version for i in model.opset_import if i.domain in ("", "ai.onnx"))


# ------------------------------------------------------------------------------------------
# Acceptance 1: every real net that compiles
# ------------------------------------------------------------------------------------------

def test_real_net_list_is_complete():
    """Every prototxt of the data folder is either in REAL_NETS or does not compile for
    deployment (the fcn.berkeleyvision train/val nets read data through a Python layer)."""
    from fcnkit.deploy.model import load_model
    from fcnkit.errors import UnsupportedLayerError

    listed = {n.prototxt for n in REAL_NETS}
    for p in sorted(DATA.rglob("*.prototxt")):
        rel = p.relative_to(DATA).as_posix()
        if rel in listed:
            continue
        with pytest.raises(UnsupportedLayerError, match="Python"):
            load_model(p)


@pytest.mark.parametrize("key", [n.key for n in REAL_NETS])
def test_real_net_exports_and_matches_torch(real_export, key):
    src, result, path = real_export(key)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert _opset(model) == 18 == result.opset
    # inputs and outputs named after the Caffe blobs, batch axis dynamic, H and W static
    assert [i.name for i in model.graph.input] == src.compiled.inputs
    assert [o.name for o in model.graph.output] == src.compiled.outputs
    for vi in model.graph.input:
        dims = vi.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch"
        assert all(d.HasField("dim_value") for d in dims[1:])
    # the library's own parity run, per output
    assert {r.output for r in result.parity} == set(src.compiled.outputs)
    assert result.ok and result.relative <= FP32_TOLERANCE, result.lines()


@pytest.mark.parametrize("key", ["lenet", "resnet50_stem", "fcn_alexnet_digits"])
def test_written_file_matches_torch_at_another_batch(real_export, key):
    """Independent of the exporter's own check: load the written file, run it at batch 3."""
    src, _, path = real_export(key)
    x = {n: rand((3,) + tuple(s[1:]), seed=7) for n, s in src.compiled.input_shapes.items()}
    got, ref = _ort(path, x), _torch(src, x)
    for name in src.compiled.outputs:
        assert got[name].shape == ref[name].shape
        assert _rel(got[name], ref[name]) <= FP32_TOLERANCE


# ------------------------------------------------------------------------------------------
# Graph conventions
# ------------------------------------------------------------------------------------------

def test_lrn_is_one_onnx_lrn_node(real_export):
    _, result, path = real_export("alexnet")
    model = onnx.load(str(path), load_external_data=False)
    lrn = [n for n in model.graph.node if n.op_type == "LRN"]
    assert len(lrn) == 2 and result.node_types["LRN"] == 2
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in lrn[0].attribute}
    assert attrs["size"] == 5 and attrs["bias"] == pytest.approx(1.0)
    assert attrs["alpha"] == pytest.approx(1e-4) and attrs["beta"] == pytest.approx(0.75)
    # no decomposition into Pow / AveragePool / Div
    assert not {"Pow", "AveragePool", "Div"} & set(result.node_types)
    assert result.outputs == {"prob": ["batch", 1000]}


def test_crop_is_slice_and_offsets_are_recorded(real_export):
    src, result, path = real_export("voc_fcn8s")
    assert result.node_types.get("Slice", 0) >= 3
    assert not {"Gather", "Pad"} & set(result.node_types)
    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    crops = json.loads(meta["fcnkit.crop_offsets"])
    assert {k: v["offset"] for k, v in crops.items()} == {"score_pool4c": [5, 5], "score_pool3c": [9, 9],
                                                          "score": [31, 31]}
    assert result.outputs == {"score": ["batch", 21, 64, 64]}
    assert meta["fcnkit.source"] == "deploy.prototxt" and meta["fcnkit.tile"] == "64,64"
    assert json.loads(meta["fcnkit.output_kinds"]) == {"score": "scores"}


def test_softmax_keeps_the_channel_axis(tmp_path):
    """A 4-D Softmax (FCN 'prob') must normalise along C only: axis 1 in the file."""
    proto = tmp_path / "soft.prototxt"
    proto.write_text("""name: "soft"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 6 dim: 5 } } }
layer { name: "score" type: "Convolution" bottom: "data" top: "score"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "prob" type: "Softmax" bottom: "score" top: "prob" }
""")
    result = export_model(proto, tmp_path / "soft.onnx")
    node = next(n for n in onnx.load(str(tmp_path / "soft.onnx")).graph.node if n.op_type == "Softmax")
    assert onnx.helper.get_attribute_value(node.attribute[0]) == 1
    assert result.relative <= FP32_TOLERANCE
    probs = _ort(tmp_path / "soft.onnx", {"data": rand((2, 3, 6, 5))})["prob"]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)


def test_ceil_mode_pooling_with_clip_rule_is_exact(tmp_path):
    """Caffe's CEIL rounding and its clip rule (pad > 0), MAX and AVE, on an 11 x 9 input.
    MAX k3 s2 p1: H ceil(10/2)+1 = 6, W ceil(8/2)+1 = 5 (no clip). AVE k2 s2 p1:
    H ceil(11/2)+1 = 7, clipped to 6 because (7-1)*2 >= 11+1; W ceil(9/2)+1 = 6, clipped to 5."""
    proto = tmp_path / "pool.prototxt"
    proto.write_text("""name: "pool"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 11 dim: 9 } } }
layer { name: "maxp" type: "Pooling" bottom: "data" top: "maxp" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "avep" type: "Pooling" bottom: "data" top: "avep" pooling_param { pool: AVE kernel_h: 2 kernel_w: 2 stride: 2 pad: 1 } }
""")
    result = export_model(proto, tmp_path / "pool.onnx")
    assert result.outputs == {"maxp": ["batch", 2, 6, 5], "avep": ["batch", 2, 6, 5]}
    assert result.ok and result.max_abs <= 1e-6
    # Caffe's AVE divisor near the border: window clipped to [-p, i + p)
    x = rand((1, 2, 11, 9), seed=3)
    got = _ort(tmp_path / "pool.onnx", {"data": x})["avep"]
    # last window: rows 9-10, cols 7-8, divisor 2*2
    np.testing.assert_allclose(got[:, :, 5, 4], x[:, :, 9:11, 7:9].sum(axis=(2, 3)) / 4.0, rtol=1e-5)
    # first window: starts in the padding, which counts in Caffe's divisor (2*2)
    np.testing.assert_allclose(got[:, :, 0, 0], x[:, :, 0, 0] / 4.0, rtol=1e-5)


def test_metadata_and_names_of_a_prototxt_export(real_export):
    src, result, path = real_export("cifar10_quick")
    info = inspect_onnx(path)
    from fcnkit import __version__

    assert info.metadata["fcnkit.version"] == __version__
    assert info.metadata["fcnkit.source"] == "cifar10_quick.prototxt"
    assert info.meta_json("fcnkit.bands") == ["band1", "band2", "band3"]
    assert info.meta_json("fcnkit.bands_named") is False
    assert info.metadata["fcnkit.tile"] == "32,32"
    assert info.meta_json("fcnkit.classes") == []
    assert info.meta_json("fcnkit.output_kinds") == {"prob": "probabilities"}
    assert info.softmax_outputs == {"prob"}
    assert [i[0] for i in info.inputs] == ["data"] and [o[0] for o in info.outputs] == ["prob"]
    assert "opset 18, fp32" in result.summary() and "relative" in result.summary()


# ------------------------------------------------------------------------------------------
# Acceptance 2: opsets
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("opset", [17, 18, 20])
def test_requested_opset_is_the_files_opset(tmp_path, opset):
    src = load_real("cifar10_quick")
    path = tmp_path / f"c{opset}.onnx"
    result = export_onnx(src, path, opset=opset)
    assert result.opset == opset
    assert _opset(onnx.load(str(path))) == opset
    assert result.relative <= FP32_TOLERANCE


@pytest.mark.parametrize("opset,match", [(13, "exporter produced opset 18"), (12, "opset >= 13"),
                                          (99, "newer than the installed onnx")])
def test_an_opset_the_exporter_cannot_honour_is_an_error(tmp_path, opset, match):
    src = load_real("cifar10_quick")
    path = tmp_path / "c.onnx"
    with pytest.raises(ExportError, match=match):
        export_onnx(src, path, opset=opset)
    assert not path.exists()


# ------------------------------------------------------------------------------------------
# Acceptance 3: fp16
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["fcn_alexnet_digits", "resnet50_stem"])
def test_fp16_export_runs_in_onnxruntime_within_tolerance(real_export, key):
    src, r32, p32 = real_export(key)
    _, r16, p16 = real_export(key, dtype="fp16")
    m16 = onnx.load(str(p16))
    assert m16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert r16.dtype == "fp16" and r16.ok and r16.relative <= FP16_TOLERANCE
    x = rand((2,) + tuple(src.compiled.input_shapes["data"][1:]), seed=11)
    out32 = _ort(p32, {"data": x})
    out16 = _ort(p16, {"data": x.astype(np.float16)})
    for name, v in out32.items():
        assert out16[name].dtype == np.float16
        assert _rel(out16[name].astype(np.float32), v) <= FP16_TOLERANCE
    if key == "fcn_alexnet_digits":
        assert r16.node_types.get("LRN") == 2


# ------------------------------------------------------------------------------------------
# Dynamic axes
# ------------------------------------------------------------------------------------------

def test_dynamic_hw_where_the_net_allows_it(tmp_path):
    src = load_real("fsrcnn")
    path = tmp_path / "fsrcnn.onnx"
    result = export_onnx(src, path, dynamic_hw=True)
    assert result.dynamic_hw and not result.notes
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
    # the export checked a second size; check a third here: 13x9 -> 37x25 (3 * in - 2)
    from fcnkit.deploy.model import reshape

    x = rand((2, 1, 13, 9), seed=5)
    got = _ort(path, {"data": x})["deconv"]
    ref = reshape(src.compiled, {"data": (2, 1, 13, 9)}).module(torch.from_numpy(x))["deconv"].detach().numpy()
    assert got.shape == (2, 1, 37, 25)
    assert _rel(got, ref) <= FP32_TOLERANCE
    assert len(result.parity) == 2 and result.parity[1].size == (39, 39)


def test_dynamic_hw_refused_with_reasons_for_ceil_pooling_and_crop(real_export):
    src, _, _ = real_export("voc_fcn8s")
    reasons = dynamic_hw_blockers(src.compiled)
    assert any("Pooling layer 'pool1'" in r and "CEIL" in r for r in reasons)
    assert any("Crop layer 'score'" in r for r in reasons)


def test_dynamic_hw_falls_back_to_static_with_a_note(tmp_path):
    src = load_real("cifar10_quick")
    result = export_onnx(src, tmp_path / "c.onnx", dynamic_hw=True)
    assert not result.dynamic_hw
    assert result.inputs == {"data": ["batch", 3, 32, 32]}
    note = " ".join(result.notes)
    assert "H and W stay static at 32x32" in note
    assert "Pooling layer 'pool1'" in note and "InnerProduct layer 'ip1'" in note


def test_fixed_batch(tmp_path):
    src = load_real("lenet")
    result = export_onnx(src, tmp_path / "l.onnx", batch=3)
    assert result.inputs == {"data": [3, 1, 28, 28]} and not result.dynamic_batch
    assert result.parity[0].shape == (3, 10)


# ------------------------------------------------------------------------------------------
# Failures: clear errors, no file left behind
# ------------------------------------------------------------------------------------------

def test_failed_parity_writes_no_file_and_keeps_an_old_one(tmp_path):
    src = load_real("fsrcnn")
    path = tmp_path / "f.onnx"
    path.write_bytes(b"old")
    with pytest.raises(ExportError, match="parity check failed.*no file was written"):
        export_onnx(src, path, tolerance=1e-12)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.onnx"]  # no temporary left


def test_non_finite_reference_is_an_error(tmp_path):
    proto = tmp_path / "nan.prototxt"
    proto.write_text("""name: "nan"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }
layer { name: "log" type: "Log" bottom: "data" top: "log" }
""")
    with pytest.raises(ExportError, match="non-finite values"):
        export_model(proto, tmp_path / "nan.onnx")
    assert not (tmp_path / "nan.onnx").exists()
    assert export_model(proto, tmp_path / "nan.onnx", check=False).notes  # --no-check exports


def test_train_phase_is_refused(tmp_path):
    from fcnkit.compile import compile_net
    from fcnkit.graph import NetState, load_net

    net = load_net(BY_KEY["lenet"].path, NetState.make("TRAIN"))
    with pytest.raises(ExportError, match="TRAIN mode"):
        export_onnx(compile_net(net), tmp_path / "x.onnx")


@pytest.mark.parametrize("kw,match", [(dict(dtype="int8"), "--dtype"), (dict(batch=0), "--batch"),
                                      (dict(tile="a,b"), "--tile"), (dict(tolerance=0.0), "tolerance")])
def test_bad_options(tmp_path, kw, match):
    with pytest.raises(InputError, match=match):
        export_onnx(load_real("conv"), tmp_path / "x.onnx", **kw)


def test_export_from_a_compiled_directory(tmp_path):
    from fcnkit.compile import save_compiled

    src = load_real("lenet")
    save_compiled(src.compiled, tmp_path / "lenet_dir")
    result = export_model(tmp_path / "lenet_dir", tmp_path / "l.onnx")
    assert result.ok and result.metadata["fcnkit.source"] == "mnist_deploy.prototxt"
    x = {"data": rand((2, 1, 28, 28))}
    np.testing.assert_allclose(_ort(tmp_path / "l.onnx", x)["loss"], _torch(src, x)["loss"], atol=1e-6)
    with pytest.raises(InputError, match="--weights applies to a prototxt only"):
        export_model(tmp_path / "lenet_dir", tmp_path / "m.onnx", weights=BY_KEY["lenet"].weights_path)
