"""Parse protobuf text (prototxt) into Caffe messages, with errors a user can act on.

protobuf's own ParseError says "2:23 : Message type "caffe.ConvolutionParameter" has no field
named "kernal_size"."; fcnkit turns that into a :class:`CaffeFormatError` carrying the file,
line and column, names the layer block, suggests the closest field name, shows the source
line with a caret, and adds hints for the usual V1/V2 mix-ups.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from google.protobuf import descriptor_pool, text_format
from google.protobuf.message import Message

from fcnkit.caffe import caffe_pb2  # noqa: F401  (registers the caffe.* descriptors)
from fcnkit.caffe.linescan import scan_blocks
from fcnkit.errors import CaffeFormatError

_PREFIX = re.compile(r"^\d+:\d+ : ")
_NO_FIELD = re.compile(r'Message type "([\w.]+)" has no field named "([^"]+)"')
_NO_ENUM = re.compile(r'Enum type "([\w.]+)" has no value named (\S+?)\.?$')
_NO_ENUM_NUM = re.compile(r'Enum type "([\w.]+)" has no value with number (-?\d+)')
_MULTIPLE = re.compile(r'Message type "([\w.]+)" should not have multiple "([^"]+)" fields')

# Field names that mean "this is the other generation's syntax".
_V1_ONLY_IN_V2 = {
    "blobs_lr": "`blobs_lr` is V1 syntax; in a V2 `layer` block write "
                "`param { lr_mult: ... }` once per blob",
    "weight_decay": "`weight_decay` is V1 syntax; in a V2 `layer` block write "
                    "`param { decay_mult: ... }` once per blob",
}


def read_text_file(path: str | Path) -> str:
    """Read a prototxt file as UTF-8 text.

    Raises:
        CaffeFormatError: the file cannot be read, or it is binary (e.g. a caffemodel passed
            where a prototxt is expected) or not UTF-8.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CaffeFormatError.unreadable(exc, path, "prototxt") from None
    if b"\x00" in data[:65536]:
        raise CaffeFormatError(
            "this is a binary file, not a text prototxt (a .caffemodel? read it with "
            "read_caffemodel / --weights)", path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise CaffeFormatError(
            "the file is not UTF-8 text (a binary caffemodel? read it with read_caffemodel); "
            f"undecodable byte 0x{data[exc.start]:02x}", path, line, col) from None


def parse_text(text: str, message: Message, path: str | Path | None = None) -> None:
    """Parse prototxt ``text`` into ``message`` (cleared first), strictly like Caffe.

    Unknown fields, unknown enum values and repeated singular fields are errors, as in Caffe's
    ReadProtoFromTextFile (protobuf TextFormat::Parse).

    Raises:
        CaffeFormatError: with path, 1-based line and column, the layer block it is in and a
            hint.
    """
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise _convert(exc, text, path) from None


def _convert(exc: text_format.ParseError, text: str, path) -> CaffeFormatError:
    line, col = exc.GetLine(), exc.GetColumn()
    lines = text.splitlines()
    src = lines[line - 1] if line and 0 < line <= len(lines) else None
    msg = _PREFIX.sub("", str(exc))
    # protobuf sometimes repeats the whole source line in quotes before the reason.
    if src is not None and msg.startswith(f"'{src}': "):
        msg = msg[len(src) + 4:]
    reason, hint = _explain(msg, src)
    where = _layer_context(text, line)
    full = reason + (f" ({where})" if where else "")
    if hint:
        full += f"; {hint}"
    if src is not None:
        caret = " " * (max(col, 1) - 1 + 4) + "^"
        # protobuf counts a tab as one column; show it as one space so the caret lines up.
        full += f"\n    {src.replace(chr(9), ' ')}\n{caret}"
    return CaffeFormatError(full, path, line or None, col or None)


def _explain(msg: str, src: str | None) -> tuple[str, str | None]:
    """Rewrite protobuf's parse message; return (reason, hint or None)."""
    m = _NO_FIELD.search(msg)
    if m:
        type_name, field = m.group(1), m.group(2)
        short = type_name.split(".")[-1]
        reason = f"unknown field '{field}' in {short}"
        if short == "LayerParameter" and field in _V1_ONLY_IN_V2:
            return reason, _V1_ONLY_IN_V2[field]
        names = _field_names(type_name)
        close = difflib.get_close_matches(field, names, n=1, cutoff=0.8)
        if close:
            return reason, f"did you mean '{close[0]}'?"
        if short == "LayerParameter" and field.endswith("_param"):
            return reason, ("BVLC Caffe has no such layer parameter; the Caffe-fork parameters "
                            "fcnkit knows are in schemas/caffe_forks.proto, and other `*_param` "
                            "blocks are kept for plugin layer types only in V2 `layer { }` blocks")
        if len(names) <= 25:
            return reason, f"{short} has the fields: {', '.join(sorted(names))}"
        return reason, f"see message {short} in schemas/caffe.proto for the valid fields"
    m = _NO_ENUM.search(msg)
    if m:
        type_name, value = m.group(1), m.group(2)
        values = _enum_values(type_name)
        reason = f"unknown value '{value}' for {type_name.split('.', 1)[-1]}"
        close = difflib.get_close_matches(value, values, n=1, cutoff=0.6)
        hint = f"expected one of {', '.join(values)}"
        if close:
            hint = f"did you mean {close[0]}? ({hint})"
        return reason, hint
    m = _NO_ENUM_NUM.search(msg)
    if m:
        values = _enum_values(m.group(1))
        return (f"unknown number {m.group(2)} for {m.group(1).split('.', 1)[-1]}",
                f"expected one of {', '.join(values)}")
    m = _MULTIPLE.search(msg)
    if m:
        return (f"field '{m.group(2)}' of {m.group(1).split('.')[-1]} is given more than once "
                "but holds a single value", "remove the extra one")
    if "Expected string but found" in msg and src is not None and re.search(r"\btype\s*:", src):
        return (msg, "V2 `layer` blocks take a quoted type name such as \"Convolution\"; "
                     "unquoted enum types like CONVOLUTION belong to V1 `layers` blocks")
    if 'Expected "}"' in msg or 'Expected ">"' in msg or "got }" in msg:
        return msg, "check for a missing or extra brace before this point"
    return msg, None


def _field_names(full_name: str) -> list[str]:
    try:
        desc = descriptor_pool.Default().FindMessageTypeByName(full_name)
    except KeyError:
        return []
    return [f.name for f in desc.fields]


def _enum_values(full_name: str) -> list[str]:
    try:
        desc = descriptor_pool.Default().FindEnumTypeByName(full_name)
    except KeyError:
        return []
    return [v.name for v in desc.values]


def _layer_context(text: str, line: int | None) -> str | None:
    """Describe the top-level layer block that holds ``line``, e.g. "in layer 'conv1' (line 3)"."""
    if not line:
        return None
    for block in scan_blocks(text):
        if block.keyword not in ("layer", "layers"):
            continue
        end = block.end_line if block.end_line is not None else float("inf")
        if block.line <= line <= end:
            body = "\n".join(text.splitlines()[block.line - 1:line])
            m = re.search(r"\bname\s*:\s*[\"']([^\"']*)[\"']", body)
            name = f" '{m.group(1)}'" if m else ""
            return f"in the {block.keyword} block{name} starting at line {block.line}"
    return None
