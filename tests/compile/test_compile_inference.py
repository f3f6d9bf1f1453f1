"""The inference module (issue 16, item 1): fused BatchNorm + Scale + ReLU, in-place
activations and channels-last memory give the unfused module's outputs (<= 1e-5 relative),
under the same blob names, on zoo nets and on the real nets with OpenCV oracles."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fcnkit import caffe, zoo
from fcnkit.compile import compile_net
from fcnkit.graph import load_net
from fcnkit.layers._inference_ops import ops
from tests.conftest import DATA

TOL = 1e-5
MODES = [dict(fuse=True, channels_last=False), dict(fuse=False, channels_last=True),
         dict(fuse=True, channels_last=True)]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def _random_statistics(compiled, seed: int = 0) -> None:
    """Stored BatchNorm statistics and Scale affines that are not the identity, so that a
    wrong fusion shows (the zoo's fillers leave mean 0, var 0, gamma 1, beta 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in compiled.module.named_buffers():
            if name.endswith("running_mean"):
                t.copy_(torch.rand(t.shape, generator=g) - 0.5)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
        for name, p in compiled.module.named_parameters():
            if p.ndim == 1:
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)


def _check_all_modes(compiled, inputs, tol=TOL):
    compiled.module.eval()
    with torch.no_grad():
        ref = compiled.module(*inputs)
        for mode in MODES:
            out = compiled.inference_module(**mode)(*inputs)
            assert list(out) == list(ref), mode  # the same blob names, in the same order
            for name in ref:
                assert out[name].shape == ref[name].shape
                assert out[name].is_contiguous()
                assert _rel(out[name], ref[name]) <= tol, (mode, name, _rel(out[name], ref[name]))
    return ref


def _fused_kinds(module) -> list[str]:
    return sorted(type(m).__name__ for m in module.children()
                  if isinstance(m, (ops().BatchNormAffine, ops().ConvAct)))


@pytest.mark.parametrize("name,hw", [("tiramisu56_8band", 64), ("fcn8s_8band", 48)])
def test_zoo_nets_fused_and_channels_last_equal_unfused(name, hw):
    param = zoo.build(name)
    for lp in param.layer:  # fc6/fc7 narrowed (4096 -> 64 outputs): same topology, fast
        if lp.name in ("fc6", "fc7"):
            lp.convolution_param.num_output = 64
    net = load_net(param)
    compiled = compile_net(net, None, {None: (1, 8, hw, hw)}, deploy=True)
    _random_statistics(compiled)
    x = torch.randn(1, 8, hw, hw, generator=torch.Generator().manual_seed(1))
    _check_all_modes(compiled, [x])
    fused = compiled.inference_module(fuse=True, channels_last=False)
    kinds = _fused_kinds(fused)
    bns = sum(1 for n in net.layers if n.type == "BatchNorm")
    if name.startswith("tiramisu"):
        # every BN-Scale-ReLU triple is one module; no BatchNorm or Scale runs alone
        assert kinds.count("BatchNormAffine") == bns > 0
        triples = [m for m in fused.children() if isinstance(m, ops().BatchNormAffine)]
        assert all(m.scale is not None and m.act is not None for m in triples)
    else:
        assert kinds.count("ConvAct") == 15  # conv1_1 ... fc7: every conv with a ReLU after it


@pytest.mark.parametrize("folder", sorted(p.parent.relative_to(DATA).as_posix()
                                          for p in DATA.rglob("opencv_oracle_*/meta.json")))
def test_real_nets_fused_equal_unfused_and_opencv(folder):
    meta = json.loads((DATA / folder / "meta.json").read_text())
    net = load_net(DATA / meta["prototxt"])
    x = np.load(DATA / folder / "input.npy")
    compiled = compile_net(net, caffe.read_caffemodel(DATA / meta["caffemodel"]), {None: x.shape},
                           deploy=True)
    ref = _check_all_modes(compiled, [torch.from_numpy(x)])
    with torch.no_grad():
        out = compiled(torch.from_numpy(x))  # eval mode: the inference module
    for name, spec in meta["outputs"].items():
        oracle = np.load(DATA / folder / spec["file"])
        got = out[name].numpy()
        assert np.abs(got - oracle).max() / np.abs(oracle).max() <= 1e-4, name
        assert torch.equal(out[name], ref[name]) or _rel(out[name], ref[name]) <= TOL


NET = """
name: "branch"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 9 dim: 9 } } }
layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn" batch_norm_param { use_global_stats: true } }
layer { name: "sc" type: "Scale" bottom: "bn" top: "sc" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "sc" top: "sc" }
layer { name: "conv" type: "Convolution" bottom: "bn" top: "conv" convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu2" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "bn2" type: "BatchNorm" bottom: "sc" top: "bn2" }
layer { name: "sc2" type: "Scale" bottom: "bn2" top: "bn2" scale_param { bias_term: true } }
layer { name: "relu3" type: "ReLU" bottom: "bn2" top: "bn2" }
"""


def test_a_blob_read_twice_is_not_fused_away_and_outputs_keep_names():
    """'bn' is read by 'sc' and 'conv': no BN + Scale fusion there. 'bn2' (use_global_stats
    unset: stored statistics in eval mode) fuses with its Scale and ReLU; 'conv' with relu2."""
    compiled = compile_net(load_net(caffe.parse_prototxt(NET)), None)
    _random_statistics(compiled)
    x = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(2))
    ref = _check_all_modes(compiled, [x])
    assert set(ref) == {"conv", "bn2"}
    fused = compiled.inference_module(fuse=True, channels_last=False)
    targets = {n.target for n in fused.graph.nodes if n.op == "call_module"}
    assert {"bn", "sc", "relu"} <= targets and not {"bn2", "sc2", "conv"} & targets
    assert isinstance(fused.get_submodule("relu3"), ops().BatchNormAffine)
    assert isinstance(fused.get_submodule("relu2"), ops().ConvAct)
    # every blob is still there for a dump: the compiled module itself is never changed
    assert {"bn", "sc", "conv"} <= set(compiled.run_all(x))


def test_call_uses_the_inference_module_in_eval_and_follows_weight_changes():
    compiled = compile_net(load_net(caffe.parse_prototxt(NET)), None)
    _random_statistics(compiled)
    x = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(3))
    compiled.module.eval()
    with torch.no_grad():
        first = compiled(x)["bn2"]
        compiled.module.sc2.weight.mul_(2)  # changed in place: the fused module reads it
        assert _rel(compiled(x)["bn2"], compiled.module(x)["bn2"]) <= TOL
        assert not torch.allclose(first, compiled(x)["bn2"])
        compiled.module.sc2 = torch.nn.Identity()  # replaced: the cache is rebuilt
        assert torch.equal(compiled(x)["bn2"], compiled.module(x)["bn2"])
    compiled.module.train()  # TRAIN: batch statistics, the unfused module
    assert torch.equal(compiled(x)["bn2"], compiled.module(x)["bn2"])
    assert not any(isinstance(m, (ops().BatchNormAffine, ops().ConvAct))
                   for m in compiled.module.modules())


def test_opt_outs(monkeypatch):
    compiled = compile_net(load_net(caffe.parse_prototxt(NET)), None)
    monkeypatch.setenv("FCNKIT_INFERENCE_FUSION", "0")
    monkeypatch.setenv("FCNKIT_CHANNELS_LAST", "0")
    mod = compiled.inference_module()
    assert not _fused_kinds(mod)
    assert not any(n.op == "call_method" for n in mod.graph.nodes)
    monkeypatch.delenv("FCNKIT_INFERENCE_FUSION")
    monkeypatch.delenv("FCNKIT_CHANNELS_LAST")
    mod = compiled.inference_module()
    assert _fused_kinds(mod) and any(n.op == "call_method" for n in mod.graph.nodes)
