"""Write binary caffemodels: protobuf serializes each layer without its blobs and fcnkit
appends hand-encoded BlobProto fields written straight from the arrays' memory (field
numbers: src/caffe/proto/caffe.proto, see :mod:`fcnkit.caffe.caffemodel_fields`), one layer
at a time, so no second copy of all the weights is built."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from google.protobuf.message import Message

from fcnkit.atomic import atomic_open
from fcnkit.caffe import caffe_pb2
from fcnkit.caffe.blobs import _as_float32
from fcnkit.caffe.caffemodel_fields import (BLOB_DATA, BLOB_SHAPE, LAYER_BLOBS_V2, NET_LAYER_V2, SHAPE_DIM,
                                            is_repeated)
from fcnkit.caffe.wire import LENGTH_DELIMITED, encode_key, encode_length_delimited, encode_varint
from fcnkit.errors import CaffeFormatError, WeightsError
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
        if is_repeated(fdesc):
            target.extend(value)
        elif fdesc.message_type is not None:
            target.CopyFrom(value)
        else:
            setattr(copy, fdesc.name, value)
    return copy
