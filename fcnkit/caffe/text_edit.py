"""Edit the values of one repeated integer field inside the layers of a prototxt *text*,
keeping everything else byte for byte: comments, spacing, field order, number spelling
(``0x12`` stays when its value stays).

``fcnkit offsets --fix`` uses it to write computed Crop offsets (``crop_param { offset }``)
into the user's own file instead of re-serialising the net (which would drop comments and
reformat everything). The scanner follows the protobuf text format as far as it can hide a
brace or a field: ``#`` comments, quoted strings with backslash escapes, ``{ }`` and ``< >``
blocks, optional ``:`` before a block, and list values ``offset: [1, 2]``
(protobuf ``text_format``; the same rules as :mod:`fcnkit.caffe.linescan`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from fcnkit.errors import CaffeFormatError

_TOKEN = re.compile(r"""
    (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?)
  | (?P<word>[A-Za-z0-9_.+\-]+)
  | (?P<punct>[{}<>\[\]:,;])
  | (?P<space>\s+)
  | (?P<other>.)
""", re.VERBOSE)
_OPEN, _CLOSE = "{<", "}>"


@dataclass
class _Tok:
    kind: str
    text: str
    start: int
    end: int


def _tokens(text: str) -> list[_Tok]:
    return [_Tok(m.lastgroup, m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)
            if m.lastgroup not in ("comment", "space")]


def _close_of(toks: list[_Tok], i: int) -> int:
    """Index of the token closing the block opened at ``toks[i]`` (or len(toks))."""
    depth = 0
    for j in range(i, len(toks)):
        if toks[j].kind == "punct" and toks[j].text in _OPEN:
            depth += 1
        elif toks[j].kind == "punct" and toks[j].text in _CLOSE:
            depth -= 1
            if depth == 0:
                return j
    return len(toks)


def _fields(toks: list[_Tok], lo: int, hi: int):
    """(name index, value start, value end) of each field directly inside toks[lo:hi]:
    a block field's value is its ``{ ... }`` range, a scalar's its value token(s)."""
    i = lo
    while i < hi:
        if toks[i].kind != "word":
            i += 1
            continue
        j = i + 1
        if j < hi and toks[j].text == ":":
            j += 1
        if j < hi and toks[j].kind == "punct" and toks[j].text in _OPEN:
            end = _close_of(toks, j)
            yield i, j, end
            i = end + 1
        elif j < hi and toks[j].text == "[":
            end = next((k for k in range(j, hi) if toks[k].text == "]"), hi)
            yield i, j, end
            i = end + 1
        else:
            yield i, j, min(j, hi - 1)
            i = j + 1


def _unquote(s: str) -> str:
    body = s[1:-1] if len(s) >= 2 else s
    return re.sub(r"\\(.)", r"\1", body)


def parse_int(token: str) -> int | None:
    """The value of a protobuf text integer (decimal, ``0x`` hex, leading-0 octal), or None."""
    t = token.lower()
    sign = -1 if t.startswith("-") else 1
    t = t.lstrip("+-")
    try:
        if t.startswith("0x"):
            return sign * int(t[2:], 16)
        if len(t) > 1 and t.startswith("0"):
            return sign * int(t[1:], 8)
        return sign * int(t, 10)
    except ValueError:
        return None


def _line_indent(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    m = re.match(r"[ \t]*", text[start:])
    return m.group() if m else ""


def _layer_blocks(toks: list[_Tok]):
    """(layer name, type, open index, close index) of each top-level ``layer`` block."""
    for name_i, open_i, close_i in _fields(toks, 0, len(toks)):
        if toks[name_i].text != "layer" or toks[open_i].text not in _OPEN:
            continue
        name = kind = None
        for fi, vs, _ in _fields(toks, open_i + 1, close_i):
            if toks[fi].text in ("name", "type") and toks[vs].kind == "string":
                if toks[fi].text == "name":
                    name = _unquote(toks[vs].text)
                else:
                    kind = _unquote(toks[vs].text)
        yield name, kind, open_i, close_i


def _edits_for_block(text, toks, open_i, close_i, message, field, values):
    """Text edits ((start, end, replacement), ...) that set ``message.field`` of one layer."""
    msg = next(((vs, ve) for fi, vs, ve in _fields(toks, open_i + 1, close_i)
                if toks[fi].text == message and toks[vs].text in _OPEN), None)
    # written anew: one value when all agree (as Caffe reads one offset for every axis)
    new = [str(values[0])] if len(set(values)) == 1 else [str(v) for v in values]
    if msg is None:
        ind = _line_indent(text, toks[open_i].start)
        body = "".join(f"{ind}    {field}: {v}\n" for v in new)
        close = toks[close_i]
        if text[text.rfind("\n", 0, close.start) + 1:close.start].strip() == "":
            at = text.rfind("\n", 0, close.start) + 1
            return [(at, at, f"{ind}  {message} {{\n{body}{ind}  }}\n")]
        return [(close.start, close.start, f"{message} {{ " + " ".join(f"{field}: {v}" for v in new) + " } ")]
    vs, ve = msg
    entries = [(fi, s, e) for fi, s, e in _fields(toks, vs + 1, ve) if toks[fi].text == field]
    slots = [k for _, s, e in entries for k in range(s, e + 1) if toks[k].kind == "word"]
    old = [parse_int(toks[k].text) for k in slots]
    values = list(values)
    if (old * len(values) if len(old) == 1 else old) == values:
        return []  # already right, however it is spelled
    if None not in old and len(slots) == len(values):
        return [(toks[k].start, toks[k].end, str(v)) for k, o, v in zip(slots, old, values) if o != v]
    if None not in old and len(slots) == 1 and len(set(values)) == 1:
        return [(toks[slots[0]].start, toks[slots[0]].end, str(values[0]))]
    return _rewrite_entries(text, toks, vs, entries, field, new)


def _rewrite_entries(text, toks, open_i, entries, field, new):
    """Replace all ``field`` entries by one entry per new value, where the first one was."""
    if not entries:
        brace = toks[open_i]
        nl = text.find("\n", brace.end)
        multiline = 0 <= nl < toks[open_i + 1].start if open_i + 1 < len(toks) else False
        if multiline:
            ind = _line_indent(text, brace.start) + "  "
            return [(nl + 1, nl + 1, "".join(f"{ind}{field}: {v}\n" for v in new))]
        return [(brace.end, brace.end, "".join(f" {field}: {v}" for v in new))]
    first = toks[entries[0][0]]
    ind = _line_indent(text, first.start)
    sep = "\n" + ind if len(entries) < 2 or "\n" in text[first.end:toks[entries[1][0]].start] else " "
    edits = [(first.start, toks[entries[0][2]].end, sep.join(f"{field}: {v}" for v in new))]
    for fi, _, e in entries[1:]:
        start, end = toks[fi].start, toks[e].end
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", end)
        line_end = len(text) if line_end < 0 else line_end
        if text[line_start:start].strip() == "" and text[end:line_end].strip() == "":
            start, end = line_start, min(line_end + 1, len(text))  # the whole line goes
        else:
            while start > line_start and text[start - 1] in " \t":  # with the space before it
                start -= 1
        edits.append((start, end, ""))
    return edits


def set_layer_field(text: str, values: Mapping[str, Sequence[int]], is_target,
                    message: str, field: str, path: str | None = None) -> str:
    """Set ``layer { message { field: ... } }`` of the named layers in prototxt text.

    Only the value tokens change when the text holds one value per axis, or one value and
    all new values agree (an unchanged value keeps its spelling; values that are already
    right leave the text as it is); otherwise the field's entries are rewritten where the
    first one was (one value when all agree, one per line or space-separated as they
    were); a missing ``message`` block or field is added, indented like its neighbours.

    Args:
        text: V2 prototxt text (top-level ``layer`` blocks).
        values: layer name -> the value of every axis (every top-level layer block
            of that name for which ``is_target(type)`` is true is edited: layers of the same
            name in other phases too).
        is_target: called with the block's ``type`` string.
        message, field: e.g. ``crop_param``, ``offset``.
        path: the file, for messages.

    Returns:
        The edited text.

    Raises:
        CaffeFormatError: a named layer has no block in the text (e.g. a V1 ``layers`` file:
            upgrade it with ``fcnkit upgrade`` first).
    """
    toks = _tokens(text)
    edits, found = [], set()
    for name, kind, open_i, close_i in _layer_blocks(toks):
        if name in values and is_target(kind):
            found.add(name)
            edits += _edits_for_block(text, toks, open_i, close_i, message, field, values[name])
    missing = sorted(set(values) - found)
    if missing:
        raise CaffeFormatError(f"no top-level `layer {{ }}` block named {', '.join(missing)} in "
                               "the text (a V0/V1 `layers` file? upgrade it first: fcnkit upgrade "
                               "IN OUT)", path)
    for start, end, repl in sorted(edits, reverse=True):
        text = text[:start] + repl + text[end:]
    return text
