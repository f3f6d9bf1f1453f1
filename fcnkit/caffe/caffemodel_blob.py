"""Decode one BlobProto record of a caffemodel (field numbers: src/caffe/proto/caffe.proto,
:mod:`fcnkit.caffe.caffemodel_fields`): packed float32 data read straight into an array of
its own (:meth:`fcnkit.caffe.caffemodel_source.ModelSource.copy_out`), packed and unpacked
doubles, unpacked floats, legacy 4-D or ``shape`` dims, and the fork's raw_data_type /
raw_data; the base of :mod:`fcnkit.caffe.caffemodel`'s reader."""

from __future__ import annotations

import numpy as np

from fcnkit.caffe.blobs import decode_raw, resolve_shape
from fcnkit.caffe.caffemodel_fields import (BLOB_DATA, BLOB_DOUBLE_DATA, BLOB_NUM, BLOB_RAW_DATA,
                                            BLOB_RAW_TYPE, BLOB_SHAPE, BLOB_WIDTH, SHAPE_DIM)
from fcnkit.caffe.caffemodel_source import ModelSource
from fcnkit.caffe.wire import (FIXED32, FIXED64, LENGTH_DELIMITED, VARINT, WireError, read_key,
                               read_length, read_varint, skip_value, to_signed64)
from fcnkit.errors import CaffeFormatError, WeightsError

# One-byte keys of unpacked (one key per value) float and double data.
_KEY_DATA_UNPACKED = (BLOB_DATA << 3) | FIXED32            # 0x2d
_KEY_DOUBLE_UNPACKED = (BLOB_DOUBLE_DATA << 3) | FIXED64   # 0x41
_UNPACKED_F32 = np.dtype([("key", "u1"), ("value", "<f4")])  # itemsize 5, unaligned
_UNPACKED_F64 = np.dtype([("key", "u1"), ("value", "<f8")])  # itemsize 9
_SCAN_WINDOW = 1 << 20  # records scanned per step when finding a run of unpacked values
_MAX_AXES = 32  # Caffe's kMaxBlobAxes (include/caffe/blob.hpp)


class BlobDecoder:
    """Decodes the BlobProto records of the caffemodel in ``source``."""

    def __init__(self, source: ModelSource):
        self.source = source
        self.buf = source.buf  # walked through for keys, lengths and small fields
        self.path = source.path
        # fp16 raw_data is the densest encoding (2 bytes per value); no blob can hold more.
        self.max_count = len(self.buf) // 2

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
                    s, pos = _packed(buf, pos, stop, 4, "float")
                    f32.append(self.source.copy_out(s, pos, "<f4"))
                elif fnum == BLOB_DATA and wtype == FIXED32:
                    values, pos = self._unpacked(key_start, pos, stop, _KEY_DATA_UNPACKED,
                                                 _UNPACKED_F32)
                    f32.append(values)
                elif fnum == BLOB_DOUBLE_DATA and wtype == LENGTH_DELIMITED:
                    s, pos = _packed(buf, pos, stop, 8, "double")
                    f64.append(self.source.copy_out(s, pos, "<f8"))
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
            flat = flat.astype(np.float32, copy=False)  # a copy only on a big-endian host
            kind = "float32"
        elif raw is not None:
            raw_bytes = self.source.copy_out(raw[0], raw[1], "u1")  # float32: used as is
            flat, kind = decode_raw(memoryview(raw_bytes), raw_type, where)
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


def _packed(buf, pos: int, stop: int, size: int, what: str) -> tuple[int, int]:
    """A packed repeated float/double field (``size`` bytes per value) whose length prefix is
    at ``pos``: (start of its values, position after them).

    Raises:
        WireError: the length runs past ``stop`` or is not a multiple of the item size.
    """
    s, e = read_length(buf, pos, stop)
    if (e - s) % size:
        raise WireError(s, f"packed {what} data of {e - s} bytes is not a multiple of {size}")
    return s, e
