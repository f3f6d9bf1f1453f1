"""The zoo's FCNs against the real Caffe files they follow: same layers (names, types,
order, kernels, strides, pads, groups, bottoms), apart from the documented differences
(8 bands, 2 classes, group-wise bilinear upsampling, fillers, Input/Softmax ends)."""

from __future__ import annotations

import pytest

from fcnkit import zoo
from fcnkit.graph import load_net

FCN = "fcn_berkeleyvision"
DIGITS = "digits_nvidia/examples/semantic-segmentation"


def _geometry(lp):
    if lp.type in ("Convolution", "Deconvolution"):
        p = lp.convolution_param
        return (list(p.kernel_size), list(p.stride) or [1], list(p.pad) or [0], p.group)
    if lp.type == "Pooling":
        p = lp.pooling_param
        return (p.pool, p.kernel_size, p.stride)
    if lp.type == "Crop":
        return (lp.crop_param.axis, list(lp.crop_param.offset))
    if lp.type == "LRN":
        p = lp.lrn_param
        return (p.local_size, round(p.alpha, 8), p.beta)
    return ()


def _compute_layers(path, stages=()):
    net = load_net(path, phase="TEST", stages=stages, allow_unsupported=True)
    keep = [n.param for n in net.layers
            if n.role == "compute" and n.type not in ("Power",) and n.layer.type != "Python"]
    return keep


@pytest.mark.parametrize("name, ref, stages", [
    ("fcn8s_8band", f"{FCN}/voc-fcn8s/deploy.prototxt", ()),
    ("fcn16s_8band", f"{FCN}/voc-fcn16s/val.prototxt", ()),
    ("fcn32s_8band", f"{FCN}/voc-fcn32s/val.prototxt", ()),
    ("fcn_alexnet_8band", f"{DIGITS}/fcn_alexnet.prototxt", ("deploy",)),
])
def test_zoo_fcn_follows_the_reference_net(data_dir, name, ref, stages):
    theirs = _compute_layers(data_dir / ref, stages)
    mine = [lp for lp in load_net(zoo.build(name, phase="train_val"), phase="TEST").param.layer
            if lp.type not in ("Input", "SoftmaxWithLoss", "Accuracy", "Dropout")]
    theirs = [lp for lp in theirs if lp.type not in ("SoftmaxWithLoss", "Accuracy", "Dropout")]
    assert [lp.name for lp in mine] == [lp.name for lp in theirs]
    for a, b in zip(mine, theirs):
        assert a.type == b.type, a.name
        bottoms_a = ["data" if x == "data" else x for x in a.bottom]
        bottoms_b = ["data" if x == "data_preprocessed" else x for x in b.bottom]
        assert bottoms_a == bottoms_b, a.name
        ga, gb = _geometry(a), _geometry(b)
        if a.type == "Deconvolution":           # documented: group-wise bilinear (group = classes)
            ga, gb = ga[:3], gb[:3]
            assert a.convolution_param.group == a.convolution_param.num_output == 2
        assert ga == gb, a.name
