"""Building blocks: shapes, parameter counts against closed forms, bilinear upsampling
against exact interpolation, phase-dependent layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcnkit.analysis import analyse
from fcnkit.compile import compile_net
from fcnkit.graph import load_net
from fcnkit.netspec import L, NetSpec
from fcnkit.netspec import blocks


def _net(c=5, h=12, w=10):
    n = NetSpec("b")
    n.data = L.Input(shape=dict(dim=[1, c, h, w]))
    return n


@pytest.mark.parametrize("new_only", [False, True])
def test_dense_block_channels_and_params(new_only):
    c, layers, k = 5, 3, 4
    n = _net(c)
    blocks.dense_block(n, n.data, "db", layers, k, new_only=new_only, dropout_ratio=0.2, train=True)
    a = analyse(load_net(n.to_proto()))
    out = a.net.blob("db")
    assert a.shapes[out] == (1, (0 if new_only else c) + layers * k, 12, 10)
    # layer j sees C + j k maps: Scale gamma+beta 2 (C + jk), 3x3 conv k (9 (C + jk) + 1)
    expected = sum(2 * (c + j * k) + k * (9 * (c + j * k) + 1) for j in range(layers))
    assert a.total_params == expected
    types = [lp.type for lp in n.to_proto().layer if lp.name.startswith("db_l0")]
    assert types == ["BatchNorm", "Scale", "ReLU", "Convolution", "Dropout"]


def test_dense_layer_phases():
    n = _net()
    blocks.bn_relu_conv(n, n.data, "x", 4, 3, dropout_ratio=0.2, train=False)
    deploy = {lp.name: lp for lp in n.to_proto().layer}
    assert deploy["x_bn"].batch_norm_param.use_global_stats is True
    assert "x_drop" not in deploy
    n = _net()
    blocks.bn_relu_conv(n, n.data, "x", 4, 3, dropout_ratio=0.2, train=True)
    train = {lp.name: lp for lp in n.to_proto().layer}
    assert not train["x_bn"].batch_norm_param.HasField("use_global_stats")  # by phase
    assert train["x_drop"].dropout_param.dropout_ratio == pytest.approx(0.2)
    assert list(train["x_bn"].top) == ["x_bn"]            # not in place on its input
    assert list(train["x_scale"].top) == ["x_bn"] and list(train["x_drop"].top) == ["x_conv"]


@pytest.mark.parametrize("h, w", [(16, 16), (15, 13)])
def test_transition_down_then_up_restores_the_skip_size(h, w):
    n = _net(6, h, w)
    n.skip = L.ReLU(n.data)
    down = blocks.transition_down(n, n.skip, "td", 6, dropout_ratio=0.2, train=False)
    blocks.transition_up(n, down, n.skip, "tu", 3)
    net = n.to_proto()
    a = analyse(load_net(net))
    ph, pw = -(-h // 2), -(-w // 2)                       # Caffe ceil pooling
    assert a.shapes[a.net.blob("td_pool")] == (1, 6, ph, pw)
    assert a.shapes[a.net.blob("tu_deconv")] == (1, 3, 2 * ph + 1, 2 * pw + 1)
    assert a.shapes[a.net.blob("tu")] == (1, 3 + 6, h, w)
    crop = next(lp for lp in net.layer if lp.name == "tu_crop")
    expect = [(2 * ph + 1 - h) // 2, (2 * pw + 1 - w) // 2]
    assert list(crop.crop_param.offset) == (expect[:1] if expect[0] == expect[1] else expect)


def test_vgg_block_and_fcn_head_shapes():
    n = _net(8, 37, 37)
    p = blocks.vgg_block(n, n.data, 1, 2, 16, first_pad=100)
    net = n.to_proto()
    a = analyse(load_net(net))
    assert [lp.name for lp in net.layer][1:] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    size = 37 + 200 - 2                                   # pad 100, 3x3 conv
    assert a.shapes[a.net.blob("pool1")] == (1, 16, -(-size // 2), -(-size // 2))
    assert p is n.pool1


def test_upscore_is_bilinear_interpolation_per_class():
    """A group-wise 'bilinear' Deconvolution (k = 2f, stride f) reproduces a linear
    function exactly away from the borders, separately in each channel."""
    f, classes = 4, 3
    n = _net(classes, 6, 7)
    up = blocks.upscore(n, n.data, "up", classes, f)
    lp = next(lp for lp in n.to_proto().layer if lp.name == "up")
    assert (lp.convolution_param.group, lp.convolution_param.num_output) == (classes, classes)
    assert [p.lr_mult for p in lp.param] == [0]
    assert up is n.up
    compiled = compile_net(load_net(n.to_proto()))
    yy, xx = np.meshgrid(np.arange(6.0), np.arange(7.0), indexing="ij")
    x = np.stack([2 * yy + 3 * xx, -yy + 0.5 * xx, 7 + 0 * yy]).astype(np.float32)[None]
    with torch.no_grad():
        out = compiled.module(torch.from_numpy(x))["up"][0].numpy()
    assert out.shape == (classes, f * 5 + 2 * f, f * 6 + 2 * f)
    # output pixel u sits at input coordinate (u - (2f - 1) / 2) / f (offset (k-1)/2 - p)
    uy, ux = np.meshgrid(np.arange(out.shape[1]), np.arange(out.shape[2]), indexing="ij")
    cy, cx = (uy - (2 * f - 1) / 2) / f, (ux - (2 * f - 1) / 2) / f
    truth = np.stack([2 * cy + 3 * cx, -cy + 0.5 * cx, 7 + 0 * cy])
    inner = (slice(None), slice(2 * f, -2 * f), slice(2 * f, -2 * f))
    np.testing.assert_allclose(out[inner], truth[inner], atol=1e-4)
