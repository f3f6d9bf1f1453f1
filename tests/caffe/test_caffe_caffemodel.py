"""Binary caffemodel reading and writing (fcnkit.caffe.caffemodel) and blob helpers."""

from __future__ import annotations

import gzip
import os
import random

import numpy as np
import pytest
from tests.caffe.caffe_testdata import (data_file, data_files, data_id, key, ld, packed_floats, shape,
                            string, unpacked_doubles, unpacked_floats, v2_layer, varint, vint)

from fcnkit.caffe import (CaffeModel, array_to_blob, blob_to_array, caffe_pb2, read_caffemodel,
                          read_prototxt, write_caffemodel)
from fcnkit.errors import CaffeFormatError, FcnkitError, UpgradeError, WeightsError

CAFFEMODELS = data_files(".caffemodel")


def _root(array: np.ndarray):
    """The object at the bottom of an array's ``.base`` chain."""
    obj = array
    while isinstance(obj, np.ndarray) and obj.base is not None:
        obj = obj.base
    # np.frombuffer keeps a memoryview of the buffer it was given.
    return obj.obj if isinstance(obj, memoryview) else obj


def _write(tmp_path, data: bytes, name: str = "m.caffemodel"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- every real file ------------------------------------------------------------------------

@pytest.mark.parametrize("path", CAFFEMODELS, ids=data_id)
def test_every_caffemodel_loads(path):
    model = read_caffemodel(path)
    assert isinstance(model, CaffeModel)
    assert model.path == str(path)
    assert len(model.net.layers) == 0 and len(model.net.layer) > 0
    assert all(len(layer.blobs) == 0 for layer in model.net.layer)
    names = {layer.name for layer in model.net.layer}
    assert model.blobs and set(model.blobs) <= names
    for name, arrays in model.blobs.items():
        assert len(model.dtypes[name]) == len(arrays)
        for array in arrays:
            assert array.dtype == np.float32
            assert np.isfinite(array).all()


def _reference_blobs(path):
    """Layer name -> BlobProtos, parsed by protobuf itself (V0 layers keep blobs inside)."""
    net = caffe_pb2.NetParameter()
    net.ParseFromString(path.read_bytes())
    out = {}
    for layer in net.layer:
        out[layer.name] = list(layer.blobs)
    for layer in net.layers:
        if layer.HasField("layer"):
            out[layer.layer.name] = list(layer.layer.blobs)
        else:
            out[layer.name] = list(layer.blobs)
    return {name: blobs for name, blobs in out.items() if blobs}


@pytest.mark.parametrize("path", CAFFEMODELS, ids=data_id)
def test_every_caffemodel_matches_protobuf(path):
    """The hand-written wire walker agrees with protobuf's own parser, blob for blob."""
    model = read_caffemodel(path)
    reference = _reference_blobs(path)
    assert set(model.blobs) == set(reference)
    for name, blobs in reference.items():
        assert len(model.blobs[name]) == len(blobs)
        for mine, blob in zip(model.blobs[name], blobs):
            expected = blob_to_array(blob)
            assert mine.shape == expected.shape
            np.testing.assert_array_equal(mine, expected)


@pytest.mark.parametrize("path", CAFFEMODELS, ids=data_id)
def test_every_caffemodel_round_trips(path, tmp_path):
    first = read_caffemodel(path)
    out = tmp_path / "copy.caffemodel"
    write_caffemodel(out, first.net, first.blobs)
    second = read_caffemodel(out)
    assert second.net == first.net
    assert second.source_format == "V2"
    assert set(second.blobs) == set(first.blobs)
    for name, arrays in first.blobs.items():
        assert [a.shape for a in second.blobs[name]] == [a.shape for a in arrays]
        for a, b in zip(arrays, second.blobs[name]):
            np.testing.assert_array_equal(a, b)
    # What fcnkit writes is plain protobuf: protobuf reads it back to the same values.
    check = caffe_pb2.NetParameter()
    check.ParseFromString(out.read_bytes())
    for layer in check.layer:
        for a, blob in zip(first.blobs.get(layer.name, []), layer.blobs):
            np.testing.assert_array_equal(blob_to_array(blob), a)


# --- specific facts -------------------------------------------------------------------------

def test_cifar10_v1_caffemodel_with_legacy_dims():
    model = read_caffemodel(data_file("cifar10quick_ikkichung/cifar10_quick_iter_5000.caffemodel"))
    assert model.source_format == "V1"
    by_name = {layer.name: layer for layer in model.net.layer}
    assert by_name["conv1"].type == "Convolution"
    assert by_name["ip1"].type == "InnerProduct"
    conv1_w, conv1_b = model.blobs["conv1"]
    assert conv1_w.shape == (32, 3, 5, 5)
    assert conv1_b.shape == (1, 1, 1, 32)  # legacy 4-D kept as stored
    ip1_w, ip1_b = model.blobs["ip1"]
    assert ip1_w.shape == (1, 1, 64, 1024)
    assert ip1_w.reshape(64, 1024).shape == (64, 1024)
    assert ip1_b.shape == (1, 1, 1, 64)
    assert model.blobs["ip2"][0].shape == (1, 1, 10, 64)
    assert model.dtypes["ip1"] == ["float32", "float32"]
    assert float(np.abs(ip1_w).sum()) > 0


def test_resnet50_batch_norm_has_three_blobs_with_unit_scale_factor():
    model = read_caffemodel(data_file("resnet50_stem_htshinichi/test.caffemodel"))
    mean, var, factor = model.blobs["bn_conv1"]
    assert mean.shape == (64,) and var.shape == (64,) and factor.shape == (1,)
    assert factor[0] == 1.0
    assert (var > 0).all()
    assert model.blobs["conv1"][0].shape == (64, 3, 7, 7)
    assert [b.shape for b in model.blobs["scale_conv1"]] == [(64,), (64,)]


def test_fsrcnn_deconvolution_blob_layout():
    model = read_caffemodel(data_file(
        "fsrcnn_espcn_wangxuewen99/fsrcnn_snapshot_iter_2546000.caffemodel"))
    weight, bias = model.blobs["deconv"]
    assert weight.shape == (56, 1, 9, 9)
    assert bias.shape == (1,)
    assert model.blobs["prelu1"][0].shape == (56,)


def test_lenet_caffemodel_matches_its_deploy_prototxt():
    model = read_caffemodel(data_file("lenet_ahmdtaha/lenet_iter_10000.caffemodel"))
    net = read_prototxt(data_file("lenet_ahmdtaha/mnist_deploy.prototxt")).param
    assert model.blobs["ip1"][0].shape == (500, 800)
    assert model.blobs["ip2"][0].shape == (10, 500)
    deploy = {layer.name for layer in net.layer}
    assert {"conv1", "conv2", "ip1", "ip2"} <= deploy


# --- hand-built files: encodings ------------------------------------------------------------

VALUES = [0.5, -1.25, 3.0, 1e-3, -7.5, 2.0]


def test_packed_and_unpacked_floats_agree(tmp_path):
    packed = shape([2, 3]) + packed_floats(5, VALUES)
    unpacked = shape([2, 3]) + unpacked_floats(5, VALUES)
    # Old writers may also interleave: some values, another field, the rest.
    split = unpacked_floats(5, VALUES[:2]) + shape([2, 3]) + unpacked_floats(5, VALUES[2:])
    data = (v2_layer("p", "InnerProduct", [packed]) + v2_layer("u", "InnerProduct", [unpacked])
            + v2_layer("s", "InnerProduct", [split]))
    model = read_caffemodel(_write(tmp_path, data))
    expected = np.array(VALUES, np.float32).reshape(2, 3)
    for name in "pus":
        np.testing.assert_array_equal(model.blobs[name][0], expected)
        assert model.dtypes[name] == ["float32"]
    assert _root(model.blobs["p"][0]) is not None
    assert model.blobs["u"][0].flags.c_contiguous


def test_double_data_is_converted_to_float32(tmp_path):
    packed = shape([6]) + packed_floats(8, VALUES, "<d")
    unpacked = shape([3, 2]) + unpacked_doubles(8, VALUES)
    # Caffe prefers double_data when both are present.
    both = shape([6]) + packed_floats(5, [9.0] * 6) + packed_floats(8, VALUES, "<d")
    data = (v2_layer("d", "Scale", [packed]) + v2_layer("u", "Scale", [unpacked])
            + v2_layer("b", "Scale", [both]))
    model = read_caffemodel(_write(tmp_path, data))
    np.testing.assert_array_equal(model.blobs["d"][0], np.array(VALUES, np.float32))
    np.testing.assert_array_equal(model.blobs["u"][0], np.array(VALUES, np.float32).reshape(3, 2))
    np.testing.assert_array_equal(model.blobs["b"][0], np.array(VALUES, np.float32))
    assert model.blobs["d"][0].dtype == np.float32
    assert model.dtypes == {"d": ["float64"], "u": ["float64"], "b": ["float64"]}


def test_fp16_and_other_raw_data(tmp_path):
    half = np.array(VALUES, np.float16)
    fp16 = shape([2, 3]) + vint(10, caffe_pb2.BlobProto.FLOAT16) + ld(12, half.tobytes())
    fp32 = shape([6]) + vint(10, caffe_pb2.BlobProto.FLOAT) + ld(
        12, np.array(VALUES, "<f4").tobytes())
    ints = (shape([3]) + vint(10, caffe_pb2.BlobProto.INT)
            + ld(12, np.array([1, -2, 3], "<i4").tobytes()))
    data = (v2_layer("h", "Convolution", [fp16]) + v2_layer("f", "Convolution", [fp32])
            + v2_layer("i", "Convolution", [ints]))
    model = read_caffemodel(_write(tmp_path, data))
    np.testing.assert_array_equal(model.blobs["h"][0], half.astype(np.float32).reshape(2, 3))
    np.testing.assert_array_equal(model.blobs["f"][0], np.array(VALUES, np.float32))
    np.testing.assert_array_equal(model.blobs["i"][0], np.array([1, -2, 3], np.float32))
    assert model.dtypes == {"h": ["float16"], "f": ["float32"], "i": ["int32"]}
    assert all(a.dtype == np.float32 for arrays in model.blobs.values() for a in arrays)


def test_raw_data_without_type_is_refused(tmp_path):
    blob = shape([2]) + ld(12, np.zeros(2, np.float16).tobytes())
    with pytest.raises(WeightsError, match="raw_data_type"):
        read_caffemodel(_write(tmp_path, v2_layer("x", "Scale", [blob])))


def test_legacy_dims_win_over_shape_and_scalars(tmp_path):
    legacy = (vint(1, 1) + vint(2, 1) + vint(3, 2) + vint(4, 3) + shape([6])
              + packed_floats(5, VALUES))
    scalar = packed_floats(5, [4.0])
    empty_shape = shape([]) + packed_floats(5, [2.0])
    data = v2_layer("l", "InnerProduct", [legacy, scalar, empty_shape])
    model = read_caffemodel(_write(tmp_path, data))
    a, b, c = model.blobs["l"]
    assert a.shape == (1, 1, 2, 3)
    assert b.shape == () and float(b) == 4.0
    assert c.shape == () and float(c) == 2.0


def test_v0_binary_layers_hold_blobs_in_the_v0_message(tmp_path):
    blob = vint(1, 1) + vint(2, 1) + vint(3, 2) + vint(4, 3) + packed_floats(5, VALUES)
    v0 = string(1, "fc") + string(2, "innerproduct") + vint(3, 2) + ld(50, blob) + ld(50, shape(
        [2]) + packed_floats(5, [1.0, 2.0]))
    v1 = ld(1, v0) + string(2, "data") + string(3, "fc")
    relu = ld(1, string(1, "relu") + string(2, "relu")) + string(2, "fc") + string(3, "fc")
    data = string(1, "v0net") + string(3, "data") + b"".join(vint(4, d) for d in (1, 1, 1, 3)) \
        + ld(2, v1) + ld(2, relu)
    model = read_caffemodel(_write(tmp_path, data))
    assert model.source_format == "V0"
    assert [(layer.name, layer.type) for layer in model.net.layer] == [
        ("input", "Input"), ("fc", "InnerProduct"), ("relu", "ReLU")]
    assert model.net.layer[1].inner_product_param.num_output == 2
    weight, bias = model.blobs["fc"]
    assert weight.shape == (1, 1, 2, 3)
    np.testing.assert_array_equal(bias, [1.0, 2.0])
    assert not model.net.layer[1].blobs


def test_v1_binary_with_net_inputs_gets_an_input_layer(tmp_path):
    conv = (string(4, "conv") + vint(5, caffe_pb2.V1LayerParameter.CONVOLUTION)
            + string(2, "data") + string(3, "conv")
            + ld(6, shape([1, 1, 1, 1]) + packed_floats(5, [2.0])))
    data = string(3, "data") + b"".join(vint(4, d) for d in (1, 1, 5, 5)) + ld(2, conv)
    model = read_caffemodel(_write(tmp_path, data))
    assert model.source_format == "V1"
    assert model.net.layer[0].type == "Input"
    assert list(model.net.layer[0].input_param.shape[0].dim) == [1, 1, 5, 5]
    assert model.net.layer[1].type == "Convolution"
    assert model.blobs["conv"][0].shape == (1, 1, 1, 1)


def test_layers_without_blobs_are_not_in_blobs_but_stay_in_net(tmp_path):
    data = v2_layer("relu", "ReLU", []) + v2_layer("ip", "InnerProduct",
                                                   [shape([1]) + packed_floats(5, [1.0])])
    model = read_caffemodel(_write(tmp_path, data))
    assert [layer.name for layer in model.net.layer] == ["relu", "ip"]
    assert list(model.blobs) == ["ip"]


# --- hand-built files: errors ---------------------------------------------------------------

def test_truncated_caffemodel_names_offset_and_layer(tmp_path):
    full = data_file("resnet50_stem_htshinichi/test.caffemodel").read_bytes()
    path = _write(tmp_path, full[: len(full) * 2 // 3])
    with pytest.raises(CaffeFormatError) as info:
        read_caffemodel(path)
    message = str(info.value)
    assert message.startswith(f"{path}: truncated caffemodel")
    assert "byte" in message and "layer #" in message
    assert "'conv1'" in message or "'bn_conv1'" in message or "'scale_conv1'" in message
    assert "cut short" in message


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _top_level_field_ends(data: bytes) -> list[tuple[int, int]]:
    """(field number, end offset) of each top-level field of a serialised NetParameter,
    read with the protobuf wire format (protobuf docs, "Encoding"), independently of
    fcnkit's reader."""
    i, out = 0, []
    while i < len(data):
        tag, i = _varint(data, i)
        wire = tag & 7
        if wire == 0:
            _, i = _varint(data, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            assert wire == 2, f"unexpected wire type {wire}"
            n, i = _varint(data, i)
            i += n
        out.append((tag >> 3, i))
    return out


def test_truncation_anywhere_gives_a_clean_error(tmp_path):
    """A file cut inside a field is an error; a file cut exactly after a top-level field is
    a valid, shorter net, and then exactly the layers before the cut load (a reader that
    silently dropped a truncated last layer would load a prefix at a cut inside it)."""
    source = data_file("fsrcnn_espcn_wangxuewen99/fsrcnn_snapshot_iter_2546000.caffemodel")
    full = source.read_bytes()
    names = [layer.name for layer in read_caffemodel(source).net.layer]
    ends = _top_level_field_ends(full)
    layers_before = {end: sum(1 for num, e in ends if num in (2, 100) and e <= end)
                     for _, end in ends}
    assert sum(1 for num, _ in ends if num == 100) == len(names)  # a V2 file: one field per layer
    path = tmp_path / "cut.caffemodel"
    cuts = sorted(set(range(1, 64)) | set(range(64, len(full), 211)) | set(layers_before))
    loaded = 0
    for cut in cuts:
        path.write_bytes(full[:cut])
        try:
            model = read_caffemodel(path)
        except (CaffeFormatError, WeightsError):
            assert cut not in layers_before, f"a cut between fields ({cut}) is a valid net"
            continue
        assert cut in layers_before, f"a cut inside a field ({cut} bytes) loaded"
        assert [layer.name for layer in model.net.layer] == names[: layers_before[cut]]
        loaded += 1
    assert loaded == len(layers_before)


def test_corrupted_bytes_never_escape_as_raw_exceptions(tmp_path):
    source = data_file("lenet_ahmdtaha/lenet_iter_10000.caffemodel")
    full = bytearray(source.read_bytes())
    names = [layer.name for layer in read_caffemodel(source).net.layer]
    rng = random.Random(0)
    path = tmp_path / "bad.caffemodel"
    for _ in range(60):
        damaged = bytearray(full)
        for _ in range(3):
            damaged[rng.randrange(0, 2000)] = rng.randrange(256)
        path.write_bytes(bytes(damaged))
        try:
            model = read_caffemodel(path)
        except FcnkitError:
            continue
        got = [layer.name for layer in model.net.layer]
        assert got == names[: len(got)], f"a damaged file loaded other layers: {got}"


def test_html_page_saved_as_caffemodel(tmp_path):
    page = (b"\n<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>"
            b"<body>gone</body></html>")
    with pytest.raises(CaffeFormatError) as info:
        read_caffemodel(_write(tmp_path, page))
    assert "this looks like an HTML page, not a caffemodel; the download probably failed" \
        in str(info.value)


def test_text_prototxt_given_as_caffemodel(tmp_path):
    text = data_file("lenet_ahmdtaha/mnist_deploy.prototxt").read_bytes()
    with pytest.raises(CaffeFormatError, match="text prototxt, not a binary caffemodel"):
        read_caffemodel(_write(tmp_path, text, "lenet.caffemodel"))


@pytest.mark.parametrize("content, expected", [
    (b"", "empty"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n", "Git LFS"),
    (gzip.compress(b"\n\x03net", mtime=0), "gzip"),  # mtime 0: the same bytes (and test id) in every xdist worker
    (b"\x89HDF\r\n\x1a\n" + bytes(32), "HDF5"),
    (b"PK\x03\x04" + bytes(32), "zip"),
    (b"<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>", "XML"),
    (bytes([0x07, 0x00, 0x01, 0x02]), "not a valid caffemodel"),
    (bytes([0x0A, 0xFF, 0xFF]), "truncated"),
])
def test_other_non_caffemodels(tmp_path, content, expected):
    with pytest.raises(CaffeFormatError, match=expected):
        read_caffemodel(_write(tmp_path, content))


def test_missing_file(tmp_path):
    with pytest.raises(CaffeFormatError, match="not found"):
        read_caffemodel(tmp_path / "absent.caffemodel")


def test_absurd_shape_names_the_layer(tmp_path):
    blob = shape([100000, 100000, 100000]) + packed_floats(5, [1.0, 2.0])
    with pytest.raises(WeightsError) as info:
        read_caffemodel(_write(tmp_path, v2_layer("fc6", "InnerProduct", [blob])))
    message = str(info.value)
    assert "absurdly large" in message and "'fc6'" in message and "blob 0" in message


def test_shape_count_mismatch(tmp_path):
    blob = shape([2, 3]) + packed_floats(5, [1.0] * 5)
    with pytest.raises(WeightsError, match=r"'conv1'.*\(2, 3\) \(6 values\) but holds 5"):
        read_caffemodel(_write(tmp_path, v2_layer("conv1", "Convolution", [blob])))


def test_negative_dimension(tmp_path):
    blob = ld(7, ld(1, varint(-2) + varint(3))) + packed_floats(5, [1.0] * 6)
    with pytest.raises(WeightsError, match="negative"):
        read_caffemodel(_write(tmp_path, v2_layer("c", "Convolution", [blob])))


def test_blob_without_shape(tmp_path):
    with pytest.raises(WeightsError, match="declares no shape"):
        read_caffemodel(_write(tmp_path, v2_layer("c", "Scale", [packed_floats(5, [1.0, 2.0])])))


def test_duplicate_layer_names_with_blobs(tmp_path):
    blob = shape([1]) + packed_floats(5, [1.0])
    data = v2_layer("same", "Scale", [blob]) + v2_layer("same", "Scale", [blob])
    with pytest.raises(WeightsError, match="two layers named 'same'"):
        read_caffemodel(_write(tmp_path, data))


def test_mixed_layer_and_layers_in_binary(tmp_path):
    data = v2_layer("a", "ReLU", []) + ld(2, string(4, "b") + vint(5, 18))
    with pytest.raises(UpgradeError, match="mixes"):
        read_caffemodel(_write(tmp_path, data))


def test_corrupt_blob_inside_a_whole_layer(tmp_path):
    # The blob says its packed data is 400 bytes, but the blob itself is shorter.
    blob = shape([100]) + key(5, 2) + varint(400) + b"\x00" * 8
    with pytest.raises(CaffeFormatError, match=r"blob 0 of layer #0 'c' is corrupt"):
        read_caffemodel(_write(tmp_path, v2_layer("c", "Scale", [blob])))


# --- big file: every array owns its memory ---------------------------------------------------

def test_large_caffemodel_arrays_own_their_memory(tmp_path):
    net = caffe_pb2.NetParameter(name="big")
    blobs = {}
    rng = np.random.default_rng(0)
    for i, shp in enumerate([(1024, 9216), (512, 4096), (64, 3, 11, 11)]):
        layer = net.layer.add(name=f"l{i}", type="InnerProduct" if len(shp) == 2 else "Convolution")
        blobs[layer.name] = [rng.standard_normal(shp, dtype=np.float32),
                             np.arange(shp[0], dtype=np.float64)]
    path = tmp_path / "big.caffemodel"
    write_caffemodel(path, net, blobs)
    size = os.path.getsize(path)
    assert size > 45_000_000

    model = read_caffemodel(path)
    arrays = [a for name in blobs for a in model.blobs[name]]
    roots = [_root(a) for a in arrays]
    # one allocation per blob, nothing of the file behind it (what compile_net hands to torch
    # without a copy: float32, C-contiguous, aligned, writable)
    assert len({id(r) for r in roots}) == len(arrays)
    assert all(isinstance(r, np.ndarray) and r.flags.owndata and r.nbytes == a.nbytes
               for r, a in zip(roots, arrays))
    assert all(a.flags.c_contiguous and a.flags.aligned and a.flags.writeable
               and a.dtype == np.float32 for a in arrays)
    assert sum(a.nbytes for a in arrays) > 0.99 * size
    for name, arrays_in in blobs.items():
        for written, read in zip(arrays_in, model.blobs[name]):
            np.testing.assert_array_equal(read, written.astype(np.float32))


# --- writer ---------------------------------------------------------------------------------

def _small_net():
    net = caffe_pb2.NetParameter(name="small")
    net.layer.add(name="data", type="Input").top.append("data")
    ip = net.layer.add(name="ip", type="InnerProduct", bottom=["data"], top=["ip"])
    ip.inner_product_param.num_output = 2
    return net


def test_writer_refuses_blobs_for_unknown_layers(tmp_path):
    path = tmp_path / "w.caffemodel"
    with pytest.raises(WeightsError, match="ghost, phantom"):
        write_caffemodel(path, _small_net(), {"ip": [np.zeros((2, 3))],
                                              "phantom": [np.zeros(1)], "ghost": []})
    assert not path.exists()


def test_writer_failure_leaves_nothing_behind(tmp_path):
    path = tmp_path / "w.caffemodel"
    with pytest.raises(WeightsError, match="not numeric"):
        write_caffemodel(path, _small_net(), {"ip": [np.array(["a", "b"])]})
    assert list(tmp_path.iterdir()) == []


def test_writer_checks_blob_lists_and_generation(tmp_path):
    with pytest.raises(WeightsError, match="list of arrays"):
        write_caffemodel(tmp_path / "w.caffemodel", _small_net(), {"ip": np.zeros(3)})
    v1 = caffe_pb2.NetParameter()
    v1.layers.add(name="x")
    with pytest.raises(CaffeFormatError, match="V1"):
        write_caffemodel(tmp_path / "w.caffemodel", v1, {})


def test_writer_converts_dtypes_and_keeps_embedded_blobs(tmp_path):
    net = _small_net()
    net.layer[0].blobs.add().CopyFrom(array_to_blob(np.array([7.0], np.float32)))
    weight = np.arange(6, dtype=np.float64).reshape(2, 3)
    bias = np.array([1, 2], dtype=np.int64)
    path = tmp_path / "w.caffemodel"
    write_caffemodel(path, net, {"ip": [weight, bias]})
    model = read_caffemodel(path)
    np.testing.assert_array_equal(model.blobs["ip"][0], weight.astype(np.float32))
    np.testing.assert_array_equal(model.blobs["ip"][1], [1.0, 2.0])
    np.testing.assert_array_equal(model.blobs["data"][0], [7.0])
    assert model.net.layer[1].inner_product_param.num_output == 2


# --- in-memory helpers ----------------------------------------------------------------------

def test_blob_helpers_round_trip_and_legacy_rules():
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    blob = array_to_blob(array)
    assert list(blob.shape.dim) == [2, 3, 4]
    np.testing.assert_array_equal(blob_to_array(blob), array)

    legacy = caffe_pb2.BlobProto(num=1, channels=1, height=2, width=3)
    legacy.double_data.extend(VALUES)
    out = blob_to_array(legacy)
    assert out.shape == (1, 1, 2, 3) and out.dtype == np.float32

    bad = caffe_pb2.BlobProto()
    bad.shape.dim.extend([4])
    bad.data.extend([1.0, 2.0])
    with pytest.raises(WeightsError, match="holds 2 values"):
        blob_to_array(bad, "blob 0 of layer 'x'")
    with pytest.raises(WeightsError, match="not a numeric"):
        array_to_blob(np.array(["x"]))
