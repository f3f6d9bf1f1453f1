"""The options every net-loading command shares (--phase, --stage, --level, --input-shape),
deploy mode, TRAIN/TEST switching of a compiled module, and custom layer types registered
from user code (FCNKIT_PLUGINS), end to end through the CLI.

The expected values follow Caffe's FilterNet rules (CAFFE_FACTS.md) and the layers'
formulas, computed by hand in each test."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest
import torch

from fcnkit import caffe
from fcnkit.cli.main import main
from fcnkit.compile import compile_net
from fcnkit.errors import OffsetError
from fcnkit.graph import NetState, load_net
from tests.conftest import DATA

# out = 3 x by default; 2 x with stage "double"; + 1 from level 1; x 10 in TRAIN
STAGED = """name: "staged"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }
layer { name: "double" type: "Power" bottom: "data" top: "out" power_param { scale: 2 }
        include { stage: "double" } }
layer { name: "triple" type: "Power" bottom: "data" top: "out" power_param { scale: 3 }
        exclude { stage: "double" } }
layer { name: "plus" type: "Power" bottom: "out" top: "out" power_param { shift: 1 }
        include { min_level: 1 } }
layer { name: "train_only" type: "Power" bottom: "out" top: "out" power_param { scale: 10 }
        include { phase: TRAIN } }
"""

STATES = [
    ([], ["triple"], 3.0),
    (["--stage", "double"], ["double"], 2.0),
    (["--level", "1"], ["triple", "plus"], 4.0),
    (["--phase", "TRAIN"], ["triple", "train_only"], 30.0),
    (["--phase", "TRAIN", "--stage", "double", "--level", "1"], ["double", "plus", "train_only"], 30.0),
]


@pytest.mark.parametrize("opts, layers, value", STATES)
def test_phase_stage_level_on_every_command(opts, layers, value, tmp_path, capsys):
    net = tmp_path / "staged.prototxt"
    net.write_text(STAGED)
    x = tmp_path / "x.npy"
    np.save(x, np.ones((1, 1, 4, 4), np.float32))
    # compile: the layer list of this NetState
    assert main(["compile", str(net), "--format", "json", *opts]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [layer["name"] for layer in doc["layers"]] == ["data", *layers]
    # offsets: the same layers
    assert main(["offsets", str(net), "--format", "json", *opts]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)["layers"]] == layers
    # run: Caffe's Power y = (shift + scale x)^power on x = 1
    out = tmp_path / "out.npz"
    assert main(["run", str(net), "--input", str(x), "-o", str(out), *opts]) == 0
    np.testing.assert_array_equal(np.load(out)["out"], np.full((1, 1, 4, 4), value, np.float32))
    # verify: a reference of the last layer's output passes, a wrong one fails
    ref = tmp_path / "ref.npz"
    np.savez(ref, **{layers[-1]: np.full((1, 1, 4, 4), value, np.float32)})
    assert main(["verify", str(net), "--input", str(x), "--reference", str(ref), *opts]) == 0
    np.savez(ref, **{layers[-1]: np.full((1, 1, 4, 4), value + 1, np.float32)})
    assert main(["verify", str(net), "--input", str(x), "--reference", str(ref), *opts]) == 1


def test_bad_phase_is_a_clear_error(tmp_path, capsys):
    net = tmp_path / "staged.prototxt"
    net.write_text(STAGED)
    assert main(["compile", str(net), "--phase", "VAL"]) == 2
    assert "TRAIN or TEST" in capsys.readouterr().err


def test_input_shape_option(capsys):
    """--input-shape N,C,H,W (first input) and name=N,C,H,W; LeNet conv1 5x5: H - 4."""
    lenet = str(DATA / "lenet_ahmdtaha/mnist_deploy.prototxt")
    for spec in ("2,1,56,40", "data=2,1,56,40"):
        assert main(["compile", lenet, "--format", "json", "--input-shape", spec]) == 0
        layers = {layer["name"]: layer for layer in json.loads(capsys.readouterr().out)["layers"]}
        assert layers["conv1"]["tops"] == {"conv1": [2, 20, 52, 36]}
    assert main(["compile", lenet, "--input-shape", "nosuch=1,1,28,28"]) == 2
    assert "nosuch" in capsys.readouterr().err


DIGITS_TRAIN = DATA / "digits_nvidia/examples/semantic-segmentation/fcn_alexnet.prototxt"


def test_train_net_compiles_loss_outputs_and_deploy_drops_them(capsys):
    """The DIGITS FCN-AlexNet train/val net: in TRAIN its output is the SoftmaxWithLoss
    'loss' (a scalar) from data and label; --deploy drops the loss (and the label input)
    and leaves the score map; in TEST the Accuracy metric is an output too."""
    shapes = ["--input-shape", "data=1,3,64,64", "--input-shape", "label=1,1,64,64"]
    assert main(["compile", str(DIGITS_TRAIN), "--phase", "TRAIN", "--format", "json", *shapes]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["inputs"] == ["data", "label"] and doc["outputs"] == ["loss"]
    assert main(["compile", str(DIGITS_TRAIN), "--phase", "TRAIN", "--deploy", "--format", "json",
                 *shapes]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["inputs"] == ["data"] and doc["outputs"] == ["score"]

    net = load_net(DIGITS_TRAIN, NetState.make("TRAIN"))
    compiled = compile_net(net, None, {"data": (1, 3, 64, 64), "label": (1, 1, 64, 64)})
    assert compiled.module.training
    x = torch.rand(1, 3, 64, 64)
    label = torch.randint(0, 21, (1, 1, 64, 64)).float()
    loss = compiled.module(x, label)["loss"]
    assert loss.shape == () and torch.isfinite(loss)
    # with zero-initialised score weights (no filler), every class has probability 1/21
    assert float(loss.detach()) == pytest.approx(np.log(21), rel=1e-5)


BN_DROPOUT = """name: "bn"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 2 dim: 3 dim: 3 } } }
layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn" }
layer { name: "drop" type: "Dropout" bottom: "bn" top: "drop" dropout_param { dropout_ratio: 0.5 } }
"""


def test_compiled_module_switches_between_test_and_train():
    """eval(): Caffe's TEST phase, stored statistics (mean = b0 / s, var = b1 / s) and no
    dropout; train(): batch statistics and dropout keeping units scaled by 1 / (1 - p)."""
    net = load_net(caffe.parse_prototxt(BN_DROPOUT))
    mean, var, s = np.array([1.0, -2.0]), np.array([4.0, 0.25]), 2.0
    blobs = {"bn": [(mean * s).astype(np.float32), (var * s).astype(np.float32),
                    np.array([s], np.float32)]}
    compiled = compile_net(net, blobs)
    m = compiled.module
    assert not m.training
    x = torch.randn(4, 2, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    xn = x.double().numpy()
    want_test = (xn - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(m(x)["drop"].numpy(), want_test, rtol=1e-5, atol=1e-6)
        m.train()
        got = m(x)["drop"].double().numpy()
    bm = xn.mean(axis=(0, 2, 3), keepdims=True)
    bv = xn.var(axis=(0, 2, 3), keepdims=True)
    want_train = (xn - bm) / np.sqrt(bv + 1e-5)
    kept = got != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(got[kept], 2 * want_train[kept], rtol=1e-5, atol=1e-6)
    m.eval()
    with torch.no_grad():
        assert m(x)["drop"].shape == x.shape  # TEST again: deterministic
        np.testing.assert_array_equal(m(x)["drop"].numpy(), m(x)["drop"].numpy())


def test_crop_between_unrelated_inputs_has_no_common_ancestor():
    from fcnkit.analysis import crop_offset

    text = """
    layer { name: "a" type: "Input" top: "a" input_param { shape { dim: 1 dim: 1 dim: 8 dim: 8 } } }
    layer { name: "b" type: "Input" top: "b" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }
    layer { name: "crop" type: "Crop" bottom: "a" bottom: "b" top: "crop" }
    """
    net = load_net(caffe.parse_prototxt(text))
    with pytest.raises(OffsetError, match="'a' and 'b' have no common ancestor"):
        crop_offset(net, "a", "b")


PLUGIN = '''
from fcnkit.layers import CoordMap, Layer, register


@register(replace=True)
class Upsample(Layer):
    type = "Upsample"

    def output_shapes(self, bottoms):
        n, c, h, w = bottoms[0]
        return [(n, c, 2 * h, 2 * w)]

    def coord_map(self):
        return CoordMap.make((2, 2), ("0.5", "0.5"))

    def build_module(self, bottoms):
        import torch
        return torch.nn.Upsample(scale_factor=2)
'''

UPSAMPLED = """name: "up"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 3 dim: 3 } } }
layer { name: "up" type: "Upsample" bottom: "data" top: "up" }
"""


def test_custom_layer_type_from_fcnkit_plugins(tmp_path, monkeypatch, capsys):
    """The README's example: a module named in FCNKIT_PLUGINS registers a type that every
    command then knows (shapes, offsets, forward pass)."""
    import fcnkit.layers as registry

    (tmp_path / "my_layers_test_plugin.py").write_text(textwrap.dedent(PLUGIN))
    net = tmp_path / "up.prototxt"
    net.write_text(UPSAMPLED)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.registered_types()  # load the built-in types first
    # a private copy of the registry for this test: the plugin's type does not outlive it
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry._REGISTRY.pop("Upsample", None)
    assert main(["compile", str(net)]) == 2
    assert "'up' of type 'Upsample'" in capsys.readouterr().err
    monkeypatch.setenv("FCNKIT_PLUGINS", "my_layers_test_plugin")
    assert main(["offsets", str(net), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["layers"]
    assert row["factor"] == [2, 2] and row["offset"] == [0.5, 0.5]
    x = tmp_path / "x.npy"
    np.save(x, np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3))
    out = tmp_path / "o.npz"
    assert main(["run", str(net), "--input", str(x), "-o", str(out)]) == 0
    np.testing.assert_array_equal(np.load(out)["up"][0, 0],
                                  np.kron(np.arange(9).reshape(3, 3), np.ones((2, 2))))
    monkeypatch.setenv("FCNKIT_PLUGINS", "no_such_plugin_module")
    assert main(["layers"]) == 2
    assert "FCNKIT_PLUGINS names module 'no_such_plugin_module'" in capsys.readouterr().err
    sys.modules.pop("my_layers_test_plugin", None)
