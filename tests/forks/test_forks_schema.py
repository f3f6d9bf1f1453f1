"""The fork schema (schemas/caffe_forks.proto) and fork parameters in prototxt text and in
caffemodels: BVLC files untouched, the forks' field numbers, name resolution, round trips,
and unknown ``*_param`` blocks kept for plugin layer types."""

from __future__ import annotations

import pytest
from google.protobuf import text_format

from fcnkit.caffe import caffe_forks_pb2, caffe_pb2, forks
from fcnkit.caffe.prototxt import format_prototxt, parse_prototxt, read_prototxt
from fcnkit.caffe.wire import encode_length_delimited
from fcnkit.errors import CaffeFormatError, NetDefinitionError
from tests.caffe.caffe_testdata import data_files
from tests.forks._nets import DATA

FIXTURES = sorted(DATA.glob("*.prototxt"))


@pytest.mark.parametrize("path", data_files(".prototxt"), ids=lambda p: p.name)
def test_bvlc_files_reach_protobuf_byte_for_byte(path):
    text = path.read_text(encoding="utf-8-sig")
    assert forks.to_protobuf_text(text) == text


def test_extension_numbers_are_the_forks_and_never_bvlc_fields():
    ext = caffe_forks_pb2.DESCRIPTOR.extensions_by_name
    # weiliu89/caffe (ssd), caffe-segnet, hszhao/PSPNet, py-faster-rcnn caffe.proto
    expected = {"permute_param": 202, "prior_box_param": 203, "detection_output_param": 204,
                "norm_param": 206, "segnet_bn_param": 45, "interp_param": 163,
                "roi_pooling_param": 8266711}
    assert {k: ext[k].number for k in expected} == expected
    bvlc = set(caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_number)
    assert not bvlc & {e.number for e in ext.values()}
    # numbers BVLC already uses are read from binary files by layer type instead
    assert (137, "upsample_param") in forks.BINARY_NUMBERS["Upsample"] and 137 in bvlc
    assert (137, "bn_param") in forks.BINARY_NUMBERS["BN"]


def test_bn_param_resolves_by_the_fields_it_uses():
    net = parse_prototxt(
        'layer { name: "a" type: "BN" bottom: "x" top: "a" bn_param { bn_mode: INFERENCE } }\n'
        'layer { name: "b" type: "BN" bottom: "a" top: "b"\n'
        '  bn_param { slope_filler { type: "constant" value: 1 } frozen: true } }\n'
        'layer { name: "c" type: "BN" bottom: "b" top: "c" bn_param { } }\n', upgrade=False).param
    a, b, c = net.layer
    assert forks.fork_param(a, "segnet_bn_param").bn_mode == caffe_forks_pb2.SegNetBNParameter.INFERENCE
    assert forks.fork_param(b, "bn_param").frozen and forks.fork_param(b, "segnet_bn_param") is None
    assert forks.fork_param(c, "bn_param") is not None   # an empty block is PSPNet's


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixtures_round_trip_through_fork_syntax(path):
    src = read_prototxt(path)
    text = format_prototxt(src.param)
    assert "[caffe." not in text
    again = parse_prototxt(text)
    assert again.param == src.param


def test_lines_and_errors_after_fork_blocks_stay_right():
    text = ('layer { name: "n" type: "Normalize" bottom: "x" top: "n"\n'
            '  norm_param {\n    across_spatial: false\n  }\n  my_own_param {\n    k: 1\n  }\n}\n'
            'layer { name: "c" type: "Convolution" bottom: "n" top: "c"\n'
            '  convolution_param { kernal_size: 3 }\n}\n')
    with pytest.raises(CaffeFormatError) as err:
        parse_prototxt(text)
    assert err.value.line == 10 and "did you mean 'kernel_size'" in str(err.value)
    near_miss = 'layer { name: "c" type: "Convolution" convolutoin_param { num_output: 1 } }'
    with pytest.raises(CaffeFormatError, match="did you mean 'convolution_param'"):
        parse_prototxt(near_miss)


UNKNOWN = '''name: "u"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 2 dim: 2 } } }
layer { name: "t" type: "%s" bottom: "data" top: "t"
  tripler_param {   # a fork's own parameter
    factor: 3
  }
}
'''


def test_unknown_param_is_refused_on_a_builtin_type():
    from fcnkit.graph import load_net

    with pytest.raises(NetDefinitionError, match=r"layer 't' \(ReLU, line 3\).*'tripler_param'"):
        load_net(parse_prototxt(UNKNOWN % "ReLU"))


def test_unknown_param_reaches_a_plugin_layer(monkeypatch):
    """The plugin route for a fork layer with its own ``*_param`` (issue 13 item 6)."""
    import numpy as np
    import torch

    import fcnkit.layers as registry
    from fcnkit.compile import compile_net
    from fcnkit.graph import load_net

    registry.registered_types()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    class Tripler(registry.Layer):  # a user's plugin: reads its block with protobuf's parser
        type = "Tripler"

        def setup(self):
            kept = forks.extra_param(self.param, "tripler_param")
            msg = caffe_pb2.PowerParameter()  # any message with the plugin's fields
            text_format.Parse(kept.text.replace("factor", "scale"), msg)
            self.factor = msg.scale

        def output_shapes(self, bottoms):
            return [bottoms[0]]

        def build_module(self, bottoms):
            factor = self.factor

            class M(torch.nn.Module):
                def forward(self, x):
                    return x * factor
            return M()

    Tripler.__module__ = "my_plugin"
    registry.register(Tripler)
    src = parse_prototxt(UNKNOWN % "Tripler")
    (kept,) = src.param.layer[1].Extensions[forks.extension("extra_param")]
    assert kept.name == "tripler_param" and kept.line == 4
    compiled = compile_net(load_net(src))
    out = compiled(torch.ones(1, 1, 2, 2))["t"]
    np.testing.assert_array_equal(out.numpy(), np.full((1, 1, 2, 2), 3.0))
    assert "tripler_param {" in format_prototxt(src.param)


def _layer_bytes(type_: str, fields: dict[int, bytes]) -> bytes:
    lp = caffe_pb2.LayerParameter(name="l", type=type_)
    return lp.SerializeToString() + b"".join(
        encode_length_delimited(n, payload) for n, payload in fields.items())


def test_binary_fork_params_are_decoded_by_layer_type():
    up = caffe_forks_pb2.UpsampleParameter(scale=3, scale_w=5, pad_out_h=True, upsample_h=7)
    raw = _layer_bytes("Upsample", {137: up.SerializeToString()})
    lp = caffe_pb2.LayerParameter.FromString(raw)
    assert lp.HasField("embed_param")   # BVLC's reading of SegNet's field 137
    forks.resolve_binary(lp, raw)
    assert forks.fork_param(lp, "upsample_param") == up and not lp.HasField("embed_param")

    psp = caffe_forks_pb2.BNParameter(eps=1e-3, frozen=True)
    raw = _layer_bytes("BN", {137: psp.SerializeToString()})
    lp = caffe_pb2.LayerParameter.FromString(raw)
    forks.resolve_binary(lp, raw)
    assert forks.fork_param(lp, "bn_param") == psp and not lp.HasField("embed_param")

    seg = caffe_forks_pb2.SegNetBNParameter(bn_mode=1)
    raw = _layer_bytes("BN", {45: seg.SerializeToString()})
    lp = caffe_pb2.LayerParameter.FromString(raw)
    forks.resolve_binary(lp, raw)
    assert forks.fork_param(lp, "segnet_bn_param") == seg and forks.fork_param(lp, "bn_param") is None

    norm = caffe_forks_pb2.NormalizeParameter(across_spatial=False, eps=1e-6)
    raw = _layer_bytes("Normalize", {149: norm.SerializeToString()})  # OpenCV's number
    lp = caffe_pb2.LayerParameter.FromString(raw)
    forks.resolve_binary(lp, raw)
    assert forks.fork_param(lp, "norm_param") == norm


def test_caffemodel_reader_decodes_fork_numbers(tmp_path):
    from fcnkit.caffe.caffemodel import read_caffemodel

    up = caffe_forks_pb2.UpsampleParameter(upsample_h=9, upsample_w=11)
    layer = _layer_bytes("Upsample", {137: up.SerializeToString()})
    net = caffe_pb2.NetParameter(name="n").SerializeToString() + encode_length_delimited(100, layer)
    path = tmp_path / "segnet.caffemodel"
    path.write_bytes(net)
    model = read_caffemodel(path)
    (lp,) = [lp for lp in model.net.layer if lp.name == "l"]
    assert forks.fork_param(lp, "upsample_param") == up


def test_cli_lists_fork_layers_and_explains_detection_output(capsys):
    from fcnkit.cli.main import main

    assert main(["layers"]) == 0
    out = capsys.readouterr().out
    assert "Normalize (SSD (weiliu89/caffe))" in out and "Upsample (SegNet" in out
    ssd = str(DATA / "ssd_like.prototxt")
    assert main(["compile", ssd]) == 2
    assert "non-maximum suppression" in capsys.readouterr().err
    assert main(["compile", ssd, "--deploy"]) == 0
    assert "mbox_priorbox" in capsys.readouterr().out
