"""The Layer contract's per-type answers that analysis, compile and export ask for
(docs/layer_contract.md): window, receptive field, roles, output kind, crop offsets, the
export forms against Caffe's loops, fusion, and the reasons for static H and W."""

from __future__ import annotations

import math
import zlib
from fractions import Fraction

import numpy as np
import pytest

from . import caffe_reference as ref
from ._util import make, rand


def _torch_run(module, *xs):
    import torch

    with torch.no_grad():
        return module(*[torch.from_numpy(x) for x in xs]).numpy()


def test_convolution_window_uses_the_dilated_extent():
    conv = make('type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 2 '
                'kernel_size: 3 dilation: 2 stride: 2 pad: 1 }')
    w = conv.window()
    assert (w.kernel, w.extent, w.stride, w.pad) == ((3, 3), (5, 5), (2, 2), (1, 1))
    # rf += (k_eff - 1) * jump, jump *= s (Araujo et al. 2019, eq. 1-2)
    assert conv.receptive_field((7.0, 7.0), (2.0, 2.0)) == ((15.0, 15.0), (4.0, 4.0))


def test_deconvolution_receptive_field_divides_the_jump():
    up = make('type: "Deconvolution" bottom: "x" top: "y" convolution_param { num_output: 2 '
              'kernel_size: 64 stride: 32 }')
    # each output sees ceil(64 / 32) = 2 inputs: rf += 1 * jump; jump /= 32
    assert up.receptive_field((404.0, 404.0), (32.0, 32.0)) == ((436.0, 436.0), (1.0, 1.0))
    odd = make('type: "Deconvolution" bottom: "x" top: "y" convolution_param { num_output: 2 '
               'kernel_size: 3 stride: 2 }')
    assert odd.receptive_field((1.0, 1.0), (1.0, 1.0)) == ((1.0 + math.ceil(3 / 2) - 1,) * 2, (0.5, 0.5))


def test_pooling_window_and_layers_without_one():
    pool = make('type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX kernel_size: 3 stride: 2 }')
    assert pool.window().extent == (3, 3) and pool.window().stride == (2, 2)
    glob = make('type: "Pooling" bottom: "x" top: "y" pooling_param { pool: AVE global_pooling: true }')
    assert glob.window().kernel is None
    relu = make('type: "ReLU" bottom: "x" top: "x"')
    assert relu.window() is None
    assert relu.receptive_field((5.0, 5.0), (2.0, 2.0)) == ((5.0, 5.0), (2.0, 2.0))


def test_roles_and_output_kinds():
    assert make('type: "Split" bottom: "x" top: "a" top: "b"').role == "alias"
    assert make('type: "Silence" bottom: "x"').role == "sink"
    assert make('type: "Softmax" bottom: "x" top: "p"').output_kind == "probabilities"
    assert make('type: "ReLU" bottom: "x" top: "x"').output_kind == "scores"


def test_crop_offsets_one_expansion():
    crop = make('type: "Crop" bottom: "a" bottom: "b" top: "c" crop_param { axis: 2 offset: 19 }')
    assert crop.crops_to_reference
    assert crop.declared_offsets(4) == (2, [19, 19])
    assert crop.coord_map_at((Fraction(5, 2), 3)).offset == (Fraction(-5, 2), Fraction(-3))
    assert crop.coord_map() == crop.coord_map_at((19, 19))
    two = make('type: "Crop" bottom: "a" bottom: "b" top: "c" crop_param { axis: 1 offset: 0 offset: 5 offset: 9 }')
    assert two.declared_offsets(4) == (1, [0, 5, 9]) and two.spatial_offsets() == (5, 9)
    param = two.param
    type(two).write_offsets(param, [4, 4, 4])
    assert list(param.crop_param.offset) == [4]
    assert not make('type: "ReLU" bottom: "x" top: "x"').crops_to_reference


CEIL_CASES = [  # (params, H x W): ceil overhang, clip rule, AVE windows into the overhang
    ("kernel_size: 3 stride: 2", (6, 6)),
    ("kernel_size: 2 stride: 2 pad: 1", (5, 5)),
    ("kernel_size: 3 stride: 2 pad: 1", (8, 7)),
]


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("params,hw", CEIL_CASES)
def test_pooling_export_form_matches_caffe(params, hw, method):
    pytest.importorskip("onnxscript")
    layer = make(f'type: "Pooling" bottom: "x" top: "y" pooling_param {{ pool: {method} {params} }}')
    x = rand(2, 3, *hw, seed=zlib.crc32(params.encode()))
    module = layer.build_module([x.shape])
    export = layer.export_module(module, [x.shape])
    k, s, p = layer.kernel, layer.stride, layer.pad
    want = ref.pool(x, k, s, p, method, ceil=True)
    if export is None:  # a module that exports as it is: only the general path
        assert not getattr(module, "ceil_mode", False)
        return
    np.testing.assert_allclose(_torch_run(export, x), want, rtol=1e-5, atol=1e-6)


def test_floor_pooling_exports_as_compiled():
    layer = make('type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX kernel_size: 2 '
                 'stride: 2 round_mode: FLOOR }')
    shape = (1, 1, 8, 8)
    assert layer.export_module(layer.build_module([shape]), [shape]) is None
    assert layer.static_hw_reason(layer.build_module([shape])) is None


def test_lrn_export_form_matches_caffe():
    pytest.importorskip("onnxscript")
    layer = make('type: "LRN" bottom: "x" top: "y" lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 k: 2 }')
    x = rand(2, 7, 4, 4, seed=3)
    export = layer.export_module(layer.build_module([x.shape]), [x.shape])
    np.testing.assert_allclose(_torch_run(export, x), ref.lrn_across(x, 5, 1e-4, 0.75, 2.0),
                               rtol=1e-5, atol=1e-6)
    within = make('type: "LRN" bottom: "x" top: "y" lrn_param { local_size: 3 norm_region: WITHIN_CHANNEL }')
    assert within.export_module(within.build_module([x.shape]), [x.shape]) is None


def _bn_scale(use_global_stats: str = ""):
    import torch

    bn = make(f'type: "BatchNorm" bottom: "x" top: "x" {use_global_stats}', "bn")
    sc = make('type: "Scale" bottom: "x" top: "x" scale_param { bias_term: true }', "sc")
    shape = (2, 3, 4, 4)
    bn_mod, sc_mod = bn.build_module([shape]), sc.build_module([shape])
    rng = np.random.default_rng(1)
    with torch.no_grad():
        bn_mod.running_mean.copy_(torch.from_numpy(rng.standard_normal(3).astype(np.float32)))
        bn_mod.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2, 3).astype(np.float32)))
        sc_mod.weight.copy_(torch.from_numpy(rng.standard_normal(3).astype(np.float32)))
        sc_mod.bias.copy_(torch.from_numpy(rng.standard_normal(3).astype(np.float32)))
    return bn, sc, bn_mod.eval(), sc_mod.eval(), shape


def test_batchnorm_scale_fuse_into_one_affine_op():
    pytest.importorskip("onnxscript")
    bn, sc, bn_mod, sc_mod, shape = _bn_scale()
    fused = bn.export_fused(bn_mod, sc, sc_mod)
    x = rand(*shape, seed=2)
    mean, var = bn_mod.running_mean.numpy(), bn_mod.running_var.numpy()
    w, b = sc_mod.weight.detach().numpy(), sc_mod.bias.detach().numpy()
    c = (1, 3, 1, 1)
    want = (x - mean.reshape(c)) / np.sqrt(var.reshape(c) + bn.eps) * w.reshape(c) + b.reshape(c)
    np.testing.assert_allclose(_torch_run(fused, x), want, rtol=1e-5, atol=1e-5)


def test_batchnorm_with_batch_statistics_or_another_layer_does_not_fuse():
    bn, sc, bn_mod, sc_mod, _ = _bn_scale("batch_norm_param { use_global_stats: false }")
    assert bn.export_fused(bn_mod, sc, sc_mod) is None
    bn, sc, bn_mod, sc_mod, shape = _bn_scale()
    relu = make('type: "ReLU" bottom: "x" top: "x"')
    assert bn.export_fused(bn_mod, relu, relu.build_module([shape])) is None


def test_static_hw_reasons():
    shape = (1, 1, 9, 9)
    # ceil-mode pooling and Crop have a dynamic export form (issue 13, item 8; its values
    # are checked in tests/deploy/test_deploy_dynamic_hw.py)
    ceil = make('type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX kernel_size: 3 stride: 2 }')
    assert ceil.static_hw_reason(ceil.build_module([shape])) is None
    assert ceil.dynamic_export_module(ceil.build_module([shape]), [shape]) is not None
    glob = make('type: "Pooling" bottom: "x" top: "y" pooling_param { pool: AVE global_pooling: true }')
    assert glob.dynamic_export_module(glob.build_module([shape]), [shape]) is None  # any size already
    crop = make('type: "Crop" bottom: "a" bottom: "b" top: "c"')
    assert crop.static_hw_reason(None) is None
    small = (1, 1, 5, 5)
    dyn = crop.dynamic_export_module(crop.build_module([shape, small]), [shape, small])
    import torch

    x = torch.arange(2 * 11 * 12, dtype=torch.float32).reshape(1, 2, 11, 12)
    assert torch.equal(dyn(x, torch.zeros(1, 1, 4, 7)), x[:, :, :4, :7])  # offset 0, the reference's size
    ip = make('type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 }')
    assert ip.static_hw_reason(None) == "fixes the C x H x W size of its input"
    conv = make('type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 1 kernel_size: 3 }')
    assert conv.static_hw_reason(conv.build_module([shape])) is None
