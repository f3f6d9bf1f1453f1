"""The NetSpec DSL: keyword mapping, naming, in-place layers, errors, and a real FCN file
reproduced field for field (crop offsets computed, not typed)."""

from __future__ import annotations

import pytest

from fcnkit import caffe
from fcnkit.caffe import caffe_pb2
from fcnkit.errors import NetDefinitionError, OffsetError
from fcnkit.netspec import L, NetSpec, P, param_fields

FCN_PARAM = [dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)]


def _layer(net, name):
    return next(lp for lp in net.layer if lp.name == name)


def test_keywords_go_to_the_type_param_then_to_the_layer():
    n = NetSpec("k")
    n.data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    n.conv = L.Convolution(n.data, num_output=4, kernel_size=3, pad=[1], param=FCN_PARAM,
                           weight_filler=dict(type="msra"), exclude=dict(stage="deploy"))
    n.up = L.Deconvolution(n.conv, num_output=4, kernel_size=4, stride=2, group=4,
                           bias_term=False, param=dict(lr_mult=0))
    n.pool = L.Pooling(n.conv, pool=P.Pooling.AVE, kernel_size=2, stride=2)
    n.loss = L.SoftmaxWithLoss(n.conv, n.data, ignore_label=255, axis=1, loss_weight=2)
    net = n.to_proto()
    conv = _layer(net, "conv")
    assert (list(conv.convolution_param.pad), list(conv.convolution_param.kernel_size)) == ([1], [3])
    assert conv.convolution_param.weight_filler.type == "msra"
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1, 1), (2, 0)]
    assert conv.exclude[0].stage == ["deploy"]
    up = _layer(net, "up")
    assert up.convolution_param.group == 4 and up.convolution_param.bias_term is False
    assert [p.lr_mult for p in up.param] == [0]
    assert _layer(net, "pool").pooling_param.pool == caffe_pb2.PoolingParameter.AVE
    loss = _layer(net, "loss")
    # ignore_label lives in loss_param, axis in softmax_param, loss_weight in the layer
    assert loss.loss_param.ignore_label == 255 and loss.softmax_param.axis == 1
    assert list(loss.loss_weight) == [2.0]
    assert param_fields("SoftmaxWithLoss") == ("softmax_param", "loss_param")
    assert param_fields("InnerProduct") == ("inner_product_param",)
    assert param_fields("Split") == ()


def test_names_in_place_several_tops_and_autonames():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 4, 4]))
    n.conv1 = L.Convolution(n.data, num_output=2, kernel_size=1)
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    a, b = L.Slice(n.relu1, axis=1, ntop=2)
    n.first = a
    n.out = L.Eltwise(a, b)
    n.extra = L.Convolution(L.Pooling(n.data, kernel_size=2), num_output=1, kernel_size=1)
    net = n.to_proto()
    assert [lp.name for lp in net.layer] == ["data", "conv1", "relu1", "first", "out",
                                             "Pooling1", "extra"]
    relu = _layer(net, "relu1")
    assert (list(relu.bottom), list(relu.top)) == (["conv1"], ["conv1"])
    assert list(_layer(net, "first").top) == ["first", "Slice1"]
    assert list(_layer(net, "out").bottom) == ["first", "Slice1"]
    assert list(_layer(net, "extra").bottom) == ["Pooling1"]


def test_roundtrip_through_prototxt_text():
    n = NetSpec("rt")
    n.data = L.Input(shape=dict(dim=[1, 8, 32, 32]))
    n.bn = L.BatchNorm(n.data, batch_norm_param=dict(use_global_stats=True))
    n.sc = L.Scale(n.bn, bias_term=True, in_place=True)
    n.drop = L.Dropout(n.sc, dropout_ratio=0.2, in_place=True, include=dict(phase="TRAIN"))
    net = n.to_proto()
    again = caffe.parse_prototxt(caffe.format_prototxt(net)).param
    assert again == net


@pytest.mark.parametrize("make, message", [
    (lambda n: L.Convolution(n.data, num_output=2, kernal_size=3), "did you mean 'kernel_size'"),
    (lambda n: L.Pooling(n.data, pool="MAXIMUM"), "expected one of MAX, AVE, STOCHASTIC"),
    (lambda n: L.Convolution(n.data, num_output=[2, 3]), "holds one value"),
    (lambda n: L.Convolution(n.data, weight_filler="msra"), "given as a dict"),
])
def test_bad_keywords_are_clear_errors(make, message):
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 4, 4]))
    n.bad = make(n)
    with pytest.raises(NetDefinitionError, match=message) as e:
        n.to_proto()
    assert "layer 'bad'" in str(e.value)


def test_reading_a_blob_after_an_in_place_overwrite_is_refused():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 4, 4]))
    n.conv = L.Convolution(n.data, num_output=2, kernel_size=1)
    n.relu = L.ReLU(n.conv, in_place=True)
    n.stale = L.Pooling(n.conv, kernel_size=2)      # Caffe would see the rectified values
    with pytest.raises(NetDefinitionError, match="before the in-place ReLU layer 'relu'"):
        n.to_proto()


def test_naming_conflicts_are_refused():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 4, 4]))
    top = L.ReLU(n.data)
    n.a = top
    with pytest.raises(NetDefinitionError, match="already named 'a'"):
        n.b = top
    with pytest.raises(NetDefinitionError, match="already assigned"):
        n.a = L.ReLU(n.data)
    n.c = L.ReLU(n.data, name="a")
    with pytest.raises(NetDefinitionError, match="layer name 'a' is used twice"):
        n.to_proto()


def test_crop_auto_and_center():
    # conv pad 3, kernel 3: offset O = 3 - 1 = 2, so the crop back to the input is 2;
    # a 2x2/2 pooling then a 3x3/2 deconvolution are half a pixel off: no exact offset.
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 16, 16]))
    n.conv = L.Convolution(n.data, num_output=1, kernel_size=3, pad=3)
    n.crop = L.Crop(n.conv, n.data, axis=2, offset="auto")
    assert list(_layer(n.to_proto(), "crop").crop_param.offset) == [2]
    n.pool = L.Pooling(n.data, pool="MAX", kernel_size=2, stride=2)
    n.up = L.Deconvolution(n.pool, num_output=1, kernel_size=3, stride=2)
    n.tu = L.Crop(n.up, n.data, axis=2, offset="auto")
    with pytest.raises(OffsetError, match="layer 'tu'.*0.5, not an integer"):
        n.to_proto()
    n2 = NetSpec()
    n2.data = L.Input(shape=dict(dim=[1, 1, 16, 21]))
    n2.pool = L.Pooling(n2.data, pool="MAX", kernel_size=2, stride=2)
    n2.up = L.Deconvolution(n2.pool, num_output=1, kernel_size=5, stride=2)  # 8x11 -> 19x25
    n2.tu = L.Crop(n2.up, n2.data, axis=2, offset="center")
    assert list(_layer(n2.to_proto(), "tu").crop_param.offset) == [1, 2]   # (19-16)//2, (25-21)//2
    n2.bad = L.Crop(n2.data, n2.up, axis=2, offset="center")
    with pytest.raises(OffsetError, match="smaller than the reference"):
        n2.to_proto()


def _official_fcn8s_with_the_dsl() -> caffe_pb2.NetParameter:
    """voc-fcn8s/deploy.prototxt (fcn.berkeleyvision.org) written with the DSL, with
    every field the file sets, and the three crop offsets left to be computed."""
    n = NetSpec()
    n.data = L.Input(name="input", shape=dict(dim=[1, 3, 500, 500]))
    x = n.data
    for stage, convs, ch in ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)):
        for j in range(1, convs + 1):
            pad = 100 if (stage, j) == (1, 1) else 1
            n[f"conv{stage}_{j}"] = L.Convolution(x, param=FCN_PARAM, num_output=ch, pad=pad,
                                                  kernel_size=3, stride=1)
            n[f"relu{stage}_{j}"] = x = L.ReLU(n[f"conv{stage}_{j}"], in_place=True)
        n[f"pool{stage}"] = x = L.Pooling(x, pool="MAX", kernel_size=2, stride=2)
    for name, k in (("fc6", 7), ("fc7", 1)):
        n[name] = L.Convolution(x, param=FCN_PARAM, num_output=4096, pad=0, kernel_size=k, stride=1)
        n["relu" + name[2:]] = x = L.ReLU(n[name], in_place=True)

    def score(bottom, name):
        n[name] = L.Convolution(bottom, param=FCN_PARAM, num_output=21, pad=0, kernel_size=1)
        return n[name]

    def up(bottom, name, k, s):
        n[name] = L.Deconvolution(bottom, param=dict(lr_mult=0), num_output=21, bias_term=False,
                                  kernel_size=k, stride=s)
        return n[name]

    up2 = up(score(x, "score_fr"), "upscore2", 4, 2)
    n.score_pool4c = L.Crop(score(n.pool4, "score_pool4"), up2, axis=2, offset="auto")
    n.fuse_pool4 = L.Eltwise(up2, n.score_pool4c, operation="SUM")
    up4 = up(n.fuse_pool4, "upscore_pool4", 4, 2)
    n.score_pool3c = L.Crop(score(n.pool3, "score_pool3"), up4, axis=2, offset="auto")
    n.fuse_pool3 = L.Eltwise(up4, n.score_pool3c, operation="SUM")
    n.score = L.Crop(up(n.fuse_pool3, "upscore8", 16, 8), n.data, axis=2, offset="auto")
    return n.to_proto()


def test_dsl_reproduces_the_official_fcn8s_deploy_net(data_dir):
    official = caffe.read_prototxt(data_dir / "fcn_berkeleyvision" / "voc-fcn8s" / "deploy.prototxt").param
    built = _official_fcn8s_with_the_dsl()
    assert [lp.name for lp in built.layer] == [lp.name for lp in official.layer]
    for mine, theirs in zip(built.layer, official.layer):
        assert mine == theirs, f"layer {theirs.name} differs"
    crops = {lp.name: list(lp.crop_param.offset) for lp in built.layer if lp.type == "Crop"}
    assert crops == {"score_pool4c": [5], "score_pool3c": [9], "score": [31]}
