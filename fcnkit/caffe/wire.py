"""Protobuf wire-format primitives for walking large caffemodels by hand.

Only what :mod:`fcnkit.caffe.caffemodel` needs: read a varint, step over one field, encode a
tag and a length. ``buf`` is anything indexable by byte offset: the walker reads the file's
read-only mapping (or, where it cannot be mapped, a ``bytearray`` holding the whole file).

Wire format (https://protobuf.dev/programming-guides/encoding/): every field is a varint key
``(field_number << 3) | wire_type`` followed by its value; wire types used by Caffe files are
0 (varint), 1 (8 bytes), 2 (length-delimited: a varint length then the bytes) and 5 (4 bytes).
Types 3 and 4 (groups) are deprecated and never written by Caffe.
"""

from __future__ import annotations

VARINT = 0
FIXED64 = 1
LENGTH_DELIMITED = 2
START_GROUP = 3
END_GROUP = 4
FIXED32 = 5


class WireError(Exception):
    """Malformed or truncated wire data.

    Internal: the caffemodel reader turns it into a :class:`fcnkit.errors.CaffeFormatError`
    that names the file and the layer.

    Attributes:
        offset: byte offset in the file where the problem starts.
        reason: what is wrong.
        truncated: True when the data runs past the end of its enclosing message or file.
    """

    def __init__(self, offset: int, reason: str, truncated: bool = False):
        super().__init__(f"byte {offset}: {reason}")
        self.offset = offset
        self.reason = reason
        self.truncated = truncated


def read_varint(buf: bytearray, pos: int, end: int) -> tuple[int, int]:
    """Decode one base-128 varint starting at ``buf[pos]``, not reading at or past ``end``.

    Returns:
        (value, position after the varint). ``value`` is unsigned (up to 64 bits); callers
        that expect a signed int32/int64 apply :func:`to_signed64`.

    Raises:
        WireError: the varint runs past ``end`` (truncated=True) or is longer than 10 bytes.
    """
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise WireError(start, "a varint runs past the end of its data", truncated=True)
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError(start, "a varint is longer than 10 bytes")


def to_signed64(value: int) -> int:
    """Reinterpret an unsigned 64-bit varint value as two's-complement int64.

    Protobuf encodes negative int32/int64 values as 10-byte varints of their 64-bit
    two's-complement form.
    """
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= (1 << 63) else value


def read_key(buf: bytearray, pos: int, end: int) -> tuple[int, int, int]:
    """Decode a field key at ``pos``.

    Returns:
        (field_number, wire_type, position after the key).

    Raises:
        WireError: truncated key, field number 0, or a wire type that does not exist (6, 7).
    """
    key, after = read_varint(buf, pos, end)
    field, wire_type = key >> 3, key & 7
    if field == 0:
        raise WireError(pos, "field number 0 is not valid protobuf")
    if wire_type > 5:
        raise WireError(pos, f"wire type {wire_type} does not exist in protobuf")
    return field, wire_type, after


def skip_value(buf: bytearray, wire_type: int, pos: int, end: int) -> int:
    """Step over the value of a field whose key ended at ``pos``.

    Returns:
        The position after the value (for wire type 2, after the payload).

    Raises:
        WireError: the value runs past ``end`` (truncated=True) or is a group (wire types 3/4,
        which Caffe never writes).
    """
    if wire_type == VARINT:
        return read_varint(buf, pos, end)[1]
    if wire_type == FIXED64:
        size = 8
    elif wire_type == FIXED32:
        size = 4
    elif wire_type == LENGTH_DELIMITED:
        size, pos = read_varint(buf, pos, end)
    else:
        raise WireError(pos, f"wire type {wire_type} (group) is not used by Caffe files")
    if pos + size > end:
        raise WireError(pos, f"a field needs {size} bytes but only {end - pos} remain",
                        truncated=True)
    return pos + size


def read_length(buf: bytearray, pos: int, end: int) -> tuple[int, int]:
    """Read the length prefix of a wire-type-2 field and check the payload fits before ``end``.

    Returns:
        (payload start, payload end).

    Raises:
        WireError: the length varint or the payload runs past ``end`` (truncated=True).
    """
    size, start = read_varint(buf, pos, end)
    if start + size > end:
        raise WireError(start, f"a field declares {size} bytes but only {end - start} remain",
                        truncated=True)
    return start, start + size


def encode_varint(value: int) -> bytes:
    """Encode a non-negative integer as a base-128 varint."""
    if value < 0:
        value &= (1 << 64) - 1  # int64 two's complement, as protobuf writes negative ints
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_key(field: int, wire_type: int) -> bytes:
    """Encode the key of field ``field`` with wire type ``wire_type``."""
    return encode_varint((field << 3) | wire_type)


def encode_length_delimited(field: int, payload: bytes) -> bytes:
    """Encode a complete wire-type-2 field (key, length, payload)."""
    return encode_key(field, LENGTH_DELIMITED) + encode_varint(len(payload)) + payload
