"""Helpers for the fcnkit.caffe tests: the shared third-party Caffe files and a tiny,
independent protobuf encoder for building caffemodels by hand (so the reader is not tested
only against fcnkit's own writer)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

# /work/shared/data/caffe, i.e. ../shared/data/caffe from the repository root.
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "caffe"


def data_files(suffix: str) -> list[Path]:
    """Every file of the shared Caffe data folder ending in ``suffix`` (sorted)."""
    if not DATA.is_dir():
        return []
    return sorted(DATA.rglob(f"*{suffix}"))


def data_file(relative: str) -> Path:
    """One file of the shared folder; skips the test when the folder is absent."""
    path = DATA / relative
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    return path


def data_id(path: Path) -> str:
    return str(path.relative_to(DATA))


# --- hand encoder ---------------------------------------------------------------------------

def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def ld(field: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return key(field, 2) + varint(len(payload)) + payload


def vint(field: int, value: int) -> bytes:
    return key(field, 0) + varint(value)


def string(field: int, text: str) -> bytes:
    return ld(field, text.encode())


def packed_floats(field: int, values, fmt: str = "<f") -> bytes:
    return ld(field, b"".join(struct.pack(fmt, v) for v in values))


def unpacked_floats(field: int, values) -> bytes:
    return b"".join(key(field, 5) + struct.pack("<f", v) for v in values)


def unpacked_doubles(field: int, values) -> bytes:
    return b"".join(key(field, 1) + struct.pack("<d", v) for v in values)


def shape(dims) -> bytes:
    """BlobProto.shape (field 7) holding packed BlobShape.dim."""
    return ld(7, ld(1, b"".join(varint(d) for d in dims)))


def v2_layer(name: str, type_: str, blobs: list[bytes]) -> bytes:
    """NetParameter.layer (field 100) with name, type and BlobProto payloads."""
    body = string(1, name) + string(2, type_) + b"".join(ld(7, b) for b in blobs)
    return ld(100, body)
