"""Find the source line of each top-level ``layer { }`` / ``layers { }`` block of a prototxt.

protobuf's text parser keeps no positions, so fcnkit scans the text itself. The scanner only
tracks what can hide a brace or a keyword: quoted strings (with backslash escapes) and ``#``
comments. Message blocks may be delimited by ``{ }`` or ``< >`` and the field name may be
followed by ``:`` (``layer: {``) and by newlines or comments before the opening brace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

_OPEN = "{<"
_CLOSE = "}>"
_WORD = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")


@dataclass(frozen=True)
class Block:
    """One top-level message block.

    Attributes:
        keyword: the field name before the brace ("layer", "layers", ...).
        line: 1-based line of the keyword.
        end_line: 1-based line of the closing brace, or None if the text ends first.
    """

    keyword: str
    line: int
    end_line: int | None


@dataclass(frozen=True)
class Token:
    """One token of prototxt text for the scanners (comments and whitespace dropped).

    Attributes:
        kind: "word" (a run of the word characters), "open" (``{`` or ``<``), "close"
            (``}`` or ``>``), "string" (a quoted literal), "colon", or "other" (any other
            single character).
        text: the token's characters.
        start: index of its first character in the text.
        line: 1-based line it starts on.
    """

    kind: str
    text: str
    start: int
    line: int


def tokens(text: str, word_chars: set[str] = _WORD) -> Iterator[Token]:
    """The tokens of ``text`` in order: what the block scanners need to see braces and
    names, with quoted strings (backslash escapes) and ``#`` comments kept from hiding or
    faking them. ``word_chars``: the characters of a word (default: identifiers, digits
    and ``.``)."""
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c.isspace():
            i += 1
        elif c in "\"'":
            # Protobuf strings cannot span lines, so skipping never loses a newline.
            j = _skip_string(text, i)
            yield Token("string", text[i:j], i, line)
            i = j
        elif c in word_chars:
            j = i
            while j < n and text[j] in word_chars:
                j += 1
            yield Token("word", text[i:j], i, line)
            i = j
        else:
            kind = "open" if c in _OPEN else "close" if c in _CLOSE else "colon" if c == ":" else "other"
            yield Token(kind, c, i, line)
            i += 1


def scan_blocks(text: str) -> list[Block]:
    """Return every top-level message block of ``text`` in order.

    Args:
        text: prototxt text (any generation).

    Returns:
        Blocks at nesting depth 0, e.g. ``layer``/``layers`` blocks and ``state { }``.
        Scalars such as ``name: "x"`` are not blocks.
    """
    blocks: list[Block] = []
    depth = 0
    last_word = ""       # last identifier seen at depth 0
    last_word_line = 0
    open_block: tuple[str, int] | None = None
    for t in tokens(text):
        if t.kind == "open":
            if depth == 0:
                open_block = (last_word, last_word_line)
            depth += 1
            last_word = ""
        elif t.kind == "close":
            depth = max(depth - 1, 0)
            if depth == 0 and open_block is not None:
                blocks.append(Block(open_block[0], open_block[1], t.line))
                open_block = None
            last_word = ""
        elif t.kind == "word":
            if depth == 0:
                last_word, last_word_line = t.text, t.line
        elif t.kind == "string" or (t.kind == "other" and t.text not in "-+[],;"):
            last_word = ""  # `layer: {` keeps the word before the colon
    if open_block is not None:
        blocks.append(Block(open_block[0], open_block[1], None))
    return blocks


def _skip_string(text: str, i: int) -> int:
    """Return the index after the string literal starting at ``text[i]`` (or end of line)."""
    quote = text[i]
    j = i + 1
    n = len(text)
    while j < n:
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == quote:
            return j + 1
        if c == "\n":  # unterminated: protobuf reports it; stop at the line end
            return j
        j += 1
    return n


def layer_lines(text: str, keyword: str, count: int) -> list[int | None]:
    """Lines of the top-level ``keyword`` blocks, or all None if they cannot be matched.

    Args:
        text: the prototxt text.
        keyword: "layer" (V2) or "layers" (V0/V1).
        count: number of such layers protobuf parsed; if the scanner finds a different
            number the lines would be misaligned, so none is returned.
    """
    lines = [b.line for b in scan_blocks(text) if b.keyword == keyword]
    if len(lines) != count:
        return [None] * count
    return list(lines)
