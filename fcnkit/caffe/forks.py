"""Caffe-fork layer parameters in prototxt text and caffemodels (schemas/caffe_forks.proto).

Fork prototxts write their parameters like BVLC ones (``norm_param { across_spatial: false }``),
but in fcnkit's schema they are proto2 *extensions* of ``LayerParameter``, which protobuf's
text format spells ``[caffe.norm_param] { ... }``. :func:`to_protobuf_text` rewrites the
first form into the second before parsing; :func:`to_fork_text` rewrites it back after
printing. Only names inside a top-level ``layer { }`` block, at its first nesting level, are
touched, and only names that are not BVLC ``LayerParameter`` fields, so a BVLC file is passed
to protobuf unchanged, byte for byte.

Three kinds of name are rewritten:

- a fork parameter of the schema (``norm_param``, ``upsample_param``, ``interp_param``...).
  ``bn_param`` names two messages (SegNet's and PSPNet's ``BNParameter``); the fields the
  block uses decide (:data:`_BN_FORKS`; an empty block is PSPNet's);
- any other ``xxx_param`` block that is no near-miss of a BVLC field name (``convolutoin_param``
  still gets protobuf's "unknown field ... did you mean" error): it is kept verbatim as an
  ``extra_param`` entry (name, body text, line) for a layer type registered by a plugin, read
  with :func:`extra_param`. The graph refuses it on a built-in layer type.

Binary caffemodels of a fork keep the fork's own field numbers, some of which BVLC uses for
other fields (SegNet's ``upsample_param`` is 137, BVLC's ``embed_param``): see
:func:`resolve_binary`, which decodes them by the layer's type.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

from google.protobuf import text_format

from fcnkit.caffe import caffe_forks_pb2, caffe_pb2
from fcnkit.caffe.linescan import tokens
from fcnkit.caffe.wire import read_key, read_length, skip_value

_WORD = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_LAYER_FIELDS = frozenset(f.name for f in caffe_pb2.LayerParameter.DESCRIPTOR.fields)
#: Text name -> extension name, for names that mean one message.
_TEXT_NAMES = {
    "norm_param": "norm_param", "permute_param": "permute_param",
    "prior_box_param": "prior_box_param", "detection_output_param": "detection_output_param",
    "upsample_param": "upsample_param", "dense_image_data_param": "dense_image_data_param",
    "interp_param": "interp_param", "spatial_dropout_param": "spatial_dropout_param",
    "roi_pooling_param": "roi_pooling_param",
}
#: Fields that only SegNet's BNParameter has; a ``bn_param`` block using one is SegNet's.
_BN_FORKS = ("bn_mode", "scale_filler", "shift_filler")
EXTRA = "extra_param"
#: Similarity (difflib ratio) above which an unknown ``xxx_param`` is taken for a misspelt
#: BVLC field and left to protobuf's error ("did you mean"): convolutoin_param 0.94 is a
#: typo, tripler_param ~ tile_param 0.87 is not. (relu6_param ~ relu_param, 0.95, counts as
#: a typo: a plugin for such a name has to be registered under another parameter name.)
_TYPO = 0.9


def extension(name: str) -> Any:
    """The extension field descriptor of ``caffe_forks.proto`` called ``name``.

    Raises:
        KeyError: no such extension.
    """
    return caffe_forks_pb2.DESCRIPTOR.extensions_by_name[name]


def fork_param(layer_param: Any, name: str) -> Any | None:
    """The fork parameter ``name`` (an extension name such as ``"norm_param"``) of a
    LayerParameter, or None when the layer does not set it."""
    ext = extension(name)
    return layer_param.Extensions[ext] if layer_param.HasExtension(ext) else None


def extra_param(layer_param: Any, name: str) -> Any | None:
    """The ``ExtraLayerParameter`` (``name``, ``text``: the block's body, ``line``) kept for
    an ``xxx_param`` block that no schema defines, or None."""
    for e in layer_param.Extensions[extension(EXTRA)]:
        if e.name == name:
            return e
    return None


def extra_param_names(layer_param: Any) -> list[str]:
    """Names of the kept ``xxx_param`` blocks of a LayerParameter, in order."""
    return [e.name for e in layer_param.Extensions[extension(EXTRA)]]


# ------------------------------------------------------------------------------------ text in

def to_protobuf_text(text: str) -> str:
    """Rewrite fork parameter names of prototxt ``text`` into protobuf's extension syntax
    (see the module docstring). Lines are kept: line numbers of the result are those of
    ``text``. Text without fork parameters is returned unchanged."""
    edits = []  # (start, end, replacement)
    for start, end, name, body_start, body_end, line in _layer_param_blocks(text):
        if name in _LAYER_FIELDS:
            continue
        if name == "bn_param":
            used = set(re.findall(r"[A-Za-z_]\w*", _strip_comments(text[body_start:body_end])))
            ext = "segnet_bn_param" if used & set(_BN_FORKS) else "bn_param"
            edits.append((start, start + len(name), f"[caffe.{ext}]"))
        elif name in _TEXT_NAMES:
            edits.append((start, start + len(name), f"[caffe.{_TEXT_NAMES[name]}]"))
        elif name.endswith("_param") and not difflib.get_close_matches(
                name, _LAYER_FIELDS, n=1, cutoff=_TYPO):
            body = text[body_start:body_end]
            kept = (f'[caffe.{EXTRA}] {{ name: "{name}" text: {json.dumps(body)} '
                    f"line: {line} }}")
            edits.append((start, end, kept + "\n" * text.count("\n", start, end)))
    out, pos = [], 0
    for s, e, rep in edits:
        out.append(text[pos:s])
        out.append(rep)
        pos = e
    out.append(text[pos:])
    return "".join(out)


def _strip_comments(body: str) -> str:
    return re.sub(r"#[^\n]*", "", body)


def _layer_param_blocks(text: str):
    """Yield (start, end, name, body_start, body_end, line) for every ``name { ... }`` block
    at depth 1 of a top-level ``layer`` block; ``end`` is after the closing brace."""
    depth, top_word, in_layer = 0, "", False
    word, word_start, word_line = "", -1, 0
    opened: list[tuple[str, int, int, int]] = []  # (name, start, body_start, line) per depth
    for t in tokens(text, _WORD):
        if t.kind == "open":
            if depth == 0:
                in_layer = top_word == "layer"
            opened.append((word, word_start, t.start + 1, word_line))
            depth += 1
            word = ""
        elif t.kind == "close":
            if opened:
                name, start, body_start, wline = opened.pop()
                if depth == 2 and in_layer and name and start >= 0:
                    yield start, t.start + 1, name, body_start, t.start, wline
            depth = max(depth - 1, 0)
            word = ""
        elif t.kind == "word":
            word, word_start, word_line = t.text, t.start, t.line
            if depth == 0:
                top_word = word
        elif t.kind != "colon":  # `name: {` keeps the name
            word = ""


# ----------------------------------------------------------------------------------- text out

_EXT_LINE = re.compile(r"^(?P<indent>[ \t]*)\[caffe\.(?P<ext>\w+)\] \{$")


def to_fork_text(text: str) -> str:
    """Rewrite protobuf's extension syntax in printed prototxt ``text`` back into the forks'
    plain field names (``[caffe.segnet_bn_param] {`` -> ``bn_param {``); a kept
    ``extra_param`` becomes its original ``name { body }`` again."""
    lines = text.split("\n")
    out, i = [], 0
    while i < len(lines):
        m = _EXT_LINE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent, ext = m.group("indent"), m.group("ext")
        if ext != EXTRA:
            name = "bn_param" if ext == "segnet_bn_param" else ext
            out.append(f"{indent}{name} {{")
            i += 1
            continue
        j = i + 1
        while lines[j] != f"{indent}}}":
            j += 1
        msg = caffe_forks_pb2.ExtraLayerParameter()
        text_format.Parse("\n".join(lines[i + 1:j]), msg)
        out.append(f"{indent}{msg.name} {{{msg.text}}}")
        i = j + 1
    return "\n".join(out)


# ------------------------------------------------------------------------------------- binary

#: Layer type -> [(fork field number, extension name)] for caffemodels written by a fork:
#: the numbers each fork's caffe.proto gives, tried in order; the first present wins.
BINARY_NUMBERS: dict[str, list[tuple[int, str]]] = {
    "Normalize": [(206, "norm_param"), (149, "norm_param")],       # SSD; OpenCV / early SSD
    "Permute": [(202, "permute_param"), (148, "permute_param")],   # SSD; OpenCV
    "PriorBox": [(203, "prior_box_param"), (150, "prior_box_param")],
    "DetectionOutput": [(204, "detection_output_param"), (147, "detection_output_param")],
    "Upsample": [(137, "upsample_param")],                          # SegNet (BVLC embed 137)
    "DenseImageData": [(138, "dense_image_data_param")],            # SegNet (BVLC tile 138)
    "BN": [(45, "segnet_bn_param"), (137, "bn_param")],             # SegNet; PSPNet
    "Interp": [(163, "interp_param")],                              # PSPNet
    "ROIPooling": [(8266711, "roi_pooling_param"), (150, "roi_pooling_param")],
}


def resolve_binary(layer_param: Any, raw: bytes) -> None:
    """Set the fork parameter of ``layer_param`` from the layer's raw caffemodel bytes
    ``raw`` (the serialized LayerParameter), decoding the fork's field number chosen by the
    layer's type (:data:`BINARY_NUMBERS`). A fork number that BVLC also uses (137, 138, 147,
    148) was decoded by protobuf as the BVLC field (``embed_param``...); that field is
    cleared. Does nothing for other types or when no number is present.

    Raises:
        WireError: ``raw`` is not a well-formed message.
        google.protobuf.message.DecodeError: the fork field does not decode as its message.
    """
    candidates = BINARY_NUMBERS.get(layer_param.type)
    if not candidates:
        return
    fields = _length_delimited_fields(raw)
    for number, ext_name in candidates:
        if number not in fields:
            continue
        ext = extension(ext_name)
        if ext.number != number:
            bvlc = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_number.get(number)
            if bvlc is not None:
                layer_param.ClearField(bvlc.name)
        msg = layer_param.Extensions[ext]
        msg.Clear()
        msg.MergeFromString(fields[number])
        return


def _length_delimited_fields(raw: bytes) -> dict[int, bytes]:
    """{field number: payload} of the top-level length-delimited fields of a message (the
    last occurrence wins, as for a singular message field)."""
    buf, pos, end, out = bytearray(raw), 0, len(raw), {}
    while pos < end:
        number, wire_type, pos = read_key(buf, pos, end)
        if wire_type == 2:
            start, pos = read_length(buf, pos, end)
            out[number] = bytes(buf[start:pos])
        else:
            pos = skip_value(buf, wire_type, pos, end)
    return out


__all__ = ["to_protobuf_text", "to_fork_text", "resolve_binary", "fork_param", "extra_param",
           "extra_param_names", "extension", "BINARY_NUMBERS"]
