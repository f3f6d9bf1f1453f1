"""schemas/caffe.proto: BVLC field numbers and defaults, and the generated module is current."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from fcnkit.caffe import caffe_pb2

ROOT = Path(__file__).resolve().parents[2]
PB2 = ROOT / "fcnkit" / "caffe" / "caffe_pb2.py"

# (message, field) -> number, from CAFFE_FACTS.md (BVLC src/caffe/proto/caffe.proto).
FIELD_NUMBERS = {
    "NetParameter": dict(name=1, layers=2, input=3, input_dim=4, force_backward=5, state=6,
                         debug_info=7, input_shape=8, layer=100),
    "LayerParameter": dict(
        name=1, type=2, bottom=3, top=4, loss_weight=5, param=6, blobs=7, include=8, exclude=9,
        phase=10, propagate_down=11, transform_param=100, loss_param=101, accuracy_param=102,
        argmax_param=103, concat_param=104, contrastive_loss_param=105, convolution_param=106,
        data_param=107, dropout_param=108, dummy_data_param=109, eltwise_param=110,
        exp_param=111, hdf5_data_param=112, hdf5_output_param=113, hinge_loss_param=114,
        image_data_param=115, infogain_loss_param=116, inner_product_param=117, lrn_param=118,
        memory_data_param=119, mvn_param=120, pooling_param=121, power_param=122,
        relu_param=123, sigmoid_param=124, softmax_param=125, slice_param=126, tanh_param=127,
        threshold_param=128, window_data_param=129, python_param=130, prelu_param=131,
        spp_param=132, reshape_param=133, log_param=134, flatten_param=135,
        reduction_param=136, embed_param=137, tile_param=138, batch_norm_param=139,
        elu_param=140, bias_param=141, scale_param=142, input_param=143, crop_param=144,
        parameter_param=145, recurrent_param=146, swish_param=147, clip_param=148),
    "ParamSpec": dict(name=1, share_mode=2, lr_mult=3, decay_mult=4),
    "NetState": dict(phase=1, level=2, stage=3),
    "NetStateRule": dict(phase=1, min_level=2, max_level=3, stage=4, not_stage=5),
    "BlobShape": dict(dim=1),
    "BlobProto": dict(num=1, channels=2, height=3, width=4, data=5, diff=6, shape=7,
                      double_data=8, double_diff=9, raw_data_type=10, raw_data=12),
    "FillerParameter": dict(type=1, value=2, min=3, max=4, mean=5, std=6, sparse=7,
                            variance_norm=8),
    "ConvolutionParameter": dict(num_output=1, bias_term=2, pad=3, kernel_size=4, group=5,
                                 stride=6, weight_filler=7, bias_filler=8, pad_h=9, pad_w=10,
                                 kernel_h=11, kernel_w=12, stride_h=13, stride_w=14, engine=15,
                                 axis=16, force_nd_im2col=17, dilation=18),
    "PoolingParameter": dict(pool=1, kernel_size=2, stride=3, pad=4, kernel_h=5, kernel_w=6,
                             stride_h=7, stride_w=8, pad_h=9, pad_w=10, engine=11,
                             global_pooling=12, round_mode=13),
    "InnerProductParameter": dict(num_output=1, bias_term=2, weight_filler=3, bias_filler=4,
                                  axis=5, transpose=6),
    "LRNParameter": dict(local_size=1, alpha=2, beta=3, norm_region=4, k=5),
    "CropParameter": dict(axis=1, offset=2),
    "EltwiseParameter": dict(operation=1, coeff=2),
    "ConcatParameter": dict(concat_dim=1, axis=2),
    "BatchNormParameter": dict(use_global_stats=1, moving_average_fraction=2, eps=3),
    "ScaleParameter": dict(axis=1, num_axes=2, filler=3, bias_term=4, bias_filler=5),
    "PowerParameter": dict(power=1, scale=2, shift=3),
    "SoftmaxParameter": dict(engine=1, axis=2),
    "FlattenParameter": dict(axis=1, end_axis=2),
    "ReshapeParameter": dict(shape=1, axis=2, num_axes=3),
    "SliceParameter": dict(slice_dim=1, slice_point=2, axis=3),
    "DropoutParameter": dict(dropout_ratio=1),
    "ReLUParameter": dict(negative_slope=1),
    "InputParameter": dict(shape=1),
    "PReLUParameter": dict(filler=1, channel_shared=2),
    "ClipParameter": dict(min=1, max=2),
    "SwishParameter": dict(beta=1),
    "LossParameter": dict(ignore_label=1, normalize=2, normalization=3),
    "V1LayerParameter": dict(
        layer=1, bottom=2, top=3, name=4, type=5, blobs=6, blobs_lr=7, weight_decay=8,
        concat_param=9, convolution_param=10, data_param=11, dropout_param=12,
        hdf5_data_param=13, hdf5_output_param=14, image_data_param=15, infogain_loss_param=16,
        inner_product_param=17, lrn_param=18, pooling_param=19, window_data_param=20,
        power_param=21, memory_data_param=22, argmax_param=23, eltwise_param=24,
        threshold_param=25, dummy_data_param=26, accuracy_param=27, hinge_loss_param=29,
        relu_param=30, slice_param=31, include=32, exclude=33, mvn_param=34, loss_weight=35,
        transform_param=36, tanh_param=37, sigmoid_param=38, softmax_param=39,
        contrastive_loss_param=40, exp_param=41, loss_param=42, param=1001,
        blob_share_mode=1002),
    "V0LayerParameter": dict(name=1, type=2, num_output=3, biasterm=4, pad=7, kernelsize=8,
                             group=9, stride=10, pool=11, blobs=50, blobs_lr=51,
                             weight_decay=52),
}

V1_TYPES = dict(
    ACCURACY=1, BNLL=2, CONCAT=3, CONVOLUTION=4, DATA=5, DROPOUT=6, EUCLIDEAN_LOSS=7, FLATTEN=8,
    HDF5_DATA=9, HDF5_OUTPUT=10, IM2COL=11, IMAGE_DATA=12, INFOGAIN_LOSS=13, INNER_PRODUCT=14,
    LRN=15, MULTINOMIAL_LOGISTIC_LOSS=16, POOLING=17, RELU=18, SIGMOID=19, SOFTMAX=20,
    SOFTMAX_LOSS=21, SPLIT=22, TANH=23, WINDOW_DATA=24, ELTWISE=25, POWER=26,
    SIGMOID_CROSS_ENTROPY_LOSS=27, HINGE_LOSS=28, MEMORY_DATA=29, ARGMAX=30, THRESHOLD=31,
    DUMMY_DATA=32, SLICE=33, MVN=34, ABSVAL=35, SILENCE=36, CONTRASTIVE_LOSS=37, EXP=38,
    DECONVOLUTION=39)


@pytest.mark.parametrize("message", sorted(FIELD_NUMBERS))
def test_field_numbers_match_bvlc(message):
    desc = getattr(caffe_pb2, message).DESCRIPTOR
    numbers = {f.name: f.number for f in desc.fields}
    for name, number in FIELD_NUMBERS[message].items():
        assert numbers.get(name) == number, f"{message}.{name}"
    assert len(set(numbers.values())) == len(numbers)


def test_v1_layer_type_enum():
    enum = caffe_pb2.V1LayerParameter.LayerType
    for name, number in V1_TYPES.items():
        assert enum.Value(name) == number


def test_enums_and_defaults():
    assert caffe_pb2.Phase.Value("TRAIN") == 0 and caffe_pb2.Phase.Value("TEST") == 1
    assert caffe_pb2.NetState().phase == caffe_pb2.TEST
    spec = caffe_pb2.ParamSpec()
    assert (spec.lr_mult, spec.decay_mult) == (1, 1)
    f = caffe_pb2.FillerParameter()
    assert (f.type, f.max, f.std, f.sparse, f.variance_norm) == ("constant", 1, 1, -1, 0)
    assert caffe_pb2.FillerParameter.VarianceNorm.Value("AVERAGE") == 2
    conv = caffe_pb2.ConvolutionParameter()
    assert conv.bias_term and conv.group == 1 and conv.axis == 1
    pool = caffe_pb2.PoolingParameter()
    assert pool.stride == 1 and pool.pool == pool.MAX and pool.round_mode == pool.CEIL
    assert (pool.CEIL, pool.FLOOR, pool.AVE, pool.STOCHASTIC) == (0, 1, 1, 2)
    lrn = caffe_pb2.LRNParameter()
    assert (lrn.local_size, lrn.alpha, lrn.beta, lrn.k) == (5, 1, 0.75, 1)
    assert lrn.norm_region == lrn.ACROSS_CHANNELS and lrn.WITHIN_CHANNEL == 1
    assert caffe_pb2.CropParameter().axis == 2
    assert caffe_pb2.EltwiseParameter().operation == caffe_pb2.EltwiseParameter.SUM
    assert (caffe_pb2.EltwiseParameter.PROD, caffe_pb2.EltwiseParameter.MAX) == (0, 2)
    bn = caffe_pb2.BatchNormParameter()
    assert bn.moving_average_fraction == pytest.approx(0.999) and bn.eps == pytest.approx(1e-5)
    scale = caffe_pb2.ScaleParameter()
    assert (scale.axis, scale.num_axes, scale.bias_term) == (1, 1, False)
    assert caffe_pb2.SoftmaxParameter().axis == 1
    assert caffe_pb2.FlattenParameter().end_axis == -1
    assert caffe_pb2.ReshapeParameter().num_axes == -1
    assert caffe_pb2.DropoutParameter().dropout_ratio == 0.5
    assert caffe_pb2.ConcatParameter().axis == 1
    assert caffe_pb2.InnerProductParameter().bias_term
    assert caffe_pb2.SwishParameter().beta == 1
    loss = caffe_pb2.LossParameter()
    assert loss.normalization == loss.VALID
    assert [loss.FULL, loss.VALID, loss.BATCH_SIZE, loss.NONE] == [0, 1, 2, 3]
    blob = caffe_pb2.BlobProto
    assert [blob.DOUBLE, blob.FLOAT, blob.FLOAT16, blob.INT, blob.UINT] == [0, 1, 2, 3, 4]


def test_every_layer_parameter_message_exists():
    wanted = """Accuracy ArgMax BatchNorm Bias Clip Concat ContrastiveLoss Convolution Crop Data
    Dropout DummyData Eltwise ELU Embed Exp Flatten HDF5Data HDF5Output HingeLoss ImageData
    InfogainLoss InnerProduct Input Log LRN MemoryData MVN Parameter Pooling Power PReLU Python
    Recurrent Reduction ReLU Reshape Scale Sigmoid Softmax SPP Slice Swish TanH Threshold Tile
    WindowData Loss Transformation""".split()
    layer_fields = {f.message_type.name for f in caffe_pb2.LayerParameter.DESCRIPTOR.fields
                    if f.message_type is not None}
    for name in wanted:
        assert f"{name}Parameter" in layer_fields, name
    for name in ("Datum", "BlobProtoVector", "SolverParameter", "SolverState"):
        assert hasattr(caffe_pb2, name)


def test_ceil_mode_fork_field_does_not_collide():
    fields = caffe_pb2.PoolingParameter.DESCRIPTOR.fields_by_name
    assert fields["ceil_mode"].number == 1013
    assert fields["round_mode"].number == 13
    assert fields["ceil_mode"].type == fields["ceil_mode"].TYPE_BOOL


def _serialized_file(path: Path) -> bytes:
    """The FileDescriptorProto bytes a generated module passes to AddSerializedFile."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "AddSerializedFile"):
            return ast.literal_eval(node.args[0])
    raise AssertionError(f"no AddSerializedFile call in {path}")


def test_committed_module_is_generated_from_the_schema(tmp_path):
    pytest.importorskip("grpc_tools", reason="grpcio-tools is not installed, so protoc cannot "
                        "regenerate caffe_pb2.py (pip install grpcio-tools)")
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_caffe_pb2.py"),
                           "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    fresh = _serialized_file(tmp_path / "caffe_pb2.py")
    assert fresh == _serialized_file(PB2), (
        "fcnkit/caffe/caffe_pb2.py is stale: run `python tools/gen_caffe_pb2.py`")
    # ... and that committed file is the module fcnkit imports. (Its DESCRIPTOR cannot be
    # compared byte for byte: upb re-renders float defaults when copying it back to a proto.)
    assert Path(caffe_pb2.__file__).resolve() == PB2.resolve()
    assert descriptor_pb2.FileDescriptorProto.FromString(fresh).name == caffe_pb2.DESCRIPTOR.name


def test_protobuf_bound_covers_the_generated_code():
    m = re.search(r"ValidateProtobufRuntimeVersion\(\s*\S+,\s*(\d+),\s*(\d+),\s*(\d+),",
                  PB2.read_text())
    assert m, "generated module has no runtime version check"
    generated = tuple(int(x) for x in m.groups())
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    bound = next(d for d in deps if d.replace(" ", "").startswith("protobuf>="))
    minimum = tuple(int(x) for x in re.search(r">=\s*([\d.]+)", bound).group(1).split("."))
    assert minimum + (0,) * (3 - len(minimum)) >= generated, (
        f"pyproject.toml says {bound} but caffe_pb2.py needs protobuf >= "
        f"{'.'.join(map(str, generated))}")
