"""``--dynamic-hw`` (issue 13, item 8): Caffe's ceil-and-clip pooling and Crop exported
with sizes computed from the input's shape; MTCNN's P-Net (meant for an image pyramid)
exports dynamically and matches fcnkit's torch compile at odd sizes in ONNX Runtime;
pooling with padding matches a NumPy transcription of Caffe's pooling_layer.cpp at sizes
where the clip rule fires; a request that cannot be honoured is exit 2 naming the layer.

The real MTCNN weights (det1.caffemodel) and an oracle output are not in ../shared/data:
the P-Net fixture (tests/deploy/data/mtcnn_det1.prototxt) gets seeded random weights and
the reference is fcnkit's torch compile at each static size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fcnkit.cli.main import main
from fcnkit.compile.verify import relative_error
from fcnkit.deploy.model import load_model, reshape
from fcnkit.deploy.onnx import export_onnx
from tests.conftest import DATA
from tests.deploy.test_deploy_node_names import check_node_names

HERE = Path(__file__).parent / "data"
FLT_MAX = float(np.finfo(np.float32).max)


def _ort(path, feeds):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def _seeded(src, seed=0):
    """He-normal weights, PReLU slopes in [0.1, 0.4): an input-dependent net."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in src.compiled.module.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / p[0].numel()) ** 0.5)
            elif name.startswith("PReLU"):
                p.copy_(0.1 + 0.3 * torch.rand(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return src


@pytest.fixture(scope="module")
def pnet(tmp_path_factory):
    src = _seeded(load_model(HERE / "mtcnn_det1.prototxt"))
    path = tmp_path_factory.mktemp("pnet") / "det1.onnx"
    return src, export_onnx(src, path, dynamic_hw=True), path


def test_pnet_exports_with_dynamic_h_and_w(pnet):
    src, result, path = pnet
    assert result.dynamic_hw and result.ok and result.meaningful, result.lines()
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]
    # the library's own parity run: the declared 12x12 and 32 pixels more
    assert [r.size for r in result.parity] == [(12, 12), (12, 12), (44, 44), (44, 44)]


def _pnet_hw(h: int) -> int:
    """P-Net's output size from Caffe's formulas: conv 3 (-2), pool k2 s2 CEIL, conv 3, conv 3."""
    h = h - 2
    h = -(-(h - 2) // 2) + 1
    return h - 4


@pytest.mark.parametrize("hw", [(37, 53), (12, 12), (13, 15), (24, 19)])
def test_pnet_matches_the_torch_compile_at_odd_sizes(pnet, hw):
    src, _, path = pnet
    x = np.random.default_rng(hw[0] * 100 + hw[1]).standard_normal((2, 3, *hw)).astype(np.float32)
    got = _ort(path, {"data": x})
    with torch.no_grad():
        ref = reshape(src.compiled, {"data": x.shape}).module(torch.from_numpy(x))
    for name in ("conv4-2", "prob1"):
        want = ref[name].numpy()
        assert got[name].shape == (2, want.shape[1], _pnet_hw(hw[0]), _pnet_hw(hw[1]))
        assert relative_error(got[name], want)[1] <= 1e-5, name
    assert float(np.std(got["prob1"][:, 1])) > 1e-3  # the probabilities vary with the input


def test_pnet_nodes_are_its_layer_names(pnet):
    src, _, path = pnet
    by_layer = check_node_names(src, path)
    assert set(by_layer) == {"conv1", "PReLU1", "pool1", "conv2", "PReLU2", "conv3", "PReLU3",
                             "conv4-1", "conv4-2", "prob1"}
    model = onnx.load(str(path))
    op_of = {n.name: n for n in model.graph.node}
    assert op_of["conv4-2"].op_type == "Conv" and op_of["pool1"].op_type == "MaxPool"
    assert op_of["PReLU1"].input[1] == "PReLU1/slope"
    # MAX 2x2 s2 CEIL, pad 0: ONNX's ceil_mode gives Caffe's size; one node
    assert by_layer["pool1"] == ["pool1"]
    ceil = {a.name: a.i for a in op_of["pool1"].attribute}["ceil_mode"]
    assert ceil == 1


# ------------------------------------------------------------------------------------------
# Pooling with padding: Caffe's clip rule at sizes where it fires
# ------------------------------------------------------------------------------------------

POOLS = {  # top: (pool, kernel, stride, pad, ceil)
    "max_k3s2p1": ("MAX", 3, 2, 1, True),
    "ave_k3s2p1": ("AVE", 3, 2, 1, True),
    "ave_k2s2p1": ("AVE", 2, 2, 1, True),   # 11 pixels: Caffe 6, ONNX ceil_mode 7
    "max_k3s2p2": ("MAX", 3, 2, 2, True),   # 2p > k: not a torch pooling
    "max_k2s3": ("MAX", 2, 3, 0, True),     # stride > kernel: a window can miss the input
    "ave_k3s2p1_floor": ("AVE", 3, 2, 1, False),
}


def _pool_net() -> str:
    text = 'name: "pools"\nlayer { name: "data" type: "Input" top: "data" ' \
           'input_param { shape { dim: 1 dim: 2 dim: 11 dim: 11 } } }\n'
    for top, (pool, k, s, p, ceil) in POOLS.items():
        rounding = "" if ceil else " round_mode: FLOOR"
        text += (f'layer {{ name: "{top}" type: "Pooling" bottom: "data" top: "{top}" pooling_param '
                 f'{{ pool: {pool} kernel_size: {k} stride: {s} pad: {p}{rounding} }} }}\n')
    return text


def caffe_pool(x, pool, k, s, p, ceil):
    """NumPy transcription of Caffe's PoolingLayer::Forward_cpu (MAX, AVE) and Reshape
    (pooled size with the clip rule), src/caffe/layers/pooling_layer.cpp."""
    n, c, h, w = x.shape

    def pooled(i):
        o = (-(-(i + 2 * p - k) // s) if ceil else (i + 2 * p - k) // s) + 1
        if p and (o - 1) * s >= i + p:
            o -= 1
        return o

    oh, ow = pooled(h), pooled(w)
    out = np.empty((n, c, oh, ow), np.float32)
    for ph in range(oh):
        for pw in range(ow):
            hs, ws = ph * s - p, pw * s - p
            he, we = min(hs + k, h + p), min(ws + k, w + p)
            size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            win = x[:, :, hs:he, ws:we]
            if pool == "MAX":
                out[:, :, ph, pw] = win.max(axis=(2, 3)) if win.size else -FLT_MAX
            else:
                out[:, :, ph, pw] = win.sum(axis=(2, 3)) / size
    return out


@pytest.fixture(scope="module")
def pools(tmp_path_factory):
    d = tmp_path_factory.mktemp("pools")
    (d / "pools.prototxt").write_text(_pool_net())
    src = load_model(d / "pools.prototxt")
    return src, export_onnx(src, d / "pools.onnx", dynamic_hw=True), d / "pools.onnx"


@pytest.mark.parametrize("hw", [(11, 11), (12, 7), (6, 9), (10, 13)])
def test_padded_pooling_follows_caffes_clip_rule_at_any_size(pools, hw):
    _, result, path = pools
    assert result.dynamic_hw
    x = np.random.default_rng(sum(hw)).standard_normal((1, 2, *hw)).astype(np.float32)
    got = _ort(path, {"data": x})
    for top, spec in POOLS.items():
        want = caffe_pool(x, *spec)
        assert got[top].shape == want.shape, top
        np.testing.assert_allclose(got[top], want, rtol=1e-5, atol=1e-6, err_msg=top)
    if hw == (11, 11):  # the case where ONNX's own ceil_mode gives 7
        assert got["ave_k2s2p1"].shape[2:] == (6, 6)
    if hw == (12, 7):  # a window past the input: Caffe's initial -FLT_MAX
        assert (got["max_k2s3"][:, :, -1] == -FLT_MAX).all()


# ------------------------------------------------------------------------------------------
# Crop with dynamic sizes; requests that cannot be honoured
# ------------------------------------------------------------------------------------------

CROP_NET = """name: "crop"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 9 dim: 9 } } }
layer { name: "wide" type: "Convolution" bottom: "data" top: "wide"
  convolution_param { num_output: 2 kernel_size: 3 pad: 4 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "cut" type: "Crop" bottom: "wide" bottom: "data" top: "cut" crop_param { axis: 2 offset: 3 } }
"""


def test_crop_takes_its_size_from_the_reference_bottom(tmp_path):
    (tmp_path / "crop.prototxt").write_text(CROP_NET)
    src = _seeded(load_model(tmp_path / "crop.prototxt"))
    result = export_onnx(src, tmp_path / "crop.onnx", dynamic_hw=True)
    assert result.dynamic_hw and result.ok
    x = np.random.default_rng(3).standard_normal((1, 1, 14, 5)).astype(np.float32)
    got = _ort(tmp_path / "crop.onnx", {"data": x})["cut"]
    with torch.no_grad():
        wide = reshape(src.compiled, {"data": x.shape}).module.wide(torch.from_numpy(x)).numpy()
    assert got.shape == (1, 2, 14, 5)
    np.testing.assert_allclose(got, wide[:, :, 3:17, 3:8], rtol=1e-5, atol=1e-6)


def test_cli_refuses_dynamic_hw_for_a_net_with_inner_product(tmp_path, capsys):
    out = tmp_path / "lenet.onnx"
    if not DATA.is_dir():
        pytest.skip(f"shared Caffe data folder {DATA} missing")
    code = main(["export", str(DATA / "lenet_ahmdtaha/mnist_deploy.prototxt"), "-o", str(out), "--dynamic-hw"])
    cap = capsys.readouterr()
    text = " ".join((cap.out + " " + cap.err).split())
    assert code == 2 and not out.exists()
    assert "--dynamic-hw cannot be honoured" in text and "InnerProduct layer 'ip1'" in text
