"""SoftmaxWithLoss, SigmoidCrossEntropyLoss, EuclideanLoss, Accuracy against Caffe."""

import numpy as np
import pytest

from fcnkit.errors import NetDefinitionError, ShapeError
from fcnkit.layers import NoCoordMap

from . import caffe_reference as ref
from ._util import make, rand, run


def labels(shape, classes, seed=0, ignore=None, frac=0.3):
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, classes, size=shape).astype(np.float32)
    if ignore is not None:
        lab[rng.uniform(size=shape) < frac] = ignore
    return lab


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
@pytest.mark.parametrize("ignore", [None, 255, 1])
def test_softmax_loss_normalizations(mode, ignore):
    ign = "" if ignore is None else f"ignore_label: {ignore}"
    layer = make(f'type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "loss" '
                 f'loss_param {{ normalization: {mode} {ign} }}')
    x = rand(2, 4, 3, 5, low=-4, high=4)
    y = labels((2, 1, 3, 5), 4, ignore=ignore)
    assert layer.output_shapes([x.shape, y.shape]) == [()]
    want, _ = ref.softmax_loss(x, y, 1, ignore, mode)
    got = run(layer, x, y)
    assert got.shape == ()
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_softmax_loss_defaults_legacy_and_prob_top():
    x = rand(3, 5, 2, low=-3, high=3)
    y = labels((3, 2), 5, ignore=4, seed=1)
    default = make('type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "loss" top: "prob" loss_param { ignore_label: 4 }')
    assert default.normalization == 1  # VALID
    assert default.output_shapes([x.shape, y.shape]) == [(), x.shape]
    loss, prob = run(default, x, y)
    want, want_prob = ref.softmax_loss(x, y, 1, 4, "VALID")
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    np.testing.assert_allclose(prob, want_prob, rtol=1e-5, atol=1e-7)
    legacy_false = make('type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "l" loss_param { normalize: false }')
    np.testing.assert_allclose(run(legacy_false, x, y), ref.softmax_loss(x, y, 1, None, "BATCH_SIZE")[0], rtol=1e-5)
    legacy_true = make('type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "l" loss_param { normalize: true }')
    assert legacy_true.normalization == 1
    both = make('type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "l" loss_param { normalize: false normalization: FULL }')
    assert both.normalization == 0  # normalization wins
    last = make('type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "l" softmax_param { axis: -1 }')
    y2 = labels((3, 5), 2, seed=3)
    np.testing.assert_allclose(run(last, x, y2), ref.softmax_loss(x, y2, -1)[0], rtol=1e-5)


def test_softmax_loss_all_ignored_and_shape_errors():
    layer = make('type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "l" loss_param { ignore_label: 0 }')
    x = rand(2, 3, 2, 2)
    assert run(layer, x, np.zeros((2, 2, 2), np.float32)) == 0.0
    with pytest.raises(ShapeError, match="label count"):
        layer.output_shapes([(2, 3, 2, 2), (2, 1, 2, 3)])
    with pytest.raises(ShapeError, match="first dimension"):
        layer.output_shapes([(2, 3, 2, 2), (1, 2, 2, 2)])
    with pytest.raises(NoCoordMap):
        layer.coord_map()


def test_loss_weights():
    one = make('type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "l"')
    assert one.role == "loss" and one.loss_weights() == [1.0]
    two = make('type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "l" top: "p"')
    assert two.loss_weights() == [1.0, 0.0]
    given = make('type: "EuclideanLoss" bottom: "x" bottom: "y" top: "l" loss_weight: 0.25')
    assert given.loss_weights() == [0.25]
    relu = make('type: "ReLU" bottom: "x" top: "x"')
    assert relu.loss_weights() == [0.0]
    with pytest.raises(NetDefinitionError, match="once per top"):
        make('type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "l" top: "p" loss_weight: 1')


@pytest.mark.parametrize("params,ignore,mode", [
    ("", None, "BATCH_SIZE"),
    ("loss_param { ignore_label: -1 }", -1, "BATCH_SIZE"),
    ("loss_param { ignore_label: -1 normalization: VALID }", -1, "VALID"),
    ("loss_param { normalization: FULL }", None, "FULL"),
    ("loss_param { normalize: true }", None, "VALID"),
])
def test_sigmoid_cross_entropy(params, ignore, mode):
    layer = make(f'type: "SigmoidCrossEntropyLoss" bottom: "x" bottom: "t" top: "l" {params}')
    x = rand(3, 2, 4, low=-20, high=20)
    t = np.random.default_rng(1).uniform(size=(3, 8)).astype(np.float32)  # soft targets
    if ignore is not None:
        t[0, :3] = ignore
    assert layer.output_shapes([x.shape, t.shape]) == [()]
    np.testing.assert_allclose(run(layer, x, t), ref.sigmoid_cross_entropy_loss(x, t, ignore, mode), rtol=1e-5)


def test_euclidean_loss():
    layer = make('type: "EuclideanLoss" bottom: "a" bottom: "b" top: "l"')
    a, b = rand(4, 3, 2, seed=1), rand(4, 6, seed=2)
    assert layer.output_shapes([a.shape, b.shape]) == [()]
    np.testing.assert_allclose(run(layer, a, b), ref.euclidean_loss(a, b), rtol=1e-5)
    with pytest.raises(ShapeError, match="per item"):
        layer.output_shapes([(4, 3), (4, 4)])


@pytest.mark.parametrize("params,kw", [
    ("", {}),
    ("accuracy_param { top_k: 2 }", {"top_k": 2}),
    ("accuracy_param { ignore_label: 2 }", {"ignore_label": 2}),
    ("accuracy_param { axis: -1 top_k: 3 }", {"axis": -1, "top_k": 3}),
])
def test_accuracy(params, kw):
    layer = make(f'type: "Accuracy" bottom: "x" bottom: "y" top: "acc" top: "per_class" {params}')
    axis = kw.get("axis", 1)
    x = np.round(rand(3, 4, 5, low=-2, high=2), 1)  # rounding makes ties
    lab = labels((3, 5) if axis == 1 else (3, 4), 4 if axis == 1 else 5, seed=2)
    acc, per_class = run(layer, x, lab)
    want_acc, want_pc = ref.accuracy(x, lab, **kw)
    assert layer.role == "metric" and layer.loss_weights() == [0.0, 0.0]
    assert layer.output_shapes([x.shape, lab.shape]) == [(), want_pc.shape]
    np.testing.assert_allclose(acc, want_acc, rtol=1e-6)
    np.testing.assert_allclose(per_class, want_pc, rtol=1e-6)
