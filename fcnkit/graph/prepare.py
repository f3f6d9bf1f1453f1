"""What a deployment tool does to a training net before it builds it: drop the loss and
the label (``deploy``), fill the class count (``classes``) and create the input a template
leaves to the tool (``input_shapes``).

NVIDIA DIGITS' standard-network templates (digits/standard-networks/caffe/*.prototxt) are
one file for the ``train``, ``val`` and ``deploy`` stages: the Data layers are included in
``train``/``val`` only, a ``deploy`` Power layer reads a blob ``data`` that no layer
produces, and the last InnerProduct leaves ``num_output`` unset ("DIGITS will
automatically set it to the number of classes in your dataset"). DIGITS adds the input
and the class count when it writes ``deploy.prototxt``; :func:`prepare` does the same from
the user's ``--input-shape`` and ``--classes``:

- ``input_shapes``: a bottom that no layer of the filtered net produces, for which a shape
  is given, gets an ``Input`` layer (first in the net) declaring that shape;
- ``classes``: the final classifier (the last layer in net order whose type has a
  ``num_output``: Convolution, InnerProduct, Deconvolution; asked of the layer registry)
  gets ``num_output = classes`` when it has none;
- ``deploy``: loss and metric layers (registry roles ``loss``/``metric``) are removed, then
  every input top that no remaining layer reads (the label), and an input layer left
  without tops. This happens before shapes are inferred, so a label's unknown shape
  never matters.

The result is a new NetParameter: the layers of every phase, with the filtered net's
layers changed as above, so that ``fcnkit compile -o`` writes what was compiled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from fcnkit import layers as registry
from fcnkit.errors import InputError, NetDefinitionError
from fcnkit.graph.state import NetState, layer_included

Shape = tuple[int, ...]


@dataclass
class Prepared:
    """The outcome of :func:`prepare`: the new NetParameter and its layer lines, and what
    changed (for the terminal)."""

    param: object
    lines: list[int | None]
    injected: list[str] = field(default_factory=list)   # input blobs given an Input layer
    dropped: list[str] = field(default_factory=list)    # layers removed (deploy)
    dropped_tops: list[str] = field(default_factory=list)  # input tops removed (deploy)
    classes_filled: str | None = None                   # layer whose num_output was filled

    def notes(self) -> list[str]:
        """One line per change, for the terminal."""
        out = [f"input '{b}' created (Input layer) from --input-shape: no layer produces it "
               "in this phase/stage" for b in self.injected]
        if self.classes_filled:
            out.append(f"num_output of '{self.classes_filled}' set from --classes")
        if self.dropped or self.dropped_tops:
            out.append("deploy: removed " + ", ".join(
                [f"layer '{n}'" for n in self.dropped] + [f"input '{t}'" for t in self.dropped_tops]))
        return out


def prepare(param, lines: Sequence[int | None], state: NetState, where: str = "", *,
            deploy: bool = False, classes: int | None = None,
            input_shapes: Mapping[str | None, Shape] | None = None) -> Prepared:
    """The net ``param`` prepared for ``state`` (see the module docstring).

    Args:
        param: a V2 NetParameter (not changed).
        lines: the prototxt line of each layer (None where unknown).
        state: the NetState the net will be filtered with.
        where: ``"file: "`` for messages.
        deploy, classes, input_shapes: see the module docstring; ``input_shapes`` keyed
            by blob name (the key None: the only missing bottom, when the net has no input).

    Raises:
        InputError: ``classes`` not positive, or the final classifier already has another
            num_output.
        NetDefinitionError: the final classifier's num_output is unset and no ``classes``
            is given (names the layer and line).
    """
    from fcnkit.caffe import caffe_pb2

    new = caffe_pb2.NetParameter()
    new.CopyFrom(param)
    lines = list(lines) + [None] * (len(param.layer) - len(lines))
    out = Prepared(new, lines)
    kept = [i for i, lp in enumerate(new.layer) if layer_included(state, lp, where)]
    _fill_classes(new, kept, lines, classes, where, out)
    drop: set[int] = set()
    if deploy:
        drop = _deploy(new, kept, out)
    kept = [i for i in kept if i not in drop]
    made = _inject_inputs(new, kept, dict(input_shapes or {}), out)
    layers = [lp for i, lp in enumerate(new.layer) if i not in drop]
    lines = [ln for i, ln in enumerate(lines) if i not in drop]
    del new.layer[:]
    new.layer.extend(made + layers)
    out.lines = [None] * len(made) + lines
    return out


def _cls(lp):
    return registry.lookup(lp.type) or registry.Layer


def _fill_classes(param, kept: list[int], lines, classes: int | None, where: str,
                  out: Prepared) -> None:
    """num_output of the final classifier from ``classes`` (see the module docstring)."""
    last = next((i for i in reversed(kept) if _cls(param.layer[i]).num_output_param), None)
    if classes is not None and classes <= 0:
        raise InputError(f"--classes must be a positive number, got {classes}")
    if last is None:
        if classes is not None:
            raise InputError(f"{where}--classes {classes}: the net has no layer with a "
                             "num_output (Convolution, InnerProduct, Deconvolution)")
        return
    lp = param.layer[last]
    sub = getattr(lp, _cls(lp).num_output_param)
    loc = f", line {lines[last]}" if lines[last] else ""
    if sub.HasField("num_output") and sub.num_output > 0:
        if classes is not None and sub.num_output != classes:
            raise InputError(
                f"{where}--classes {classes}: the final classifier '{lp.name}' ({lp.type}{loc}) already has "
                f"num_output {sub.num_output}; --classes fills an unset num_output only (change "
                "a trained classifier's classes with `fcnkit surgery --classes`)")
        return
    if classes is None:
        raise NetDefinitionError(
            f"{where}layer '{lp.name}' ({lp.type}{loc}), the net's final classifier, has no "
            "num_output (a DIGITS template: DIGITS sets it to the number of classes of the "
            "dataset); give the class count with --classes N")
    sub.num_output = int(classes)
    out.classes_filled = lp.name


def _deploy(param, kept: list[int], out: Prepared) -> set[int]:
    """Indices of the layers to remove for deployment; unused input tops removed in place."""
    drop = {i for i in kept if _cls(param.layer[i]).role in ("loss", "metric")}
    rest = [i for i in kept if i not in drop]
    used = {b for i in rest for b in param.layer[i].bottom}
    for i in rest:
        lp = param.layer[i]
        if len(lp.bottom) or _cls(lp).role != "input":
            continue
        unused = [t for t in lp.top if t not in used]
        if not unused:
            continue
        if len(unused) == len(lp.top):
            drop.add(i)
        elif len(lp.top) - len(unused) >= _cls(lp).tops[0]:
            keep = [t for t in lp.top if t in used]
            del lp.top[:]
            lp.top.extend(keep)
        else:
            continue  # MemoryData, ImageData: two tops always; the label stays, unread
        out.dropped_tops.extend(unused)
    out.dropped = [param.layer[i].name for i in sorted(drop)
                   if _cls(param.layer[i]).role != "input"]
    return drop


def _inject_inputs(param, kept: list[int], shapes: dict, out: Prepared) -> list:
    """Input LayerParameters for the bottoms no kept layer produces that ``shapes`` names."""
    from fcnkit.caffe import caffe_pb2

    produced: set[str] = set()
    missing: list[str] = []
    every_top = {t for i in kept for t in param.layer[i].top}
    for i in kept:
        lp = param.layer[i]
        for b in lp.bottom:
            if b not in produced and b not in every_top and b not in missing:
                missing.append(b)
        produced.update(lp.top)
    has_input = any(_cls(param.layer[i]).role == "input" and not param.layer[i].bottom for i in kept)
    if None in shapes and len(missing) == 1 and not has_input:
        shapes.setdefault(missing[0], shapes.pop(None))
    names = {param.layer[i].name for i in kept}
    made = []
    for blob in missing:
        if blob not in shapes:
            continue
        lp = caffe_pb2.LayerParameter()
        lp.name = blob if blob not in names else f"{blob}_input"
        lp.type = "Input"
        lp.top.append(blob)
        lp.input_param.shape.add().dim.extend(int(d) for d in shapes[blob])
        names.add(lp.name)
        made.append(lp)
        out.injected.append(blob)
    return made
