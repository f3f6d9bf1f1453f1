"""Mutations of Caffe files, compiled directories and array files for tools/fuzz.py.

Every mutator takes the seed bytes and a ``random.Random`` and returns new bytes; the
choice of mutator is part of the case's description (so that a reproducer says what was
done). Nothing here imports fcnkit: the mutations know the formats only as bytes and text.
"""

from __future__ import annotations

import io
import json
import random
import re
import struct
import zipfile

#: Numbers that break arithmetic: int32/uint32/int64 edges, zero, negatives, NaN, inf.
EVIL_NUMBERS = ["0", "-1", "1", "2147483647", "2147483648", "4294967295", "4294967296",
                "-2147483648", "9223372036854775807", "18446744073709551616", "1e308", "-1e308",
                "nan", "inf", "-inf", "1e-45", "3", "100000", "0.5"]

#: Names that attack generated code and torch's module attributes.
HOSTILE_NAMES = [
    'zz", getattr(__import__("os"), "system")("touch FUZZ_PWNED")) or getattr(self, "zz',
    "zz', __import__('os').system('touch FUZZ_PWNED'), '", "a\nb", "back\\", "nul\x00",
    "__class__", "training", "_modules", "self", "torch", "forward", "卷积", "", "1x", "a.b",
]

_NUMBER = re.compile(rb"(?<![A-Za-z_])-?\d+(\.\d+)?([eE][-+]?\d+)?")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def line_delete(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    del lines[rng.randrange(len(lines))]
    return b"\n".join(lines)


def line_duplicate(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    i = rng.randrange(len(lines))
    lines.insert(rng.randrange(len(lines) + 1), lines[i])
    return b"\n".join(lines)


def number_swap(data: bytes, rng: random.Random) -> bytes:
    spans = [m.span() for m in _NUMBER.finditer(data)]
    if not spans:
        return data
    a, b = rng.choice(spans)
    return data[:a] + rng.choice(EVIL_NUMBERS).encode() + data[b:]


def byte_flip(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    return bytes(buf)


def bit_flip(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        if buf:
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randrange(max(1, len(data)))]


def unbalance_braces(data: bytes, rng: random.Random) -> bytes:
    spots = [m.start() for m in re.finditer(rb"[{}]", data)]
    if not spots:
        return data + b"{"
    i = rng.choice(spots)
    return data[:i] + rng.choice([b"", b"{{", b"}}", b"{ }"]) + data[i + 1:]


def hostile_name(data: bytes, rng: random.Random) -> bytes:
    spans = [m.span() for m in _STRING.finditer(data)]
    if not spans:
        return data
    a, b = rng.choice(spans)
    name = rng.choice(HOSTILE_NAMES)
    name = (name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            .replace("\x00", "\\000"))  # a prototxt string literal (C escapes)
    return data[:a] + b'"' + name.encode("utf-8") + b'"' + data[b:]


def rewire(data: bytes, rng: random.Random) -> bytes:
    """Cycles and duplicate tops: copy one bottom/top value onto another."""
    spans = [m for m in re.finditer(rb'(bottom|top): *"([^"]*)"', data)]
    if len(spans) < 2:
        return data
    src, dst = rng.sample(spans, 2)
    a, b = dst.span(2)
    return data[:a] + src.group(2) + data[b:]


def huge_varint(data: bytes, rng: random.Random) -> bytes:
    """Insert a field key followed by a 10-byte varint (a length or dim near 2**64)."""
    i = rng.randrange(len(data) + 1)
    key = bytes([rng.choice([0x0A, 0x12, 0x1A, 0x2A, 0x32, 0x08, 0x10])])
    return data[:i] + key + b"\xff" * 9 + b"\x01" + data[i:]


def huge_shape(data: bytes, rng: random.Random) -> bytes:
    """Replace a varint after a BlobShape ``dim`` key (0x08) by a huge value."""
    spots = [m.start() for m in re.finditer(rb"\x08[\x01-\x7f]", data)]
    if not spots:
        return huge_varint(data, rng)
    i = rng.choice(spots)
    value = rng.choice([2**31 - 1, 2**32, 2**40, 2**62])
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            break
    return data[:i + 1] + bytes(out) + data[i + 2:]


TEXT = [line_delete, line_duplicate, number_swap, byte_flip, truncate, unbalance_braces,
        hostile_name, rewire]
BINARY = [bit_flip, byte_flip, truncate, huge_varint, huge_shape]


def json_mutation(data: bytes, rng: random.Random) -> bytes:
    """Damage one field of a compiled directory's fcnkit.json."""
    try:
        meta = json.loads(data)
    except ValueError:
        return byte_flip(data, rng)
    if not isinstance(meta, dict) or not meta:
        return data
    key = rng.choice(sorted(meta))
    meta[key] = rng.choice([None, [], {}, "x", -1, 2**70, float("nan"), [1, 2], {"a": [1]},
                            True, [[1, 1, 4, 4]], {"data": [0, 1]}, {"data": [2**40]}])
    if rng.random() < 0.1:
        return ("[" * 50000 + "]" * 50000).encode()
    return json.dumps(meta).encode()


def npy_mutation(data: bytes, rng: random.Random) -> bytes:
    """A .npy whose header says another dtype or shape, or whose bytes are damaged."""
    choice = rng.randrange(4)
    if choice == 0:
        descr = rng.choice(["<U3", "|O", "[('a', '<f4')]", "<c8", "|V8", "<M8[s]", "<f2", "|b1"])
        shape = rng.choice(["(1, 1, 28, 28)", "(2**40,)", "()", "(1, -1)", "(10**12, 10**6)", "(1, 1, 1, 1, 1, 1, 1, 1, 1)"])
        header = f"{{'descr': {descr if descr.startswith('[') else repr(descr)}, 'fortran_order': False, 'shape': {shape}, }}"
        header = header.ljust(118) + "\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data[128:]
    return [byte_flip, truncate, bit_flip][choice - 1](data, rng)


def npz_mutation(data: bytes, rng: random.Random) -> bytes:
    """Damage an .npz: its zip structure, or one member's .npy header."""
    if rng.random() < 0.5:
        return rng.choice([byte_flip, truncate, bit_flip])(data, rng)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = {n: z.read(n) for n in z.namelist()}
    except (zipfile.BadZipFile, OSError):
        return data
    if not members:
        return data
    name = rng.choice(sorted(members))
    members[name] = npy_mutation(members[name], rng)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    return buf.getvalue()
