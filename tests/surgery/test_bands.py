"""Acceptance 6: a 3-band first convolution adapted to 8 WorldView-3 bands.

WorldView-3 band order (1-based): 1 coastal, 2 blue, 3 green, 4 yellow, 5 red, 6 red edge,
7 NIR1, 8 NIR2. Caffe classifiers take BGR input (channel 0 = blue)."""

from __future__ import annotations

import numpy as np
import pytest

from fcnkit.errors import SurgeryError
from fcnkit.surgery import adapt_input_bands, parse_band_map
from fcnkit.surgery._net import build
from tests.surgery._nets import alexnet_shaped, forward, random_blobs, rel_err

B, G, R = 0, 1, 2  # channel indices of a BGR (Caffe) classifier


@pytest.fixture(scope="module")
def net():
    param = alexnet_shaped()
    blobs = random_blobs(param, seed=21, bias_scale=0.5)
    return param, blobs


def _conv1(param, blobs, x):
    return forward(param, blobs, x)["conv1"]  # conv1 before the in-place ReLU


def test_default_mapping_scale_and_rgb_embedding(net):
    param, blobs = net
    r = adapt_input_bands(param, blobs, 8)
    s = r.report.bands["scale"]
    assert s == pytest.approx(3 / 8) and r.report.bands["exact"]
    assert build(r.param).shape_of("data")[1] == 8
    w, w8 = blobs["conv1"][0], r.blobs["conv1"][0]
    assert w8.shape == (8, 8, 11, 11)
    np.testing.assert_allclose(w8[:, 4], s * w[:, R], rtol=1e-6)   # band 5 red
    np.testing.assert_allclose(w8[:, 2], s * w[:, G], rtol=1e-6)   # band 3 green
    np.testing.assert_allclose(w8[:, 1], s * w[:, B], rtol=1e-6)   # band 2 blue
    for band in (1, 4, 6, 7, 8):                                    # the others: the mean
        np.testing.assert_allclose(w8[:, band - 1], s * w.mean(axis=1), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(r.blobs["conv1"][1], blobs["conv1"][1])  # bias kept
    assert r.report.layers["conv1"].status == "adapted"

    rng = np.random.default_rng(0)
    x3 = rng.uniform(-1, 1, (1, 3, 227, 227)).astype(np.float32)
    x8 = np.zeros((1, 8, 227, 227), np.float32)
    x8[:, 5 - 1], x8[:, 3 - 1], x8[:, 2 - 1] = x3[:, R], x3[:, G], x3[:, B]
    bias = blobs["conv1"][1].reshape(1, -1, 1, 1)
    orig = _conv1(param, blobs, x3) - bias
    new = _conv1(r.param, r.blobs, x8) - bias
    err = rel_err(new, s * orig)
    print(f"RGB in bands 5,3,2: conv1 (before bias) = {s} x original, rel. error {err:.2e}")
    assert err <= 1e-5


@pytest.mark.parametrize("c", [0.5, -2.0, 7.0])
def test_constant_input_keeps_the_response(net, c):
    param, blobs = net
    r = adapt_input_bands(param, blobs, 8)
    orig = _conv1(param, blobs, np.full((1, 3, 227, 227), c, np.float32))
    new = _conv1(r.param, r.blobs, np.full((1, 8, 227, 227), c, np.float32))
    err = rel_err(new, orig)
    print(f"constant {c}: adapted conv1 vs original, rel. error {err:.2e}")
    assert err <= 1e-5
    # Without the scaling rule the constant response would change (8/3 of the original).
    un = adapt_input_bands(param, blobs, 8, scale="none")
    assert rel_err(_conv1(un.param, un.blobs, np.full((1, 8, 227, 227), c, np.float32)), orig) > 0.1


def test_rnir_preset_on_three_band_subset(net):
    """'wv3-rnir' on a 3-band input holding red edge, NIR1, NIR2 (in band order): they stand
    for R, G, B; no extra bands, so the scale is 1 and the net sees a false-colour image."""
    param, blobs = net
    r = adapt_input_bands(param, blobs, 3, "wv3-rnir")
    assert r.report.bands["scale"] == 1.0
    x = np.random.default_rng(1).uniform(0, 1, (1, 3, 227, 227)).astype(np.float32)
    rededge, nir1, nir2 = x[:, 0], x[:, 1], x[:, 2]
    bgr = np.stack([nir2, nir1, rededge], axis=1)
    assert rel_err(_conv1(r.param, r.blobs, x), _conv1(param, blobs, bgr)) <= 1e-5
    m8, _ = parse_band_map("wv3-rnir", 8)
    assert m8 == {6: "R", 7: "G", 8: "B"}


def test_zero_fill_and_rgb_source_order(net):
    param, blobs = net
    r = adapt_input_bands(param, blobs, 8, "5=R,3=G,2=B", fill="zero", source_order="RGB")
    assert r.report.bands["scale"] == 1.0
    w, w8 = blobs["conv1"][0], r.blobs["conv1"][0]
    np.testing.assert_array_equal(w8[:, 4], w[:, 0])  # RGB order: red is channel 0
    np.testing.assert_array_equal(w8[:, 0], 0)
    c = np.full((1, 3, 227, 227), 1.5, np.float32)
    assert rel_err(_conv1(r.param, r.blobs, np.full((1, 8, 227, 227), 1.5, np.float32)),
                   _conv1(param, blobs, c)) <= 1e-5


def test_uneven_mapping_is_reported_not_exact(net):
    param, blobs = net
    r = adapt_input_bands(param, blobs, 8, "5=R,6=R,3=G,2=B")
    assert not r.report.bands["exact"]
    assert "uneven" in r.report.bands["rule"]


def test_structure_only_and_errors(net):
    param, _ = net
    r = adapt_input_bands(param, None, 8)
    assert r.blobs is None and build(r.param).shape_of("data") == (10, 8, 227, 227)
    with pytest.raises(SurgeryError, match=r"outside 1..8"):
        adapt_input_bands(param, None, 8, "9=R")
    with pytest.raises(SurgeryError, match="bad band map entry"):
        adapt_input_bands(param, None, 8, "red")
    with pytest.raises(SurgeryError, match="not a channel of the source order"):
        adapt_input_bands(param, None, 8, "5=N")
    with pytest.raises(SurgeryError, match="no default band mapping for 5 bands"):
        adapt_input_bands(param, None, 5)


@pytest.mark.parametrize("how", ["no weights", "reinit"])
def test_first_conv_without_pretrained_weights_is_filled_for_the_new_bands(how):
    """No pretrained conv1 (no caffemodel, or --reinit conv1): nothing to adapt, so conv1 is
    drawn from its filler with 8 input bands, every band alike. (An adapted bank of filler
    values would have std 3/8 * 0.01 in the mapped bands and less in the mean bands.)"""
    from fcnkit.surgery import fcn_surgery

    param = alexnet_shaped()
    conv1 = [lp for lp in param.layer if lp.name == "conv1"][0]
    conv1.convolution_param.weight_filler.type = "gaussian"  # BVLC AlexNet train_val's filler
    conv1.convolution_param.weight_filler.std = 0.01
    blobs = random_blobs(param, seed=5) if how == "reinit" else None
    r = fcn_surgery(param, blobs, bands=8, reinit=["conv1"] if blobs else ())
    w = r.blobs["conv1"][0]
    assert w.shape == (8, 8, 11, 11)
    for band in range(8):
        assert float(w[:, band].std()) == pytest.approx(0.01, rel=0.15), band
    e = r.report.layers["conv1"]
    assert e.status == "initialised" and e.fillers[0] == "gaussian(mean=0, std=0.01)"
    assert sum(n.startswith("initialised by") for n in e.notes) == 1
    assert r.report.bands["adapted"] is False
    md = r.report.to_markdown()
    assert "`conv1` is initialised by its filler for 8 bands" in md and "- scale:" not in md
    if blobs is not None:
        np.testing.assert_array_equal(r.blobs["conv2"][0], blobs["conv2"][0])
