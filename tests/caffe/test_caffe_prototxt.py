"""Net prototxt reading, upgrading, writing and error messages (fcnkit.caffe.prototxt)."""

from __future__ import annotations

import pytest
from tests.caffe.caffe_testdata import data_file, data_files, data_id

from fcnkit.caffe import (NetSource, caffe_pb2, format_prototxt, parse_prototxt, read_prototxt,
                          write_prototxt)
from fcnkit.caffe.linescan import scan_blocks
from fcnkit.errors import CaffeFormatError, UpgradeError

PROTOTXTS = data_files(".prototxt")


# --- every real file ------------------------------------------------------------------------

@pytest.mark.parametrize("path", PROTOTXTS, ids=data_id)
def test_every_prototxt_loads_as_v2(path):
    src = read_prototxt(path)
    assert isinstance(src, NetSource)
    net = src.param
    assert len(net.layer) > 0
    assert len(net.layers) == 0
    assert not net.input and not net.input_dim and not net.input_shape
    assert all(layer.type for layer in net.layer)
    assert len(src.layer_lines) == len(net.layer)
    assert src.path == str(path)
    assert src.source_format in ("V0", "V1", "V2")
    # Every known line points at the start of that layer's block.
    text_lines = path.read_text().splitlines()
    for layer, line in zip(net.layer, src.layer_lines):
        if line is None:
            assert layer.type == "Input" and layer.name == "input"
        else:
            assert text_lines[line - 1].lstrip().startswith(("layer", "layers"))


@pytest.mark.parametrize("path", PROTOTXTS, ids=data_id)
def test_every_prototxt_round_trips(path, tmp_path):
    first = read_prototxt(path)
    out = tmp_path / "net.prototxt"
    write_prototxt(out, first.param, header=f"from {data_id(path)}\nsecond line")
    text = out.read_text()
    assert text.startswith(f"# from {data_id(path)}\n# second line\n")
    second = read_prototxt(out)
    assert second.param == first.param
    assert second.source_format == "V2"
    assert second.upgrades == []
    assert None not in second.layer_lines


# --- specific facts -------------------------------------------------------------------------

def test_v1_alexnet_deploy_upgrades():
    src = read_prototxt(data_file("bvlc_caffe/v1_layers_enum/models/bvlc_alexnet/deploy.prototxt"))
    net = src.param
    assert src.source_format == "V1"
    assert net.layer[0].name == "input" and net.layer[0].type == "Input"
    assert list(net.layer[0].top) == ["data"]
    assert list(net.layer[0].input_param.shape[0].dim) == [10, 3, 227, 227]
    assert src.layer_lines[0] is None
    types = [layer.type for layer in net.layer[1:]]
    assert set(types) == {"Convolution", "ReLU", "LRN", "Pooling", "InnerProduct", "Dropout",
                          "Softmax"}
    assert types[:4] == ["Convolution", "ReLU", "LRN", "Pooling"]
    conv1 = net.layer[1]
    assert [(p.lr_mult, p.decay_mult) for p in conv1.param] == [(1, 1), (2, 0)]
    assert list(conv1.convolution_param.kernel_size) == [11]
    assert conv1.convolution_param.num_output == 96
    conv2 = next(layer for layer in net.layer if layer.name == "conv2")
    assert conv2.convolution_param.group == 2
    assert src.layer_lines[1] == 7
    assert any("V1 -> V2" in note for note in src.upgrades)
    assert any("Input layer" in note for note in src.upgrades)


def test_v0_lenet_upgrades():
    src = read_prototxt(data_file("bvlc_caffe/v0_legacy/examples/lenet/lenet.prototxt"))
    net = src.param
    assert src.source_format == "V0"
    assert [layer.type for layer in net.layer] == [
        "Input", "Convolution", "Pooling", "Convolution", "Pooling", "InnerProduct", "ReLU",
        "InnerProduct", "Softmax"]
    assert [layer.name for layer in net.layer][1:3] == ["conv1", "pool1"]
    assert list(net.layer[0].input_param.shape[0].dim) == [64, 1, 28, 28]
    conv1 = net.layer[1]
    cp = conv1.convolution_param
    assert cp.num_output == 20 and list(cp.kernel_size) == [5] and list(cp.stride) == [1]
    assert cp.weight_filler.type == "xavier" and cp.bias_filler.type == "constant"
    assert [p.lr_mult for p in conv1.param] == [1, 2]
    assert list(conv1.bottom) == ["data"] and list(conv1.top) == ["conv1"]
    pool1 = net.layer[2].pooling_param
    assert pool1.kernel_size == 2 and pool1.stride == 2
    assert pool1.HasField("pool") and pool1.pool == caffe_pb2.PoolingParameter.MAX
    ip1 = net.layer[5]
    assert ip1.inner_product_param.num_output == 500
    assert list(net.layer[6].bottom) == ["ip1"] and list(net.layer[6].top) == ["ip1"]
    assert src.layer_lines[:3] == [None, 8, 27]


def test_v1_prediction_example_keeps_phase_rules_and_transform():
    src = read_prototxt(data_file("cifar10quick_ikkichung/prediction_example.prototxt"))
    net = src.param
    by_name = {layer.name: layer for layer in net.layer}
    assert by_name["data"].type == "ImageData"
    assert by_name["data"].transform_param.mean_file.endswith("mean.binaryproto")
    assert by_name["loss"].type == "SoftmaxWithLoss"
    assert by_name["argmax"].type == "ArgMax" and by_name["argmax"].argmax_param.top_k == 5
    assert by_name["accuracy"].include[0].phase == caffe_pb2.TEST
    # `layers` followed by `{` on the next line is still found.
    assert src.line_of("argmax") is not None
    text = data_file("cifar10quick_ikkichung/prediction_example.prototxt").read_text()
    assert text.splitlines()[src.line_of("argmax") - 1].strip() == "layers"


def test_input_dim_and_colon_brace_syntax():
    src = read_prototxt(data_file(
        "digits_nvidia/examples/semantic-segmentation/fcn_alexnet.deploy.prototxt"))
    assert list(src.param.layer[0].input_param.shape[0].dim) == [1, 3, 500, 356]
    deconv = [layer for layer in src.param.layer if layer.type == "Deconvolution"]
    assert deconv and deconv[0].convolution_param.group == 21


def test_upgrade_false_returns_the_file_as_parsed():
    path = data_file("bvlc_caffe/v1_layers_enum/models/bvlc_alexnet/deploy.prototxt")
    src = read_prototxt(path, upgrade=False)
    assert src.source_format == "V1"
    assert len(src.param.layers) == 23 and len(src.param.layer) == 0
    assert list(src.param.input_dim) == [10, 3, 227, 227]
    assert len(src.layer_lines) == 23 and src.layer_lines[0] == 7
    assert src.upgrades == []


# --- upgrade rules on small nets ------------------------------------------------------------

V0_PADDING = """
name: "padded"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
layers { layer { name: "conv1" type: "conv" num_output: 4 kernelsize: 3 }
         bottom: "pad1" top: "conv1" }
layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.3 kernelsize: 2 }
         bottom: "conv1" top: "conv1" }
layers { layer { name: "data2" type: "data" source: "db" batchsize: 5 meanfile: "m"
                 cropsize: 3 mirror: true scale: 0.5 } top: "x" }
"""


def test_v0_padding_layer_folds_into_next_conv():
    src = parse_prototxt(V0_PADDING, "padded.prototxt")
    names = [layer.name for layer in src.param.layer]
    assert names == ["input", "conv1", "drop", "data2"]
    conv1 = src.param.layer[1]
    assert list(conv1.bottom) == ["data"]
    assert list(conv1.convolution_param.pad) == [2]
    assert src.layer_lines == [None, 6, 8, 10]
    assert any("folded 1 padding" in note for note in src.upgrades)
    # A V0 parameter that does not fit the type is dropped with a warning, as in Caffe.
    assert any(n.startswith("warning:") and "kernelsize" in n for n in src.upgrades)
    assert src.param.layer[2].dropout_param.dropout_ratio == pytest.approx(0.3)
    data2 = src.param.layer[3]
    assert data2.type == "Data"
    assert data2.data_param.source == "db" and data2.data_param.batch_size == 5
    tp = data2.transform_param
    assert (tp.mean_file, tp.crop_size, tp.mirror) == ("m", 3, True)
    assert tp.scale == pytest.approx(0.5)


def test_v0_unknown_type_is_refused():
    text = 'layers { layer { name: "x" type: "magic" } top: "x" }'
    with pytest.raises(UpgradeError, match="type 'magic'") as info:
        parse_prototxt(text, "v0.prototxt")
    assert info.value.line == 1


def test_v1_data_transformation_fields_move_to_transform_param():
    text = """
layers { name: "d" type: DATA top: "data"
         data_param { source: "lmdb" batch_size: 2 scale: 0.0039 mean_file: "mean"
                      mirror: true crop_size: 9 } }
layers { name: "w" type: WINDOW_DATA top: "w" window_data_param { source: "s" scale: 2 } }
"""
    src = parse_prototxt(text)
    d = src.param.layer[0]
    assert d.type == "Data"
    assert not d.data_param.HasField("scale") and not d.data_param.HasField("mean_file")
    assert d.transform_param.scale == pytest.approx(0.0039)
    assert (d.transform_param.mean_file, d.transform_param.mirror,
            d.transform_param.crop_size) == ("mean", True, 9)
    assert src.param.layer[1].transform_param.scale == 2
    assert any("transform_param" in note for note in src.upgrades)


def test_v1_param_names_share_modes_and_loss_weight():
    text = """
layers { name: "ip" type: INNER_PRODUCT bottom: "a" top: "b"
         param: "w" param: "b" blob_share_mode: PERMISSIVE blobs_lr: 1 blobs_lr: 2
         weight_decay: 1 weight_decay: 0 loss_weight: 0.5
         inner_product_param { num_output: 3 } }
layers { name: "dc" type: DECONVOLUTION bottom: "b" top: "c" }
layers { name: "abs" type: ABSVAL bottom: "c" top: "c" }
layers { name: "sl" type: SOFTMAX_LOSS bottom: "c" bottom: "l" top: "loss" }
"""
    net = parse_prototxt(text).param
    ip = net.layer[0]
    assert [(p.name, p.lr_mult, p.decay_mult) for p in ip.param] == [("w", 1, 1), ("b", 2, 0)]
    assert ip.param[0].share_mode == caffe_pb2.ParamSpec.PERMISSIVE
    assert not ip.param[1].HasField("share_mode")
    assert list(ip.loss_weight) == [0.5]
    assert [layer.type for layer in net.layer] == ["InnerProduct", "Deconvolution", "AbsVal",
                                                  "SoftmaxWithLoss"]


def test_input_shape_and_multiple_inputs():
    text = """
input: "a" input_shape { dim: 1 dim: 2 }
input: "b" input_shape { dim: 3 dim: 4 dim: 5 }
layer { name: "c" type: "Concat" bottom: "a" bottom: "b" top: "c" }
"""
    net = parse_prototxt(text).param
    inp = net.layer[0]
    assert inp.type == "Input" and list(inp.top) == ["a", "b"]
    assert [list(s.dim) for s in inp.input_param.shape] == [[1, 2], [3, 4, 5]]
    assert net.layer[1].name == "c"


def test_input_dims_must_come_in_fours():
    with pytest.raises(UpgradeError, match="4 .*per input"):
        parse_prototxt('input: "a" input_dim: 1 input_dim: 3', "bad.prototxt")


def test_input_without_shape_is_dropped_like_caffe():
    src = parse_prototxt('input: "a"\nlayer { name: "r" type: "ReLU" bottom: "a" top: "b" }')
    assert [layer.name for layer in src.param.layer] == ["r"]
    assert not src.param.input
    assert any("dropped" in note for note in src.upgrades)


def test_batch_norm_with_three_param_specs_gets_zero_lr():
    text = """
layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x"
        param { lr_mult: 1 } param { lr_mult: 1 } param { lr_mult: 1 } }
"""
    src = parse_prototxt(text)
    assert [(p.lr_mult, p.decay_mult) for p in src.param.layer[0].param] == [(0, 0)] * 3
    assert any("BatchNorm" in note for note in src.upgrades)


@pytest.mark.parametrize("ceil, expected", [("false", "FLOOR"), ("true", "CEIL")])
def test_ceil_mode_maps_to_round_mode(ceil, expected):
    text = f"""layer {{ name: "p" type: "Pooling" bottom: "x" top: "y"
  pooling_param {{ pool: MAX kernel_size: 3 stride: 2 ceil_mode: {ceil} }} }}"""
    src = parse_prototxt(text)
    pool = src.param.layer[0].pooling_param
    assert not pool.HasField("ceil_mode")
    assert pool.HasField("round_mode")
    assert caffe_pb2.PoolingParameter.RoundMode.Name(pool.round_mode) == expected
    assert any("ceil_mode" in note and expected in note for note in src.upgrades)
    assert "ceil_mode" not in format_prototxt(src.param)


def test_ceil_mode_contradicting_round_mode_is_refused():
    text = """

layer { name: "p" type: "Pooling" pooling_param { ceil_mode: false round_mode: CEIL } }"""
    with pytest.raises(UpgradeError, match="contradict") as info:
        parse_prototxt(text, "p.prototxt")
    assert info.value.line == 3


def test_mixed_layer_and_layers_is_refused():
    text = """name: "mixed"
layer { name: "a" type: "ReLU" bottom: "x" top: "y" }
layers { name: "b" type: RELU bottom: "y" top: "z" }
"""
    with pytest.raises(UpgradeError, match="mixes") as info:
        parse_prototxt(text, "mixed.prototxt")
    assert "line 2" in str(info.value) and "line 3" in str(info.value)
    assert str(info.value).startswith("mixed.prototxt:")


# --- errors ---------------------------------------------------------------------------------

def test_syntax_error_gives_line_and_column(tmp_path):
    path = tmp_path / "broken.prototxt"
    path.write_text('name: "x"\nlayer {\n  name: "conv1"\n  type: "Convolution"\n'
                    '  convolution_param { num_output: 3\n}\n')
    with pytest.raises(CaffeFormatError) as info:
        read_prototxt(path)
    err = info.value
    assert err.path == str(path)
    assert err.line is not None and err.column is not None
    assert str(err).startswith(f"{path}:{err.line}:{err.column}: ")
    assert "brace" in str(err)


def test_unknown_field_names_it_suggests_and_points():
    text = ('name: "n"\nlayer {\n  name: "conv1"\n  type: "Convolution"\n'
            '  convolution_param { num_output: 3 kernal_size: 3 }\n}\n')
    with pytest.raises(CaffeFormatError) as info:
        parse_prototxt(text, "net.prototxt")
    err = info.value
    message = str(err)
    assert (err.line, err.column) == (5, 37)
    assert message.startswith("net.prototxt:5:37: unknown field 'kernal_size' in "
                              "ConvolutionParameter")
    assert "did you mean 'kernel_size'?" in message
    assert "layer block 'conv1' starting at line 2" in message
    # The source line is quoted with a caret under the column.
    lines = message.splitlines()
    assert lines[1].strip() == "convolution_param { num_output: 3 kernal_size: 3 }"
    assert lines[2].index("^") == lines[1].index("kernal_size")


def test_unknown_enum_value_lists_valid_ones():
    text = 'layer { name: "p" type: "Pooling" pooling_param { pool: MAXX } }'
    with pytest.raises(CaffeFormatError, match="unknown value 'MAXX'") as info:
        parse_prototxt(text)
    assert "did you mean MAX?" in str(info.value)
    assert "AVE" in str(info.value)


def test_v1_syntax_inside_v2_layer_gets_a_hint():
    with pytest.raises(CaffeFormatError, match="lr_mult"):
        parse_prototxt('layer { name: "c" type: "Convolution" blobs_lr: 1 }')
    with pytest.raises(CaffeFormatError, match="quoted type name"):
        parse_prototxt('layer { name: "c" type: CONVOLUTION }')


def test_repeated_singular_field_is_an_error_like_caffe():
    with pytest.raises(CaffeFormatError, match="more than once"):
        parse_prototxt('layer { name: "a" name: "b" }')


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(CaffeFormatError, match="not found"):
        read_prototxt(tmp_path / "nope.prototxt")
    binary = tmp_path / "weights.caffemodel"
    binary.write_bytes(b"\n\x05lenet\xa2\x06\x00\x00\x01")
    with pytest.raises(CaffeFormatError, match="binary"):
        read_prototxt(binary)


def test_format_refuses_v1_nets():
    src = read_prototxt(data_file("bvlc_caffe/v1_layers_enum/models/bvlc_alexnet/deploy.prototxt"),
                        upgrade=False)
    with pytest.raises(CaffeFormatError, match="V1"):
        format_prototxt(src.param)


def test_floats_survive_text_round_trip():
    net = caffe_pb2.NetParameter()
    layer = net.layer.add(name="lrn", type="LRN")
    layer.lrn_param.alpha = 0.0001
    layer.lrn_param.beta = 0.75
    again = parse_prototxt(format_prototxt(net)).param
    assert again == net
    assert "alpha: 0.0001" in format_prototxt(net)


# --- line scanner ---------------------------------------------------------------------------

def test_scanner_ignores_braces_in_strings_and_comments():
    text = """# layer { not a layer
name: "a { b"
layer {  # comment with }
  name: "x}"
  param_str: 'it\\'s { tricky'
}
layer: <
  name: "y"
>
layers
# comment between
{
  name: "z"
}
state { phase: TEST }
layer { name: "open"
"""
    blocks = scan_blocks(text)
    assert [(b.keyword, b.line, b.end_line) for b in blocks] == [
        ("layer", 3, 6), ("layer", 7, 9), ("layers", 10, 14), ("state", 15, 15),
        ("layer", 16, None)]
