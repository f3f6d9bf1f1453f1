"""Surgery without a caffemodel: filler weights, never a file of zeros.

A layer without ``weight_filler`` gets Caffe's default filler, constant 0. Deploy
prototxts (BVLC's models/*/deploy.prototxt) carry no fillers at all, so an FCN made from
one without its caffemodel would be hundreds of MB of zeros that compute a constant. For
such a surgery, every learned filter (a layer whose type has a ``num_output``:
Convolution, InnerProduct, Deconvolution; asked of the layer contract) whose weight is
still all zero *because it has no filler* is drawn from Caffe's ``msra`` filler (He et al.,
"Delving Deep into Rectifiers", ICCV 2015; Caffe's MSRAFiller: normal, std
sqrt(2 / fan_in), fan_in = count / shape[0]); biases stay 0 (Caffe's default). Layers
whose prototxt names a filler keep it. The report's notes say what happened, and the
command line prints them.
"""

from __future__ import annotations

import numpy as np

from fcnkit.caffe import caffe_pb2
from fcnkit.fillers import fill
from fcnkit.surgery._net import Blobs, build
from fcnkit.surgery.report import SurgeryReport

DEFAULT_FILLER = "msra"


def fill_untrained_weights(param, blobs: Blobs, report: SurgeryReport, seed: int = 0) -> list[str]:
    """Give the filterless, all-zero weights of ``blobs`` (a surgery without a caffemodel)
    ``msra`` values, in place; record it in ``report``.

    Args:
        param: the surgery's result net (V2 NetParameter).
        blobs: {layer: [Caffe blobs]} of that net, changed in place.
        report: the surgery report; entries of changed layers and its notes are updated.
        seed: seed of the random filler (numpy Generator).

    Returns:
        The names of the layers whose weight was drawn from ``msra``.
    """
    net = build(param, shapes=False, what="fill").net
    rng = np.random.default_rng(seed)
    f = caffe_pb2.FillerParameter()
    f.type = DEFAULT_FILLER
    changed = []
    for node in net.layers:
        arrays = blobs.get(node.name)
        if not arrays or not node.layer.num_output_param or node.layer.fillers()[0] is not None:
            continue
        if np.any(arrays[0]):
            continue  # weights from elsewhere (a kept-classes copy, an adaptation)
        arrays[0] = fill(f, arrays[0].shape, rng, node.layer.where())
        changed.append(node.name)
        entry = report.layers.get(node.name)
        if entry is not None:
            if entry.fillers:
                entry.fillers[0] = f"{DEFAULT_FILLER} (no filler in the prototxt)"
            entry.notes.append(f"weight: {DEFAULT_FILLER} instead of Caffe's constant 0 "
                               "(no weight_filler; no caffemodel)")
    report.notes.append(untrained_note(changed))
    return changed


def untrained_note(changed: list[str]) -> str:
    """The terminal/report line of an untrained surgery."""
    note = ("no caffemodel: the weights are untrained, initialised by the prototxt's fillers "
            "(train or fine-tune the net before use)")
    if changed:
        note += (f"; {len(changed)} layer(s) without a weight_filler (Caffe's default: all "
                 f"zeros) got {DEFAULT_FILLER} (std sqrt(2 / fan_in)): {', '.join(changed)}")
    return note
