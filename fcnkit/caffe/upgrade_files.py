"""Upgrade a net file to V2, like Caffe's ``tools/upgrade_net_proto_text.cpp`` (a prototxt
of any generation -> V2 text) and ``tools/upgrade_net_proto_binary.cpp`` (a caffemodel of
any generation -> V2 binary).

Caffe's tools read the file with ``ReadNetParamsFromTextFileOrDie`` /
``ReadNetParamsFromBinaryFileOrDie``, which apply every upgrade (V0 -> V1 -> V2, data
transformation, net input -> Input layer, BatchNorm), and write the result. fcnkit's
readers apply the same upgrades (:mod:`fcnkit.caffe.upgrade`); this module writes them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fcnkit.caffe.caffemodel import read_caffemodel
from fcnkit.caffe.caffemodel_writer import write_caffemodel
from fcnkit.caffe.prototxt import read_prototxt, write_prototxt
from fcnkit.caffe.sniff import describe_non_caffemodel


@dataclass
class UpgradeFileResult:
    """What :func:`upgrade_file` did.

    Attributes:
        kind: ``prototxt`` or ``caffemodel``.
        source_format: ``V0``, ``V1`` or ``V2``: the generation of the input.
        layers: layers in the written net.
        notes: one line per upgrade step applied.
    """

    kind: str
    source_format: str
    layers: int
    notes: list[str] = field(default_factory=list)


def upgrade_file(source: str | Path, out: str | Path) -> UpgradeFileResult:
    """Read a prototxt or caffemodel of any generation and write it as V2, atomically.

    A text file is taken for a prototxt, anything else for a caffemodel (the kind is
    decided from the content, not the extension). Caffemodel blobs are written as float32
    with their ``shape`` (legacy num/channels/height/width dimensions are kept as stored,
    as Caffe's upgrade keeps them); blobs stored as double are converted to float32.

    Raises:
        CaffeFormatError / UpgradeError: the input cannot be read or upgraded.
        WeightsError: a blob of the caffemodel is damaged.
        OutputError / OSError: the output cannot be written (nothing is left behind).
    """
    with open(source, "rb") as f:
        head = f.read(4096)
    if describe_non_caffemodel(head) is not None and _is_text(head):
        src = read_prototxt(source)
        write_prototxt(out, src.param, header=f"upgraded to V2 by fcnkit upgrade from "
                       f"{Path(source).name} ({src.source_format})")
        return UpgradeFileResult("prototxt", src.source_format, len(src.param.layer),
                                 list(src.upgrades))
    model = read_caffemodel(source)
    write_caffemodel(out, model.net, model.blobs)
    return UpgradeFileResult("caffemodel", model.source_format, len(model.net.layer),
                             list(model.upgrades))


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start >= len(head) - 3  # a character cut by the 4 KB sample
    return b"\0" not in head
