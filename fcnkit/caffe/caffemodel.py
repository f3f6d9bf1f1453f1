"""Read and write binary caffemodels (serialized NetParameter with weight blobs).

Reading walks the protobuf wire format by hand instead of calling ParseFromString on the whole
file, because protobuf would hold every float twice (file bytes plus parsed repeated field)
and cap messages at 2 GB. The whole file is read once into one ``bytearray``; packed float
data becomes ``np.frombuffer`` views over that buffer (no copy), and only the small non-blob
fields of each layer are handed to protobuf. Peak memory is about the file size.

Layouts handled (field numbers: src/caffe/proto/caffe.proto):

- V2: NetParameter.layer (100) -> LayerParameter.blobs (7).
- V1: NetParameter.layers (2) -> V1LayerParameter.blobs (6); a V0 net nests a
  V0LayerParameter in V1 field 1, whose blobs are V0 field 50.
- BlobProto: data (5, packed or one key per value), double_data (8), legacy
  num/channels/height/width (1-4), shape (7), fork raw_data_type (10) / raw_data (12).

Writing streams one layer at a time: protobuf serializes each layer without its blobs and
fcnkit appends hand-encoded BlobProto fields written straight from the arrays' memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from google.protobuf.message import DecodeError, Message

from fcnkit.atomic import atomic_open
from fcnkit.caffe import caffe_pb2
from fcnkit.caffe.blobs import _as_float32, decode_raw, resolve_shape
from fcnkit.caffe.sniff import describe_non_caffemodel
from fcnkit.caffe.upgrade import detect_format, upgrade_net
from fcnkit.caffe.wire import (FIXED32, FIXED64, LENGTH_DELIMITED, VARINT, WireError,
                               encode_key, encode_length_delimited, encode_varint, read_key,
                               read_length, read_varint, skip_value, to_signed64)
from fcnkit.errors import CaffeFormatError, WeightsError

# NetParameter fields holding layers, and the blob field of each layer generation.
NET_LAYER_V2 = 100
NET_LAYERS_V1 = 2
LAYER_BLOBS_V2 = 7
LAYER_BLOBS_V1 = 6
V1_V0_LAYER = 1
V0_NAME = 1
V0_BLOBS = 50

# BlobProto fields.
BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH = 1, 2, 3, 4
BLOB_DATA = 5
BLOB_SHAPE = 7
BLOB_DOUBLE_DATA = 8
BLOB_RAW_TYPE = 10
BLOB_RAW_DATA = 12
SHAPE_DIM = 1

# One-byte keys of unpacked (one key per value) float and double data.
_KEY_DATA_UNPACKED = (BLOB_DATA << 3) | FIXED32            # 0x2d
_KEY_DOUBLE_UNPACKED = (BLOB_DOUBLE_DATA << 3) | FIXED64   # 0x41
_UNPACKED_F32 = np.dtype([("key", "u1"), ("value", "<f4")])  # itemsize 5, unaligned
_UNPACKED_F64 = np.dtype([("key", "u1"), ("value", "<f8")])  # itemsize 9
_SCAN_WINDOW = 1 << 20  # records scanned per step when finding a run of unpacked values

_MAX_AXES = 32  # Caffe's kMaxBlobAxes (include/caffe/blob.hpp)


@dataclass
class CaffeModel:
    """Weights read from a caffemodel.

    Attributes:
        net: the net stored in the file, upgraded to V2 like a prototxt (only ``layer``; net
            inputs became an Input layer), with every layer's ``blobs`` left empty.
        blobs: layer name -> that layer's blobs in Caffe order, each a float32 array with its
            Caffe shape: ``shape`` when stored, else the legacy 4-D (num, channels, height,
            width) kept as stored (an old InnerProduct weight is (1, 1, N, K); consumers
            compare shapes right-aligned). Only layers holding at least one blob appear.
            Packed float32 blobs are views into one buffer holding the whole file (no copy):
            they may be unaligned (numpy and torch.from_numpy accept that), writing to them
            is safe (nothing else uses the buffer), but any array kept alive keeps the whole
            buffer alive, so ``np.array(a)`` the few you keep if you drop the rest.
        path: the file read, or None.
        source_format: "V0", "V1" or "V2": the generation of the stored net.
        dtypes: layer name -> stored element type of each blob ("float32", "float64",
            "float16", "int32" or "uint32").
        upgrades: notes of the upgrades applied to the stored net.
    """

    net: caffe_pb2.NetParameter
    blobs: dict[str, list[np.ndarray]]
    path: str | None = None
    source_format: str = "V2"
    dtypes: dict[str, list[str]] = field(default_factory=dict)
    upgrades: list[str] = field(default_factory=list)


# --- reading ----------------------------------------------------------------------------------

def read_caffemodel(path: str | Path) -> CaffeModel:
    """Read a binary caffemodel (V0/V1 ``layers`` or V2 ``layer``).

    Memory: one buffer of the file's size plus converted copies of non-float32 blobs
    (double, fp16, unpacked floats). Time: one read of the file plus a walk over its fields.

    Args:
        path: the .caffemodel file.

    Returns:
        A :class:`CaffeModel`.

    Raises:
        CaffeFormatError: the file cannot be read; is not a caffemodel (HTML page, text
            prototxt, archive, ... — the message says which); is truncated (the message gives
            the byte offset and the layer); or holds fields that do not decode.
        UpgradeError: the stored net mixes ``layer`` and ``layers`` or cannot be upgraded.
        WeightsError: a blob's shape does not match its data, is absurdly large, or two
            layers with blobs share a name.
    """
    path_str = str(path)
    buf = _read_all(path_str)
    reason = describe_non_caffemodel(bytes(buf[:4096]))
    if reason is not None:
        raise CaffeFormatError(reason, path_str)
    return _Reader(buf, path_str).read()


def _read_all(path: str) -> bytearray:
    """Read the whole file into one bytearray (no intermediate bytes object)."""
    try:
        f = open(path, "rb", buffering=0)
    except FileNotFoundError:
        raise CaffeFormatError("file not found", path) from None
    except IsADirectoryError:
        raise CaffeFormatError("is a directory, not a caffemodel file", path) from None
    except OSError as exc:
        raise CaffeFormatError(f"cannot read the file: {exc.strerror}", path) from None
    with f:
        size = os.fstat(f.fileno()).st_size
        buf = bytearray(size)
        got = 0
        with memoryview(buf) as view:
            while got < size:
                n = f.readinto(view[got:])
                if not n:
                    break
                got += n
        if got < size:  # the file shrank while being read
            del buf[got:]
    return buf


@dataclass
class _LayerRecord:
    generation: str                 # "V1" or "V2"
    start: int                      # byte offset of the layer's key
    meta: bytes                     # the layer's fields minus its blobs
    blob_ranges: list[tuple[int, int]]
    note: str | None = None


class _Reader:
    """One pass over a caffemodel held in ``buf``."""

    def __init__(self, buf: bytearray, path: str):
        self.buf = buf
        self.path = path
        # fp16 raw_data is the densest encoding (2 bytes per value); no blob can hold more.
        self.max_count = len(buf) // 2

    # -- top level --

    def read(self) -> CaffeModel:
        buf, end = self.buf, len(self.buf)
        header = bytearray()
        records: list[_LayerRecord] = []
        pos = 0
        while pos < end:
            key_start = pos
            try:
                fnum, wtype, pos = read_key(buf, pos, end)
            except WireError as exc:
                raise self._top_error(exc, len(records)) from None
            if fnum in (NET_LAYER_V2, NET_LAYERS_V1) and wtype == LENGTH_DELIMITED:
                gen = "V2" if fnum == NET_LAYER_V2 else "V1"
                try:
                    start, stop = read_length(buf, pos, end)
                except WireError as exc:
                    raise self._truncated_layer(exc, len(records), gen, key_start, pos) from None
                records.append(self._walk_layer(gen, key_start, start, stop, len(records)))
                pos = stop
            else:
                try:
                    pos = skip_value(buf, wtype, pos, end)
                except WireError as exc:
                    raise self._top_error(exc, len(records)) from None
                header += buf[key_start:pos]

        net = self._parse_net(header, records)
        names = self._layer_names(net, records)
        blobs: dict[str, list[np.ndarray]] = {}
        dtypes: dict[str, list[str]] = {}
        notes = [r.note for r in records if r.note]
        for index, (record, name) in enumerate(zip(records, names)):
            if not record.blob_ranges:
                continue
            if name in blobs:
                raise WeightsError(
                    f"{self.path}: two layers named '{name}' both hold blobs (layer #{index} "
                    "and an earlier one); fcnkit cannot tell which belongs to the net")
            arrays, kinds = [], []
            for j, (start, stop) in enumerate(record.blob_ranges):
                where = f"blob {j} of layer #{index} '{name}'"
                array, kind = self._parse_blob(start, stop, where)
                arrays.append(array)
                kinds.append(kind)
            blobs[name] = arrays
            dtypes[name] = kinds

        fmt = detect_format(net)
        result = upgrade_net(net, path=self.path)
        return CaffeModel(net=net, blobs=blobs, path=self.path, source_format=fmt,
                          dtypes=dtypes, upgrades=notes + result.notes)

    def _parse_net(self, header: bytearray, records: list[_LayerRecord]) -> caffe_pb2.NetParameter:
        """Let protobuf parse the header and every layer's non-blob fields in one go."""
        data = bytearray(header)
        for r in records:
            fnum = NET_LAYER_V2 if r.generation == "V2" else NET_LAYERS_V1
            data += encode_length_delimited(fnum, r.meta)
        net = caffe_pb2.NetParameter()
        try:
            net.ParseFromString(bytes(data))
        except (DecodeError, RuntimeError, ValueError):
            pass
        else:
            self._check_text(net)
            return net
        # Find the culprit to name it.
        try:
            caffe_pb2.NetParameter().ParseFromString(bytes(header))
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise CaffeFormatError(
                f"the net-level fields do not decode as a Caffe NetParameter ({exc}); the file "
                "is corrupt or not a caffemodel", self.path) from None
        for index, r in enumerate(records):
            cls = caffe_pb2.LayerParameter if r.generation == "V2" else caffe_pb2.V1LayerParameter
            try:
                cls().ParseFromString(r.meta)
            except (DecodeError, RuntimeError, ValueError) as exc:
                raise CaffeFormatError(
                    f"layer #{index} (at byte {r.start}) does not decode as a Caffe "
                    f"{cls.DESCRIPTOR.name} ({exc}); the file is corrupt or comes from a Caffe "
                    "fork with an incompatible schema", self.path) from None
        raise CaffeFormatError("the net does not decode as a Caffe NetParameter", self.path)

    def _check_text(self, net: caffe_pb2.NetParameter) -> None:
        """Refuse string fields that are not UTF-8 now, naming the layer and the field.

        protobuf (proto2) accepts any bytes in a string field; Python then hands out ``bytes``
        instead of ``str`` for it, which would break much later (or raise UnicodeDecodeError
        when copied). Checking once here turns that into a clear error.
        """
        for kind, layers in (("layer", net.layer), ("layers", net.layers)):
            for index, layer in enumerate(layers):
                bad = _non_utf8_field(layer)
                if bad is not None:
                    raise CaffeFormatError(
                        f"{kind} #{index}: string field '{bad}' is not valid UTF-8; the file "
                        "is corrupt or was written with another text encoding", self.path)
        for fdesc, value in net.ListFields():
            if fdesc.name in ("layer", "layers"):
                continue
            bad = _non_utf8_value(fdesc, value)
            if bad is not None:
                raise CaffeFormatError(
                    f"net-level string field '{bad}' is not valid UTF-8; the file is corrupt "
                    "or was written with another text encoding", self.path)

    @staticmethod
    def _layer_names(net: caffe_pb2.NetParameter, records: list[_LayerRecord]) -> list[str]:
        names, i_v1, i_v2 = [], 0, 0
        for r in records:
            if r.generation == "V2":
                names.append(net.layer[i_v2].name)
                i_v2 += 1
            else:
                layer = net.layers[i_v1]
                names.append(layer.layer.name if layer.HasField("layer") else layer.name)
                i_v1 += 1
        return names

    # -- layers --

    def _walk_layer(self, gen: str, key_start: int, start: int, stop: int,
                    index: int) -> _LayerRecord:
        """Split one layer into its non-blob fields (bytes) and its blob byte ranges."""
        buf = self.buf
        blob_field = LAYER_BLOBS_V2 if gen == "V2" else LAYER_BLOBS_V1
        meta = bytearray()
        blobs: list[tuple[int, int]] = []
        v0_blobs: list[tuple[int, int]] | None = None
        pos = start
        try:
            while pos < stop:
                field_start = pos
                fnum, wtype, pos = read_key(buf, pos, stop)
                if fnum == blob_field and wtype == LENGTH_DELIMITED:
                    blobs.append(read_length(buf, pos, stop))
                    pos = blobs[-1][1]
                elif gen == "V1" and fnum == V1_V0_LAYER and wtype == LENGTH_DELIMITED:
                    v0_start, v0_stop = read_length(buf, pos, stop)
                    v0_meta, v0_blobs = self._walk_v0(v0_start, v0_stop)
                    meta += encode_length_delimited(V1_V0_LAYER, v0_meta)
                    pos = v0_stop
                else:
                    pos = skip_value(buf, wtype, pos, stop)
                    meta += buf[field_start:pos]
        except WireError as exc:
            name = self._peek_name(gen, start, stop)
            raise CaffeFormatError(
                f"layer #{index}{_quoted(name)} (starting at byte {key_start}) is corrupt: "
                f"{exc.reason} at byte {exc.offset}", self.path) from None
        note = None
        if v0_blobs is not None:
            # UpgradeV0LayerParameter copies only the V0 layer's blobs.
            if blobs:
                note = (f"warning: layer #{index} holds blobs both in its V1 and its V0 part; "
                        "the V1 ones are ignored (as Caffe does)")
            blobs = v0_blobs
        return _LayerRecord(gen, key_start, bytes(meta), blobs, note)

    def _walk_v0(self, start: int, stop: int) -> tuple[bytes, list[tuple[int, int]]]:
        buf = self.buf
        meta = bytearray()
        blobs: list[tuple[int, int]] = []
        pos = start
        while pos < stop:
            field_start = pos
            fnum, wtype, pos = read_key(buf, pos, stop)
            if fnum == V0_BLOBS and wtype == LENGTH_DELIMITED:
                blobs.append(read_length(buf, pos, stop))
                pos = blobs[-1][1]
            else:
                pos = skip_value(buf, wtype, pos, stop)
                meta += buf[field_start:pos]
        return bytes(meta), blobs

    def _peek_name(self, gen: str, start: int, stop: int) -> str | None:
        """Best effort: the layer's name if it appears before the damage."""
        buf = self.buf
        stop = min(stop, len(buf))
        name_field = 1 if gen == "V2" else 4
        pos = start
        try:
            while pos < stop:
                fnum, wtype, pos = read_key(buf, pos, stop)
                if wtype == LENGTH_DELIMITED:
                    s, e = read_length(buf, pos, stop)
                    if fnum == name_field:
                        return bytes(buf[s:e]).decode("utf-8", "replace")
                    if gen == "V1" and fnum == V1_V0_LAYER:
                        inner = self._peek_name("V2", s, e)  # V0 name is field 1 too
                        if inner is not None:
                            return inner
                    pos = e
                else:
                    pos = skip_value(buf, wtype, pos, stop)
        except WireError:
            pass
        return None

    def _truncated_layer(self, exc: WireError, index: int, gen: str, key_start: int,
                         length_pos: int) -> CaffeFormatError:
        size = len(self.buf)
        try:
            declared, payload = read_varint(self.buf, length_pos, size)
        except WireError:
            return CaffeFormatError(
                f"truncated caffemodel: the file ends inside the header of layer #{index} "
                f"(byte {key_start} of {size}); the download or copy was probably cut short",
                self.path)
        name = self._peek_name(gen, payload, size)
        return CaffeFormatError(
            f"truncated caffemodel: layer #{index}{_quoted(name)} starts at byte {key_start} "
            f"and declares {declared} bytes, but the file ends {payload + declared - size} "
            f"bytes early (file size {size}); the download or copy was probably cut short",
            self.path)

    def _top_error(self, exc: WireError, n_layers: int) -> CaffeFormatError:
        after = f" after layer #{n_layers - 1}" if n_layers else ""
        if exc.truncated:
            return CaffeFormatError(
                f"truncated caffemodel: the file ends in the middle of a field at byte "
                f"{exc.offset}{after} (file size {len(self.buf)}); the download or copy was "
                "probably cut short", self.path)
        return CaffeFormatError(
            f"not a valid caffemodel: {exc.reason} at byte {exc.offset}{after}; the file is "
            "corrupt or is not a Caffe binary protobuf", self.path)

    # -- blobs --

    def _parse_blob(self, start: int, stop: int, where: str) -> tuple[np.ndarray, str]:
        """Decode one BlobProto occupying ``buf[start:stop]``."""
        buf = self.buf
        legacy: list[int | None] = [None, None, None, None]
        dims: list[int] | None = None
        f32: list[np.ndarray] = []
        f64: list[np.ndarray] = []
        raw: tuple[int, int] | None = None
        raw_type: int | None = None
        pos = start
        try:
            while pos < stop:
                key_start = pos
                fnum, wtype, pos = read_key(buf, pos, stop)
                if fnum == BLOB_DATA and wtype == LENGTH_DELIMITED:
                    s, e = read_length(buf, pos, stop)
                    if (e - s) % 4:
                        raise WireError(s, f"packed float data of {e - s} bytes is not a "
                                           "multiple of 4")
                    f32.append(np.frombuffer(buf, "<f4", count=(e - s) // 4, offset=s))
                    pos = e
                elif fnum == BLOB_DATA and wtype == FIXED32:
                    values, pos = self._unpacked(key_start, pos, stop, _KEY_DATA_UNPACKED,
                                                 _UNPACKED_F32)
                    f32.append(values)
                elif fnum == BLOB_DOUBLE_DATA and wtype == LENGTH_DELIMITED:
                    s, e = read_length(buf, pos, stop)
                    if (e - s) % 8:
                        raise WireError(s, f"packed double data of {e - s} bytes is not a "
                                           "multiple of 8")
                    f64.append(np.frombuffer(buf, "<f8", count=(e - s) // 8, offset=s))
                    pos = e
                elif fnum == BLOB_DOUBLE_DATA and wtype == FIXED64:
                    values, pos = self._unpacked(key_start, pos, stop, _KEY_DOUBLE_UNPACKED,
                                                 _UNPACKED_F64)
                    f64.append(values)
                elif fnum == BLOB_SHAPE and wtype == LENGTH_DELIMITED:
                    s, e = read_length(buf, pos, stop)
                    dims = (dims or []) + self._parse_shape(s, e)
                    pos = e
                elif BLOB_NUM <= fnum <= BLOB_WIDTH and wtype == VARINT:
                    value, pos = read_varint(buf, pos, stop)
                    legacy[fnum - 1] = to_signed64(value)
                elif fnum == BLOB_RAW_TYPE and wtype == VARINT:
                    raw_type, pos = read_varint(buf, pos, stop)
                elif fnum == BLOB_RAW_DATA and wtype == LENGTH_DELIMITED:
                    raw = read_length(buf, pos, stop)
                    pos = raw[1]
                else:  # diff, double_diff and anything unknown
                    pos = skip_value(buf, wtype, pos, stop)
        except WireError as exc:
            raise CaffeFormatError(f"{where} is corrupt: {exc.reason} at byte {exc.offset}",
                                   self.path) from None
        try:
            return self._assemble(f32, f64, raw, raw_type, legacy, dims, where)
        except WeightsError as exc:
            raise WeightsError(f"{self.path}: {exc}") from None

    def _assemble(self, f32, f64, raw, raw_type, legacy, dims, where) -> tuple[np.ndarray, str]:
        """Pick the data source and shape like Caffe's Blob::FromProto."""
        # Caffe's Blob::FromProto prefers double_data over data; raw_data is a fork's.
        if f64:
            flat = (f64[0] if len(f64) == 1 else np.concatenate(f64)).astype(np.float32)
            kind = "float64"
        elif f32:
            flat = f32[0] if len(f32) == 1 else np.concatenate(f32)
            kind = "float32"
        elif raw is not None:
            flat, kind = decode_raw(memoryview(self.buf)[raw[0]:raw[1]], raw_type, where)
        else:
            flat, kind = np.zeros(0, np.float32), "float32"
        if dims is not None and len(dims) > _MAX_AXES:
            raise WeightsError(f"{where} declares {len(dims)} axes; Caffe allows at most "
                               f"{_MAX_AXES}; the file is corrupt")
        has_legacy = any(d is not None for d in legacy)
        shape = resolve_shape(legacy if has_legacy else None, dims, flat.size, where,
                              self.max_count)
        return flat.reshape(shape), kind

    def _parse_shape(self, start: int, stop: int) -> list[int]:
        buf = self.buf
        dims: list[int] = []
        pos = start
        while pos < stop:
            fnum, wtype, pos = read_key(buf, pos, stop)
            if fnum == SHAPE_DIM and wtype == LENGTH_DELIMITED:
                s, e = read_length(buf, pos, stop)
                while s < e:
                    value, s = read_varint(buf, s, e)
                    dims.append(to_signed64(value))
                    if len(dims) > _MAX_AXES:
                        return dims  # reported by the caller
                pos = e
            elif fnum == SHAPE_DIM and wtype == VARINT:
                value, pos = read_varint(buf, pos, stop)
                dims.append(to_signed64(value))
            else:
                pos = skip_value(buf, wtype, pos, stop)
        return dims

    def _unpacked(self, key_start: int, pos: int, stop: int, key: int,
                  record: np.dtype) -> tuple[np.ndarray, int]:
        """Gather a run of unpacked values (key byte + value, repeated) in one numpy step.

        Old writers emit one key per float; walking them one by one in Python would take
        minutes for a large model, so the run length is found with vectorised key checks and
        the values are gathered through a strided structured view.
        """
        size = record.itemsize
        n_max = (stop - key_start) // size
        count = 0
        while count < n_max:
            k = min(_SCAN_WINDOW, n_max - count)
            keys = np.frombuffer(self.buf, np.uint8, count=k * size,
                                 offset=key_start + count * size)[::size]
            bad = np.flatnonzero(keys != key)
            if bad.size:
                count += int(bad[0])
                break
            count += k
        value_type = record.fields["value"][0]
        if count == 0:
            # Key encoded in more than one byte (legal but never written by Caffe).
            if pos + value_type.itemsize > stop:
                raise WireError(pos, "a value runs past the end of its blob", truncated=True)
            one = np.frombuffer(self.buf, value_type, count=1, offset=pos)
            return one.astype(value_type.newbyteorder("=")), pos + value_type.itemsize
        values = np.frombuffer(self.buf, record, count=count, offset=key_start)["value"]
        return values.astype(value_type.newbyteorder("=")), key_start + count * size


def _non_utf8_field(message: Message) -> str | None:
    """Dotted name of the first string field of ``message`` holding invalid UTF-8, or None."""
    for fdesc, value in message.ListFields():
        bad = _non_utf8_value(fdesc, value)
        if bad is not None:
            return bad
    return None


def _non_utf8_value(fdesc, value) -> str | None:
    values = value if _is_repeated(fdesc) else (value,)
    if fdesc.type == fdesc.TYPE_STRING:
        # upb returns bytes instead of str for a string field that is not UTF-8.
        return fdesc.name if any(isinstance(v, bytes) for v in values) else None
    if fdesc.message_type is not None:
        for sub in values:
            inner = _non_utf8_field(sub)
            if inner is not None:
                return f"{fdesc.name}.{inner}"
    return None


def _quoted(name: str | None) -> str:
    return f" '{name}'" if name else ""


# --- writing ----------------------------------------------------------------------------------

def write_caffemodel(path: str | Path, param: caffe_pb2.NetParameter,
                     blobs: Mapping[str, Sequence[np.ndarray]]) -> None:
    """Write a V2 binary caffemodel, atomically, one layer at a time.

    Each layer of ``param`` is written with the blobs ``blobs[layer.name]`` (``shape`` plus
    packed float32 ``data``; arrays of other dtypes are converted one at a time). A layer
    without an entry in ``blobs`` is written as it is in ``param`` (with whatever blobs it
    embeds, usually none). The arrays are written straight from their memory, so no second
    copy of all the weights is built.

    Args:
        path: destination .caffemodel.
        param: the net, V2 (``layer`` only); net-level fields are written as they are.
        blobs: layer name -> list of arrays.

    Raises:
        CaffeFormatError: ``param`` still has V1 ``layers``.
        WeightsError: ``blobs`` names layers that ``param`` lacks (listed), or holds
            something that is not a list of numeric arrays.
        OSError: the file cannot be written (nothing is left behind).
    """
    if len(param.layers):
        raise CaffeFormatError(
            f"the net still has {len(param.layers)} V1 `layers`; write_caffemodel writes V2 "
            "only (upgrade it first)", str(path))
    names = {layer.name for layer in param.layer}
    missing = sorted(set(blobs) - names)
    if missing:
        raise WeightsError(
            f"{path}: blobs are given for layer(s) the net does not have: "
            f"{', '.join(missing)}; rename them or add the layers to the net")
    for name, arrays in blobs.items():
        if isinstance(arrays, np.ndarray) or not isinstance(arrays, (list, tuple)):
            raise WeightsError(f"{path}: blobs['{name}'] must be a list of arrays, not "
                               f"{type(arrays).__name__}")

    with atomic_open(path, "wb") as f:
        f.write(_without(param, "layer").SerializeToString())
        for layer in param.layer:
            arrays = blobs.get(layer.name)
            if arrays is None:
                f.write(encode_length_delimited(NET_LAYER_V2, layer.SerializeToString()))
                continue
            stripped = caffe_pb2.LayerParameter()
            stripped.CopyFrom(layer)  # keeps unknown (fork) fields; embedded blobs are few
            stripped.ClearField("blobs")
            meta = stripped.SerializeToString()
            arrs = [np.asarray(a) for a in arrays]  # no copy for arrays
            heads = []
            for j, arr in enumerate(arrs):
                if arr.dtype.kind not in "fiub":
                    raise WeightsError(f"{path}: blob {j} of layer '{layer.name}' is not "
                                       f"numeric (dtype {arr.dtype})")
                heads.append(_blob_head(arr.shape, arr.size))
            total = len(meta) + sum(len(h) + 4 * a.size for h, a in zip(heads, arrs))
            f.write(encode_key(NET_LAYER_V2, LENGTH_DELIMITED) + encode_varint(total) + meta)
            for j, (head, arr) in enumerate(zip(heads, arrs)):
                f.write(head)
                # Converts (copies) only arrays that are not little-endian float32 already.
                data = _as_float32(arr, f"blob {j} of layer '{layer.name}'")
                f.write(memoryview(data).cast("B"))


def _blob_head(shape: tuple[int, ...], count: int) -> bytes:
    """Everything of a BlobProto field (key, length, shape, data key and length) but the data."""
    dims = b"".join(encode_varint(int(d)) for d in shape)
    shape_msg = encode_length_delimited(SHAPE_DIM, dims) if shape else b""
    body_head = (encode_length_delimited(BLOB_SHAPE, shape_msg)
                 + encode_key(BLOB_DATA, LENGTH_DELIMITED) + encode_varint(4 * count))
    blob_len = len(body_head) + 4 * count
    return encode_key(LAYER_BLOBS_V2, LENGTH_DELIMITED) + encode_varint(blob_len) + body_head


def _without(message: Message, field_name: str) -> Message:
    """A copy of ``message`` without one (possibly huge) field, never copying that field.

    Unknown fields (from a fork's schema) of ``message`` itself are not carried over.
    """
    copy = type(message)()
    for fdesc, value in message.ListFields():
        if fdesc.name == field_name:
            continue
        target = getattr(copy, fdesc.name)
        if _is_repeated(fdesc):
            target.extend(value)
        elif fdesc.message_type is not None:
            target.CopyFrom(value)
        else:
            setattr(copy, fdesc.name, value)
    return copy


def _is_repeated(fdesc) -> bool:
    rep = getattr(fdesc, "is_repeated", None)
    if rep is not None:
        return bool(rep)
    return fdesc.label == fdesc.LABEL_REPEATED
