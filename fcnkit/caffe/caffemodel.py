"""Read and write binary caffemodels (serialized NetParameter with weight blobs).

Reading walks the protobuf wire format by hand instead of calling ParseFromString on the whole
file, because protobuf would hold every float twice (file bytes plus parsed repeated field)
and cap messages at 2 GB. The file is mapped read-only (:mod:`fcnkit.caffe.caffemodel_source`;
read whole into memory where it cannot be mapped); the walk touches only keys, lengths and
small fields, each blob's floats are read straight into an array of its own, and only the
small non-blob fields of each layer are handed to protobuf. Peak memory is about the blobs'
size: nothing of the file stays resident beside them.

Layouts handled (field numbers: src/caffe/proto/caffe.proto):

- V2: NetParameter.layer (100) -> LayerParameter.blobs (7).
- V1: NetParameter.layers (2) -> V1LayerParameter.blobs (6); a V0 net nests a
  V0LayerParameter in V1 field 1, whose blobs are V0 field 50.
- BlobProto: data (5, packed or one key per value), double_data (8), legacy
  num/channels/height/width (1-4), shape (7), fork raw_data_type (10) / raw_data (12).

Writing (:mod:`fcnkit.caffe.caffemodel_writer`, re-exported here) streams one layer at a
time: protobuf serializes each layer without its blobs and fcnkit appends hand-encoded
BlobProto fields written straight from the arrays' memory. One BlobProto is decoded by
:mod:`fcnkit.caffe.caffemodel_blob`; field numbers live in :mod:`fcnkit.caffe.caffemodel_fields`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError, Message

from fcnkit.caffe import caffe_pb2
from fcnkit.caffe.caffemodel_blob import BlobDecoder
from fcnkit.caffe.caffemodel_fields import (LAYER_BLOBS_V1, LAYER_BLOBS_V2, NET_LAYER_V2,
                                            NET_LAYERS_V1, V0_BLOBS, V1_V0_LAYER, is_repeated)
from fcnkit.caffe.caffemodel_source import open_source
from fcnkit.caffe.caffemodel_writer import write_caffemodel  # noqa: F401 - public, re-exported
from fcnkit.caffe.forks import resolve_binary
from fcnkit.caffe.sniff import describe_non_caffemodel
from fcnkit.caffe.upgrade import detect_format, upgrade_net
from fcnkit.caffe.wire import (LENGTH_DELIMITED, WireError, encode_length_delimited, read_key,
                               read_length, read_varint, skip_value)
from fcnkit.errors import CaffeFormatError, WeightsError



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
            Each array owns its memory (aligned, writable, C-contiguous; a legacy shape is a
            reshaped view of it): keeping one keeps nothing else of the file alive, and
            writing to it changes nothing else.
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

    Memory: the blobs' own arrays (float32: the size of their data in the file), plus, while
    one blob of another encoding (double, fp16, one key per value) is converted, that blob's
    bytes; a file that cannot be mapped (a pipe) is also held whole during the read
    (:mod:`fcnkit.caffe.caffemodel_source`). Time: one read of the file plus a walk over its
    fields.

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
    with open_source(path_str) as source:
        reason = describe_non_caffemodel(bytes(source.buf[:4096]))
        if reason is not None:
            raise CaffeFormatError(reason, path_str)
        return _Reader(source).read()


@dataclass
class _LayerRecord:
    generation: str                 # "V1" or "V2"
    start: int                      # byte offset of the layer's key
    meta: bytes                     # the layer's fields minus its blobs
    blob_ranges: list[tuple[int, int]]
    note: str | None = None


class _Reader(BlobDecoder):
    """One pass over a caffemodel (:class:`ModelSource`)."""

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
        self.source.release(0, end)  # the pages the walk touched

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
                self.source.release(start, stop)
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
            self._resolve_forks(net, records)
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

    def _resolve_forks(self, net: caffe_pb2.NetParameter, records: list[_LayerRecord]) -> None:
        """Decode fork layer parameters stored at the forks' own field numbers (SegNet's
        upsample_param is 137, BVLC's embed_param), by layer type (forks.resolve_binary)."""
        for layer, r in zip(net.layer, (r for r in records if r.generation == "V2")):
            try:
                resolve_binary(layer, r.meta)
            except (DecodeError, WireError, RuntimeError, ValueError) as exc:
                raise CaffeFormatError(
                    f"layer '{layer.name}' ({layer.type}, at byte {r.start}): its fork "
                    f"parameters do not decode ({exc}); the file is corrupt or comes from a "
                    "fork whose schema fcnkit does not know", self.path) from None

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


def _non_utf8_field(message: Message) -> str | None:
    """Dotted name of the first string field of ``message`` holding invalid UTF-8, or None."""
    for fdesc, value in message.ListFields():
        bad = _non_utf8_value(fdesc, value)
        if bad is not None:
            return bad
    return None


def _non_utf8_value(fdesc, value) -> str | None:
    values = value if is_repeated(fdesc) else (value,)
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
