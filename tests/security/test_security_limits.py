"""Issue 15: sizes read from a file are checked before anything is allocated."""

from __future__ import annotations

import numpy as np
import pytest

from tests.layers import caffe_reference as ref
from tests.security._cli import run_cli


def _net(tmp_path, body, shape=(1, 3, 8, 8)):
    dims = " ".join(f"dim: {d}" for d in shape)
    p = tmp_path / "net.prototxt"
    p.write_text(f'name: "n"\nlayer {{ name: "data" type: "Input" top: "data" '
                 f'input_param {{ shape {{ {dims} }} }} }}\n{body}\n')
    return p


def test_huge_inner_product_is_refused_before_allocating(tmp_path, capsys):
    net = _net(tmp_path, 'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" '
                         'inner_product_param { num_output: 2147483647 } }')
    code, out = run_cli(capsys, ["--memory-limit", "8G", "compile", str(net)])
    assert code == 2
    # 2147483647 x (3*8*8) weights + 2147483647 biases, 4 bytes each
    need = (2147483647 * 192 + 2147483647) * 4
    assert f"{net}: layer 'fc' (InnerProduct, line 3): its parameters would need" in out
    assert f"({need:,} bytes), more than the memory limit of 8.0 GiB" in out


def test_huge_deconvolution_top_is_refused(tmp_path, capsys):
    net = _net(tmp_path, 'layer { name: "up" type: "Deconvolution" bottom: "data" top: "up" '
                         'convolution_param { num_output: 1 kernel_size: 1000 stride: 1000 } }',
               shape=(1, 1, 1000, 1000))
    code, out = run_cli(capsys, ["compile", str(net)])  # default limit: half the machine
    assert code == 2
    top = 1000 * 1000 * 1000 * 1000  # 10^12 elements: it passed the 2^40 element check
    params = (1000 * 1000 + 1) * 4
    assert "layer 'up' (Deconvolution, line 3): its bottoms and tops" in out
    assert f"({params + (top + 10**6) * 4:,} bytes)" in out


def test_limit_from_environment_and_option(tmp_path, capsys, monkeypatch):
    net = _net(tmp_path, 'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
                         'convolution_param { num_output: 16 kernel_size: 3 } }')
    # conv: 16*3*3*3 + 16 = 448 parameters = 1792 bytes
    monkeypatch.setenv("FCNKIT_MEMORY_LIMIT", "1K")
    code, out = run_cli(capsys, ["compile", str(net)])
    assert code == 2 and "its parameters would need 1.8 KiB (1,792 bytes), more than the memory limit of 1.0 KiB" in out
    assert run_cli(capsys, ["--memory-limit", "0", "compile", str(net)])[0] == 0
    monkeypatch.setenv("FCNKIT_MEMORY_LIMIT", "lots")
    code, out = run_cli(capsys, ["compile", str(net)])
    assert code == 2 and "bad memory size 'lots'" in out


def test_parse_bytes():
    from fcnkit.errors import InputError
    from fcnkit.limits import parse_bytes

    assert parse_bytes("8G") == 8 * 1024**3
    assert parse_bytes("1.5k") == 1536
    assert parse_bytes("512MiB") == 512 * 1024**2
    assert parse_bytes("100") == 100 and parse_bytes("none") == 0
    for bad in ("-1G", "nan", "G8", "1e400"):
        with pytest.raises(InputError):
            parse_bytes(bad)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("pad", [0, 1])
def test_pooling_with_huge_stride_matches_caffe_without_padding_everything(method, pad):
    """stride 2e9: Caffe's ceil rounding gives 2 windows per axis, the second one empty
    (without pad) — the padded path used to pad the input to 2e9 x 2e9 (55 TB)."""
    import torch

    from fcnkit import caffe
    from fcnkit.compile import compile_net
    from fcnkit.graph import load_net

    stride = 2_000_000_000
    text = f"""name: "p"
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 2 dim: 3 dim: 8 dim: 9 }} }} }}
layer {{ name: "p" type: "Pooling" bottom: "data" top: "p"
        pooling_param {{ pool: {method} kernel_size: 3 stride: {stride} pad: {pad} }} }}
"""
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 9)).astype(np.float32)
    expected = ref.pool(x.astype(np.float64), (3, 3), (stride, stride), (pad, pad), method)
    c = compile_net(load_net(caffe.parse_prototxt(text)))
    got = c.module(torch.from_numpy(x))["p"].numpy()
    assert got.shape == expected.shape == ((2, 3, 2, 2) if pad == 0 else (2, 3, 1, 1))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_all_blobs_counts_every_blob_at_once(tmp_path, capsys):
    relus = "\n".join(f'layer {{ name: "r{i}" type: "ReLU" bottom: "{"data" if i == 0 else f"r{i - 1}"}" '
                      f'top: "r{i}" }}' for i in range(3))
    net = _net(tmp_path, relus, shape=(1, 1, 2, 2))
    np.save(tmp_path / "x.npy", np.ones((1, 1, 2, 2), np.float32))
    args = ["--memory-limit", "40", "run", str(net), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "o.npz")]
    # each layer needs 16 B in + 16 B out = 32 B <= 40: a plain run fits
    assert run_cli(capsys, args)[0] == 0
    code, out = run_cli(capsys, args + ["--all-blobs"])  # 4 blobs x 16 B = 64 B at once
    assert code == 2 and f"{net}: keeping every blob of the net at once would need 64 B" in out
