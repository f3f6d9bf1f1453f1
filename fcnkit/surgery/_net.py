"""Small helpers shared by the surgery steps: copying nets, building layer messages,
analysing shapes and scale factors of a NetParameter, editing layer lists.

Everything here works on V2 ``caffe_pb2.NetParameter`` messages built directly with the
generated schema (no DSL). Surgery never mutates the caller's messages: every step starts
from :func:`as_param`, which copies.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from fcnkit.caffe import caffe_pb2
from fcnkit.errors import FcnkitError, SurgeryError

Shape = tuple[int, ...]
Blobs = dict[str, list[np.ndarray]]


# --------------------------------------------------------------------------- inputs

def as_param(net: Any) -> caffe_pb2.NetParameter:
    """A private V2 copy of a net given as a NetParameter, NetSource, Net, compiled net or
    prototxt path.

    Raises:
        SurgeryError: ``net`` is none of these.
        CaffeFormatError / UpgradeError: a prototxt path that cannot be read.
    """
    from fcnkit import caffe

    if isinstance(net, (str, Path)):
        net = caffe.read_prototxt(net)
    param = getattr(net, "param", None)
    if param is None and hasattr(net, "net"):  # CompiledNet
        param = getattr(net.net, "param", None)
    if param is None:
        param = net
    if not isinstance(param, caffe_pb2.NetParameter):
        raise SurgeryError(f"expected a net (NetParameter, NetSource, Net or prototxt path), got "
                           f"{type(net).__name__}")
    if len(param.layers):
        raise SurgeryError("the net still has V1 `layers`; load it with fcnkit.caffe.read_prototxt "
                           "(which upgrades it to V2) before surgery")
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    return out


def as_blobs(weights: Any) -> Blobs | None:
    """Weights as ``{layer: [float32 arrays in Caffe shapes]}``, or None for no weights.

    Accepts None, a ``{layer: [arrays]}`` mapping, a :class:`fcnkit.caffe.CaffeModel` or a
    caffemodel path. The lists are new; the arrays themselves are not copied.

    Raises:
        SurgeryError: an unusable value.
        CaffeFormatError: a caffemodel path that cannot be read.
    """
    from fcnkit import caffe

    if weights is None:
        return None
    if isinstance(weights, (str, Path)):
        weights = caffe.read_caffemodel(weights)
    if hasattr(weights, "blobs") and isinstance(weights.blobs, Mapping):
        weights = weights.blobs
    if not isinstance(weights, Mapping):
        raise SurgeryError(f"weights must be a caffemodel, a CaffeModel or a {{layer: [arrays]}} "
                           f"dict, got {type(weights).__name__}")
    out: Blobs = {}
    for name, arrays in weights.items():
        if isinstance(arrays, np.ndarray) or not isinstance(arrays, (list, tuple)):
            raise SurgeryError(f"weights['{name}'] must be a list of arrays, not "
                               f"{type(arrays).__name__}")
        out[str(name)] = [np.asarray(a, dtype=np.float32) for a in arrays]
    return out


# --------------------------------------------------------------------------- analysis

@dataclass
class AnalysedNet:
    """A NetParameter checked and analysed: its graph (TEST phase) and blob shapes.

    Attributes:
        param: the NetParameter analysed (not copied).
        net: the :class:`fcnkit.graph.Net`.
        shapes: blob version id -> shape (N, C, H, W for images), or None when shapes
            were not asked for.
    """

    param: caffe_pb2.NetParameter
    net: Any
    shapes: dict[str, Shape] | None

    def node(self, name: str):
        return self.net.layer(name)

    def bottom_shapes(self, name: str) -> list[Shape]:
        return [self.shapes[b] for b in self.net.layer(name).bottoms]

    def top_shape(self, name: str, i: int = 0) -> Shape:
        return self.shapes[self.net.layer(name).tops[i]]

    def param_shapes(self, name: str) -> list[Shape]:
        """Caffe shapes of the layer's learnable/stat blobs (weights, bias, ...)."""
        node = self.net.layer(name)
        return [tuple(int(d) for d in s) for s in node.layer.param_shapes(self.bottom_shapes(name))]

    def shape_of(self, blob: str) -> Shape:
        """Shape of the final version of a blob (by Caffe name or id)."""
        return self.shapes[self.net.blob(blob)]

    def factor(self, blob: str) -> tuple[Fraction, Fraction] | None:
        """Cumulative scale factor (y, x) of a blob relative to the net input, or None."""
        from fcnkit.analysis import analyse_coord_maps

        bm = analyse_coord_maps(self.net).blob_maps.get(self.net.blob(blob))
        return None if bm is None or bm.map is None else bm.map.factor


def build(param: caffe_pb2.NetParameter, input_shapes: Mapping[str | None, Shape] | None = None,
          *, shapes: bool = True, what: str = "surgery") -> AnalysedNet:
    """Check ``param`` as a TEST-phase net and infer its shapes.

    Raises:
        SurgeryError: the net is invalid or its shapes cannot be inferred; the message starts
            with ``what`` and carries the core's reason.
    """
    from fcnkit.analysis import infer_shapes
    from fcnkit.graph import load_net

    try:
        net = load_net(param)
    except FcnkitError as e:
        raise SurgeryError(f"{what}: the net is not valid: {e}") from None
    sh = None
    if shapes:
        try:
            sh = infer_shapes(net, dict(input_shapes or {}))
        except FcnkitError as e:
            raise SurgeryError(f"{what}: shapes cannot be inferred: {e}") from None
    return AnalysedNet(param, net, sh)


# --------------------------------------------------------------------------- messages

def filler(type_: str, value: float | None = None, **fields) -> caffe_pb2.FillerParameter:
    """A FillerParameter (``filler("bilinear")``, ``filler("constant", 0)``, ``filler("msra")``)."""
    f = caffe_pb2.FillerParameter()
    f.type = type_
    if value is not None:
        f.value = value
    for k, v in fields.items():
        setattr(f, k, v)
    return f


def as_filler(spec: Any) -> caffe_pb2.FillerParameter | None:
    """None, a filler type name ("xavier", "constant", ...) or a FillerParameter."""
    if spec is None or isinstance(spec, caffe_pb2.FillerParameter):
        return spec
    if isinstance(spec, str):
        return filler(spec)
    raise SurgeryError(f"a filler must be a type name or a FillerParameter, got {spec!r}")


def set_kernel(cp: caffe_pb2.ConvolutionParameter, kernel: tuple[int, int]) -> None:
    """``kernel_size: k`` for a square kernel, ``kernel_h``/``kernel_w`` otherwise."""
    del cp.kernel_size[:]
    cp.ClearField("kernel_h")
    cp.ClearField("kernel_w")
    kh, kw = int(kernel[0]), int(kernel[1])
    if kh == kw:
        cp.kernel_size.append(kh)
    else:
        cp.kernel_h, cp.kernel_w = kh, kw


def set_pad(cp: caffe_pb2.ConvolutionParameter, pad: int) -> None:
    del cp.pad[:]
    cp.ClearField("pad_h")
    cp.ClearField("pad_w")
    if pad:
        cp.pad.append(int(pad))


# --------------------------------------------------------------------------- editing

def layer_kind(lp: caffe_pb2.LayerParameter):
    """The Layer class (fcnkit/layers) of a LayerParameter, whose surgery attributes
    (``spatial_filter``, ``fully_connected``, ``declares_input_shape``...) say what surgery
    may do with it; the base :class:`fcnkit.layers.base.Layer` (all False) for a type
    fcnkit does not register."""
    from fcnkit.layers import lookup
    from fcnkit.layers.base import Layer

    return lookup(lp.type) or Layer


def layer_indices(param: caffe_pb2.NetParameter, name: str) -> list[int]:
    """Indices of every layer named ``name`` (several only across phases)."""
    return [i for i, lp in enumerate(param.layer) if lp.name == name]


def remove_layers(param: caffe_pb2.NetParameter, names: Iterable[str]) -> list[str]:
    """Remove the named layers (in every phase), then any layer left reading a blob that
    no remaining layer produces. Returns the names removed, in net order."""
    names = set(names)
    removed: list[str] = []
    while True:
        keep, gone = [], []
        for lp in param.layer:
            (gone if lp.name in names else keep).append(lp)
        if not gone:
            break
        removed.extend(lp.name for lp in gone if lp.name not in removed)
        produced = {t for lp in keep for t in lp.top}
        kept_msgs = [copy.deepcopy(lp) for lp in keep]
        del param.layer[:]
        param.layer.extend(kept_msgs)
        names = {lp.name for lp in param.layer if any(b not in produced for b in lp.bottom)}
    return removed


def rename_blob(param: caffe_pb2.NetParameter, old: str, new: str, start: int) -> None:
    """Rename blob ``old`` to ``new`` in every top and bottom from layer ``start`` on."""
    for lp in param.layer[start:]:
        for field in (lp.bottom, lp.top):
            for i, b in enumerate(field):
                if b == old:
                    field[i] = new


def first_input_blob(built: AnalysedNet) -> str:
    """Caffe name of the net's first input blob.

    Raises:
        SurgeryError: the net has no input layer.
    """
    if not built.net.inputs:
        raise SurgeryError("the net has no input layer (Input, Data, ...)")
    return built.net.blob_name[built.net.inputs[0]]


def classifier_layer(built: AnalysedNet, what: str) -> str:
    """The layer that computes a classifier's class scores: walking back from the net
    outputs through layers without weights (Softmax, Dropout, Accuracy, ...), the first
    layer with weights. Every output must lead to the same one.

    Raises:
        SurgeryError: no such layer, or several (name it explicitly).
    """
    net = built.net
    found: dict[str, list[str]] = {}
    for out in net.outputs:
        node = net.producer.get(out)
        seen = set()
        while node is not None and node.name not in seen:
            seen.add(node.name)
            if node.role == "input":
                node = None
                break
            if node.layer.param_names():
                break
            ins = [b for b in node.bottoms if net.producer.get(b) is not None
                   and net.producer[b].role != "input"]
            node = net.producer.get(ins[0]) if ins else None
        if node is not None:
            found.setdefault(node.name, []).append(net.blob_name[out])
    if not found:
        raise SurgeryError(f"{what}: no layer with weights computes the net's outputs "
                           f"({', '.join(net.blob_name[o] for o in net.outputs)}); name the "
                           "classifier layer explicitly (--classifier LAYER, classifier=...)")
    if len(found) > 1:
        listing = "; ".join(f"'{k}' (outputs {', '.join(v)})" for k, v in found.items())
        raise SurgeryError(f"{what}: the net's outputs come from several scoring layers: {listing}; "
                           "name the classifier layer explicitly (--classifier LAYER, classifier=...)")
    return next(iter(found))


def fmt_shape(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape) if len(shape) else "scalar"
