"""Prepacked convolutions in the inference module (issue 16): weights reordered once for
oneDNN, the ReLU / LeakyReLU as a post-op. They must give the unfused module's values,
never go stale when a weight changes, and fall back to the plain convolution for what
they cannot serve (autograd, float64, NCHW inputs, copies to other dtypes)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from fcnkit import caffe
from fcnkit.compile import compile_net
from fcnkit.graph import load_net
from fcnkit.layers._inference_ops import ops, packed_conv

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(),
                                reason="this torch has no oneDNN (mkldnn): nothing is prepacked")

NET = """
name: "packed"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 11 dim: 13 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 6 kernel_size: 3 stride: 2 dilation: 2 group: 2 pad: 2 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" relu_param { negative_slope: 0.1 } }
layer { name: "pool" type: "Pooling" bottom: "conv2" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "score" type: "Convolution" bottom: "pool" top: "score"
        convolution_param { num_output: 4 kernel_size: 1 bias_term: false } }
"""


def _compiled():
    compiled = compile_net(load_net(caffe.parse_prototxt(NET)), None)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in compiled.module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return compiled.module.eval() and compiled


def _rel(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _x(seed=1, shape=(2, 3, 11, 13)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_every_convolution_is_packed_with_its_activation_and_equals_the_unfused_module():
    compiled = _compiled()
    mod = compiled.inference_module()
    packed = {name: m for name, m in mod.named_children() if isinstance(m, ops().PackedConv)}
    # conv1 + relu1 and conv2 + relu2 are fused (the fused call keeps the ReLU's name)
    assert {n: (m.attr, m.scalars) for n, m in packed.items()} == {
        "relu1": ("relu", []), "relu2": ("leaky_relu", [pytest.approx(0.1)]), "score": ("none", [])}
    x = _x()
    with torch.inference_mode():
        ref = compiled.module(x)["score"]
        out = mod(x)["score"]
    assert out.is_contiguous() and _rel(out, ref) <= 1e-5
    assert all(m._packed is not None for m in packed.values())  # the packed kernel ran


def test_prepack_opt_outs(monkeypatch):
    compiled = _compiled()
    kinds = lambda m: [type(c).__name__ for c in m.children() if isinstance(c, ops().PackedConv)]
    assert not kinds(compiled.inference_module(prepack=False))
    assert not kinds(compiled.inference_module(channels_last=False))  # NCHW: nothing to pack for
    monkeypatch.setenv("FCNKIT_PREPACK", "0")
    assert not kinds(compiled.inference_module())
    monkeypatch.delenv("FCNKIT_PREPACK")
    assert len(kinds(compiled.inference_module())) == 3


def test_packed_weight_follows_in_place_changes_replacement_and_input_size():
    compiled = _compiled()
    x = _x()
    with torch.inference_mode():
        first = compiled(x)["score"]
        compiled.module.conv1.weight.mul_(-1.5)  # in place: the version counter moves
        changed = compiled(x)["score"]
        assert not torch.allclose(first, changed)
        assert _rel(changed, compiled.module(x)["score"]) <= 1e-5
    compiled.module.conv1.weight = torch.nn.Parameter(torch.randn(8, 3, 3, 3))  # replaced
    with torch.inference_mode():
        assert _rel(compiled(x)["score"], compiled.module(x)["score"]) <= 1e-5
    conv = compiled.module.conv1
    packed = packed_conv(conv)
    for shape in ((1, 3, 11, 13), (3, 3, 20, 7)):  # a new input size repacks
        xs = _x(2, shape).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            assert _rel(packed(xs), conv(xs)) <= 1e-5
        assert packed._packed[2] == xs.shape
    with torch.inference_mode():
        # a weight made in inference mode has no version counter: the plain path serves it
        compiled.module.conv1.weight = torch.nn.Parameter(torch.randn(8, 3, 3, 3))
        assert _rel(compiled(x)["score"], compiled.module(x)["score"]) <= 1e-5


def test_what_the_packed_kernel_cannot_serve_runs_the_plain_convolution():
    conv = _compiled().module.conv1
    packed = packed_conv(ops().ConvAct(conv, torch.nn.ReLU(inplace=True)))
    x = _x().contiguous(memory_format=torch.channels_last)
    # autograd: gradients flow through the plain path, equal to the reference's
    y = packed(x)
    assert packed._packed is None and y.requires_grad
    y.sum().backward()
    ref_grad = conv.weight.grad.clone()
    conv.weight.grad = None
    F.relu(F.conv2d(x, conv.weight, conv.bias, padding=1)).sum().backward()
    assert torch.allclose(conv.weight.grad, ref_grad)
    with torch.no_grad():
        assert _rel(packed(x.contiguous()), F.relu(conv(x))) <= 1e-5  # NCHW input: plain
        assert packed._packed is None
        double = copy.deepcopy(packed).double()  # a float64 copy: plain, float64 out
        y64 = double(x.double())
        assert y64.dtype == torch.float64 and _rel(y64.float(), F.relu(conv(x))) <= 1e-5
        packed(x)
        assert packed._packed is not None
        assert copy.deepcopy(packed)._packed is None  # copies repack on first use


def test_unpackable_modules_are_left_alone():
    reflect = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")
    assert packed_conv(reflect) is None
    assert packed_conv(torch.nn.Conv2d(3, 4, 3, padding="same")) is None
    assert packed_conv(ops().ConvAct(torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh())) is None
