"""Draw a net as a Graphviz graph, the way Caffe's ``python/draw_net.py`` does, plus fcnkit's
scale factor and offset per layer and the Crop layers highlighted.

Conventions taken from BVLC Caffe ``python/caffe/draw.py`` (read, not copied): every layer
is a ``record`` box labelled name, type and (for Convolution / Pooling) kernel, stride and
pad; every blob is an ``octagon`` (fill ``#E0E0E0``) named by its Caffe blob name; a layer
with one bottom equal to its one top (an in-place "neuron" layer such as ReLU) is light
green (``#90EE90``) and, because its bottom and top are the same blob node, is drawn as a
loop on that blob; Convolution/Deconvolution are ``#FF5050``, Pooling ``#FF9900``,
InnerProduct ``#CC33FF``, the rest ``#6495ED``. ``rankdir`` is Graphviz's (LR, TB, BT, RL).

fcnkit adds, per layer, its own scale factor and offset and the cumulative ones from the
input (:func:`fcnkit.analysis.offset_table`), and fills Crop layers gold when their
declared offset is the computed one, red (thick red border) when it is wrong.

The DOT text is written by fcnkit (no pydot); SVG/PNG/PDF need Graphviz's ``dot`` program.
"""

from __future__ import annotations

import shutil
import subprocess

from fcnkit.analysis.offsets import CropRow, crop_table, offset_table
from fcnkit.analysis.report import pair
from fcnkit.errors import BackendUnavailableError, OutputError
from fcnkit.graph import Net

RANKDIRS = ("LR", "TB", "BT", "RL")
#: Output formats of :func:`render_dot` (Graphviz ``-T`` names).
IMAGE_FORMATS = ("svg", "png", "pdf")

BLOB_STYLE = {"shape": "octagon", "fillcolor": "#E0E0E0", "style": "filled"}
NEURON_FILL = "#90EE90"
DEFAULT_FILL = "#6495ED"
CROP_OK_FILL = "#FFD700"
CROP_BAD_FILL = "#FF0000"
_TYPE_FILL = {"Convolution": "#FF5050", "Deconvolution": "#FF5050", "Pooling": "#FF9900",
              "InnerProduct": "#CC33FF"}
_INSTALL_HINT = ("install Graphviz (Debian/Ubuntu: `apt install graphviz`; conda: `conda install "
                 "-c conda-forge graphviz`; macOS: `brew install graphviz`), or write a .dot file "
                 "(-o net.dot) and render it elsewhere")


def _quote(text: str) -> str:
    """A DOT double-quoted string of plain text (backslash and quote escaped)."""
    return _quote_escaped(text.replace("\\", "\\\\"))


def _quote_escaped(text: str) -> str:
    """A DOT double-quoted string of text whose backslashes are Graphviz escapes (``\\n``)."""
    return '"' + text.replace('"', '\\"') + '"'


def _record_field(text: str) -> str:
    """Escape the characters that structure a ``record`` label ({ } | < > and space runs)."""
    for ch in "\\{}|<>":
        text = text.replace(ch, "\\" + ch)
    return text


def _attrs(attrs: dict[str, str]) -> str:
    """``[k="v", ...]``; a record ``label`` keeps its Graphviz escapes, the rest is plain."""
    return "[" + ", ".join(f"{k}={_quote_escaped(v) if k == 'label' else _quote(v)}"
                           for k, v in attrs.items()) + "]"


def _window_text(node) -> list[str]:
    win = node.layer.window()
    if win is None or node.role == "input":
        return []
    return [f"kernel {pair(win.kernel)}, stride {pair(win.stride)}, pad {pair(win.pad)}"]


def _layer_style(node, row, crop: CropRow | None, sep: str) -> dict[str, str]:
    lp = node.param
    in_place = len(lp.bottom) == 1 and len(lp.top) == 1 and lp.bottom[0] == lp.top[0]
    lines = [node.name, f"({node.type})", *_window_text(node)]
    if row is not None and row.factor is not None:
        lines.append(f"factor {pair(row.factor)}, offset {pair(row.offset)}")
    if row is not None and row.cumulative_factor is not None:
        lines.append(f"cum. factor {pair(row.cumulative_factor)}, "
                     f"cum. offset {pair(row.cumulative_offset)}")
    style = {"shape": "record", "style": "filled",
             "fillcolor": NEURON_FILL if in_place else _TYPE_FILL.get(node.type, DEFAULT_FILL)}
    if crop is not None:
        decl = ",".join(map(str, crop.declared))
        comp = "-" if crop.computed is None else ",".join(map(str, crop.computed))
        lines.append(f"crop offset {decl} (computed {comp}): {'ok' if crop.ok else 'WRONG'}")
        style["fillcolor"] = CROP_OK_FILL if crop.ok else CROP_BAD_FILL
        if not crop.ok:
            style.update({"color": "#8B0000", "penwidth": "3"})
    style["label"] = sep.join(_record_field(s) for s in lines)
    return style


def net_to_dot(net: Net, rankdir: str = "LR") -> str:
    """The net as Graphviz DOT text (a ``digraph``), one node per layer and per Caffe blob.

    Node ids: ``layer:<name>`` for layers, ``blob:<name>`` for blobs (the blob name of
    every version, so an in-place layer is a loop on its blob, as in Caffe's drawing);
    edges run bottom blob -> layer -> top blob, in net order.

    Args:
        net: a checked net (one phase; load it with ``allow_unsupported=True`` to draw
            layers fcnkit cannot compile).
        rankdir: Graphviz rank direction, one of :data:`RANKDIRS`.

    Raises:
        InputError: ``rankdir`` is not one of :data:`RANKDIRS`.
    """
    from fcnkit.errors import InputError

    if rankdir not in RANKDIRS:
        raise InputError(f"--rankdir must be one of {', '.join(RANKDIRS)}, got '{rankdir}'")
    # one label line per fact; a record's "|" would make fields, so lines are "\n"-separated
    sep = "\\n"
    rows = {r.name: r for r in offset_table(net)}
    crops = {c.layer: c for c in crop_table(net)}
    out = [f"digraph {_quote(net.name or 'net')} {{", f"  rankdir={_quote(rankdir)};",
           '  node [fontname="Helvetica"];']
    blobs: list[str] = []
    edges: list[str] = []
    for node in net.layers:
        style = _layer_style(node, rows.get(node.name), crops.get(node.name), sep)
        out.append(f"  {_quote('layer:' + node.name)} {_attrs(style)};")
        for b in node.param.bottom:
            blobs.append(b)
            edges.append(f"  {_quote('blob:' + b)} -> {_quote('layer:' + node.name)};")
        for t in node.param.top:
            blobs.append(t)
            edges.append(f"  {_quote('layer:' + node.name)} -> {_quote('blob:' + t)};")
    for b in dict.fromkeys(blobs):
        label = b.replace("\\", "\\\\")
        out.append(f"  {_quote('blob:' + b)} {_attrs({**BLOB_STYLE, 'label': label})};")
    return "\n".join(out + edges + ["}"]) + "\n"


def render_dot(dot_text: str, image_format: str, timeout_s: float = 120.0) -> bytes:
    """Render DOT text with Graphviz's ``dot`` program.

    Args:
        dot_text: a graph from :func:`net_to_dot`.
        image_format: one of :data:`IMAGE_FORMATS`.
        timeout_s: seconds before ``dot`` is stopped.

    Returns:
        The image file's bytes.

    Raises:
        BackendUnavailableError: ``dot`` is not installed (the message says how to install it).
        OutputError: ``dot`` failed or ran past ``timeout_s``.
    """
    exe = shutil.which("dot")
    if exe is None:
        raise BackendUnavailableError(f"writing {image_format.upper()} needs Graphviz's `dot` "
                                      f"program, which is not on PATH: {_INSTALL_HINT}")
    try:
        done = subprocess.run([exe, f"-T{image_format}"], input=dot_text.encode(),
                              capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise OutputError(f"Graphviz `dot` ran past {timeout_s:g} s; write a .dot file "
                          "instead") from None
    if done.returncode != 0:
        raise OutputError(f"Graphviz `dot -T{image_format}` failed: "
                          f"{done.stderr.decode(errors='replace').strip()[:500]}")
    return done.stdout
