"""Convolution and Deconvolution: output sizes (Caffe's formulas), values against direct
loops (deconvolution by scatter-add), weight layouts, FLOPs as FlopCounterMode counts."""

import numpy as np
import pytest

from fcnkit.errors import NetDefinitionError, ShapeError
from fcnkit.layers import CoordMap

from . import caffe_reference as ref
from ._util import make, rand, run


def conv(kind, params):
    return make(f'type: "{kind}" bottom: "x" top: "y" convolution_param {{ {params} }}')


@pytest.mark.parametrize("i,k,s,p,d", [(7, 3, 1, 0, 1), (7, 3, 2, 1, 1), (9, 3, 2, 2, 2),
                                       (227, 11, 4, 0, 1), (500, 3, 1, 100, 1), (10, 5, 3, 1, 2)])
def test_output_sizes(i, k, s, p, d):
    params = f"num_output: 6 kernel_size: {k} stride: {s} pad: {p} dilation: {d} group: 2"
    c = conv("Convolution", params).output_shapes([(1, 4, i, i + 1)])
    assert c == [(1, 6, (i + 2 * p - (d * (k - 1) + 1)) // s + 1, (i + 1 + 2 * p - (d * (k - 1) + 1)) // s + 1)]
    dc = conv("Deconvolution", params).output_shapes([(1, 4, i, i + 1)])
    assert dc == [(1, 6, s * (i - 1) + d * (k - 1) + 1 - 2 * p, s * i + d * (k - 1) + 1 - 2 * p)]


def test_fsrcnn_deconvolution_size():
    # FSRCNN: k9 s3 p4 gives 3*in - 2
    layer = conv("Deconvolution", "num_output: 1 kernel_size: 9 stride: 3 pad: 4")
    assert layer.output_shapes([(1, 56, 7, 7)]) == [(1, 1, 19, 19)]
    assert layer.param_shapes([(1, 56, 7, 7)]) == [(56, 1, 9, 9), (1,)]


def test_convolution_values_group_dilation():
    layer = conv("Convolution", "num_output: 4 kernel_size: 3 stride: 2 pad: 1 dilation: 2 group: 2")
    x = rand(2, 4, 7, 6)
    shapes = layer.param_shapes([x.shape])
    assert shapes == [(4, 2, 3, 3), (4,)]
    w, b = rand(*shapes[0], seed=1), rand(*shapes[1], seed=2)
    want = ref.convolution(x, w, b, (2, 2), (1, 1), (2, 2), 2)
    assert layer.output_shapes([x.shape]) == [want.shape]
    np.testing.assert_allclose(run(layer, x, blobs=[w, b]), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("params,stride,pad,dil,group", [
    ("num_output: 4 kernel_size: 3 stride: 2 pad: 1 dilation: 2 group: 2", (2, 2), (1, 1), (2, 2), 2),
    ("num_output: 3 kernel_h: 4 kernel_w: 3 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 0 bias_term: false",
     (2, 3), (1, 0), (1, 1), 1),
    ("num_output: 4 kernel_size: 4 stride: 2 group: 4 bias_term: false", (2, 2), (0, 0), (1, 1), 4),
])
def test_deconvolution_values_scatter_add(params, stride, pad, dil, group):
    layer = conv("Deconvolution", params)
    x = rand(2, 4, 5, 4)
    shapes = layer.param_shapes([x.shape])
    blobs = [rand(*s, seed=i + 1) for i, s in enumerate(shapes)]
    w = blobs[0]
    b = blobs[1] if len(blobs) > 1 else None
    want = ref.deconvolution(x, w, b, stride, pad, dil, group)
    assert layer.output_shapes([x.shape]) == [want.shape]
    np.testing.assert_allclose(run(layer, x, blobs=blobs), want, rtol=1e-5, atol=1e-5)


def test_coord_maps():
    c = conv("Convolution", "num_output: 1 kernel_size: 11 stride: 4 pad: 100").coord_map()
    assert c == CoordMap.make(("0.25", "0.25"), ("23.75", "23.75"))  # (100 - 5) / 4
    c = conv("Convolution", "num_output: 1 kernel_size: 3 dilation: 2 pad: 1").coord_map()
    assert c == CoordMap.make((1, 1), (-1, -1))  # k_eff 5: 1 - 2
    d = conv("Deconvolution", "num_output: 1 kernel_size: 64 stride: 32 bias_term: false").coord_map()
    assert d == CoordMap.make((32, 32), ("31.5", "31.5"))
    d = conv("Deconvolution", "num_output: 1 kernel_h: 9 kernel_w: 4 stride_h: 3 stride_w: 2 pad_h: 4 pad_w: 1").coord_map()
    assert d == CoordMap.make((3, 2), (0, "0.5"))
    # a deconvolution undoes the convolution with the same parameters
    p = "num_output: 1 kernel_size: 4 stride: 2 pad: 1"
    assert conv("Convolution", p).coord_map().then(conv("Deconvolution", p).coord_map()).is_identity()


def test_flops_match_flop_counter():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = rand(2, 6, 9, 8)
    for kind, params in [("Convolution", "num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2"),
                         ("Deconvolution", "num_output: 4 kernel_h: 3 kernel_w: 2 stride: 2 group: 2")]:
        layer = conv(kind, params)
        mod = layer.build_module([x.shape])
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            mod(torch.from_numpy(x))
        assert layer.flops([x.shape], layer.output_shapes([x.shape])) == fc.get_total_flops(), kind


def test_bad_parameters():
    with pytest.raises(NetDefinitionError, match="layer 'l' \\(Deconvolution.*num_output"):
        conv("Deconvolution", "kernel_size: 2")
    with pytest.raises(ShapeError, match="'l'"):
        conv("Deconvolution", "num_output: 2 kernel_size: 2 pad: 3").output_shapes([(1, 1, 2, 2)])
    with pytest.raises(ShapeError, match="divisible"):
        conv("Deconvolution", "num_output: 2 kernel_size: 2 group: 2").output_shapes([(1, 3, 2, 2)])
