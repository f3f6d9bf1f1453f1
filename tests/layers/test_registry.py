"""The registry as a whole: importing it needs no torch, every compute type builds a torch
module that torch.fx can trace and torch.onnx (dynamo) can export, coordinate maps
compose to the known FCN crop offsets, bad parameters name the layer."""

import subprocess
import sys

import numpy as np
import pytest

import fcnkit.layers as L
from fcnkit.errors import NetDefinitionError
from fcnkit.layers import IDENTITY, NoCoordMap

from ._util import make, rand

X = (2, 4, 6, 6)

# (layer text, bottom shapes, bottom kinds: "f" float, "lN" integer labels in [0, N))
CASES = [
    ('type: "Convolution" convolution_param { num_output: 4 kernel_size: 3 pad: 1 group: 2 }', [X], "f"),
    ('type: "Deconvolution" convolution_param { num_output: 2 kernel_size: 4 stride: 2 pad: 1 }', [X], "f"),
    ('type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }', [X], "f"),
    ('type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 1 pad: 2 }', [X], "f"),
    ('type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }', [X], "f"),
    ('type: "Pooling" pooling_param { pool: AVE kernel_size: 2 stride: 2 }', [(2, 4, 7, 7)], "f"),
    ('type: "Pooling" pooling_param { pool: MAX kernel_size: 1 stride: 3 }', [(2, 4, 5, 5)], "f"),
    ('type: "Pooling" pooling_param { pool: STOCHASTIC kernel_size: 2 stride: 2 }', [X], "f"),
    ('type: "Pooling" pooling_param { pool: AVE global_pooling: true }', [X], "f"),
    ('type: "InnerProduct" inner_product_param { num_output: 3 }', [X], "f"),
    ('type: "Embed" embed_param { num_output: 3 input_dim: 4 }', [(2, 5)], "l4"),
    ('type: "ReLU" relu_param { negative_slope: 0.1 }', [X], "f"),
    ('type: "PReLU"', [X], "f"),
    ('type: "ELU"', [X], "f"),
    ('type: "Sigmoid"', [X], "f"),
    ('type: "TanH"', [X], "f"),
    ('type: "AbsVal"', [X], "f"),
    ('type: "BNLL"', [X], "f"),
    ('type: "Power" power_param { power: 2 scale: 0.5 shift: 2 }', [X], "f"),
    ('type: "Exp" exp_param { base: 2 }', [X], "f"),
    ('type: "Log" log_param { shift: 2 }', [X], "f"),
    ('type: "Threshold" threshold_param { threshold: 0.1 }', [X], "f"),
    ('type: "Clip" clip_param { min: 0.2 max: 0.1 }', [X], "f"),
    ('type: "Swish" swish_param { beta: 1.5 }', [X], "f"),
    ('type: "Dropout"', [X], "f"),
    ('type: "LRN" lrn_param { local_size: 3 alpha: 0.1 }', [X], "f"),
    ('type: "LRN" lrn_param { local_size: 3 alpha: 0.1 norm_region: WITHIN_CHANNEL }', [X], "f"),
    ('type: "BatchNorm"', [X], "f"),
    ('type: "Scale" scale_param { bias_term: true }', [X], "f"),
    ('type: "Scale" scale_param { axis: 0 }', [X, (2, 4)], "ff"),
    ('type: "Bias"', [X], "f"),
    ('type: "Eltwise" eltwise_param { coeff: 1 coeff: -1 }', [X, X], "ff"),
    ('type: "Eltwise" eltwise_param { operation: MAX }', [X, X], "ff"),
    ('type: "Concat"', [X, (2, 3, 6, 6)], "ff"),
    ('type: "Slice" top: "b" slice_param { slice_point: 1 }', [X], "f"),
    ('type: "Crop" crop_param { offset: 1 }', [X, (2, 4, 3, 4)], "ff"),
    ('type: "Flatten"', [X], "f"),
    ('type: "Reshape" reshape_param { shape { dim: 0 dim: -1 dim: 3 } }', [X], "f"),
    ('type: "Softmax"', [X], "f"),
    ('type: "ArgMax" argmax_param { top_k: 2 out_max_val: true }', [X], "f"),
    ('type: "ArgMax" argmax_param { axis: 1 }', [X], "f"),
    ('type: "MVN"', [X], "f"),
    ('type: "Reduction" reduction_param { operation: MEAN axis: 1 }', [X], "f"),
    ('type: "Tile" tile_param { axis: 2 tiles: 2 }', [X], "f"),
    ('type: "SoftmaxWithLoss" top: "prob" loss_param { ignore_label: 3 }', [X, (2, 6, 6)], "fl4"),
    ('type: "SigmoidCrossEntropyLoss" loss_param { ignore_label: 0 }', [X, X], "fl2"),
    ('type: "EuclideanLoss"', [X, X], "ff"),
    ('type: "Accuracy" top: "per_class" accuracy_param { top_k: 2 }', [X, (2, 6, 6)], "fl4"),
    # Caffe-fork types (fcnkit/layers/forks): their *_param are extensions, [caffe.name] in
    # protobuf's own text syntax
    ('type: "Pooling" top: "mask" pooling_param { pool: MAX kernel_size: 2 stride: 2 }', [X], "f"),
    ('type: "Normalize" [caffe.norm_param] { across_spatial: false channel_shared: false }', [X], "f"),
    ('type: "Normalize"', [X], "f"),
    ('type: "Permute" [caffe.permute_param] { order: 0 order: 2 order: 3 order: 1 }', [X], "f"),
    ('type: "PriorBox" [caffe.prior_box_param] { min_size: 4 max_size: 8 aspect_ratio: 2 }',
     [X, (2, 3, 24, 24)], "ff"),
    ('type: "BN" [caffe.segnet_bn_param] { bn_mode: INFERENCE }', [X], "f"),
    ('type: "BN" [caffe.bn_param] { frozen: true }', [X], "f"),
    ('type: "Upsample" [caffe.upsample_param] { scale: 2 }', [X, X], "fl144"),
    ('type: "Interp" [caffe.interp_param] { zoom_factor: 2 pad_beg: -1 }', [X], "f"),
    ('type: "Interp" [caffe.interp_param] { height: 5 width: 9 }', [X], "f"),
    ('type: "SpatialDropout"', [X], "f"),
    ('type: "ROIPooling" [caffe.roi_pooling_param] { pooled_h: 2 pooled_w: 2 spatial_scale: 0.5 }',
     [X, (3, 5)], "ff"),
]
#: Compiled (eager) and called as a leaf module by compiled nets, but neither traced by
#: torch.fx nor exported: a loop over a data-dependent number of regions.
NOT_TRACED = {"ROIPooling"}


def _kinds(spec):
    out, i = [], 0
    while i < len(spec):
        if spec[i] == "f":
            out.append(None)
            i += 1
        else:
            j = i + 1
            while j < len(spec) and spec[j].isdigit():
                j += 1
            out.append(int(spec[i + 1:j]))
            i = j
    return out


def _build(text, shapes, kinds):
    bottoms = "".join(f' bottom: "b{i}"' for i in range(len(shapes)))
    layer = make(f'{text}{bottoms} top: "t"')
    arrays = []
    for i, (s, k) in enumerate(zip(shapes, _kinds(kinds))):
        if k is None:
            arrays.append(rand(*s, seed=i, low=-2, high=2))
        else:
            arrays.append(np.random.default_rng(i).integers(0, k, size=s).astype(np.float32))
    return layer, arrays


def test_import_needs_no_torch():
    code = ("import sys, fcnkit.layers as L; L.registered_types(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_type_is_covered_and_documented():
    types = set(L.registered_types())
    tested = {t.split('"')[1] for t, _, _ in CASES}
    inputs = {t for t in types if L.get(t).role == "input"}
    # Python: a data source without bottoms (fcn.berkeleyvision.org's data layers)
    assert inputs == {"Input", "Data", "ImageData", "MemoryData", "HDF5Data", "DummyData", "WindowData",
                      "Python"}
    postprocess = {t for t in types if L.get(t).role == "postprocess"}
    assert postprocess == {"DetectionOutput"}  # not compiled: SSD's NMS
    assert types - inputs - postprocess - {"Split", "Silence"} == tested
    for t in types:
        cls = L.get(t)
        doc = __import__(cls.__module__, fromlist=["_"]).__doc__
        assert "src/caffe/layers/" in doc, t


@pytest.mark.parametrize("text,shapes,kinds", CASES, ids=[c[0].split('"')[1] for c in CASES])
def test_fx_trace_matches_eager(text, shapes, kinds):
    import torch
    import torch.fx

    layer, arrays = _build(text, shapes, kinds)
    if layer.type in NOT_TRACED:
        pytest.skip(f"{layer.type} loops over data-dependent regions (a leaf module)")
    tops = layer.output_shapes(shapes)
    mod = layer.build_module(shapes).eval()
    xs = [torch.from_numpy(a) for a in arrays]
    class One(torch.nn.Module):  # as in a compiled net: torch.nn modules stay leaves
        def __init__(self):
            super().__init__()
            self.layer = mod

        def forward(self, a):
            return self.layer(a)

    class Two(One):
        def forward(self, a, b):
            return self.layer(a, b)

    with torch.no_grad():
        eager = mod(*xs)
        traced = torch.fx.symbolic_trace(One() if len(xs) == 1 else Two())
        again = traced(*xs)
    eager = eager if isinstance(eager, tuple) else (eager,)
    again = again if isinstance(again, tuple) else (again,)
    assert [tuple(t.shape) for t in eager] == [tuple(s) for s in tops]
    for a, b in zip(eager, again):
        torch.testing.assert_close(a, b)
    named = dict(mod.named_parameters(recurse=False)) | dict(mod.named_buffers(recurse=False))
    assert set(layer.param_names()) <= set(named)


def test_batch_norm_train_mode_traces():
    import torch
    import torch.fx

    layer, (x,) = _build('type: "BatchNorm"', [X], "f")
    mod = layer.build_module([X]).train()
    traced = torch.fx.symbolic_trace(mod)
    traced(torch.from_numpy(x))
    assert float(traced.scale_factor) == 1.0
    # eval: the statistics are read at run time, not baked in at trace time
    mod = layer.build_module([X]).eval()
    traced = torch.fx.symbolic_trace(mod)
    with torch.no_grad():
        traced.running_mean.fill_(1.0)
        traced.running_var.fill_(3.0)
    torch.testing.assert_close(traced(torch.from_numpy(x)), (torch.from_numpy(x) - 1) / (3 + 1e-5) ** 0.5)
    multi = make('type: "Deconvolution" bottom: "a" bottom: "b" top: "c" top: "d" '
                 'convolution_param { num_output: 2 kernel_size: 2 stride: 2 }')
    mod = multi.build_module([X, X])

    class Parent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.up = mod

        def forward(self, a, b):
            return self.up(a, b)

    a, b = torch.from_numpy(x), torch.from_numpy(x[:, :, :3])
    for got, single in zip(torch.fx.symbolic_trace(Parent())(a, b), (a, b)):
        torch.testing.assert_close(got, torch.nn.functional.conv_transpose2d(single, mod.weight, mod.bias, 2))


def test_onnx_export_of_all_modules():
    """One dynamo export (opset 18) holding every compute module, checked with onnxruntime."""
    import torch

    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    mods, inputs, slots = torch.nn.ModuleList(), [], []
    for text, shapes, kinds in CASES:
        layer, arrays = _build(text, shapes, kinds)
        if layer.type in NOT_TRACED:
            continue
        mods.append(layer.build_module(shapes))
        slots.append((len(inputs), len(arrays)))
        inputs += arrays

    class All(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mods = mods

        def forward(self, *xs):
            out = []
            for m, (start, n) in zip(self.mods, slots):
                y = m(*xs[start:start + n])
                out += list(y) if isinstance(y, tuple) else [y]
            return tuple(out)

    model = All().eval()
    xs = tuple(torch.from_numpy(a) for a in inputs)
    with torch.no_grad():
        want = model(*xs)
    program = torch.onnx.export(model, xs, dynamo=True, opset_version=18, verbose=False)
    session = ort.InferenceSession(program.model_proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    got = session.run(None, dict(zip(names, inputs)))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-4, atol=1e-5)


def _chain(texts):
    m = IDENTITY
    for t in texts:
        m = m.then(make(t + ' bottom: "x" top: "y"').coord_map())
    return m


def conv_t(k, s=1, p=0, kind="Convolution", n=1):
    return f'type: "{kind}" convolution_param {{ num_output: {n} kernel_size: {k} stride: {s} pad: {p} }}'


def pool_t(k, s):
    return f'type: "Pooling" pooling_param {{ kernel_size: {k} stride: {s} }}'


def test_fcn32s_crop_offset_is_19():
    vgg = [conv_t(3, p=100), "RELU", conv_t(3, p=1), pool_t(2, 2)]
    for n in (2, 3, 3, 3):
        vgg += [conv_t(3, p=1)] * n + [pool_t(2, 2)]
    vgg += [conv_t(7), 'type: "Dropout"', conv_t(1), conv_t(1),
            conv_t(64, 32, kind="Deconvolution")]
    m = _chain([t if t != "RELU" else 'type: "ReLU"' for t in vgg])
    assert m.factor == (1, 1) and m.offset == (19, 19)
    crop = make('type: "Crop" bottom: "a" bottom: "b" top: "c" crop_param { offset: 19 }')
    assert m.then(crop.coord_map()).is_identity()


def test_fcn_alexnet_crop_offset_is_18():
    texts = [conv_t(11, 4, 100), 'type: "LRN"', pool_t(3, 2), conv_t(5, p=2), pool_t(3, 2),
             conv_t(3, p=1), conv_t(3, p=1), conv_t(3, p=1), pool_t(3, 2),
             conv_t(6), conv_t(1), conv_t(1), conv_t(63, 32, kind="Deconvolution")]
    m = _chain(texts)
    assert m.factor == (1, 1) and m.offset == (18, 18)


def test_no_coord_map_reasons():
    for text in ['type: "InnerProduct" inner_product_param { num_output: 1 }', 'type: "Flatten"',
                 'type: "Pooling" pooling_param { global_pooling: true }']:
        with pytest.raises(NoCoordMap) as e:
            make(text + ' bottom: "x" top: "y"').coord_map()
        assert str(e.value)


def test_bad_parameter_names_the_layer():
    p = make('type: "Input" top: "x"').param
    p.name, p.type = "fc7", "InnerProduct"
    with pytest.raises(NetDefinitionError, match="layer 'fc7' \\(InnerProduct, line 12\\): .*num_output"):
        L.get("InnerProduct")(p, line=12)
