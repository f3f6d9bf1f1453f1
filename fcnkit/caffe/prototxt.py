"""Read and write net prototxt files (text NetParameter), any generation in, V2 out.

Reading follows Caffe's ReadNetParamsFromTextFileOrDie (src/caffe/util/upgrade_proto.cpp):
parse strictly, then UpgradeNetAsNeeded. fcnkit also records where each layer starts in the
text so later stages can point at the offending line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format

from fcnkit.atomic import write_text
from fcnkit.caffe import caffe_pb2
from fcnkit.caffe.forks import to_fork_text, to_protobuf_text
from fcnkit.caffe.linescan import layer_lines as _scan_layer_lines
from fcnkit.caffe.linescan import scan_blocks
from fcnkit.caffe.textformat import parse_text, read_text_file
from fcnkit.caffe.upgrade import detect_format, upgrade_net
from fcnkit.errors import CaffeFormatError, UpgradeError


@dataclass
class NetSource:
    """A net definition as loaded from text.

    Attributes:
        param: the net. After loading with ``upgrade=True`` it is always V2: only ``layer``,
            never ``layers``, and no net-level ``input``/``input_dim``/``input_shape`` (those
            became an ``Input`` layer named "input", placed first).
        path: the file it came from, or None for in-memory text.
        layer_lines: 1-based source line of each ``param.layer[i]`` (aligned with
            ``param.layer`` after upgrades; with ``upgrade=False`` aligned with whichever of
            ``layer``/``layers`` the file used); None where unknown, e.g. the synthesized
            Input layer.
        source_format: "V0", "V1" or "V2": the generation of the file.
        upgrades: one human-readable note per upgrade step applied (warnings start with
            "warning:").
    """

    param: caffe_pb2.NetParameter
    path: str | None = None
    layer_lines: list[int | None] = field(default_factory=list)
    source_format: str = "V2"
    upgrades: list[str] = field(default_factory=list)

    def line_of(self, layer_name: str) -> int | None:
        """1-based line of the first layer named ``layer_name``, or None if unknown."""
        for layer, line in zip(self.param.layer, self.layer_lines):
            if layer.name == layer_name:
                return line
        return None


def parse_prototxt(text: str, path: str | Path | None = None, *,
                   upgrade: bool = True) -> NetSource:
    """Parse net prototxt text (V0, V1 or V2) into a :class:`NetSource`.

    Args:
        text: the prototxt.
        path: where it came from, used in messages and stored in the result.
        upgrade: apply Caffe's upgrades (V0 -> V1 -> V2, data transformation, net input ->
            Input layer, BatchNorm) and map fork ``pooling_param.ceil_mode`` to
            ``round_mode``. With False the message is returned as parsed.

    Returns:
        A :class:`NetSource`.

    Raises:
        CaffeFormatError: syntax error, unknown field or enum value (with line and column);
            a solver prototxt (the message names its net).
        UpgradeError: a net mixing ``layer`` and ``layers``, or a legacy net that cannot be
            upgraded (unknown V0 type, bad padding layer, input dims not 4 per input, ...).
    """
    path_str = None if path is None else str(path)
    net = caffe_pb2.NetParameter()
    try:
        # Fork layer parameters are schema extensions: spell them as protobuf expects.
        parse_text(to_protobuf_text(text), net, path_str)
    except CaffeFormatError:
        from fcnkit.caffe.sniff import describe_solver

        solver = describe_solver(text)
        if solver is None:
            raise
        raise CaffeFormatError(solver, path_str) from None
    fmt = detect_format(net)
    if len(net.layer) and len(net.layers):
        _raise_mixed(text, net, path_str)
    keyword = "layers" if len(net.layers) else "layer"
    lines = _scan_layer_lines(text, keyword, len(net.layers) or len(net.layer))
    if not upgrade:
        return NetSource(net, path_str, lines, fmt, [])
    result = upgrade_net(net, path=path_str, lines=lines)
    aligned = [None if o is None else lines[o] for o in result.origin]
    return NetSource(net, path_str, aligned, fmt, result.notes)


def read_prototxt(path: str | Path, *, upgrade: bool = True) -> NetSource:
    """Read a net prototxt file; see :func:`parse_prototxt`.

    Raises:
        CaffeFormatError: the file cannot be read, is binary / not UTF-8, or does not parse.
        UpgradeError: see :func:`parse_prototxt`.
    """
    return parse_prototxt(read_text_file(path), path, upgrade=upgrade)


def format_prototxt(param: caffe_pb2.NetParameter, header: str | None = None) -> str:
    """Render a net as V2 prototxt text.

    Args:
        param: the net; it must be V2 (no ``layers``). Embedded blobs, if any, are written too
            (protobuf text format), so pass nets without blobs.
        header: optional text written first, each line as a ``# `` comment.

    Returns:
        The text, ending with a newline.

    Raises:
        CaffeFormatError: ``param`` still has V1 ``layers`` (upgrade it first).
    """
    if len(param.layers):
        raise CaffeFormatError(
            f"the net still has {len(param.layers)} V1 `layers`; fcnkit writes V2 only "
            "(load it with read_prototxt/read_caffemodel, which upgrade, or call "
            "fcnkit.caffe.upgrade.upgrade_net)")
    out = []
    if header:
        for line in header.splitlines():
            out.append(f"# {line}".rstrip() + "\n")
    body = to_fork_text(text_format.MessageToString(param))
    out.append(body if body.endswith("\n") or not body else body + "\n")
    return "".join(out)


def write_prototxt(path: str | Path, param: caffe_pb2.NetParameter,
                   header: str | None = None) -> None:
    """Write a net as V2 prototxt text, atomically (see :func:`format_prototxt`).

    Raises:
        CaffeFormatError: ``param`` still has V1 ``layers``.
        OSError: the file cannot be written.
    """
    write_text(path, format_prototxt(param, header))


def _raise_mixed(text: str, net: caffe_pb2.NetParameter, path: str | None) -> None:
    blocks = scan_blocks(text)
    first_layer = next((b.line for b in blocks if b.keyword == "layer"), None)
    first_layers = next((b.line for b in blocks if b.keyword == "layers"), None)
    where = ""
    if first_layer and first_layers:
        where = f" (first `layer` at line {first_layer}, first `layers` at line {first_layers})"
    raise UpgradeError(
        f"the net mixes V2 `layer {{ }}` blocks ({len(net.layer)}) with V1 `layers {{ }}` "
        f"blocks ({len(net.layers)}){where}; Caffe would silently drop the `layer` blocks. "
        "Write every layer in one generation (V2: `layer { type: \"Convolution\" ... }`)",
        path, max(filter(None, [first_layer, first_layers]), default=None))
