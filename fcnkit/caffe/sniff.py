"""Recognise files that are not caffemodels, so the error says what the file actually is.

A binary caffemodel (serialized NetParameter) starts with a protobuf key: 0x0a (name),
0x12 (V1 layers), 0x1a (input), 0x20 (input_dim) or 0xa2 0x06 (V2 layer). Failed downloads,
Git LFS pointers, text prototxts and archives start very differently.
"""

from __future__ import annotations

import re

_TEXT_PROTO = re.compile(rb"^\s*(#|[A-Za-z_][A-Za-z0-9_]*\s*[:{<])")
_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title")


def describe_non_caffemodel(head: bytes) -> str | None:
    """Explain why ``head`` (the first few KB of a file) cannot start a caffemodel.

    Args:
        head: the file's first bytes (4 KB is plenty).

    Returns:
        A sentence for the user ("this looks like an HTML page, ...") or None when the bytes
        may well be a binary caffemodel.
    """
    if not head:
        return "the file is empty; the download or copy probably failed"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    lower = stripped[:1024].lower()
    if stripped.startswith(b"<"):
        # 0x3c would be an end-group key: never the first byte of a NetParameter.
        if any(m in lower for m in _HTML_MARKERS):
            return ("this looks like an HTML page, not a caffemodel; the download probably "
                    "failed (open the file in a text editor to read the server's message)")
        return ("this looks like an XML/HTML document, not a caffemodel; the download "
                "probably failed (open the file in a text editor to read it)")
    if head.startswith(b"version https://git-lfs"):
        return ("this is a Git LFS pointer file, not the model itself; fetch the real file "
                "(git lfs pull)")
    if head.startswith(b"\x89HDF"):
        return ("this is an HDF5 file (Caffe's .caffemodel.h5 snapshot format); fcnkit reads "
                "binary protobuf caffemodels only")
    if head.startswith(b"\x1f\x8b"):
        return "this is a gzip-compressed file; decompress it first (gunzip)"
    if head.startswith(b"PK\x03\x04"):
        return ("this is a zip archive (a compressed download, or a PyTorch checkpoint?), "
                "not a caffemodel; extract it first")
    if head.startswith(b"\x93NUMPY"):
        return "this is a NumPy .npy file, not a caffemodel"
    if _looks_like_text(head):
        if _TEXT_PROTO.match(head):
            return ("this is a text prototxt, not a binary caffemodel; read it with "
                    "read_prototxt (the weights are in the .caffemodel file)")
        return "this is a text file, not a binary caffemodel"
    return None


def _looks_like_text(head: bytes) -> bool:
    sample = head[:4096]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the 4 KB sample boundary is still text.
        if len(sample) < 4096 or exc.start < len(sample) - 3:
            return False
        text = sample[:exc.start].decode("utf-8")
    return bool(text) and all(c.isprintable() or c in "\t\r\n\f" for c in text)


def describe_solver(text: str) -> str | None:
    """If ``text`` parses as a solver prototxt (SolverParameter) with a net, say so and name
    its net, for a user who gave the solver where a net is expected; else None.

    Returns:
        e.g. "this is a solver prototxt, not a net; its net is 'train_val.prototxt' (give
        that file instead)", or None.
    """
    from fcnkit.caffe.solver import parse_solver
    from fcnkit.errors import CaffeFormatError

    try:
        solver = parse_solver(text)
    except CaffeFormatError:
        return None
    files = ([f"'{solver.net}'"] if solver.HasField("net") else []) \
        + ([f"'{solver.train_net}' (train_net)"] if solver.HasField("train_net") else []) \
        + [f"'{t}' (test_net)" for t in solver.test_net]
    inline = [field for field in ("net_param", "train_net_param") if solver.HasField(field)]
    if len(solver.test_net_param):
        inline.append("test_net_param")
    if files:
        one = len(files) == 1
        return (f"this is a solver prototxt, not a net; its {'net is' if one else 'nets are'} "
                f"{', '.join(files)} (relative to the directory Caffe runs in): give "
                f"{'that file' if one else 'one of those files'} instead")
    if inline:
        return (f"this is a solver prototxt, not a net; its net is written inside it "
                f"({', '.join(inline)}): copy that block into a file of its own")
    return None
