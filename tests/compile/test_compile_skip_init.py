"""Loads that skip what they overwrite (issue 16, item 3): with stored weights no filler
runs and torch's default initialisation never runs; the result is the same net."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fcnkit
from fcnkit import caffe, fillers
from fcnkit.compile import compile_net, export_blobs, save_compiled
from fcnkit.graph import load_net
from tests.conftest import DATA

STEM = DATA / "resnet50_stem_htshinichi"


@pytest.fixture
def count_fills(monkeypatch):
    """Count calls of fcnkit.fillers.fill and of torch's kaiming_uniform_ (Conv2d's
    default initialisation)."""
    calls = {"fill": 0, "kaiming": 0}
    real_fill, real_kaiming = fillers.fill, torch.nn.init.kaiming_uniform_

    def fill(*a, **k):
        calls["fill"] += 1
        return real_fill(*a, **k)

    def kaiming(tensor, *a, **k):
        if not tensor.is_meta:
            calls["kaiming"] += 1
        return real_kaiming(tensor, *a, **k)

    monkeypatch.setattr("fcnkit.compile.weights.fill", fill)
    monkeypatch.setattr(torch.nn.init, "kaiming_uniform_", kaiming)
    return calls


def test_fully_weighted_compile_and_load_draw_nothing(count_fills, tmp_path):
    net = load_net(STEM / "test.prototxt")
    model = caffe.read_caffemodel(STEM / "test.caffemodel")
    x = torch.from_numpy(np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32))
    compiled = compile_net(net, STEM / "test.caffemodel", {None: x.shape})
    assert count_fills == {"fill": 0, "kaiming": 0}
    assert not compiled.weights.initialised
    # the stored blobs, unchanged (BatchNorm's are normalised by its scale factor)
    blobs = export_blobs(compiled)
    for layer, arrays in model.blobs.items():
        for got, want in zip(blobs[layer], arrays):
            np.testing.assert_array_equal(got.reshape(-1), want.reshape(-1))
    assert not any(t.is_meta for t in compiled.module.state_dict().values())
    save_compiled(compiled, tmp_path / "m")
    loaded = fcnkit.load(tmp_path / "m")
    assert count_fills == {"fill": 0, "kaiming": 0}
    assert not any(t.is_meta for t in list(loaded.module.parameters()) + list(loaded.module.buffers()))
    with torch.no_grad():
        want = compiled.module.eval()(x)["pool1"]
        assert torch.equal(loaded.module.eval()(x)["pool1"], want)
        assert (loaded(x)["pool1"] - want).abs().max() <= 1e-5 * want.abs().max()
    # the loaded parameters are trainable as before
    assert all(p.requires_grad for p in loaded.module.parameters())


def test_fillers_run_only_for_layers_without_weights(count_fills):
    net = load_net(STEM / "test.prototxt")
    model = caffe.read_caffemodel(STEM / "test.caffemodel")
    partial = {k: v for k, v in model.blobs.items() if k != "scale_conv1"}
    compiled = compile_net(net, partial, {None: (1, 3, 32, 32)})
    assert count_fills["fill"] == 2 and count_fills["kaiming"] == 0  # Scale gamma and beta
    assert list(compiled.weights.initialised) == ["scale_conv1"]
    scale = compiled.module.scale_conv1
    assert torch.equal(scale.weight, torch.ones(64)) and torch.equal(scale.bias, torch.zeros(64))
    # arrays passed in by the caller are copied, never shared
    conv = compiled.module.conv1.weight
    with torch.no_grad():
        conv.add_(1)
    assert not np.shares_memory(conv.detach().numpy(), partial["conv1"][0])
    assert float(np.abs(partial["conv1"][0]).max()) < float(conv.detach().abs().max())
