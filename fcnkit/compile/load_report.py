"""What a caffemodel did to a net: the weights load report and its check.

Caffe's ``Net::CopyTrainedLayersFrom`` (src/caffe/net.cpp) matches caffemodel layers to
net layers by name, silently ignores source layers the net lacks ("Ignoring source layer")
and leaves net layers the file lacks as their fillers made them; a layer without a
``weight_filler`` is then all zeros. That is how a wrong caffemodel yields a net (and an
ONNX file) full of zeros without a word. This module computes, before any tensor is
allocated, which layers load, which fall back to fillers, which would be all zeros, which
caffemodel layers go unused, and which unused ones look like renamed net layers (the
fine-tuning pattern ``fc8`` -> ``fc8_flickr``: same blob element counts); and it refuses
a load that cannot be what the user meant (:func:`check_weights_report`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from fcnkit.errors import WeightsError

#: How many names a one-line list shows before "... and N more".
SHOWN_NAMES = 8


@dataclass
class WeightsLoadReport:
    """Which layers a weights file (caffemodel) initialises, computed from the net and the
    file's blobs alone (:func:`weights_load_report`).

    Attributes:
        source: the weights file (for messages), or None for in-memory blobs.
        loaded: net layers with learnable blobs whose blobs the file holds, in net order.
        filled: net layer -> filler type of its weight (blob 0), for layers the file lacks
            whose weight filler gives values other than zeros (gaussian, xavier, ...).
        zeros: net layers the file lacks whose weight (blob 0) would be all zeros: no
            filler (Caffe's default is constant 0) or a filler that can only give 0.
        unused: caffemodel layers (with blobs) the net has no layer for.
        renamed: (caffemodel layer, net layer) pairs: an unused caffemodel layer whose blob
            element counts equal those of a net layer the file lacks.
    """

    source: str | None = None
    loaded: list[str] = field(default_factory=list)
    filled: dict[str, str] = field(default_factory=dict)
    zeros: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Net layers with learnable blobs."""
        return len(self.loaded) + len(self.filled) + len(self.zeros)

    def summary(self) -> str:
        """One line: ``weights X: 5 of 6 layers loaded; 1 from fillers (...); ...``."""
        where = f"weights {self.source}" if self.source else "the weights"
        parts = [f"{where}: {len(self.loaded)} of {self.total} layer(s) with weights loaded"
                 + (f" ({abbreviate(self.loaded)})" if self.loaded else "")]
        if self.filled:
            parts.append(f"{len(self.filled)} from fillers ({abbreviate(self.filled)})")
        if self.zeros:
            parts.append(f"{len(self.zeros)} all zeros, no filler ({abbreviate(self.zeros)})")
        if self.unused:
            parts.append(f"{len(self.unused)} caffemodel layer(s) unused ({abbreviate(self.unused)})")
        return "; ".join(parts)

    def warnings(self) -> list[str]:
        """One line per renamed layer (the fine-tuning pattern), naming both layers."""
        return [f"caffemodel layer '{old}' is unused and net layer '{new}' did not load, with "
                f"the same blob sizes: renamed? (fine-tuning starts '{new}' from its filler; "
                f"rename it back to '{old}' to load those weights)" for old, new in self.renamed]

    def problems(self) -> list[str]:
        """Why this load is refused without ``allow_missing_weights`` (empty: it is fine)."""
        out = []
        if self.total and not self.loaded:
            out.append(f"no layer of the net loaded from it (the net's layers with weights: "
                       f"{abbreviate(self.zeros + list(self.filled))}; its layers: "
                       f"{abbreviate(self.unused) or 'none with blobs'}): is it the caffemodel "
                       "of another net?")
        if self.zeros:
            out.append(f"{len(self.zeros)} layer(s) without a weight filler did not load and "
                       f"would be all zeros: {abbreviate(self.zeros)}")
        return out


def abbreviate(names: Iterable[Any], shown: int = SHOWN_NAMES) -> str:
    """``a, b, c ... and 12 more``: a list of names cut for one line."""
    names = list(names)
    text = ", ".join(map(str, names[:shown]))
    return text + (f" ... and {len(names) - shown} more" if len(names) > shown else "")


def filler_gives_zeros(filler: Any) -> bool:
    """Whether a Caffe FillerParameter can only produce zeros (include/caffe/filler.hpp):
    None (Caffe's default, constant 0), constant with value 0, gaussian with mean 0 and
    std 0, uniform with min = max = 0."""
    if filler is None:
        return True
    kind = filler.type or "constant"
    if kind == "constant":
        return filler.value == 0
    if kind == "gaussian":
        return filler.std == 0 and filler.mean == 0
    if kind == "uniform":
        return filler.min == 0 and filler.max == 0
    return False


def weights_load_report(layers: Sequence[Any], blobs: Mapping[str, Sequence[Any]],
                        shapes: Mapping[str, Sequence[int]] | None = None,
                        source: str | None = None) -> WeightsLoadReport:
    """The load report of ``blobs`` for the net layers ``layers``.

    Args:
        layers: the net's layer nodes (:attr:`fcnkit.graph.Net.layers`, or the subset that
            is compiled); layers without learnable blobs are skipped.
        blobs: the caffemodel's ``{layer name: [np.ndarray, ...]}`` (Caffe blob shapes).
        shapes: {blob id: shape} of the net (:attr:`NetAnalysis.shapes`); with it, unused
            caffemodel layers are matched to unloaded net layers by blob element counts
            (renamed layers); without it no renamed layer is reported.
        source: the weights file, for messages.

    Returns:
        A :class:`WeightsLoadReport`. Blob shapes are not checked here (loading does that).
    """
    report = WeightsLoadReport(source=None if source is None else str(source))
    wanted: dict[str, tuple[int, ...]] = {}  # unloaded layer -> its blob element counts
    names = set()
    for node in layers:
        names.add(node.name)
        if not node.layer.param_names():
            continue
        if blobs.get(node.name) is not None and len(blobs[node.name]):
            report.loaded.append(node.name)
            continue
        fillers = node.layer.fillers()
        weight_filler = fillers[0] if fillers else None
        if filler_gives_zeros(weight_filler):
            report.zeros.append(node.name)
        else:
            report.filled[node.name] = weight_filler.type or "constant"
        counts = _param_counts(node, shapes)
        if counts is not None:
            wanted[node.name] = counts
    report.unused = [n for n, b in blobs.items() if n not in names and b is not None and len(b)]
    for old in report.unused:
        have = tuple(int(getattr(a, "size", 0)) for a in blobs[old])
        for new, counts in wanted.items():
            if counts == have:
                report.renamed.append((old, new))
                del wanted[new]
                break
    return report


def _param_counts(node, shapes) -> tuple[int, ...] | None:
    """Element counts of ``node``'s learnable blobs, or None without shapes."""
    if shapes is None or any(b not in shapes for b in node.bottoms):
        return None
    return tuple(math.prod(s) for s in node.layer.param_shapes([shapes[b] for b in node.bottoms]))


def check_weights_report(report: WeightsLoadReport, allow_missing_weights: bool = False) -> None:
    """Refuse a load that cannot be what the user meant: no layer loads, or a layer whose
    weights would be all zeros did not load.

    Raises:
        WeightsError: with ``report`` attached (``error.report``), unless
            ``allow_missing_weights``. The message names the layers and the way out.
    """
    problems = report.problems()
    if not problems or allow_missing_weights:
        return
    where = f"weights {report.source}" if report.source else "the weights"
    hints = "; ".join(report.warnings())
    raise WeightsError(f"{where}: {'; '.join(problems)}"
                       + (f"; {hints}" if hints else "")
                       + ". Give the caffemodel trained for this net, or --allow-missing-weights "
                       "(Python: allow_missing_weights=True) to run with these layers as their "
                       "fillers make them", report=report)
