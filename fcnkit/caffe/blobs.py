"""Blob (weight array) rules shared by the caffemodel reader, writer and in-memory helpers.

Rules follow Caffe's ``Blob::FromProto`` (src/caffe/blob.cpp): the legacy 4-D fields
``num/channels/height/width`` win over ``shape`` when any of them is set; ``double_data``
wins over ``data``. Fork files (NVIDIA Caffe) may hold the values in ``raw_data`` with an
element type in ``raw_data_type`` instead.

Arrays handed out are always float32; the dtype that was stored is reported separately
("float32", "float64", "float16", "int32", "uint32").
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from fcnkit.caffe import caffe_pb2
from fcnkit.errors import WeightsError

# raw_data_type value -> (little-endian numpy dtype, name recorded in CaffeModel.dtypes).
RAW_TYPES: dict[int, tuple[str, str]] = {
    caffe_pb2.BlobProto.DOUBLE: ("<f8", "float64"),
    caffe_pb2.BlobProto.FLOAT: ("<f4", "float32"),
    caffe_pb2.BlobProto.FLOAT16: ("<f2", "float16"),
    caffe_pb2.BlobProto.INT: ("<i4", "int32"),
    caffe_pb2.BlobProto.UINT: ("<u4", "uint32"),
}


def resolve_shape(legacy: Sequence[int | None] | None, dims: Sequence[int] | None,
                  count: int, where: str, max_count: int | None = None) -> tuple[int, ...]:
    """Decide a blob's shape the way Caffe's Blob::FromProto does, and check it against its data.

    Args:
        legacy: (num, channels, height, width) with None for fields not present, or None when
            none is present. Any present field makes the shape 4-D; absent ones count as 0
            (Caffe's proto default).
        dims: the ``shape.dim`` values, or None when ``shape`` is absent (an empty shape is a
            scalar, count 1).
        count: number of values the blob holds.
        where: "blob 0 of layer 'conv1'" style text for messages.
        max_count: values the whole file could possibly hold; a declared shape above it is
            reported as absurd (corrupt file) rather than as a plain mismatch.

    Returns:
        The shape tuple, outermost axis first.

    Raises:
        WeightsError: negative dimension, absurdly large shape, or element count != count.
    """
    if legacy is not None:
        shape = tuple(0 if d is None else int(d) for d in legacy)
        kind = "legacy 4-D shape (num, channels, height, width)"
    elif dims is not None:
        shape = tuple(int(d) for d in dims)
        kind = "shape"
    elif count == 1:
        return ()
    else:
        raise WeightsError(f"{where} holds {count} values but declares no shape (neither "
                           "`shape` nor num/channels/height/width); the file is not a valid "
                           "Caffe blob")
    if any(d < 0 for d in shape):
        raise WeightsError(f"{where} declares a negative dimension in its {kind} {shape}; "
                           "the file is corrupt")
    declared = math.prod(shape)
    if max_count is not None and declared > max_count:
        raise WeightsError(f"{where} declares an absurdly large {kind} {shape} "
                           f"({declared} values) that the whole file could not hold; "
                           "the file is corrupt or not a caffemodel")
    if declared != count:
        raise WeightsError(f"{where} declares {kind} {shape} ({declared} values) but holds "
                           f"{count} values; the file is corrupt or was written by a buggy tool")
    return shape


def decode_raw(raw: bytes | bytearray | memoryview, raw_type: int | None,
               where: str) -> tuple[np.ndarray, str]:
    """Turn fork-style ``raw_data`` bytes into a flat float32 array.

    Returns:
        (1-D float32 array, stored dtype name). float32 data is a view when ``raw`` is a
        buffer; other types are converted (a new array).

    Raises:
        WeightsError: unknown or missing raw_data_type, or a byte count that is not a multiple
        of the element size.
    """
    if raw_type is None:
        raise WeightsError(f"{where} has raw_data but no raw_data_type; cannot tell float16 "
                           "from float32 (the file comes from a Caffe fork fcnkit does not know)")
    if raw_type not in RAW_TYPES:
        raise WeightsError(f"{where} has raw_data_type {raw_type}, which fcnkit does not know "
                           f"(known: {sorted(RAW_TYPES)})")
    np_type, name = RAW_TYPES[raw_type]
    itemsize = np.dtype(np_type).itemsize
    if len(raw) % itemsize:
        raise WeightsError(f"{where} has {len(raw)} bytes of {name} raw_data, not a multiple of "
                           f"{itemsize}; the file is corrupt")
    flat = np.frombuffer(raw, dtype=np_type)
    if name != "float32":
        flat = flat.astype(np.float32)
    return flat, name


def blob_to_array(blob: caffe_pb2.BlobProto, where: str = "blob") -> np.ndarray:
    """Convert an in-memory BlobProto to a float32 array with its Caffe shape.

    Data source in Caffe's order of preference: ``double_data`` (converted), ``data``, then the
    fork field ``raw_data``. Shape: legacy num/channels/height/width when any is set (4-D,
    kept as stored), else ``shape``.

    Args:
        blob: the message.
        where: how to name the blob in error messages.

    Returns:
        A new float32 array (a copy; the message is not referenced).

    Raises:
        WeightsError: the shape does not match the number of values, or raw_data is unusable.
    """
    if len(blob.double_data):
        flat = np.asarray(blob.double_data, dtype=np.float64).astype(np.float32)
    elif len(blob.data):
        flat = np.asarray(blob.data, dtype=np.float32)
    elif blob.HasField("raw_data"):
        raw_type = blob.raw_data_type if blob.HasField("raw_data_type") else None
        flat, _ = decode_raw(blob.raw_data, raw_type, where)
        flat = flat.astype(np.float32, copy=True)
    else:
        flat = np.zeros(0, dtype=np.float32)
    legacy = None
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        legacy = tuple(getattr(blob, f) if blob.HasField(f) else None
                       for f in ("num", "channels", "height", "width"))
    dims = list(blob.shape.dim) if blob.HasField("shape") else None
    return flat.reshape(resolve_shape(legacy, dims, flat.size, where))


def array_to_blob(array: np.ndarray) -> caffe_pb2.BlobProto:
    """Convert an array to a BlobProto holding ``shape`` and float32 ``data``.

    Args:
        array: any real-valued array (converted to float32); its shape becomes ``shape.dim``.

    Returns:
        A new BlobProto (no legacy 4-D fields).

    Raises:
        WeightsError: the array is not numeric.
    """
    arr = _as_float32(array, "array")
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(int(d) for d in arr.shape)
    blob.data.extend(arr.ravel().tolist())
    return blob


def _as_float32(array, where: str) -> np.ndarray:
    """``array`` as a C-contiguous little-endian float32 array (copying only when needed)."""
    try:
        arr = np.asarray(array)
        if arr.dtype.kind not in "fiub":
            raise TypeError(arr.dtype)
        return np.ascontiguousarray(arr, dtype="<f4")
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{where} is not a numeric array ({exc}); pass numpy arrays of "
                           "numbers") from None
