"""Nets and helpers for the surgery tests.

- :func:`alexnet_shaped`: BVLC's own AlexNet deploy prototxt (read from the shared data
  folder) with fewer channels, so that random weights and forward passes stay cheap; the
  kernels, strides, pads, groups, LRN and pooling are BVLC's.
- :func:`vgg16_classifier`: the VGG16 classifier rebuilt from the voc-fcn8s deploy
  structure (conv1_1 pad 1, fc6/fc7 as InnerProduct 4096, fc8 1000 + Softmax, 224x224).
- :func:`random_blobs`: random weights for every layer of a net.
- :func:`forward`: compile a net with given blobs and return every blob version.
"""

from __future__ import annotations

import numpy as np
import torch

from fcnkit import caffe
from fcnkit.caffe import caffe_pb2
from fcnkit.compile import compile_net
from fcnkit.graph import load_net
from fcnkit.surgery._net import build
from tests.conftest import DATA

ALEXNET = DATA / "bvlc_caffe" / "v2" / "models" / "bvlc_alexnet" / "deploy.prototxt"
CAFFENET = DATA / "bvlc_caffe" / "v2" / "models" / "bvlc_reference_caffenet" / "deploy.prototxt"
FULL_CONV = DATA / "bvlc_caffe" / "v2" / "examples" / "net_surgery" / "bvlc_caffenet_full_conv.prototxt"
DIGITS_FCN = DATA / "digits_nvidia" / "examples" / "semantic-segmentation" / "fcn_alexnet.deploy.prototxt"
FCN8S = DATA / "fcn_berkeleyvision" / "voc-fcn8s" / "deploy.prototxt"
FCN16S = DATA / "fcn_berkeleyvision" / "voc-fcn16s" / "val.prototxt"
FCN32S = DATA / "fcn_berkeleyvision" / "voc-fcn32s" / "val.prototxt"
LENET = DATA / "lenet_ahmdtaha"

SMALL = {"conv1": 8, "conv2": 16, "conv3": 24, "conv4": 24, "conv5": 16,
         "fc6": 32, "fc7": 32, "fc8": 10}


def alexnet_shaped(interior_pad: bool = True, widths: dict | None = None) -> caffe_pb2.NetParameter:
    """BVLC AlexNet deploy with small widths. ``interior_pad=False`` sets pad 0 in
    conv2..conv5 (for exact sliding-window equivalence, which zero padding inside the
    window breaks)."""
    param = caffe.read_prototxt(ALEXNET).param
    widths = {**SMALL, **(widths or {})}
    for lp in param.layer:
        if lp.name in widths:
            if lp.type == "Convolution":
                lp.convolution_param.num_output = widths[lp.name]
                if not interior_pad and lp.name != "conv1":
                    del lp.convolution_param.pad[:]
            elif lp.type == "InnerProduct":
                lp.inner_product_param.num_output = widths[lp.name]
    return param


def vgg16_classifier() -> caffe_pb2.NetParameter:
    """VGG16 (ILSVRC classifier layout) from the voc-fcn8s deploy structure."""
    fcn = caffe.read_prototxt(FCN8S).param
    net = caffe_pb2.NetParameter()
    net.name = "VGG_ILSVRC_16_layers"
    for lp in fcn.layer:
        if lp.name == "score_fr":
            break
        new = net.layer.add()
        new.CopyFrom(lp)
        if lp.type == "Input":
            del new.input_param.shape[0].dim[:]
            new.input_param.shape[0].dim.extend([1, 3, 224, 224])
        if lp.name == "conv1_1":
            del new.convolution_param.pad[:]
            new.convolution_param.pad.append(1)
        if lp.name in ("fc6", "fc7"):
            new.type = "InnerProduct"
            new.ClearField("convolution_param")
            new.inner_product_param.num_output = 4096
    fc8 = net.layer.add()
    fc8.name, fc8.type = "fc8", "InnerProduct"
    fc8.bottom.append("fc7")
    fc8.top.append("fc8")
    fc8.inner_product_param.num_output = 1000
    prob = net.layer.add()
    prob.name, prob.type = "prob", "Softmax"
    prob.bottom.append("fc8")
    prob.top.append("prob")
    return net


def random_blobs(param, seed: int = 0, bias_scale: float = 0.1) -> dict[str, list[np.ndarray]]:
    """Random weights (normal, std 1/sqrt(fan_in), keeping activations O(1)) for every layer
    with weights."""
    rng = np.random.default_rng(seed)
    b = build(param)
    out = {}
    for node in b.net.layers:
        shapes = b.param_shapes(node.name)
        if not shapes:
            continue
        arrays = []
        for i, s in enumerate(shapes):
            if i == 0:
                fan_in = int(np.prod(s[1:])) if len(s) > 1 else 1
                arrays.append(rng.normal(0, 1 / np.sqrt(fan_in), s).astype(np.float32))
            else:
                arrays.append(rng.normal(0, bias_scale, s).astype(np.float32))
        out[node.name] = arrays
    return out


def forward(param, blobs, x: np.ndarray, input_shapes=None) -> dict[str, np.ndarray]:
    """Every blob version of the compiled net on input ``x`` (numpy float32)."""
    net = load_net(param)
    shapes = input_shapes or {None: tuple(x.shape)}
    compiled = compile_net(net, blobs, shapes)
    values = compiled.run_all(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return {k: v.detach().numpy() for k, v in values.items()}


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b| (the relative error used by the acceptance tests)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))
