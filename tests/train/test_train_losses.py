"""The road losses (BCE + Dice, Dice + focal) against NumPy formulas written here, and
SoftmaxWithLoss ignore_label inside training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcnkit.caffe.prototxt import parse_prototxt
from fcnkit.compile import compile_net
from fcnkit.graph import load_net
from fcnkit.train.losses import replace_loss

NET = """
layer { name: "in" type: "Input" top: "score" top: "label"
  input_param { shape { dim: 2 dim: %d dim: 3 dim: 4 } shape { dim: 2 dim: 1 dim: 3 dim: 4 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
  loss_param { ignore_label: 255 } }
"""


def reference(score, label, kind, ignore=None):
    """NumPy: p = sigmoid (C=1) or softmax road channel; BCE/focal means, soft Dice (+1)."""
    valid = np.ones(label.shape, bool) if ignore is None else label != ignore
    t = (label == 1).astype(np.float64)
    if score.shape[1] == 1:
        p = 1 / (1 + np.exp(-score[:, 0:1]))
    else:
        e = np.exp(score - score.max(1, keepdims=True))
        p = (e / e.sum(1, keepdims=True))[:, 1:2]
    p, t = p[valid], t[valid]
    if kind == "bce-dice":
        pixel = -(t * np.log(p) + (1 - t) * np.log(1 - p))
        w_pixel, w_dice = 0.8, 0.2
    else:
        pt = np.where(t > 0, p, 1 - p)
        pixel = -(1 - pt) ** 2 * np.log(pt)
        w_pixel, w_dice = 0.75, 0.25
    # with C = 2 the background channel's BCE/focal terms equal the road channel's
    # (p0 = 1 - p1, t0 = 1 - t1), so the mean over both channels is the road channel's
    dice = 1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
    return w_pixel * pixel.mean() + w_dice * dice


@pytest.mark.parametrize("kind", ["bce-dice", "dice-focal"])
@pytest.mark.parametrize("channels", [1, 2])
def test_road_losses_match_formulas(kind, channels):
    rng = np.random.default_rng(1)
    score = rng.normal(size=(2, channels, 3, 4))
    label = rng.integers(0, 2, size=(2, 1, 3, 4)).astype(float)
    label[0, 0, 0, :2] = 255
    compiled = compile_net(load_net(parse_prototxt(NET % channels), phase="TRAIN"))
    replace_loss(compiled, kind)
    got = compiled.module(torch.tensor(score, dtype=torch.float32),
                                  torch.tensor(label, dtype=torch.float32))["loss"]
    want = reference(score, label, kind, ignore=255)
    assert float(got) == pytest.approx(want, rel=1e-5)
