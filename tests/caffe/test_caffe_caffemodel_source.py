"""A caffemodel read through its file mapping (fcnkit.caffe.caffemodel_source) gives the same
bits as the whole file read into memory (the reader's other path, used for pipes, and how
every file was read before), as protobuf's own parser, and, compiled, as the copying path
of compile_net; errors are the same either way.

Truth: the real caffemodels in ../shared/data/caffe (V1 and V2 files), hand-encoded V0 /
double / unpacked / fp16 blobs (tests/caffe/caffe_testdata.py), protobuf's ParseFromString.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch
from tests.caffe.caffe_testdata import (data_file, data_files, data_id, ld, packed_floats, shape,
                                        string, unpacked_doubles, unpacked_floats, v2_layer, vint)

from fcnkit.caffe import blob_to_array, caffe_pb2, read_caffemodel
from fcnkit.caffe.caffemodel_source import open_source
from fcnkit.compile import compile_net
from fcnkit.errors import CaffeFormatError, LimitError
from fcnkit.graph import load_net
from fcnkit.limits import set_memory_limit

CAFFEMODELS = data_files(".caffemodel")


def _through_pipe(data: bytes, read):
    """``read("/dev/fd/N")`` where N is the read end of a pipe fed ``data`` by a thread: a
    file that cannot be mapped."""
    r, w = os.pipe()

    def feed():
        try:
            _write_all(w, data)
        except BrokenPipeError:
            pass  # the reader gave up early (an error): fine
        finally:
            os.close(w)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        return read(f"/dev/fd/{r}")
    finally:
        os.close(r)
        thread.join(timeout=10)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _bits(array: np.ndarray) -> tuple:
    return array.dtype.str, array.shape, array.view(np.uint32).tobytes()


def _same_bits(a_model, b_model) -> None:
    assert list(a_model.blobs) == list(b_model.blobs)
    assert a_model.dtypes == b_model.dtypes
    assert a_model.net.SerializeToString() == b_model.net.SerializeToString()
    for name, arrays in a_model.blobs.items():
        assert [_bits(a) for a in arrays] == [_bits(b) for b in b_model.blobs[name]], name


@pytest.mark.parametrize("path", CAFFEMODELS, ids=data_id)
def test_mapped_read_is_bit_identical_to_in_memory_and_protobuf(path):
    with open_source(str(path)) as source:
        assert source.mapped  # a regular file: the mapping is what is tested here
    mapped = read_caffemodel(path)
    streamed = _through_pipe(path.read_bytes(), read_caffemodel)
    _same_bits(mapped, streamed)
    reference = caffe_pb2.NetParameter()
    reference.ParseFromString(path.read_bytes())
    layers = list(reference.layer) or [(l.layer if l.HasField("layer") else l) for l in reference.layers]
    for layer in layers:
        if layer.blobs:
            assert [_bits(a) for a in mapped.blobs[layer.name]] == \
                [_bits(blob_to_array(b)) for b in layer.blobs]
    for arrays in mapped.blobs.values():  # what compile_net gives to torch without a copy
        assert all(a.flags.c_contiguous and a.flags.aligned and a.flags.writeable for a in arrays)


def _every_encoding() -> tuple[bytes, bytes]:
    """A V0 net (blobs inside V1 field 1) plus V2 layers holding every blob encoding."""
    values = [1.5, -2.25, 3.0, -0.0, 1e-30, 7.0]
    v0_blob = vint(1, 1) + vint(2, 1) + vint(3, 2) + vint(4, 3) + unpacked_floats(5, values)
    v0 = (string(1, "fc") + string(2, "innerproduct") + vint(3, 2) + ld(50, v0_blob)
          + ld(50, shape([2]) + unpacked_doubles(8, values[:2])))
    v1 = ld(1, v0) + string(2, "data") + string(3, "fc")
    head = string(1, "all") + string(3, "data") + b"".join(vint(4, d) for d in (1, 1, 1, 3))
    half = np.array(values, np.float16).tobytes()
    blobs = [shape([2, 3]) + packed_floats(5, values),
             shape([6]) + packed_floats(8, values, "<d"),
             shape([3, 2]) + vint(10, caffe_pb2.BlobProto.FLOAT16) + ld(12, half),
             shape([6]) + vint(10, caffe_pb2.BlobProto.FLOAT) + ld(12, np.array(values, "<f4").tobytes()),
             shape([6]) + packed_floats(5, values[:3]) + packed_floats(5, values[3:])]
    return head + ld(2, v1), v2_layer("x", "Convolution", blobs)


def test_every_encoding_and_generation_reads_the_same_mapped_or_not(tmp_path):
    v0_net, v2_layers = _every_encoding()
    for name, data in (("v0", v0_net), ("v2", v2_layers)):
        path = tmp_path / f"{name}.caffemodel"
        path.write_bytes(data)
        mapped = read_caffemodel(path)
        _same_bits(mapped, _through_pipe(data, read_caffemodel))
        for arrays in mapped.blobs.values():
            for a in arrays:  # converted or not, each array owns aligned, writable memory
                assert a.dtype == np.float32 and a.flags.aligned and a.flags.writeable
    assert mapped.dtypes["x"] == ["float32", "float64", "float16", "float32", "float32"]


def test_truncated_file_gives_the_same_error_mapped_or_not(tmp_path):
    full = data_file("lenet_ahmdtaha/lenet_iter_10000.caffemodel").read_bytes()
    path = tmp_path / "cut.caffemodel"
    # inside the header of the first layer, inside conv1's weights, inside the last layer
    for cut in (3, 2000, len(full) - 7):
        path.write_bytes(full[:cut])
        with pytest.raises(CaffeFormatError) as mapped:
            read_caffemodel(path)
        message = str(mapped.value)
        assert message.startswith(str(path)) and "truncated caffemodel" in message
        assert "the download or copy was probably cut short" in message

        def read_pipe(p):
            with pytest.raises(CaffeFormatError) as streamed:
                read_caffemodel(p)
            return str(streamed.value)
        assert _through_pipe(full[:cut], read_pipe).split(":", 1)[1] == message.split(":", 1)[1]


def test_file_shrinking_under_the_reader_is_a_clear_error(tmp_path):
    path = tmp_path / "m.caffemodel"
    path.write_bytes(bytes(range(256)) * 64)
    with open_source(str(path)) as source:
        assert source.mapped
        np.testing.assert_array_equal(source.copy_out(4, 12, "<f4"),
                                      np.frombuffer(bytes(range(4, 12)), "<f4"))
        os.truncate(path, 1000)  # another program rewrites the file in place
        with pytest.raises(CaffeFormatError, match="got shorter while it was being read"):
            source.copy_out(8000, 16000, "<f4")


def test_stream_larger_than_the_memory_limit_is_refused(tmp_path):
    set_memory_limit(100_000)
    try:
        with pytest.raises(LimitError, match="read from this stream"):
            _through_pipe(b"\x00" * 300_000, read_caffemodel)
    finally:
        set_memory_limit(None)


def test_compile_from_path_shares_the_read_arrays_and_matches_the_copying_path(data_dir,
                                                                                 monkeypatch):
    """compile_net(net, PATH) hands the reader's arrays to torch (no second copy of the
    weights); the tensors are bit-identical to compile_net(net, CaffeModel), which copies."""
    from fcnkit import caffe

    read = caffe.read_caffemodel
    seen = []
    monkeypatch.setattr(caffe, "read_caffemodel", lambda path: seen.append(read(path)) or seen[-1])
    for net_file, weights in (
            ("lenet_ahmdtaha/mnist_deploy.prototxt", "lenet_ahmdtaha/lenet_iter_10000.caffemodel"),
            ("bvlc_caffe/v2/examples/cifar10/cifar10_quick.prototxt",
             "cifar10quick_ikkichung/cifar10_quick_iter_5000.caffemodel")):
        net = load_net(data_dir / net_file)
        shared = compile_net(net, data_dir / weights).module.state_dict()
        arrays = [a for blobs in seen.pop().blobs.values() for a in blobs]
        copied = compile_net(net, read_caffemodel(data_dir / weights)).module.state_dict()
        assert list(shared) == list(copied) and len(shared) == len(arrays)
        for key, tensor in shared.items():
            assert torch.equal(tensor.view(torch.int32), copied[key].view(torch.int32)), key
            # each tensor is one of the arrays the reader made, not a copy of it
            assert sum(np.shares_memory(tensor.numpy(), a) for a in arrays) == 1, key
            assert not any(np.shares_memory(copied[key].numpy(), a) for a in arrays), key


def test_file_system_refusing_mmap_falls_back_to_reading(tmp_path, monkeypatch):
    source = data_file("resnet50_stem_htshinichi/test.caffemodel")
    mapped = read_caffemodel(source)

    def refuse(*args, **kwargs):
        raise OSError(19, "No such device")  # ENODEV: what mmap gives on such file systems
    monkeypatch.setattr("fcnkit.caffe.caffemodel_source.mmap.mmap", refuse)
    with open_source(str(source)) as opened:
        assert not opened.mapped and len(opened.buf) == source.stat().st_size
    _same_bits(read_caffemodel(source), mapped)
    with pytest.raises(CaffeFormatError, match="empty"):
        read_caffemodel(_empty(tmp_path))


def _empty(tmp_path):
    path = tmp_path / "empty.caffemodel"
    path.write_bytes(b"")
    return path
