"""Acceptance 2: every zoo model compiles, runs forward on a random 1x8x512x512 input and
returns 1x2x512x512 class probabilities summing to 1 per pixel; FC-DenseNet also on
1x8x320x352 and on inputs that are a multiple of 32 in one axis only; train_val nets
have their phases right (Dropout and BatchNorm in TRAIN, Accuracy in TEST)."""

from __future__ import annotations

import pytest
import torch

from fcnkit import zoo
from tests.zoo.zoo_helpers import compile_zoo, make_realistic

def _check_forward(name: str, shape: tuple[int, int, int, int]) -> None:
    compiled = compile_zoo(name, shape)
    make_realistic(compiled)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        prob = compiled.module(x)["prob"]
    assert compiled.outputs == ["prob"]
    assert tuple(prob.shape) == (shape[0], 2, *shape[2:])
    assert torch.isfinite(prob).all()
    assert float((prob.sum(dim=1) - 1).abs().max()) < 1e-5
    assert float(prob.min()) >= 0
    # a real per-pixel prediction, not a constant map
    assert float(prob[0, 1].std()) > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.names())
def test_forward_512(name):
    _check_forward(name, (1, 8, 512, 512))


@pytest.mark.parametrize("name", zoo.names())
def test_every_model_compiles_to_512_output_on_meta(name):
    """The compiled module of every model, on 1x8x512x512, returns 1x2x512x512 (meta
    tensors: torch's own shape rules for every op, no arithmetic)."""
    compiled = compile_zoo(name, meta=True)
    out = compiled.module(torch.empty(1, 8, 512, 512, device="meta"))["prob"]
    assert tuple(out.shape) == (1, 2, 512, 512)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiramisu56_8band", "tiramisu67_8band", "tiramisu103_8band"])
def test_tiramisu_320x352(name):
    _check_forward(name, (1, 8, 320, 352))


@pytest.mark.parametrize("name, hw", [("tiramisu56_8band", (96, 80)), ("tiramisu56_8band", (64, 75)),
                                      ("tiramisu67_8band", (96, 80)), ("tiramisu103_8band_f96", (96, 80))])
def test_tiramisu_input_multiple_of_32_in_one_axis_only(name, hw):
    """96 = 3 x 32 but 80 = 2.5 x 32 (and 75 is odd): Caffe's ceil pooling and the centre
    crops still give an output of the input's size."""
    _check_forward(name, (1, 8, *hw))


@pytest.mark.parametrize("name", ["fcn_alexnet_8band", "fcn8s_8band"])
def test_fcn_small_input(name):
    """A tiny input works too: conv1's padding of 100 (Long et al., section 4.1)."""
    _check_forward(name, (1, 8, 16, 24))


def test_train_val_phases_tiramisu():
    shape = (2, 8, 32, 32)                                 # 1x1 at the bottleneck
    label = torch.randint(0, 2, (2, 1, 32, 32)).float()
    label[0, 0, :8] = 255                                  # ignored pixels
    x = torch.randn(shape)
    train = compile_zoo("tiramisu56_8band", shape, "train_val", "TRAIN")
    assert set(train.outputs) == {"loss"} and train.module.training
    bn = train.module.db1_l0_bn
    out1 = train.module(x, label)
    loss = out1["loss"]
    assert loss.shape == () and torch.isfinite(loss) and loss > 0
    loss.backward()
    assert train.module.firstconv.weight.grad.abs().sum() > 0
    # BatchNorm on batch statistics in TRAIN: Caffe's running sums were updated once
    assert float(bn.scale_factor) == pytest.approx(1.0)
    # Dropout is active in TRAIN: the same input gives another loss
    with torch.no_grad():
        assert float(train.module(x, label)["loss"]) != pytest.approx(float(loss), rel=1e-6)
    test = compile_zoo("tiramisu56_8band", shape, "train_val", "TEST")
    assert set(test.outputs) == {"loss", "accuracy"} and not test.module.training
    make_realistic(test)
    with torch.no_grad():
        a, b = test.module(x, label), test.module(x, label)
    assert float(a["loss"]) == float(b["loss"])            # no dropout, stored statistics
    assert 0 <= float(a["accuracy"]) <= 1


@pytest.mark.parametrize("name", ["fcn_alexnet_8band", "fcn32s_8band"])
def test_train_val_phases_fcn(name):
    p = zoo.build(name, phase="train_val")
    types = {lp.name: lp.type for lp in p.layer}
    assert types["drop6"] == types["drop7"] == "Dropout"
    assert "prob" not in types and types["loss"] == "SoftmaxWithLoss"
    loss = next(lp for lp in p.layer if lp.name == "loss")
    assert loss.loss_param.ignore_label == 255
    train = compile_zoo("fcn_alexnet_8band", (1, 8, 48, 48), "train_val", "TRAIN")
    assert train.outputs == ["loss"]
    deploy_types = {lp.type for lp in zoo.build(name).layer}
    assert "Dropout" not in deploy_types and "SoftmaxWithLoss" not in deploy_types
